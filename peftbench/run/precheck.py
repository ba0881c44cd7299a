"""What a sweep can check before Hydra starts its jobs, for every task and model it names at once: each
task's data folder (under `data_root` or `task.data_dir`) and, when the hub is offline, that each hub model
is in the local cache. Every problem is named in one message (exit 2), instead of one failed job per task.
And while a sweep runs, `repeated_failure` stops it after the same error in several jobs in a row."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from ..errors import UserError

KEEP_GOING_ENV = "PEFTBENCH_KEEP_GOING"  # set by `peftbench run -m --keep-going`
SAME_ERROR_IN_A_ROW = 3


def _choices(overrides: list[str], group: str) -> list[str]:
    for arg in overrides:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") == group and "(" not in value:
            return [v.strip().strip("'\"") for v in value.split(",")]
    return []


def check_sweep(overrides: list[str], compose, first_of_sweeps) -> None:
    """Compose the sweep at each of its task x model choices (other sweeps at their first value) and raise
    one UserError naming every missing data folder and every hub model not available offline. `compose`
    and `first_of_sweeps` are the command line's (cli.py): overrides -> config, and each sweep at its first value."""
    from ..tasks.loading import resolve_data_dir

    tasks, models = _choices(overrides, "task"), _choices(overrides, "model")
    if len(tasks) <= 1 and len(models) <= 1:
        return  # the one config is checked as it is composed, and again when the run starts
    rest = [a for a in first_of_sweeps(overrides, True) if a.partition("=")[0].lstrip("+~") not in ("task", "model")]
    problems: list[str] = []
    for task, model in itertools.product(tasks or [None], models or [None]):
        picked = [*([f"task={task}"] if task else []), *([f"model={model}"] if model else [])]
        cfg = compose([*rest, *picked])
        try:
            resolve_data_dir(cfg.task, cfg.get("data_root"))
        except UserError as exc:
            problems.append(str(exc))
        problems.append(_offline_model_problem(cfg.model))
    problems = list(dict.fromkeys(p for p in problems if p))  # once each, in order
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UserError(f"{len(problems)} problem(s) in this sweep, found before any job started:\n{lines}")


def _offline_model_problem(model) -> str:
    """A hub model (not a folder) while the hub is offline must be in the local cache."""
    name = str(model.get("name_or_path") or "")
    offline = any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
                  for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if not name or not offline or ":" in name or Path(name).expanduser().exists():
        return ""  # a folder, or a model a package ships (package:<module>/<folder>)
    from huggingface_hub import try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return ""
    except Exception:  # not a valid hub id: loading names it
        return ""
    return (f"model={model.name} (model.name_or_path={name}): not in the local hub cache, and the hub is offline "
            "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE). Download it once online, or give a folder.")


def repeated_failure(cfg) -> str | None:
    """The error the last SAME_ERROR_IN_A_ROW finished jobs of this sweep all ended with, or None (also
    outside a sweep, and with --keep-going)."""
    from .sweep import SWEEP_ENV

    sweep_id = os.environ.get(SWEEP_ENV)
    if not sweep_id or os.environ.get(KEEP_GOING_ENV) == "1":
        return None
    ledger_jobs = Path(cfg.results_dir) / "sweeps" / sweep_id / "jobs"
    if not ledger_jobs.is_dir():
        return None
    finished = []
    for path in sorted(ledger_jobs.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            job = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if job.get("status") not in ("running", "skipped"):
            finished.append(job)
    last = finished[-SAME_ERROR_IN_A_ROW:]
    if len(last) < SAME_ERROR_IN_A_ROW or any(j["status"] != "failed" for j in last):
        return None
    errors = {(j.get("error_type"), (j.get("message") or "").strip().split("\n")[0]) for j in last}
    if len(errors) != 1:
        return None
    error_type, message = errors.pop()
    return f"{error_type}: {message}"
