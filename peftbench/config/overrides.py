"""A protocol's per-task settings: `per_task: {<task name>: {<dotted key>: value}}` (e.g. the LoRA paper's
epochs and learning rate per GLUE task), applied to one job's config for its own task."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict

from ..errors import UserError, unknown_name

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


def task_name_problems(cfg: DictConfig, task_names) -> list[str]:
    """Task names a config holds besides `task` itself, checked against `task_names` (the task files):
    the keys of `per_task` (a misspelt one would be ignored without a word) and `train.init_from=task:<name>`,
    also inside per_task."""
    names = sorted({*task_names, cfg.task.name})
    per_task = OmegaConf.to_container(cfg.per_task, resolve=True) or {}
    problems = [f"per_task: {unknown_name('task', t, names)}" for t in per_task if t not in names]
    starts = [("train.init_from", cfg.train.init_from)]
    starts += [(f"per_task.{t}.train.init_from", (entries or {}).get("train.init_from"))
               for t, entries in per_task.items()]
    for key, spec in starts:
        if isinstance(spec, str) and spec.startswith("task:") and spec[len("task:"):] not in names:
            problems.append(f"{key}={spec}: {unknown_name('task', spec[len('task:'):], names)}")
    return problems


def check_task_names(cfg: DictConfig, config_dirs=()) -> None:
    """`task_name_problems` against the task files of conf/ and the --config-dir folders; one UserError."""
    from pathlib import Path

    from .checks import raise_problems
    from .schema import group_options

    names = {*group_options("task"), *(o for d in config_dirs for o in group_options("task", Path(d)))}
    raise_problems(task_name_problems(cfg, names))
