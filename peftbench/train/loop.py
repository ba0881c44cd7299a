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
from typing import Any

import torch
from accelerate.utils import DistributedType
from tqdm.auto import tqdm

from ..errors import UserError
from ..methods.hooks import hooks_of
from . import layerwise
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


def evaluate(model, eval_loaders: dict, task, accelerator) -> dict:
    """Metrics on every eval split, each scored its kind's way (train/kinds); predictions are gathered
    across processes without duplicates."""
    return evaluate_kind(model, eval_loaders, task, accelerator)


def fit(model, train_loader, eval_loaders: dict, cfg, accelerator, best_metric: str, run_dir=None,
        config_hash: str | None = None, memory=None) -> FitResult:
    """Train; `memory` (a measure.PeakMemory) is paused, like the throughput clock, during evaluation."""
    t = cfg.train
    optimizer, params = make_optimizer(model, cfg, accelerator)
    sampler = train_loader.sampler
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    eval_loaders = {s: (accelerator.prepare(loader), suffix) for s, (loader, suffix) in eval_loaders.items()}
    steps_per_epoch = max(1, math.ceil(len(train_loader) / t.grad_accum))
    total = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs * steps_per_epoch))
    # The scheduler is stepped by hand once per optimizer step (not prepared: accelerate would step it
    # once per process), so warmup and decay are in optimizer steps whatever the process count. It is
    # bound to the optimizer whose step() the loop calls (torch checks that it was called).
    from transformers import get_linear_schedule_with_warmup
    scheduler = get_linear_schedule_with_warmup(optimizer.optimizer if plain_step(cfg, accelerator) else optimizer,
                                                int(t.warmup_ratio * total), total)

    result = FitResult(metrics={}, best=None)
    progress, rng = _resume(run_dir, config_hash, model, optimizer, scheduler, accelerator, result,
                            force=bool(cfg.get("force")))
    log.info("training %d steps (%d per epoch, batch %d x %d accumulation x %d processes)", total,
             steps_per_epoch, t.batch_size, t.grad_accum, accelerator.num_processes)
    train_step = make_train_step(model, optimizer, params, cfg, accelerator)
    model.train()
    run = _Run(cfg, accelerator, model, optimizer, scheduler, eval_loaders, best_metric, run_dir, config_hash,
               memory, result, progress, total, len(train_loader))
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
            run.count(batch, train_step(batch, result.steps))
            if accelerator.sync_gradients and run.end_step():
                break
        epoch, skip = epoch + 1, 0
    return run.finish()


def make_optimizer(model, cfg, accelerator):
    """(AdamW over the trainable tensors, those tensors): weight decay on matrices, none on biases and norms."""
    t = cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError(f"method '{cfg.method.name}' left no trainable parameters on model '{cfg.model.name}'.")
    optimizer = torch.optim.AdamW([
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # biases, norms
    ], lr=t.lr, fused=accelerator.device.type in ("cpu", "cuda") or None)  # one kernel for all tensors, as
    # HF Trainer's default: the per-tensor loop took ~7x as long (scripts/bench.py --only profile)
    return optimizer, params


def make_train_step(model, optimizer, params, cfg, accelerator):
    """`step(batch, steps_done) -> loss`: forward, backward, clip, optimizer step and the method's hooks
    (methods/hooks.py) for one batch; the optimizer steps when accumulation says so.

    With no gradient accumulation, no loss scaler (fp16) and no engine that owns the backward pass
    (DeepSpeed, FSDP, XLA), accelerate's wrappers come down to the torch calls made here directly:
    `accelerator.backward` would divide the loss by grad_accum (1), `AcceleratedOptimizer.step` and
    `Accelerator.clip_grad_norm_` look up optional packages and torch's version on every call, which
    scripts/bench.py (`--only profile`) found as most of the harness's per-step overhead on small
    models. Otherwise accelerate's own calls run."""
    t = cfg.train
    hooks = hooks_of(accelerator.unwrap_model(model))
    if hooks.bind_optimizer is not None:  # SpIEL resets the moments of regrown entries
        hooks.bind_optimizer(optimizer.optimizer)
    ist = layerwise.attach(accelerator.unwrap_model(model), t.get("ist"), cfg.method.name, accelerator.num_processes)
    plain = plain_step(cfg, accelerator)
    inner = optimizer.optimizer  # the torch optimizer inside accelerate's wrapper

    def step(batch, steps_done: int):
        with accelerator.accumulate(model):
            if ist is not None:  # IST: only the sampled layers need gradients this step
                ist.before_forward(model, batch, steps_done)
            loss = model(**batch).loss
            if plain:
                loss.backward()
                if t.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
                inner.step()
            else:
                accelerator.backward(loss)
                if accelerator.sync_gradients and t.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, t.max_grad_norm)
                optimizer.step()
            if ist is not None:
                ist.after_step()
            if accelerator.sync_gradients:
                if hooks.after_step is not None:  # AdaLoRA's allocator, SpIEL, LoFiT
                    hooks.after_step(steps_done)
                inner.zero_grad(set_to_none=True)  # AcceleratedOptimizer.zero_grad, less its per-call signature check
        return loss

    return step


def plain_step(cfg, accelerator) -> bool:
    """Whether a step is plain torch calls (no accumulation, loss scaler or engine that owns backward)."""
    return cfg.train.grad_accum == 1 and accelerator.scaler is None and accelerator.distributed_type in (
        DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)


@dataclass
class _Progress:
    """This process's counts since the run began (restored from a checkpoint on resume)."""

    window: list = field(default_factory=list)  # losses since the last log step
    samples: int = 0
    tokens: Any = 0  # on CUDA a device tensor until the end (no host sync per step)


class _Run:
    """What happens between optimizer steps: counting, logging, evaluation and checkpoints, with the
    throughput clock (measure.StepTimer) and memory peaks paused during evaluation and checkpoints."""

    def __init__(self, cfg, accelerator, model, optimizer, scheduler, eval_loaders, best_metric, run_dir,
                 config_hash, memory, result: FitResult, progress: _Progress, total: int, batches_per_epoch: int):
        self.cfg, self.t, self.accelerator, self.model = cfg, cfg.train, accelerator, model
        self.optimizer, self.scheduler, self.eval_loaders, self.best_metric = optimizer, scheduler, eval_loaders, best_metric
        self.run_dir, self.config_hash, self.memory, self.result = run_dir, config_hash, memory, result
        self.progress, self.total, self.batches_per_epoch = progress, total, batches_per_epoch
        self.cuda = accelerator.device.type == "cuda"
        self.show_bar = accelerator.is_main_process and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=result.steps, desc="train", unit="step", dynamic_ncols=True,
                        disable=not self.show_bar)
        self.timer = StepTimer(effective_warmup(self.t.throughput_warmup_steps, total - result.steps),
                               sync=(lambda: torch.cuda.synchronize(accelerator.device)) if self.cuda else None)
        self.timer.start()
        self.started, self.eval_before, self.trained_before = time.perf_counter(), result.eval_seconds, result.train_seconds
        self.samples_before = progress.samples
        self.checkpointing = 0.0  # seconds spent saving checkpoints in this process: not training time

    def trained(self) -> float:
        """Training seconds so far, this run's earlier processes included."""
        return (self.trained_before + time.perf_counter() - self.started - (self.result.eval_seconds - self.eval_before)
                - self.checkpointing)

    def pause(self):
        """Evaluation and checkpoints: out of the throughput window and the memory peaks."""
        stack = contextlib.ExitStack()
        stack.enter_context(self.timer.paused())
        if self.memory is not None:
            stack.enter_context(self.memory.paused())
        return stack

    def count(self, batch, loss) -> None:
        """One batch trained on: samples, real tokens (attention_mask == 1; images have none), the loss."""
        self.result.batches += 1
        mask = batch.get("attention_mask")
        # the loss (and on CUDA the token count) stay on the device until a log step: no host sync per step
        n, real = batch["labels"].shape[0], (mask.sum() if self.cuda else int(mask.sum())) if mask is not None else 0
        self.progress.samples, self.progress.tokens = self.progress.samples + n, self.progress.tokens + real
        self.timer.add_batch(n, real, mask.numel() if mask is not None else 0)
        self.progress.window.append(loss.detach())

    def end_step(self) -> bool:
        """After an optimizer step: schedule, log, evaluate, checkpoint. Returns whether training is done."""
        result, t = self.result, self.t
        self.scheduler.step()
        result.steps += 1
        self.timer.step()
        if self.memory is not None:
            self.memory.step()  # CUDA allocated/reserved per step (measure.PeakMemory); nothing on CPU
        step = result.steps
        if step % t.log_every == 0 or step == self.total:
            self.log_loss(step)
        self.bar.update(1)
        epoch_done = result.batches % self.batches_per_epoch == 0
        if step == self.total or _eval_due(t.eval_every, step, epoch_done):
            with self.pause():
                _eval_and_track(self.model, self.eval_loaders, self.cfg, self.accelerator, result, self.best_metric,
                                epoch=round(result.batches / self.batches_per_epoch, 3))
        if self.run_dir is not None and t.checkpoint_every and step % t.checkpoint_every == 0 and step < self.total:
            self.checkpoint()
        return step >= self.total

    def log_loss(self, step: int) -> None:
        accelerator = self.accelerator
        mean_loss = _finite_mean(self.progress.window, step, self.t.grad_accum)
        if accelerator.num_processes > 1:  # the mean over every process's batches
            mean_loss = accelerator.reduce(torch.tensor(mean_loss, device=accelerator.device), reduction="mean").item()
        self.progress.window = []
        self.result.loss_history.append([step, round(mean_loss, 6)])
        lr = self.scheduler.get_last_lr()[0]
        self.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.1e}", refresh=False)
        rate = (self.progress.samples - self.samples_before) / max(self.trained() - self.trained_before, 1e-9)
        accelerator.log({"train/loss": mean_loss, "train/lr": lr, "train/samples_per_s": rate}, step=step)
        if not self.show_bar and accelerator.is_main_process:
            log.info("step %d/%d  loss %.4f  lr %.2e  %.1f samples/s", step, self.total, mean_loss, lr, rate)

    def checkpoint(self) -> None:
        self.result.train_seconds = self.trained()
        began = time.perf_counter()
        p = self.progress
        with self.pause():
            _checkpoint(self.run_dir, self.config_hash, self.model, self.optimizer, self.scheduler, self.accelerator,
                        self.result, {"window": [float(v) for v in p.window], "samples": p.samples, "tokens": int(p.tokens)})
        self.checkpointing += time.perf_counter() - began

    def finish(self) -> FitResult:
        """Stop the clock; counts summed over processes."""
        result, timer, p = self.result, self.timer, self.progress
        self.bar.close()
        timer.stop()
        result.train_seconds = self.trained()
        counts = self.accelerator.reduce(torch.tensor([int(x) for x in (p.samples, p.tokens, timer.samples, timer.tokens,
                                                                        timer.padded_tokens)],
                                                      device=self.accelerator.device), reduction="sum")
        result.samples, result.tokens, *window_counts = (int(x) for x in counts.tolist())
        result.measured = {"warmup_steps": timer.warmup_steps, "steps": timer.measured_steps, "seconds": timer.seconds,
                           **dict(zip(("samples", "tokens", "padded_tokens"), window_counts))}
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


RESUMED_FIELDS = ("steps", "batches", "metrics", "best", "eval_history", "loss_history", "train_seconds",
                  "eval_seconds", "eval_runs", "eval_examples")


def _checkpoint(run_dir, config_hash, model, optimizer, scheduler, accelerator, result, rank_state) -> None:
    from .checkpoint import save_checkpoint

    state = {"config_hash": config_hash, **{k: getattr(result, k) for k in RESUMED_FIELDS}}
    path = save_checkpoint(run_dir, result.steps, model, optimizer, scheduler, state, rank_state, accelerator)
    log.info("checkpoint at step %d: %s", result.steps, path)


def _resume(run_dir, config_hash, model, optimizer, scheduler, accelerator, result, force=False) -> tuple:
    """Go on from the run dir's last good checkpoint if it was made with the same config (train/checkpoint.py).
    Returns this process's (progress, RNG states) at the checkpoint."""
    from .checkpoint import load_latest

    loaded = None if run_dir is None else load_latest(run_dir, config_hash, model, optimizer, scheduler,
                                                      accelerator, force=force)
    if loaded is None:
        return _Progress(), None
    path, state, rank_state = loaded
    for key in RESUMED_FIELDS:
        setattr(result, key, state.get(key, getattr(result, key)))  # a checkpoint may predate a field
    result.resumed_from = {"step": result.steps, "checkpoint": str(path)}
    log.info("resuming from %s (step %d)", path, result.steps)
    return (_Progress(list(rank_state.get("window", [])), rank_state.get("samples", 0), rank_state.get("tokens", 0)),
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
