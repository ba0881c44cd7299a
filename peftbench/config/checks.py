"""Checks run before a run starts: values across the whole config and the method's own knobs,
every problem reported at once (`check_config`, `raise_problems`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError
from .kinds import kind_problems
from .schema import POOLINGS, ISTConfig


def _positive(problems: list[str], cfg: DictConfig, key: str, allow_zero: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        problems.append(f"{key}={value}: must be {bound}.")


def check_config(cfg: DictConfig, method, metric_names: list[str]) -> tuple[Any, list[str]]:
    """Check values across the whole config and the method's knobs (`method.check`).
    Returns (method knobs, problems)."""
    problems: list[str] = []
    for key in ("train.lr", "train.batch_size", "train.eval_batch_size", "train.grad_accum",
                "train.log_every", "model.max_length", "hardware.num_processes", "train.inference_examples",
                "train.group_megabatch"):
        _positive(problems, cfg, key)
    for key in ("train.weight_decay", "train.max_grad_norm", "train.checkpoint_every",
                "train.throughput_warmup_steps"):
        _positive(problems, cfg, key, allow_zero=True)
    t = cfg.train
    if t.eval_every != "epoch" and (isinstance(t.eval_every, bool) or not isinstance(t.eval_every, int)
                                    or t.eval_every < 0):
        problems.append(f"train.eval_every={t.eval_every!r}: give a number of optimizer steps >= 0 "
                        "(0: at the end only) or 'epoch'.")
    if t.report not in ("last", "best"):
        problems.append(f"train.report='{t.report}': must be one of last, best.")
    if t.max_steps <= 0 and t.max_steps != -1:
        problems.append(f"train.max_steps={t.max_steps}: must be > 0, or -1 to train by epochs.")
    elif t.max_steps <= 0 and t.epochs <= 0:
        problems.append(f"train.epochs={t.epochs} and train.max_steps={t.max_steps}: set one of them > 0.")
    problems += ISTConfig(**OmegaConf.to_container(t.ist, resolve=True)).problems() if "ist" in t else []
    if not 0 <= t.warmup_ratio < 1:
        problems.append(f"train.warmup_ratio={t.warmup_ratio}: must be in [0, 1).")
    hw = cfg.hardware
    if hw.device not in ("auto", "cpu", "cuda"):
        problems.append(f"hardware.device='{hw.device}': must be one of auto, cpu, cuda.")
    if hw.mixed_precision not in ("no", "fp16", "bf16", "auto"):
        problems.append(f"hardware.mixed_precision='{hw.mixed_precision}': must be one of no, fp16, bf16, auto.")
    if hw.busy_gpu not in ("record", "refuse"):
        problems.append(f"hardware.busy_gpu='{hw.busy_gpu}': must be one of record, refuse.")
    m = cfg.model
    if not m.name_or_path and not m.arch:
        problems.append(f"model '{m.name}': set model.name_or_path (hub id or folder) or model.arch "
                        "(config kwargs for a random-init model).")
    if m.get("pooling", "default") not in POOLINGS:
        problems.append(f"model.pooling='{m.pooling}': must be one of {', '.join(POOLINGS)} "
                        "(what the classifier reads; default: as transformers builds the model).")
    path = str(m.name_or_path or "")
    if path.startswith(("/", ".", "~")) and not Path(path).expanduser().is_dir():  # a folder, not a hub id
        problems.append(f"model.name_or_path={path}: no such folder. Give a folder with the checkpoint's "
                        "config.json (and weights), or a hub id like roberta-base.")
    problems += _task_problems(cfg.task, metric_names, cfg.data_root)
    best = t.metric_for_best
    if best is not None and best not in _metric_columns(cfg.task):
        problems.append(f"train.metric_for_best='{best}': not a metric of task '{cfg.task.name}'. "
                        f"Choose one of: {', '.join(_metric_columns(cfg.task))}.")
    knobs, method_problems = method.check(cfg.method)
    return knobs, problems + method_problems


def eval_splits(task: DictConfig) -> dict[str, str]:
    return dict(task.eval_splits) if task.eval_splits else {"validation": ""}


def _metric_columns(task: DictConfig) -> list[str]:
    return [m + suffix for suffix in eval_splits(task).values() for m in task.metrics]


def _task_problems(task: DictConfig, metric_names: list[str], data_root: str | None = None) -> list[str]:
    problems = []
    name = task.name
    for metric in task.metrics:
        if metric not in metric_names:
            problems.append(f"task '{name}': unknown metric '{metric}'. Available: {', '.join(metric_names)}.")
    if task.main_metric not in task.metrics:
        problems.append(f"task.main_metric='{task.main_metric}': not in task.metrics {list(task.metrics)}.")
    stray = [m for m in task.score_metrics or [] if m not in task.metrics]
    if stray:
        problems.append(f"task.score_metrics: {', '.join(stray)} not in task.metrics {list(task.metrics)}.")
    if task.kind == "classification" and not 1 <= len(task.text_fields) <= 2:
        problems.append(f"task.text_fields={list(task.text_fields)}: give one field or a pair.")
    problems += kind_problems(task)
    if task.label_names is not None and len(task.label_names) < 2:
        problems.append(f"task.label_names={list(task.label_names)}: a classification task needs >= 2 labels "
                        "(use null for regression).")
    if not (task.data_dir or (data_root and task.data_subdir) or task.dataset or task.generator or task.data_files):
        problems.append(f"task '{name}': no data source. Set task.data_dir=<folder> (or task.dataset=<hub id>).")
    for key in ("max_train_samples", "max_eval_samples"):
        value = task[key]
        if value is not None and value <= 0:
            problems.append(f"task.{key}={value}: must be > 0 (or null for all).")
    return problems


def raise_problems(problems: list[str]) -> None:
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UserError(f"{len(problems)} problem(s) in the config:\n{lines}")
