"""The training loop, top to bottom: batch, train with AdamW + linear warmup/decay on
`accelerate`, evaluate at the end (and every `train.eval_every` steps, or every epoch), checkpoint every
`train.checkpoint_every` steps (and resume from the run dir's last checkpoint), and count what was
trained on.

Throughput (`measure.StepTimer`) counts only the optimizer steps after `train.throughput_warmup_steps`
warm-up steps; evaluation and checkpoints are paused out of its clock (and out of the memory peaks),
and tokens are the non-padding tokens (attention_mask == 1), summed over processes. README.md,
"Measurement", has the whole protocol.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from dataclasses import dataclass, field

import torch
from accelerate.utils import DistributedType
from tqdm.auto import tqdm

from ..errors import UserError
from . import layerwise
from .batches import score_labels
from .checkpoint import set_rng_state
from .kinds import evaluate as evaluate_kind
from .measure import StepTimer, effective_warmup

log = logging.getLogger("peftbench")


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf: the run stops instead of training through it."""


@dataclass
class FitResult:
    metrics: dict  # the final evaluation
    best: dict | None  # {"step", "epoch", "metric", "score", "metrics"}: the best evaluation by metric_for_best
    eval_history: list = field(default_factory=list)  # [{"step": s, **metrics}]
    loss_history: list = field(default_factory=list)  # [[step, mean loss since the last record]]
    steps: int = 0
    batches: int = 0  # batches this process has trained on (steps x grad_accum, epoch ends aside)
    samples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    resumed_from: dict | None = None  # {"step", "checkpoint"} when the run went on from a checkpoint
    measured: dict = field(default_factory=dict)  # the throughput window: steps, samples, tokens, seconds
    eval_runs: int = 0  # evaluations so far (resumed ones included), and the examples they scored
    eval_examples: int = 0


@torch.no_grad()
def evaluate(model, eval_loaders: dict, task, accelerator) -> dict:
    """Metrics on every eval split; predictions are gathered across processes without duplicates."""
    if task.kind != "classification":  # generation, multiple choice, seq2seq, images: train/kinds
        return evaluate_kind(model, eval_loaders, task, accelerator)
    model.eval()
    out = {}
    for loader, suffix in eval_loaders.values():
        out.update(score_labels(model, loader, accelerator, suffix, task))
    model.train()
    return out


def fit(model, train_loader, eval_loaders: dict, cfg, accelerator, best_metric: str, run_dir=None,
        config_hash: str | None = None, memory=None) -> FitResult:
    """Train; `memory` (a measure.PeakMemory) is paused, like the throughput clock, during evaluation."""
    t = cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError(f"method '{cfg.method.name}' left no trainable parameters on model '{cfg.model.name}'.")
    optimizer = torch.optim.AdamW([
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # biases, norms
    ], lr=t.lr, fused=accelerator.device.type in ("cpu", "cuda") or None)  # one kernel for all tensors, as
    # HF Trainer's default: the per-tensor loop took ~7x as long (scripts/bench.py --only profile)
    sampler = train_loader.sampler
    _cache_accelerate_lookups()
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    eval_loaders = {s: (accelerator.prepare(loader), suffix) for s, (loader, suffix) in eval_loaders.items()}
    steps_per_epoch = max(1, math.ceil(len(train_loader) / t.grad_accum))
    total = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs * steps_per_epoch))
    # The scheduler is stepped by hand once per optimizer step (not prepared: accelerate would step it
    # once per process), so warmup and decay are in optimizer steps whatever the process count.
    from transformers import get_linear_schedule_with_warmup
    scheduler = get_linear_schedule_with_warmup(optimizer, int(t.warmup_ratio * total), total)

    result = FitResult(metrics={}, best=None)
    window, samples, tokens, rng = _resume(run_dir, config_hash, model, optimizer, scheduler, accelerator, result,
                                           force=bool(cfg.get("force")))
    show_bar = accelerator.is_main_process and sys.stderr.isatty()
    bar = tqdm(total=total, initial=result.steps, desc="train", unit="step", dynamic_ncols=True,
               disable=not show_bar)
    log.info("training %d steps (%d per epoch, batch %d x %d accumulation x %d processes)", total,
             steps_per_epoch, t.batch_size, t.grad_accum, accelerator.num_processes)
    after_step = getattr(accelerator.unwrap_model(model), "peftbench_after_step", None)  # AdaLoRA's allocator
    bind = getattr(accelerator.unwrap_model(model), "peftbench_bind_optimizer", None)  # SpIEL resets moments
    if bind is not None:
        bind(optimizer)
    ist = layerwise.attach(accelerator.unwrap_model(model), t.get("ist"), cfg.method.name, accelerator.num_processes)
    model.train()
    cuda = accelerator.device.type == "cuda"
    # accelerate's backward divides every loss by grad_accum, 1 included (one more op and autograd node a
    # step); with no accumulation, loss scaler or DeepSpeed-like engine it is loss.backward() otherwise
    plain_backward = t.grad_accum == 1 and accelerator.scaler is None and accelerator.distributed_type in (
        DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)
    timer = StepTimer(effective_warmup(t.throughput_warmup_steps, total - result.steps),
                      sync=(lambda: torch.cuda.synchronize(accelerator.device)) if cuda else None)

    def pause():  # evaluation and checkpoints: out of the throughput window and the memory peaks
        stack = contextlib.ExitStack()
        stack.enter_context(timer.paused())
        if memory is not None:
            stack.enter_context(memory.paused())
        return stack

    timer.start()
    start, eval_before, trained_before, samples_before = time.perf_counter(), result.eval_seconds, result.train_seconds, samples
    checkpointing = 0.0  # seconds spent saving checkpoints in this process: not training time

    def trained() -> float:  # training seconds so far, this run's earlier processes included
        return trained_before + time.perf_counter() - start - (result.eval_seconds - eval_before) - checkpointing
    epoch, skip = divmod(result.batches, len(train_loader))
    if rng is not None:
        set_rng_state(rng)  # nothing draws from the global RNG between here and the next forward pass
    while result.steps < total:
        batches = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        # accelerate sets the sampler's epoch from its loader's own count when iteration starts (and a
        # skipping loader starts that count at 0): tell the loader which epoch this is
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(epoch)
        elif hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for batch in batches:
            with accelerator.accumulate(model):
                if ist is not None:  # IST: only the sampled layers need gradients this step
                    ist.before_forward(model, batch, result.steps)
                loss = model(**batch).loss
                loss.backward() if plain_backward else accelerator.backward(loss)
                if accelerator.sync_gradients and t.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, t.max_grad_norm)
                optimizer.step()
                if ist is not None:
                    ist.after_step()
                if accelerator.sync_gradients:
                    if after_step is not None:
                        after_step(result.steps)
                    # what AcceleratedOptimizer.zero_grad does, without its inspect.signature per call
                    optimizer.optimizer.zero_grad(set_to_none=True)
            result.batches += 1
            mask = batch.get("attention_mask")  # image batches have none: no tokens to count
            # the loss (and on CUDA the token count) stay on the device until a log step: no host sync per step
            n, real = batch["labels"].shape[0], (mask.sum() if cuda else int(mask.sum())) if mask is not None else 0
            samples, tokens = samples + n, tokens + real
            timer.add_batch(n, real, mask.numel() if mask is not None else 0)
            window.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            result.steps += 1
            timer.step()
            if memory is not None:
                memory.step()  # CUDA allocated/reserved per step (measure.PeakMemory); nothing on CPU
            step = result.steps
            if step % t.log_every == 0 or step == total:
                mean_loss = _finite_mean(window, step, t.grad_accum)
                if accelerator.num_processes > 1:  # the mean over every process's batches
                    mean_loss = accelerator.reduce(torch.tensor(mean_loss, device=accelerator.device),
                                                   reduction="mean").item()
                window = []
                result.loss_history.append([step, round(mean_loss, 6)])
                lr = scheduler.get_last_lr()[0]
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.1e}", refresh=False)
                rate = (samples - samples_before) / max(trained() - trained_before, 1e-9)
                accelerator.log({"train/loss": mean_loss, "train/lr": lr, "train/samples_per_s": rate}, step=step)
                if not show_bar and accelerator.is_main_process:
                    log.info("step %d/%d  loss %.4f  lr %.2e  %.1f samples/s", step, total, mean_loss, lr, rate)
            bar.update(1)
            epoch_done = result.batches % len(train_loader) == 0
            if step == total or _eval_due(t.eval_every, step, epoch_done):
                with pause():
                    _eval_and_track(model, eval_loaders, cfg, accelerator, result, best_metric,
                                    epoch=round(result.batches / len(train_loader), 3))
            if run_dir is not None and t.checkpoint_every and step % t.checkpoint_every == 0 and step < total:
                result.train_seconds = trained()
                began = time.perf_counter()
                with pause():
                    _checkpoint(run_dir, config_hash, model, optimizer, scheduler, accelerator, result,
                                {"window": [float(v) for v in window], "samples": samples, "tokens": int(tokens)})
                checkpointing += time.perf_counter() - began
            if step >= total:
                break
        epoch, skip = epoch + 1, 0
    bar.close()
    timer.stop()
    result.train_seconds = trained()
    counts = accelerator.reduce(torch.tensor([int(x) for x in (samples, tokens, timer.samples, timer.tokens,
                                                               timer.padded_tokens)], device=accelerator.device),
                                reduction="sum")
    result.samples, result.tokens, *window_counts = (int(x) for x in counts.tolist())
    result.measured = {"warmup_steps": timer.warmup_steps, "steps": timer.measured_steps,
                       "seconds": timer.seconds, **dict(zip(("samples", "tokens", "padded_tokens"), window_counts))}
    return result


def _finite_mean(window: list, step: int, grad_accum: int) -> float:
    """The mean of the losses since the last log step (device tensors, read here in one go; floats after a
    resume); NonFiniteLoss names the first step whose loss was NaN or inf."""
    values = [float(v) for v in window]
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise NonFiniteLoss(f"loss is {value} at step {step - (len(values) - 1 - i) // grad_accum}: lower "
                                "train.lr, check the labels, or use hardware.mixed_precision=no.")
    return sum(values) / len(values)


def _cache_accelerate_lookups() -> None:
    """accelerate (1.15) asks `is_lomo_available()` in every optimizer.step/zero_grad and backward (an
    importlib search of sys.path, ~0.1 ms a call) and parses torch's version in every clip_grad_norm_
    (`is_torch_version`): scripts/bench.py (`--only profile`) found them as most of the harness's per-step
    overhead on small models. Installed packages do not change during a run."""
    import functools

    import accelerate.accelerator
    import accelerate.optimizer

    for module, name in ((accelerate.optimizer, "is_lomo_available"), (accelerate.accelerator, "is_lomo_available"),
                         (accelerate.accelerator, "is_torch_version")):
        lookup = getattr(module, name, None)
        if lookup is not None and not hasattr(lookup, "cache_info"):
            setattr(module, name, functools.lru_cache(maxsize=None)(lookup))


RESUMED_FIELDS = ("steps", "batches", "metrics", "best", "eval_history", "loss_history", "train_seconds",
                  "eval_seconds", "eval_runs", "eval_examples")


def _checkpoint(run_dir, config_hash, model, optimizer, scheduler, accelerator, result, rank_state) -> None:
    from .checkpoint import save_checkpoint

    state = {"config_hash": config_hash, **{k: getattr(result, k) for k in RESUMED_FIELDS}}
    path = save_checkpoint(run_dir, result.steps, model, optimizer, scheduler, state, rank_state, accelerator)
    log.info("checkpoint at step %d: %s", result.steps, path)


def _resume(run_dir, config_hash, model, optimizer, scheduler, accelerator, result, force=False) -> tuple:
    """Go on from the run dir's last good checkpoint if it was made with the same config (train/checkpoint.py).
    Returns this process's (loss window, samples, tokens, RNG states) at the checkpoint."""
    from .checkpoint import load_latest

    loaded = None if run_dir is None else load_latest(run_dir, config_hash, model, optimizer, scheduler,
                                                      accelerator, force=force)
    if loaded is None:
        return [], 0, 0, None
    path, state, rank_state = loaded
    for key in RESUMED_FIELDS:
        setattr(result, key, state.get(key, getattr(result, key)))  # a checkpoint may predate a field
    result.resumed_from = {"step": result.steps, "checkpoint": str(path)}
    log.info("resuming from %s (step %d)", path, result.steps)
    return (list(rank_state.get("window", [])), rank_state.get("samples", 0), rank_state.get("tokens", 0),
            rank_state.get("rng"))


def _eval_due(every, step: int, epoch_done: bool) -> bool:
    """`train.eval_every`: "epoch" (after an epoch's last optimizer step) or every N steps (0: never)."""
    if every == "epoch":
        return epoch_done
    return bool(every) and step % every == 0


def _eval_and_track(model, eval_loaders, cfg, accelerator, result: FitResult, best_metric: str,
                    epoch: float) -> None:
    started = time.perf_counter()
    scores = evaluate(model, eval_loaders, cfg.task, accelerator)
    result.eval_seconds += time.perf_counter() - started
    result.eval_runs += 1
    result.eval_examples += sum(getattr(loader.dataset, "examples", len(loader.dataset))
                                for loader, _ in eval_loaders.values())
    result.metrics = scores
    result.eval_history.append({"step": result.steps, **scores})
    accelerator.log({f"eval/{k}": v for k, v in scores.items()}, step=result.steps)  # trackers (train/trackers.py)
    log.info("eval at step %d: %s", result.steps, "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    if result.best is None or scores[best_metric] > result.best["score"]:
        result.best = {"step": result.steps, "epoch": epoch, "metric": best_metric, "score": scores[best_metric],
                       "metrics": scores}
