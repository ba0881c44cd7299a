"""Sweeps: skip what is done, record how each job ended, summarise at the end.

- `config_hash(cfg)`: a stable hash of the resolved config minus the keys that do not change a result
  (`VOLATILE`), plus the identity of the data files the run reads (split, size, SHA-256: an edited file
  is a new config; tasks/fingerprint.py). Every run file stores it; a run is "done" when an `ok` run
  file under `results_dir` has the same hash, whatever its folder is called.
- A multirun gets an id (`PEFTBENCH_SWEEP_ID`, set by `peftbench run -m` through
  `hydra.job.env_set`, so it reaches joblib and SLURM jobs too); each job writes its outcome to
  `<results_dir>/sweeps/<id>/jobs/<run name>.json`, and `SweepSummary` (a Hydra callback, in the
  launching process) prints and saves the summary when every job has returned.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .. import runfile
from ..config import VOLATILE
from ..tasks.fingerprint import data_fingerprint, identity

# Keys added after run files existed: left out of the hash while they hold these values, so a
# run file written before the key existed still matches its re-run (a sweep skips it instead of re-running)
NEUTRAL_DEFAULTS = {"train.gradient_checkpointing": False, "train.inference_cost": False, "train.inference_examples": 64,
                    "train.forgetting": False, "train.forgetting_text": None,
                    "hardware.busy_gpu": "record", "model.quantization": None,
                    "model.pooling": "default"}
SWEEP_ENV = "PEFTBENCH_SWEEP_ID"
OUTCOMES = ("ok", "skipped", "failed", "killed", "running")
LAST_SUMMARY: dict | None = None  # set in the launching process when a multirun ends


def config_hash(cfg: DictConfig, fingerprint: list[dict] | None = None) -> str:
    """The run's identity: its config without VOLATILE keys, and its data files' contents (`fingerprint`,
    computed here when not given)."""
    config = OmegaConf.to_container(cfg, resolve=True)
    files = data_fingerprint(cfg.task, cfg.get("data_root")) if fingerprint is None else fingerprint
    if files:
        config["data_files"] = identity(files)
    config.pop("hydra", None)
    for key in (*VOLATILE, *NEUTRAL_DEFAULTS):
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.get(p) or {}
        if key in VOLATILE or node.get(leaf, None) == NEUTRAL_DEFAULTS[key]:
            node.pop(leaf, None)
    train = config.get("train", {})
    if not (train.get("ist") or {}).get("layers"):  # IST off: the hashes of runs made before train.ist existed
        train.pop("ist", None)
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def find_ok_run(results_dir: str | Path, key: str, first: Path | None = None) -> Path | None:
    """The run file of an `ok` run with this config hash under results_dir (`first` is looked at first)."""
    candidates = [first] if first is not None and first.is_file() else []
    for path in candidates + runfile.find_run_files([results_dir]):
        record = runfile.read(path)
        if record is None:
            continue  # a file being written by another job, or not a run file
        if record.get("status") == "ok" and record.get("config_hash") == key:
            return path
    return None


def new_sweep_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S") + f"_{os.getpid()}"


def record_outcome(cfg: DictConfig, run_dir: Path, status: str, **detail) -> None:
    """Write this job's outcome to the sweep's ledger (only inside a multirun started by peftbench)."""
    sweep_id = os.environ.get(SWEEP_ENV)
    if not sweep_id:
        return
    path = Path(cfg.results_dir) / "sweeps" / sweep_id / "jobs" / f"{run_dir.name}.json"
    runfile.write_atomic(path, {"status": status, "run_dir": str(run_dir), **detail})


def summarize(ledger: Path) -> dict:
    jobs = []
    for path in sorted((ledger / "jobs").glob("*.json")):
        try:
            jobs.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            jobs.append({"status": "running", "run_dir": path.stem})
    counts = {s: sum(j["status"] == s for j in jobs) for s in OUTCOMES}
    return {"ledger": str(ledger), "counts": counts, "jobs": jobs}


def format_summary(summary: dict) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in summary["counts"].items() if n)
    lines = [f"peftbench sweep: {sum(summary['counts'].values())} jobs: {counts or 'none'}"]
    for job in summary["jobs"]:
        if job["status"] not in ("ok", "skipped"):
            lines.append(f"  {job['status']}: {job['run_dir']}: {job.get('error_type', '')}: "
                         f"{(job.get('message') or '').strip().splitlines()[0] if job.get('message') else ''}")
    lines.append(f"  ledger: {summary['ledger']}/summary.json")
    return "\n".join(lines)


class SweepSummary(Callback):
    """At the end of a multirun: print ok/failed/skipped counts and write <ledger>/summary.json."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        global LAST_SUMMARY
        sweep_id = OmegaConf.select(config, f"hydra.job.env_set.{SWEEP_ENV}")
        if not sweep_id:
            return
        ledger = Path(config.results_dir) / "sweeps" / str(sweep_id)
        LAST_SUMMARY = summarize(ledger)
        runfile.write_atomic(ledger / "summary.json", LAST_SUMMARY)
        print(format_summary(LAST_SUMMARY), flush=True)
