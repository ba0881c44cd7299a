"""A protocol's per-task settings: `per_task: {<task name>: {<dotted key>: value}}` (e.g. the LoRA paper's
epochs and learning rate per GLUE task), applied to one job's config for its own task."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict

from ..errors import UserError

_ABSENT = object()


def apply_per_task(cfg: DictConfig, explicit=()) -> dict:
    """Set the keys `cfg.per_task[cfg.task.name]` names, except those in `explicit` (given on the command
    line: they win), then empty `per_task` (what it set is now in the config, which is what a run's hash
    and run file see). Returns {key: value} of what was set. A key the config does not have is an error."""
    entries = OmegaConf.to_container(cfg.per_task, resolve=True).get(cfg.task.name) or {}
    unknown = [k for k in entries if OmegaConf.select(cfg, k, default=_ABSENT) is _ABSENT]
    if unknown:
        raise UserError(f"per_task.{cfg.task.name}: unknown key(s) {', '.join(unknown)}; use dotted keys of the "
                        "config, e.g. train.epochs, train.lr, model.max_length (`peftbench run --cfg job` lists them).")
    applied = {k: v for k, v in entries.items() if k not in set(explicit)}
    for key, value in applied.items():
        OmegaConf.update(cfg, key, value, merge=False)
    with open_dict(cfg):
        cfg.per_task = {}
    return applied
