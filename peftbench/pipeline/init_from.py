"""`train.init_from`: the earlier run whose trained tensors a run starts from (a protocol that starts
RTE, MRPC and STS-B from the MNLI run, as the LoRA paper does); train/checkpoint.py loads them."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import runfile
from ..errors import UserError


def find_init_run(cfg: DictConfig) -> dict:
    """The ok run `train.init_from` names: a run dir (or its run.json), or `task:<name>`, the newest ok run
    under results_dir of that task with this run's model, method (same knobs) and seed."""
    spec = str(cfg.train.init_from)
    if not spec.startswith("task:"):
        path = Path(spec).expanduser()
        path = path / runfile.FILE_NAME if path.is_dir() or not path.suffix else path
        record = runfile.read(path)
        if record is None or record.get("status") != "ok":
            state = "no run file" if record is None else f"status {record.get('status')}"
            raise UserError(f"train.init_from={spec}: {path}: {state}; give the folder of a run that ended ok, "
                            "or task:<name> for this model x method x seed's run of that task.")
        if record.get("method") != cfg.method.name:
            raise UserError(f"train.init_from={spec}: that run trained method '{record.get('method')}', this one "
                            f"is '{cfg.method.name}'; start from a run of the same method.")
        # the folder named, not the run_dir its run file recorded: the run may have been moved or copied since
        return {**record, "run_dir": str(path.parent.absolute())}
    task = spec[len("task:"):]
    knobs = OmegaConf.to_container(cfg.method, resolve=True)
    found = []
    for path in runfile.find_run_files([cfg.results_dir]):
        record = runfile.read(path)
        if record and record.get("status") == "ok" and record.get("task") == task and \
                record.get("model") == cfg.model.name and record.get("method") == cfg.method.name and \
                record.get("seed") == cfg.seed and (record.get("config") or {}).get("method") == knobs:
            found.append({**record, "run_dir": str(path.parent.absolute())})  # where it is now
    if not found:
        raise UserError(f"train.init_from={spec}: no ok run of {cfg.model.name} + {cfg.method.name} (same knobs), "
                        f"seed {cfg.seed}, on {task} under {cfg.results_dir}. Run it first, e.g. "
                        f"peftbench run model={cfg.model.name} method={cfg.method.name} task={task} seed={cfg.seed}.")
    return max(found, key=lambda r: r.get("finished_at") or "")
