"""Section 1c, profile: the harness's own work per optimizer step, each piece timed alone against what
the plain loop does instead."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .common import base_overrides, compose, loader_for, table
from .overhead import FAST


def per_call_us(ours, theirs, number: int, repeats: int) -> tuple[float, float | None]:
    """Microseconds per call of `ours` and `theirs` (None: nothing), timed in alternation, the best of
    `repeats` each: load from other processes only ever adds time, and hits both alike."""
    import timeit

    best = [math.inf, math.inf]
    for _ in range(repeats):
        for i, fn in enumerate((ours, theirs)):
            if fn is not None:
                best[i] = min(best[i], timeit.timeit(fn, number=number) / number * 1e6)
    return best[0], best[1] if theirs is not None else None


def inner_noop(owner, name: str, call):
    """`call` with `owner.name` replaced by a no-op while it runs: the cost of a wrapper alone."""
    def timed():
        real = getattr(owner, name)
        setattr(owner, name, lambda *a, **k: None)
        try:
            call()
        finally:
            setattr(owner, name, real)
    return timed


def profile(args) -> None:
    """Section 1c: the harness's own work per optimizer step, each piece timed alone on the fast-step
    config (the real model, batch and accelerate objects the loop uses) against what the plain loop does
    instead. Pieces that run every N steps are divided by N."""
    import logging

    import psutil
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from peftbench.methods.counting import build_counted
    from peftbench.train.measure import StepTimer

    fast = argparse.Namespace(**{**vars(args), "model": FAST["model"], "batch": FAST["batch"]})
    cfg = compose(*base_overrides(fast, FAST["steps"]), "method=lora", f"model.max_length={FAST['max_length']}")
    loader, num_labels = loader_for(cfg)
    model = build_counted(cfg, num_labels)[0]
    params = [p for p in model.parameters() if p.requires_grad]
    accelerator = Accelerator(cpu=True)
    model, optimizer, shard = accelerator.prepare(model, torch.optim.AdamW(params, lr=1e-6, fused=True),
                                                  loader)
    batch = next(iter(shard))
    loss = model(**batch).loss
    loss.backward()
    w = torch.ones(4, requires_grad=True)
    mask, timer, bar, window = batch["attention_mask"], StepTimer(0), tqdm(total=10**9, disable=True), []
    timer.start()
    handler = logging.FileHandler(Path(args.tmp) / "profile.log")  # a log file, as Hydra's job logging writes
    log = logging.getLogger("peftbench.bench.profile")
    log.addHandler(handler), log.setLevel(logging.INFO)
    log.propagate = False

    def epoch(batches):  # one epoch, per batch
        return lambda: sum(1 for _ in batches) and None

    def log_step():
        sum(float(v) for v in window[:log_every]) / log_every  # loop._finite_mean: read the losses
        bar.set_postfix(loss=f"{1.0:.4f}", lr=f"{1e-4:.1e}", refresh=False)
        log.info("step %d/%d  loss %.4f  lr %.2e  %.1f samples/s", 1, 2, 0.5, 1e-4, 100.0)

    process, step_ms = psutil.Process(), getattr(args, "fast_step_ms", 5.0)
    log_every = compose("model=tiny").train.log_every
    window.extend(loss.detach() for _ in range(log_every))
    pieces = [  # (piece, the harness's call, the plain loop's call or None, calls per step, calls to time)
        ("batches: accelerate's loader vs the DataLoader (per epoch)", epoch(shard), epoch(loader), 1 / len(loader),
         1),
        ("accelerator.accumulate(model)", lambda: accelerator.accumulate(model).__enter__(), None, 1, 2000),
        ("loss: detach() kept for the log step vs .item()", lambda: window.append(loss.detach()), loss.item, 1,
         5000),
        ("tokens: int(mask.sum()) (on CUDA: kept on the device), StepTimer.add_batch + step",
         lambda: (timer.add_batch(8, int(mask.sum()), mask.numel()), timer.step()), None, 1, 5000),
        ("tqdm (disabled off a terminal): bar.update", lambda: bar.update(1), None, 1, 5000),
        (f"log step (postfix, log.info to a file) / log_every={log_every}", log_step, None, 1 / log_every, 2000),
        ("epoch start: set_epoch + iter(loader)", lambda: (shard.set_epoch(1), iter(shard)),
         lambda: (loader.sampler.set_epoch(1), iter(loader)), 1 / len(loader), 200),
    ]
    aside = [  # not in the sum: what the loop no longer does, for the record
        (f"RSS sampler thread, were it run (kernel peak instead), {step_ms:g} ms steps",
         lambda: process.memory_info().rss, None, step_ms / 20, 500),
        ("AdamW: fused (loop, Trainer) vs per tensor (torch's CPU default)", optimizer.optimizer.step,
         torch.optim.AdamW(params, lr=1e-6).step, 1, 50),
        ("accelerator.clip_grad_norm_ around torch's (torch's a no-op here; the loop calls torch's at "
         "grad_accum=1)", inner_noop(torch.nn.utils, "clip_grad_norm_", lambda: accelerator.clip_grad_norm_(params, 1.0)),
         None, 1, 2000),
        ("AcceleratedOptimizer.step around torch's (torch's a no-op here; the loop calls torch's at grad_accum=1)",
         inner_noop(optimizer.optimizer, "step", optimizer.step), None, 1, 2000),
        ("accelerator.backward vs loss.backward (tiny graph; the loop calls the latter at grad_accum=1)",
         lambda: accelerator.backward((w * 2).sum()), lambda: (w * 2).sum().backward(), 1, 2000),
        ("AcceleratedOptimizer.zero_grad (inspect.signature) vs torch's, as the loop calls it",
         optimizer.zero_grad, lambda: optimizer.optimizer.zero_grad(set_to_none=True), 1, 2000),
    ]
    rows, total = [], 0.0
    for name, ours, theirs, per_step, number in pieces + aside:
        if name == aside[0][0]:
            rows.append(["sum", "", "", "", f"{total:+.1f}"])
        a, b = per_call_us(ours, theirs, max(1, number // (10 if args.quick else 1)), 3 if args.quick else 15)
        net = (a - (b or 0.0)) * per_step
        total += net
        rows.append([name, f"{a:.1f}", "-" if b is None else f"{b:.1f}", f"{per_step:.3g}", f"{net:+.1f}"])
    log.removeHandler(handler)
    handler.close()
    table(f"1c. Per-step profile of the harness's own work (tiny + lora, batch 8; each side the best of "
          f"{3 if args.quick else 15} alternating repeats, microseconds)",
          ["piece", "harness us/call", "plain loop us/call", "calls/step", "net us/step"], rows)
