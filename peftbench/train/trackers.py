"""Experiment trackers through accelerate (`train.log_with=tensorboard`, `wandb`, `mlflow`, or several
comma-separated): the training loop calls `accelerator.log` at each `train.log_every` step (loss, learning
rate, samples/s) and after each evaluation (every metric); with no tracker that call does nothing.

TensorBoard writes offline into `<run dir>/tracker/peftbench/` (the run file's `artifacts.tracker`
names it); wandb and mlflow follow their own settings (WANDB_MODE, MLFLOW_TRACKING_URI). Each tracker is
an optional install: `pip install peftbench[track]` brings TensorBoard.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import UserError, unknown_name

PROJECT = "peftbench"
TRACKER_DIR = "tracker"
# tracker -> the module it needs, and what to install
TRACKERS = {"tensorboard": ("tensorboard", "pip install 'peftbench[track]' (or pip install tensorboard)"),
            "wandb": ("wandb", "pip install wandb"),
            "mlflow": ("mlflow", "pip install mlflow")}


def tracker_names(log_with) -> list[str]:
    """`train.log_with` as a list: null, "none" or "" -> []; "tensorboard,wandb" -> both; names checked."""
    if log_with is None:
        return []
    names = [n.strip() for n in (log_with if isinstance(log_with, (list, tuple)) else str(log_with).split(","))]
    names = [n for n in names if n and n != "none"]
    for name in names:
        if name not in TRACKERS:
            raise unknown_name("tracker", name, TRACKERS, hint="Set train.log_with=<name>[,<name>] or null.")
        module, install = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"train.log_with={name}: the '{module}' package is not installed. {install}")
    return names


def accelerator_kwargs(log_with, run_dir) -> dict:
    """What `Accelerator(...)` needs for the trackers (nothing without any)."""
    names = tracker_names(log_with)
    if not names:
        return {}
    from accelerate.utils import ProjectConfiguration

    return {"log_with": names, "project_config": ProjectConfiguration(
        project_dir=str(run_dir), logging_dir=str(Path(run_dir) / TRACKER_DIR))}


def _flat(config: dict, prefix: str = "") -> dict:
    """Nested config -> {dotted key: int | float | str | bool} (TensorBoard's hparams take no lists or None)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def start(accelerator, config: dict, log_with) -> dict | None:
    """Open the trackers with the run's config; the run file's `artifacts.tracker`, or None."""
    names = tracker_names(log_with)
    if not names:
        return None
    accelerator.init_trackers(PROJECT, config=_flat({k: v for k, v in config.items() if k != "per_task"}))
    out = {"log_with": names}
    if "tensorboard" in names:
        out["dir"] = f"{TRACKER_DIR}/{PROJECT}"  # relative to the run dir
    return out
