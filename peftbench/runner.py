"""`run(cfg, run_dir)`: one model x method x task x hardware run, start to run file.

A plain function (no Hydra inside), so tests and scripts call it with a composed config. Whatever
happens after the run starts, a run file is written: `ok` with the results, or `failed` with the
error, and the exception is re-raised.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import runfile
from .config import check_config, eval_splits, raise_problems
from .errors import UserError
from .params import build_counted, summarize_names

log = logging.getLogger("peftbench")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_record(cfg: DictConfig, run_dir: Path) -> dict:
    """A run file with every schema key, filled in as the run goes."""
    record = dict.fromkeys(runfile.SCHEMA_KEYS)
    record.update(schema_version=runfile.SCHEMA_VERSION, status="running", run_dir=str(run_dir),
                  model=cfg.model.name, method=cfg.method.name, task=cfg.task.name, seed=cfg.seed,
                  config=OmegaConf.to_container(cfg, resolve=True), versions=runfile.versions(),
                  git=runfile.git_state(), host=runfile.host(), started_at=_now(), timing={})
    return record


def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    record = new_record(cfg, run_dir)
    started = time.perf_counter()
    try:
        _execute(cfg, record)
        record["status"] = "ok"
    except BaseException as exc:  # Ctrl-C and SIGTERM too: the run file says how the run ended
        record["status"] = "failed"
        record["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
        raise
    finally:
        record["finished_at"] = _now()
        record["timing"]["total_s"] = round(time.perf_counter() - started, 3)
        if _is_main_process():
            path = runfile.write_atomic(run_dir / runfile.FILE_NAME, record)
            log.info("run file: %s", path)
    return record


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _execute(cfg: DictConfig, record: dict) -> None:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from .measure import PeakMemory
    from .methods import METHODS
    from .metrics import METRICS
    from .models import load_tokenizer
    from .tasks import load_task
    from .train import encode, fit, make_loader

    _, problems = check_config(cfg, METHODS.get(cfg.method.name), METRICS.names())
    raise_problems(problems)
    hw, t, task = cfg.hardware, cfg.train, cfg.task
    accelerator = Accelerator(cpu=hw.device == "cpu", mixed_precision=hw.mixed_precision,
                              gradient_accumulation_steps=t.grad_accum)
    if hw.device == "cuda" and accelerator.device.type != "cuda":
        raise RuntimeError("hardware.device=cuda but torch sees no CUDA device; use hardware=cpu or hardware=auto.")
    set_seed(cfg.seed)

    data = load_task(task, seed=cfg.seed)
    record["data"] = {"source": data.source, "train_examples": len(data.train),
                      "eval_examples": {s: len(df) for s, df in data.evals.items()}}
    log.info("task %s from %s: %d train, %s eval examples", task.name, data.source, len(data.train),
             record["data"]["eval_examples"])
    if task.kind == "classification":  # the other kinds load their tokenizer or image processor in kinds/
        tokenizer = load_tokenizer(cfg.model)
    model, _, record["params"] = build_counted(cfg, data.num_labels)
    family = record["params"]["family"]
    if getattr(model, "peftbench_cannot_train", None):
        raise UserError(f"method {cfg.method.name} on model {cfg.model.name}: {model.peftbench_cannot_train}")
    p = record["params"]
    log.info("method %s on %s (%s): %s of %s parameters train (%.4f%%; method %s, head %s):\n  %s",
             cfg.method.name, cfg.model.name, family, f"{p['trainable']:,}", f"{p['base_total']:,}",
             p["trainable_pct"], f"{p['method']:,}", f"{p['head']:,}",
             "\n  ".join(summarize_names(p["trainable_names"])))

    def features(df):
        return encode(df, tokenizer, task.text_fields, cfg.model.max_length)

    suffixes = eval_splits(task)
    if task.kind != "classification":  # generation, multiple choice, seq2seq, images: peftbench/kinds
        from .kinds import make_loaders

        train_loader, eval_loaders = make_loaders(cfg, data)
    else:
        train_loader = make_loader(features(data.train), tokenizer, t.batch_size, shuffle=True, seed=cfg.seed)
        eval_loaders = {s: (make_loader(features(df), tokenizer, t.eval_batch_size, False, cfg.seed), suffixes[s])
                        for s, df in data.evals.items()}
    main_key = task.main_metric + next(iter(suffixes.values()))  # the first eval split's main metric
    best_metric = t.metric_for_best or main_key

    with PeakMemory(accelerator.device) as memory:
        result = fit(model, train_loader, eval_loaders, cfg, accelerator, best_metric)
    record.update(
        metrics=result.metrics, main_metric=main_key, main_score=result.metrics[main_key],
        best=result.best, eval_history=result.eval_history, loss_history=result.loss_history,
        memory={**memory.result(), "measured": "peak during training (evaluation included)",
                "mixed_precision": hw.mixed_precision, "batch_size": t.batch_size,
                "max_length": cfg.model.max_length, "num_processes": accelerator.num_processes},
        throughput={"train_samples_per_s": round(result.samples / result.train_seconds, 3),
                    "train_tokens_per_s": round(result.tokens / result.train_seconds, 3),
                    "train_samples": result.samples, "train_tokens": result.tokens, "steps": result.steps,
                    "measured": "training steps only, evaluation excluded; tokens exclude padding"},
    )
    record["timing"].update(train_s=round(result.train_seconds, 3), eval_s=round(result.eval_seconds, 3))
    if t.save_trainable and _is_main_process():
        from .checkpoint import save_trainable

        path = save_trainable(model, Path(record["run_dir"]) / "trainable.safetensors")
        record["artifacts"] = {"trainable_weights": path.name, "trainable_weights_bytes": path.stat().st_size}
