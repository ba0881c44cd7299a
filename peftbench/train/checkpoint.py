"""Save and load only what a method trains: the trainable tensors (and the buffers the model keeps in
its state dict, e.g. a sparse mask), as safetensors. Loading into the same model x method built from
the same base weights reproduces the trained model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import UserError
from ..runfile import umask
from .statefile import Damaged

log = logging.getLogger("peftbench")


def trainable_state(model) -> dict:
    """{name: tensor} of the trainable parameters and the persistent buffers, detached, contiguous.
    A tensor shared under several names (VeRA's projections) is kept once: loading it fills them all."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    state, seen = {}, set()
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if (name in trainable or name not in params) and key not in seen:
            seen.add(key)
            state[name] = tensor.detach().contiguous().cpu()
    return state


def save_trainable(model, path: str | Path) -> Path:
    """Write the trainable state to `path` (safetensors; written to a temp name, then renamed)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(trainable_state(model), str(tmp))
        os.chmod(tmp, 0o666 & ~umask())  # safetensors writes 0600; run files and checkpoints follow the umask
        tmp.replace(path)
    except BaseException:  # a full disk: give the space of the half-written file back (the run file needs it)
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_trainable(model, path: str | Path | dict):
    """Load a `save_trainable` file (or the tensors read from one) into a model built the same way; every
    trainable tensor must be in it."""
    from safetensors.torch import load_file

    state = path if isinstance(path, dict) else load_file(str(path))
    result = model.load_state_dict(state, strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(trainable & set(result.missing_keys))
    if result.unexpected_keys or missing:
        raise UserError(f"{'checkpoint' if isinstance(path, dict) else path}: does not match this model x method: "
                        f"{len(result.unexpected_keys)} unknown tensor(s) (e.g. {result.unexpected_keys[:2]}), "
                        f"{len(missing)} trainable tensor(s) missing (e.g. {missing[:2]}). Build the same "
                        "model and method (same knobs) before loading.")
    return model


def load_initial(model, run: dict, head_modules) -> dict:
    """`train.init_from`: load another run's trained tensors (its trainable.safetensors) into this model,
    all but the task head's (a new task has its own head, e.g. MRPC's 2 labels after MNLI's 3). The
    other run must be of the same method with the same knobs: a tensor this model lacks, one it trains
    that the file lacks, or a shape that differs is an error naming it."""
    from safetensors.torch import load_file

    from ..methods.counting import canonical_name

    source = Path(run["run_dir"]) / "trainable.safetensors"
    if not source.is_file():
        raise UserError(f"train.init_from: {source} does not exist (was the run made with train.save_trainable=false?).")
    head = set(head_modules)

    def in_head(name: str) -> bool:
        return canonical_name(name).split(".")[0] in head

    try:
        state = {n: t for n, t in load_file(str(source)).items() if not in_head(n)}
    except Exception as exc:  # cut short or changed: safetensors' own error type, or an OSError
        raise UserError(f"train.init_from: {source} cannot be read ({exc}): the file is damaged. Run that run "
                        "again (--force), or start from another run.") from None
    own = model.state_dict()
    trains = {n for n, p in model.named_parameters() if p.requires_grad and not in_head(n)}
    unknown = sorted(set(state) - set(own))
    missing = sorted(trains - set(state))
    shapes = [f"{n} {tuple(state[n].shape)} vs {tuple(own[n].shape)}" for n in state
              if n in own and state[n].shape != own[n].shape]
    if unknown or missing or shapes:
        raise UserError(f"train.init_from={run['run_dir']} ({run.get('method')}): its tensors do not fit this "
                        f"model x method: {len(unknown)} unknown (e.g. {unknown[:2]}), {len(missing)} missing "
                        f"(e.g. {missing[:2]}), {len(shapes)} of another shape (e.g. {shapes[:2]}). Use a run "
                        "of the same model and method with the same knobs.")
    model.load_state_dict(state, strict=False)
    return {"run_dir": run["run_dir"], "task": run.get("task"), "tensors": len(state),
            "skipped_head": sorted(head)}


# Resumable training checkpoints: <run dir>/checkpoints/step-0000200/ holds
#   trainable.safetensors         the trainable tensors (as above)
#   state.json, .safetensors      optimizer, scheduler, step, histories, config hash (main process)
#   rank-<r>.json, .safetensors   each process's RNG states and sample/token counts
#   manifest.json                 every file's size and SHA-256, written last (train/statefile.py)
# No pickles: resuming in a results folder from elsewhere reads data, never code. A checkpoint is written
# into a hidden temp folder and renamed into place when complete, so a kill at any moment leaves the
# earlier ones intact; the last KEEP are kept, so a damaged newest one falls back to the one before.
CHECKPOINTS = "checkpoints"
KEEP = 2


def save_checkpoint(run_dir, step: int, model, optimizer, scheduler, state: dict, rank_state: dict,
                    accelerator) -> Path:
    import shutil

    from .statefile import save_tree, write_manifest

    root = Path(run_dir) / CHECKPOINTS
    final, tmp = root / f"step-{step:07d}", root / f".step-{step:07d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        save_tree({**rank_state, "rng": _rng_state()}, tmp, f"rank-{accelerator.process_index}")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_trainable(accelerator.unwrap_model(model), tmp / "trainable.safetensors")
            save_tree({**state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp, "state")
            write_manifest(tmp, sorted(p.name for p in tmp.iterdir()))
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in _steps(root)[:-KEEP]:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:  # a full disk, a kill: leave no half checkpoint taking the space
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    return final


def _steps(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("step-*") if p.is_dir())


def load_latest(run_dir, config_hash, model, optimizer, scheduler, accelerator, force: bool = False):
    """Restore the newest good checkpoint of this config into the model, optimizer and scheduler; returns
    (path, state, this process's rank state), or None to start from step 0. A damaged checkpoint is
    passed over for the one before, with one warning; checkpoints of another config, or none readable,
    are removed with one warning. One written by an older peftbench (pickles) is refused unless `force`."""
    root = Path(run_dir) / CHECKPOINTS
    found = _steps(root)
    old = [p.name for p in found if any(p.glob("*.pt")) and not (p / "manifest.json").exists()]
    if old and not force:
        raise UserError(f"{root}: {', '.join(old)} {'was' if len(old) == 1 else 'were'} written by an older "
                        "peftbench (pickle files, which this version never loads: they could run code). Start "
                        "this run over with --force (the old checkpoints are removed).")
    damaged, loaded = [], None
    for path in reversed([p for p in found if p.name not in old]):
        try:
            loaded = _read_checkpoint(path, accelerator.process_index)
        except Damaged as exc:
            damaged.append(f"{path.name} ({exc})")
            continue
        if loaded[0].get("config_hash") != config_hash:
            log.warning("%s was made with another config: starting this run over (it will be replaced)", path)
            loaded = None
        break
    if damaged:
        log.warning("damaged checkpoint(s) skipped: %s; %s", "; ".join(damaged),
                    f"resuming from {path.name}" if loaded else "starting this run over from step 0")
    if loaded is None:
        _discard(root, found, accelerator)
        return None
    state, rank_state, trainable = loaded
    # newer ones (damaged, or another config's) and old-format ones are not to be kept
    _discard(root, [p for p in found if p > path or p.name in old], accelerator)
    load_trainable(accelerator.unwrap_model(model), trainable)
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    return path, state, rank_state  # rank_state["rng"]: set it with set_rng_state when training goes on


def _read_checkpoint(path: Path, rank: int) -> tuple[dict, dict, dict]:
    """Everything a checkpoint holds for this process, read and verified before any of it is used."""
    from safetensors.torch import load_file

    from .statefile import load_tree, verify_manifest

    names = verify_manifest(path)
    if "trainable.safetensors" not in names or "state.json" not in names:
        raise Damaged(f"{path}: incomplete (no trainable tensors or state)")
    try:
        trainable = load_file(str(path / "trainable.safetensors"))
    except Exception as exc:  # safetensors' own error type
        raise Damaged(f"{path / 'trainable.safetensors'}: {exc}") from None
    state = load_tree(path, "state")
    rank_state = load_tree(path, f"rank-{rank}") if f"rank-{rank}.json" in names else {}
    return state, rank_state, trainable


def _discard(root: Path, paths: list[Path], accelerator) -> None:
    """Remove checkpoints, once every process has read what it needs."""
    import shutil

    if not paths:
        return
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()


def _rng_state() -> dict:
    import random

    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(rng: dict) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
