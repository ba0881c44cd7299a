"""Sections 1 and 1b, overhead: a hand-written PyTorch loop vs `peftbench.run.runner.run` on the same
model x method x data x batch x steps, alternating in one process; seconds per step after the same
warm-up (1: the bench's model; 1b: the tiny model at GPU-like step times, on process CPU time)."""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import time
from pathlib import Path

from .common import base_overrides, compose, loader_for, peftbench_run, plain_loop, table, warn


def paired_rounds(args, overrides: list[str], steps: int, rounds: int, tag: str,
                  clock=time.perf_counter) -> tuple[list, list]:
    """The plain loop and peftbench on one config, `rounds` times, alternating which goes first (ABBA),
    so load from other processes hits both sides alike. Returns seconds per step on `clock`:
    (plain, peftbench)."""
    from peftbench.methods.counting import build_counted

    cfg = compose(*overrides)
    loader, num_labels = loader_for(cfg)
    plain, bench = [], []
    for r in range(rounds):
        for side in (("plain", "peftbench") if r % 2 == 0 else ("peftbench", "plain")):
            if side == "plain":
                model = build_counted(cfg, num_labels)[0]
                plain.append(plain_loop(model, loader, cfg, steps, args.warmup, clock)[0])
            else:
                record = peftbench_run(overrides, Path(args.tmp) / f"{tag}{r}",
                                       None if clock is time.perf_counter else clock)
                bench.append(record["throughput"]["train_s_per_step"])
            gc.collect()
    return plain, bench


def median_ci(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95% interval for the median: the order statistics n/2 -+ 0.98 sqrt(n)."""
    v, n = sorted(values), len(values)
    half = 0.98 * n ** 0.5
    return v[max(0, int(n / 2 - half))], v[min(n - 1, math.ceil(n / 2 + half) - 1)]


def overhead_summary(plain: list[float], bench: list[float]) -> float:
    """Print the paired ratio and the overhead in ms per step with their spread; return the median ratio."""
    ratios = [b / p for b, p in zip(bench, plain)]  # paired: the two sides of one round ran back to back
    extra = [(b - p) * 1000 for b, p in zip(bench, plain)]
    noise = [plain[i + 1] / plain[i] for i in range(len(plain) - 1)]  # plain vs plain: the machine's own noise
    q1, _, q3 = statistics.quantiles(plain, n=4) if len(plain) > 1 else (plain[0],) * 3
    (lo, hi), (elo, ehi) = median_ci(ratios), median_ci(extra)
    print(f"\npeftbench / plain, median of {len(ratios)} paired rounds: {statistics.median(ratios):.3f} "
          f"(95% CI {lo:.3f}..{hi:.3f}; all rounds {min(ratios):.3f}..{max(ratios):.3f})")
    print(f"overhead: {statistics.median(extra):+.3f} ms per step (95% CI {elo:+.3f}..{ehi:+.3f}) on a plain step of "
          f"{statistics.median(plain) * 1000:.2f} ms")
    print(f"plain loop's own spread: interquartile {q1 * 1000:.2f}..{q3 * 1000:.2f} ms; vs itself between rounds "
          f"{min(noise):.3f}..{max(noise):.3f} (median |change| {statistics.median(abs(x - 1) for x in noise):.3f})"
          if noise else "")
    return statistics.median(ratios)


def check_overhead(ratio: float) -> None:
    if ratio > 1.03:
        warn(f"peftbench is {100 * (ratio - 1):.1f}% slower per step than the plain loop (median of paired ratios; "
             "target: within 3%)")


def overhead(args) -> None:
    steps = args.steps
    plain, bench = paired_rounds(args, base_overrides(args, steps) + ["method=lora"], steps, args.rounds, "overhead")
    rows = [[r + 1, f"{p * 1000:.1f}", f"{b * 1000:.1f}", f"{b / p:.3f}"] for r, (p, b) in
            enumerate(zip(plain, bench))]
    rows.append(["median", f"{statistics.median(plain) * 1000:.1f}", f"{statistics.median(bench) * 1000:.1f}",
                 f"{statistics.median(b / p for b, p in zip(bench, plain)):.3f}"])
    table(f"1. Harness overhead: {args.model} + lora, batch {args.batch}, {steps} steps ({args.warmup} warm-up), "
          "ms per step", ["round", "plain loop", "peftbench", "peftbench / plain"], rows)
    check_overhead(overhead_summary(plain, bench))


FAST = {"model": "tiny", "batch": 8, "max_length": 32, "steps": 60, "warmup": 10, "rounds": 30}  # ~5 ms steps


def overhead_fast(args) -> None:
    """Section 1b: the same comparison at GPU-like step times (a few ms), where every fixed per-step cost
    of the harness shows: many short alternating rounds, summarised rather than tabled. Both sides are
    timed on the process's CPU time (all its threads, the memory sampler's included), which time slices
    lost to other processes on a shared machine do not inflate; wall time is section 1's clock."""
    f = {**FAST, **({"steps": 20, "warmup": 4, "rounds": 4} if args.quick else {})}
    fast = argparse.Namespace(**{**vars(args), "model": f["model"], "batch": f["batch"], "warmup": f["warmup"]})
    overrides = [o for o in base_overrides(fast, f["steps"]) if not o.startswith("train.log_every")] + \
        ["method=lora", f"model.max_length={f['max_length']}"]  # logging as users get it (every 10 steps)
    print(f"\n## 1b. Harness overhead at fast steps: {f['model']} + lora, batch {f['batch']}, max_length "
          f"{f['max_length']}, {f['rounds']} alternating rounds of {f['steps']} steps ({f['warmup']} warm-up), process CPU time per step")
    check_overhead(overhead_summary(*paired_rounds(fast, overrides, f["steps"], f["rounds"], "fast",
                                                   time.process_time)))
