"""The stages of a run, in the order `pipeline.execute` calls them; each fills its part of the run file
`record` and hands the next stage what it needs."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..config import check_config, eval_splits, raise_problems
from ..errors import UserError
from ..methods.counting import build_counted, summarize_names
from ..methods.hooks import hooks_of
from .device import is_main_process, make_accelerator

log = logging.getLogger("peftbench")
TRAINED_IN_THIS_PROCESS = [0]  # runs that trained before this one in this Python process


def resolve(cfg):
    """(the run's `Method` record, its checked knobs): every value of the composed config checked at once,
    one message listing each problem. The config comes per-task-resolved (cli.compose, run/job.py)."""
    from ..methods import METHODS
    from ..metrics import METRICS
    from ..models import check_max_length

    if (cfg.get("per_task") or {}).get(cfg.task.name):
        raise UserError(f"per_task.{cfg.task.name} is not applied to this config: compose it with "
                        "peftbench.cli.compose (or call config.apply_per_task) before running it.")
    method = METHODS.get(cfg.method.name)
    knobs, problems = check_config(cfg, method, METRICS.names())
    raise_problems(problems)
    from ..methods.peft_methods import check_targets_early

    check_targets_early(cfg)  # a misspelt method.target_modules name, before the data loads
    if cfg.task.kind != "image_classification":
        check_max_length(cfg.model)
    return method, knobs


def setup_device(cfg, record: dict):
    """(accelerator, what the run file's memory block says of the device: the precision chosen and the GPU
    memory other processes held at the start); the seed set for everything after."""
    from accelerate.utils import set_seed

    from ..train.measure import check_busy_gpu

    accelerator, precision = make_accelerator(cfg, record["run_dir"])
    log.info("mixed precision: %s (%s)", precision["mixed_precision"], precision["mixed_precision_why"])
    busy = check_busy_gpu(accelerator.device, cfg.hardware.busy_gpu)  # before this run allocates anything on the GPU
    set_seed(cfg.seed)
    return accelerator, {"precision": precision, "busy": busy}


def load_data(cfg, record: dict):
    """The task's splits (tasks/loading.py); the run file's `data` says where from and how many."""
    from ..tasks import load_task

    task = cfg.task
    data = load_task(task, seed=cfg.seed, data_root=cfg.data_root)
    record["data"] = {"source": data.source, "train_examples": len(data.train),
                      "eval_examples": {s: len(df) for s, df in data.evals.items()}, **record["data"]}
    log.info("task %s from %s: %d train, %s eval examples", task.name, data.source, len(data.train),
             record["data"]["eval_examples"])
    return data


def build_model(cfg, knobs, data, record: dict):
    """The model with the method applied (with its checked `knobs`) and counted (`params`), started from
    `train.init_from`'s tensors if asked; refused if the method cannot train on it (`cannot_train` hook)."""
    t = cfg.train
    model, _, record["params"] = build_counted(cfg, data.num_labels, knobs=knobs)
    if t.init_from:
        from ..train.checkpoint import load_initial
        from .init_from import find_init_run

        record["init_from"] = load_initial(model, find_init_run(cfg), record["params"]["head_modules"])
        log.info("started from %s (%d tensors; task head %s new)", record["init_from"]["run_dir"],
                 record["init_from"]["tensors"], ", ".join(record["init_from"]["skipped_head"]) or "none")
    cannot_train = hooks_of(model).cannot_train
    if cannot_train:
        raise UserError(f"method {cfg.method.name} on model {cfg.model.name}: {cannot_train}")
    if t.gradient_checkpointing:
        from ..train.grad_checkpointing import enable_gradient_checkpointing

        enable_gradient_checkpointing(model, cfg.method.name)
    p = record["params"]
    log.info("method %s on %s (%s): %s of %s parameters train (%.4f%%; method %s, head %s):\n  %s",
             cfg.method.name, cfg.model.name, p["family"], f"{p['trainable']:,}", f"{p['base_total']:,}",
             p["trainable_pct"], f"{p['method']:,}", f"{p['head']:,}",
             "\n  ".join(summarize_names(p["trainable_names"])))
    return model


def make_batches(cfg, data, record: dict):
    """(train loader, {split: (eval loader, metric suffix)}) of the task's kind (train/kinds/<kind>.py);
    the run file's `data.tokenized` says how long it took and where each split's features came from."""
    from ..train.kinds import make_loaders

    began = time.perf_counter()
    train_loader, eval_loaders, cache = make_loaders(cfg, data)
    record["data"]["tokenized"] = {"seconds": round(time.perf_counter() - began, 3), "cache": cache}
    return train_loader, eval_loaders


def forgetting_before(cfg, model, accelerator):
    """`train.forgetting`: the base model's general-text loss, before training (train/forgetting.py)."""
    if not cfg.train.forgetting:
        return None
    from ..train.forgetting import Forgetting

    forgetting = Forgetting(cfg, accelerator)
    forgetting.before(model)
    return forgetting


def train(cfg, model, train_loader, eval_loaders, accelerator, record: dict):
    """(the loop's FitResult, the memory peaks during training): train/loop.py, with the run's trackers
    (`train.log_with`; the run file's `artifacts.tracker`)."""
    from ..train import fit, trackers
    from ..train.measure import PeakMemory

    tracker = trackers.start(accelerator, record["config"], cfg.train.log_with)
    try:
        with PeakMemory(accelerator.device) as memory:
            result = fit(model, train_loader, eval_loaders, cfg, accelerator,
                         cfg.train.metric_for_best or main_metric(cfg.task),
                         run_dir=record["run_dir"], config_hash=record["config_hash"], memory=memory)
    finally:
        TRAINED_IN_THIS_PROCESS[0] += 1
        if tracker:
            accelerator.end_training()
    if tracker:
        record["artifacts"] = {"tracker": tracker}
    return result, memory


def main_metric(task) -> str:
    """The task's main metric on its first eval split, e.g. accuracy or accuracy_matched."""
    return task.main_metric + next(iter(eval_splits(task).values()))


def report_evaluation(cfg, result, record: dict) -> None:
    """The run's metrics: its last evaluation, or its best by `train.metric_for_best` (`train.report`)."""
    reported = result.best["metrics"] if cfg.train.report == "best" else result.metrics
    key = main_metric(cfg.task)
    record.update(resumed_from=result.resumed_from, metrics=reported, main_metric=key, main_score=reported[key],
                  best=result.best, eval_history=result.eval_history, loss_history=result.loss_history)


def measure(cfg, model, result, memory, device: dict, accelerator, record: dict) -> None:
    """The run file's `memory`, `throughput` and `timing` (README.md, "Measurement"); `device`: what
    setup_device found, and what the runner set up for the process (`setup`)."""
    import torch

    t, busy = cfg.train, device["busy"]
    setup = {"device": str(accelerator.device), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
             **device["precision"], "group_by_length": t.group_by_length,
             "gradient_checkpointing": t.gradient_checkpointing,
             "batch_size": t.batch_size, "grad_accum": t.grad_accum,
             "max_length": cfg.model.max_length, "num_processes": accelerator.num_processes,
             "threads": torch.get_num_threads(),  # torch's CPU threads per process (hardware.threads)
             **device["setup"]}
    runs_before = TRAINED_IN_THIS_PROCESS[0] - 1  # this run counted itself when it ended training
    record["memory"] = {**memory.result(), **busy, **setup,
                        "measured": "peak during training, evaluation and checkpoints excluded",
                        # > 0: RSS figures include memory the allocator kept from earlier runs (a basic-launcher multirun)
                        "runs_before_in_process": runs_before}
    record["throughput"] = {**throughput(result), **setup}
    record["timing"].update(train_s=round(result.train_seconds, 3), eval_s=round(result.eval_seconds, 3))


def throughput(result) -> dict:
    """The run file's `throughput`: the window after warm-up (README.md, "Measurement") and evaluation."""
    m = result.measured
    seconds = m["seconds"]

    def rate(n):
        return round(n / seconds, 3) if seconds else None

    # images have no tokens: no tokens/s rather than 0
    return {"train_samples_per_s": rate(m["samples"]),
            "train_tokens_per_s": rate(m["tokens"]) if m.get("padded_tokens") else None,
            "train_s_per_step": round(seconds / m["steps"], 6) if m["steps"] else None,
            "train_samples": result.samples, "train_tokens": result.tokens, "steps": result.steps,
            "window": {k: round(v, 6) if isinstance(v, float) else v for k, v in m.items()},
            # real / padded tokens of the window: how much of each step's matrix work was not padding
            "padding_efficiency": round(m["tokens"] / m["padded_tokens"], 4) if m.get("padded_tokens") else None,
            "eval_samples_per_s": round(result.eval_examples / result.eval_seconds, 3) if result.eval_seconds else None,
            "eval_s_per_eval": round(result.eval_seconds / result.eval_runs, 3) if result.eval_runs else None,
            "measured": "optimizer steps after the warm-up, evaluation and checkpoints excluded; "
                        "tokens exclude padding"}


def forgetting_after(model, forgetting, record: dict) -> None:
    """`train.forgetting`: the general-text loss after training, minus the base model's."""
    if forgetting is not None:
        forgetting.after(model)
        record["forgetting"] = forgetting.record()


def save(cfg, model, record: dict) -> None:
    """`train.save_trainable`: the trained tensors (only those) to <run dir>/trainable.safetensors, after
    the method's `fold` hook folded away what trains but is not kept (prefix tuning's MLP)."""
    if not cfg.train.save_trainable or not is_main_process():
        return
    from ..train.checkpoint import save_trainable

    fold = hooks_of(model).fold
    if fold is not None:
        fold(model)
    path = save_trainable(model, Path(record["run_dir"]) / "trainable.safetensors")
    record["artifacts"] = {"trainable_weights": path.name, "trainable_weights_bytes": path.stat().st_size,
                           **(record["artifacts"] or {})}


def inference_cost(cfg, model, method, eval_loaders, accelerator, record: dict) -> None:
    """`train.inference_cost`: latency unmerged and merged (`Method.merge`; train/inference.py). Last,
    as it merges the method into the model in place."""
    if not cfg.train.inference_cost:
        return
    from ..train.inference import measure_inference

    first = next(iter(eval_loaders.values()))[0]
    record["inference"] = measure_inference(model, first, cfg, accelerator, method)
