"""A benchmark of peftbench's own measurements (not a test): prints one table per question.

    python scripts/bench.py            # or `make bench`: MiniLM on this machine's CPU, ~5-8 minutes
    python scripts/bench.py --quick    # the tiny model, a minute: a smoke test (tests/test_bench.py)
    python scripts/bench.py --only overhead,startup

1. overhead  a hand-written PyTorch loop vs `peftbench.run.runner.run` on the same model x method x data x
             batch x steps, alternating in one process; seconds per step after the same warm-up.
2. parity    LoRA, IA3, prefix tuning applied with `peft` + the plain loop vs through peftbench:
             trainable count, per-step loss under one seed, throughput ratio.
3. memory    peak RSS while training full / lora / ia3 / lst, each in a fresh process (see below).
4. scaling   time and memory per step as batch size and sequence length double; leaks across steps
             (a run 4x as long) and across runs (three runs in one process).
5. startup   `peftbench --help` and `peftbench report` on 10,000 fixture run files, in seconds.
6. concurrency  one run alone, two at once at torch's default threads (all cores each), two at once with
             the cores split (`hardware.threads=auto` under a launcher running two): samples/s each and in all.
7. text-throughput  real SST-2 and RTE (--data-root): {fp32, bf16} x {as drawn, grouped by length}, and HF
             Trainer as the peer (scripts/bench_text.py).

Memory on CPU is the process's peak RSS, which never goes down within a process: methods measured
one after another in one process would inherit each other's peaks, and tracemalloc sees only
Python's own heap, not torch's tensors. So each memory figure comes from a fresh process
(`--worker`) that runs one config and prints its run file's memory block.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("PYTHONPATH", str(ROOT))
WARNINGS: list[str] = []


def compose(*overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from peftbench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def base_overrides(args, steps: int) -> list[str]:
    return [f"model={args.model}", "hardware=cpu", f"train.max_steps={steps}", "train.log_every=1",
            f"train.batch_size={args.batch}", "train.checkpoint_every=0", "train.save_trainable=false",
            f"train.throughput_warmup_steps={args.warmup}", "task.generator_args.n_train=2000",
            "task.generator_args.n_eval=64", "cache_dir=null", f"results_dir={args.tmp}"]


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}\n")
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    sys.stdout.flush()


def warn(message: str) -> None:
    WARNINGS.append(message)
    print(f"WARNING: {message}")


# --- the plain loop and peftbench's runner -------------------------------------------------------

def loader_for(cfg):
    """The task's training batches exactly as the runner makes them (same order under the seed)."""
    from peftbench.models import load_tokenizer
    from peftbench.tasks import load_task
    from peftbench.tasks.tokenized import tokenize
    from peftbench.train import make_loader

    data = load_task(cfg.task, seed=cfg.seed, data_root=cfg.data_root)
    tok = load_tokenizer(cfg.model)
    split, _ = tokenize(data.train, tok, cfg.task.text_fields, cfg.model.max_length, None)
    return make_loader(split, tok, cfg.train.batch_size, shuffle=True, seed=cfg.seed), data.num_labels


def epochs(loader):
    """Batches epoch after epoch, each epoch shuffled under (seed, epoch) as the runner does."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def plain_loop(model, loader, cfg, steps: int, warmup: int, clock=time.perf_counter) -> tuple[float, list[float]]:
    """What one writes by hand: fused AdamW (decay on matrices), linear warmup/decay, clipping, loss.item().
    Returns (seconds per step after `warmup` steps, per-step losses)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    t = cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=t.lr,
                            fused=True)  # as peftbench (and HF Trainer) on CPU and CUDA
    sched = get_linear_schedule_with_warmup(opt, int(t.warmup_ratio * steps), steps)
    model.train()
    losses, batches, began = [], epochs(loader), None
    for step in range(steps):
        if step == warmup:
            began = clock()
        batch = next(batches)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    return (clock() - began) / (steps - warmup), losses


def peftbench_run(overrides: list[str], run_dir: Path, clock=None) -> dict:
    """One run through the runner; `clock` (e.g. time.process_time) replaces its StepTimer's default clock."""
    from peftbench.run.runner import run
    from peftbench.train.measure import StepTimer

    defaults = StepTimer.__init__.__defaults__  # (sync, clock)
    if clock is not None:
        StepTimer.__init__.__defaults__ = (defaults[0], clock)
    try:
        return run(compose(*overrides), run_dir)
    finally:
        StepTimer.__init__.__defaults__ = defaults


def worker(overrides: list[str]) -> dict:
    """Run one config in a fresh process; its run file's memory and throughput come back as JSON."""
    return worker_result(start_worker(overrides))


def start_worker(overrides: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(overrides)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def worker_result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {proc.args[-1]} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


# --- 1. overhead ----------------------------------------------------------------------------------

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
    from peftbench.train.loop import _cache_accelerate_lookups
    from peftbench.train.measure import StepTimer

    fast = argparse.Namespace(**{**vars(args), "model": FAST["model"], "batch": FAST["batch"]})
    cfg = compose(*base_overrides(fast, FAST["steps"]), "method=lora", f"model.max_length={FAST['max_length']}")
    loader, num_labels = loader_for(cfg)
    model = build_counted(cfg, num_labels)[0]
    params = [p for p in model.parameters() if p.requires_grad]
    accelerator = Accelerator(cpu=True)
    _cache_accelerate_lookups()
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
        ("accelerator.clip_grad_norm_ around torch's (torch's a no-op here)",
         inner_noop(torch.nn.utils, "clip_grad_norm_", lambda: accelerator.clip_grad_norm_(params, 1.0)), None, 1,
         2000),
        ("AcceleratedOptimizer.step around torch's (torch's a no-op here)",
         inner_noop(optimizer.optimizer, "step", optimizer.step), None, 1, 2000),
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


# --- 2. parity with peft --------------------------------------------------------------------------

PEFT_CONFIGS = {  # the same knobs as peftbench/conf/method/<name>.yaml, written out as a peft user would
    "lora": ("LoraConfig", {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1}),
    "ia3": ("IA3Config", {}),
    "prefix_tuning_peft": ("PrefixTuningConfig", {"num_virtual_tokens": 20}),
}


def peft_model(cfg, method: str, num_labels: int):
    """The model with `method` applied by `peft` itself, as a peft user writes it."""
    import peft
    from accelerate.utils import set_seed
    from transformers import AutoModelForSequenceClassification

    from peftbench.models import resolve_path

    set_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_path(cfg.model.name_or_path),
                                                               num_labels=num_labels) \
        if cfg.model.name_or_path else _random_init(cfg, num_labels)
    class_name, kwargs = PEFT_CONFIGS[method]
    return peft.get_peft_model(model, getattr(peft, class_name)(task_type=peft.TaskType.SEQ_CLS, **kwargs))


def direct_peft(cfg, method: str, loader, num_labels: int, steps: int, warmup: int):
    model = peft_model(cfg, method, num_labels)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    try:
        seconds, losses = plain_loop(model, loader, cfg, steps, warmup)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return trainable, None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    return trainable, (seconds, losses), None


def _random_init(cfg, num_labels):
    from transformers import AutoModelForSequenceClassification

    from peftbench.models import model_config

    return AutoModelForSequenceClassification.from_config(model_config(cfg.model, num_labels=num_labels))


def parity(args) -> None:
    from peftbench.errors import UserError

    steps, rows = args.steps, []
    for method in PEFT_CONFIGS:
        overrides = base_overrides(args, steps) + [f"method={method}", "train.warmup_ratio=0.06"]
        cfg = compose(*overrides)
        loader, num_labels = loader_for(cfg)
        trainable, direct, direct_error = direct_peft(cfg, method, loader, num_labels, steps, args.warmup)
        try:
            record = peftbench_run(overrides, Path(args.tmp) / f"parity_{method}")
            if direct is not None:  # ABBA: peftbench again, then peft again, for the throughput ratio
                second = peftbench_run(overrides, Path(args.tmp) / f"parity_{method}_2")
                again = direct_peft(cfg, method, loader, num_labels, steps, args.warmup)[1]
        except UserError as exc:
            rows.append([method, f"{trainable:,}", "refused", "-", "-",
                         f"peftbench refuses: {str(exc).split(': ', 1)[-1].split('. ')[0]}; "
                         f"peft alone: {direct_error or 'trains'}"])
            continue
        ours = [loss for _, loss in record["loss_history"]]
        same = "yes" if record["params"]["trainable"] == trainable else f"no ({record['params']['trainable']:,})"
        if direct is None:
            rows.append([method, f"{trainable:,}", same, "-", "-", f"peft direct fails: {direct_error}"])
            continue
        diff = max(abs(a - b) for a, b in zip(ours, direct[1], strict=True))
        speed = statistics.mean([direct[0] / record["throughput"]["train_s_per_step"],
                                 again[0] / second["throughput"]["train_s_per_step"]])
        rows.append([method, f"{trainable:,}", same, f"{diff:.2e}", f"{speed:.3f}", ""])
        if speed < 0.97:
            warn(f"{method}: peftbench throughput is {speed:.3f} of peft + a plain loop (target >= 0.97)")
        if diff > 1e-4:
            warn(f"{method}: the loss curves differ by up to {diff:.2e}")
    table(f"2. Parity with peft + a plain loop ({args.model}, {steps} steps, seed 42; throughput: mean of 2 "
          "alternating pairs, peft time / peftbench time per step)",
          ["method", "trainable (peft)", "same count", "max |loss diff|", "throughput ratio", "note"], rows)


# --- 2b. parity with HF Trainer -------------------------------------------------------------------

def trainer_steps(cfg, loader, num_labels: int, steps: int, warmup: int, out_dir: Path) -> float:
    """HF `Trainer` + peft LoRA as a user writes it (its defaults: fused AdamW, linear schedule), handed
    the same loader so it trains on the same batches in the same order. Seconds per step after `warmup`
    steps, from the end of step `warmup` to the end of the last, as peftbench's window."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    class SameBatches(Trainer):
        def get_train_dataloader(self):
            return self.accelerator.prepare(loader)

    class Clock(TrainerCallback):
        began = ended = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            self.ended = time.perf_counter()
            if state.global_step == warmup:
                self.began = self.ended

    t, clock = cfg.train, Clock()
    targs = TrainingArguments(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=t.batch_size,
                              learning_rate=t.lr, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
                              warmup_steps=int(t.warmup_ratio * steps), lr_scheduler_type="linear",
                              logging_steps=t.log_every, save_strategy="no", eval_strategy="no", report_to="none",
                              disable_tqdm=True, use_cpu=True, seed=cfg.seed, dataloader_num_workers=0)
    trainer = SameBatches(model=peft_model(cfg, "lora", num_labels), args=targs, train_dataset=loader.dataset,
                          callbacks=[clock])
    trainer.remove_callback(PrinterCallback)  # its metrics line on stdout; the table has them
    trainer.train()
    return (clock.ended - clock.began) / (steps - warmup)


def window_tokens(loader, steps: int, warmup: int) -> int:
    """Non-padding tokens of the batches of steps warmup+1..steps (the throughput window), epoch by epoch."""
    batches = epochs(loader)
    return sum(int(next(batches)["attention_mask"].sum()) * (i >= warmup) for i in range(steps))


def trainer_parity(args) -> None:
    """Section 2b: peftbench vs HF Trainer + peft on the same model, LoRA, batches (same order), steps and
    threads, alternating rounds; per step and per non-padding token."""
    steps = args.steps
    overrides = [o for o in base_overrides(args, steps) if not o.startswith("train.log_every")] + ["method=lora"]
    cfg = compose(*overrides)
    loader, num_labels = loader_for(cfg)
    tokens, ours, theirs, same = window_tokens(loader, steps, args.warmup), [], [], True
    for r in range(args.rounds):  # ABBA, as section 1
        for side in (("trainer", "peftbench") if r % 2 == 0 else ("peftbench", "trainer")):
            if side == "trainer":
                theirs.append(trainer_steps(cfg, loader, num_labels, steps, args.warmup, Path(args.tmp) / f"hf{r}"))
            else:
                record = peftbench_run(overrides, Path(args.tmp) / f"vs_trainer{r}")
                ours.append(record["throughput"]["train_s_per_step"])
                same = same and record["throughput"]["window"]["tokens"] == tokens
            gc.collect()
    ratios = [h / p for h, p in zip(theirs, ours)]
    rate = tokens / (steps - args.warmup)
    rows = [[r + 1, f"{h * 1000:.1f}", f"{p * 1000:.1f}", f"{rate / h:.0f}", f"{rate / p:.0f}", f"{q:.3f}"]
            for r, (h, p, q) in enumerate(zip(theirs, ours, ratios))]
    ratio = statistics.median(ratios)
    rows.append(["median", f"{statistics.median(theirs) * 1000:.1f}", f"{statistics.median(ours) * 1000:.1f}",
                 f"{rate / statistics.median(theirs):.0f}", f"{rate / statistics.median(ours):.0f}", f"{ratio:.3f}"])
    table(f"2b. Parity with HF Trainer + peft ({args.model} + lora, batch {args.batch}, {steps} steps, "
          f"{args.warmup} warm-up, the same batches in the same order: {tokens:,} non-padding tokens in the window"
          f"{'' if same else ' (peftbench counted otherwise!)'})",
          ["round", "Trainer ms/step", "peftbench ms/step", "Trainer tokens/s", "peftbench tokens/s",
           "peftbench speed / Trainer's"], rows)
    if not same:
        warn("peftbench's window counted other tokens than the batches handed to Trainer")
    if ratio < 1.0:
        warn(f"peftbench trains at {ratio:.3f}x Trainer's tokens/s (median of paired rounds; target >= 1.00)")


# --- 3. memory ordering ---------------------------------------------------------------------------

def memory(args) -> None:
    rows, deltas = [], {}
    for method in ("full", "lora", "ia3", "lst"):
        m = worker(base_overrides(args, args.mem_steps) + [f"method={method}"])["memory"]
        deltas[method] = m["peak_rss_mb"] - m["rss_before_train_mb"]
        rows.append([method, f"{m['rss_before_train_mb']:.0f}", f"{m['peak_rss_mb']:.0f}", f"{deltas[method]:.0f}"])
    for row, method in zip(rows, deltas):
        row.append(f"{deltas[method] / deltas['full']:.2f}" if deltas["full"] > 0 else "-")
    table(f"3. Memory while training, fresh process per method ({args.model}, batch {args.batch}, "
          f"{args.mem_steps} steps, MB)", ["method", "RSS before", "peak RSS", "training (peak - before)",
                                          "÷ full"], rows)
    for method in ("lora", "ia3", "lst"):
        if deltas[method] >= deltas["full"]:
            warn(f"{method} used no less training memory than full ({deltas[method]:.0f} vs {deltas['full']:.0f} MB)")
    if deltas["lst"] > 0.5 * deltas["full"]:
        warn(f"lst is not well under full ({deltas['lst']:.0f} vs {deltas['full']:.0f} MB)")


# --- 4. scaling -----------------------------------------------------------------------------------

def long_texts(folder: Path, n: int = 600) -> Path:
    """GLUE SST-2 files whose sentences are long enough to fill any max_length up to 256 tokens."""
    from peftbench.tasks.synthetic import sentiment

    data = sentiment(n_train=n * 12, n_eval=64 * 12)
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv")):
        df = data[split]
        rows = [(" ".join(df.sentence[i:i + 12]), df.label[i]) for i in range(0, len(df), 12)]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    return folder


def scaling(args) -> None:
    data = long_texts(Path(args.tmp) / "long")
    common = [o for o in base_overrides(args, args.mem_steps) if not o.startswith("task.")] + \
        ["method=lora", "task=glue/sst2", f"task.data_dir={data}"]
    rows, previous, done = [], {}, {}
    points = [("batch", b, args.seq) for b in args.batches] + [("seq", args.batch_for_seq, s) for s in args.seqs]
    for axis, batch, seq in points:
        if (batch, seq) not in done:
            done[batch, seq] = worker([*common, f"train.batch_size={batch}", f"model.max_length={seq}"])
        out = done[batch, seq]
        ms, mem = out["throughput"]["train_s_per_step"] * 1000, out["memory"]
        delta = mem["peak_rss_mb"] - mem["rss_before_train_mb"]
        last = previous.get(axis)
        rows.append([axis, batch, seq, f"{ms:.1f}", f"{ms / last[0]:.2f}" if last else "-", f"{delta:.0f}",
                     f"{out['throughput']['train_tokens_per_s']:.0f}"])
        previous[axis] = (ms, delta)
    table(f"4a. Scaling ({args.model} + lora, fresh process per point, {args.mem_steps} steps)",
          ["doubling", "batch", "seq len", "ms/step", "× previous", "training MB", "tokens/s"], rows)

    small = ["train.batch_size=8", "model.max_length=32"]  # leaks show at any size: the cheapest point
    short, long = (worker([*common, f"train.max_steps={n}", *small]) for n in (args.mem_steps, 4 * args.mem_steps))
    leak_rows = [[f"{n} steps", f"{o['memory']['peak_rss_mb']:.0f}", f"{o['throughput']['train_s_per_step'] * 1000:.1f}"]
                 for n, o in ((args.mem_steps, short), (4 * args.mem_steps, long))]
    import psutil

    process, after = psutil.Process(), []
    for r in range(3):  # three runs of one sweep process: what is left after each
        peftbench_run([*common, *small, f"seed={r}"], Path(args.tmp) / f"leak{r}")
        gc.collect()
        after.append(process.memory_info().rss / 2**20)
    leak_rows += [[f"in-process run {r + 1}", "-", "-", f"{rss:.0f}"] for r, rss in enumerate(after)]
    table("4b. Leaks (batch 8, seq 32): peak RSS of a run 4x as long (fresh processes); RSS after each of 3 runs "
          "in one process",
          ["run", "peak RSS MB", "ms/step", "RSS after run MB"], [row + [""] if len(row) == 3 else row
                                                                  for row in leak_rows])
    growth = long["memory"]["peak_rss_mb"] - short["memory"]["peak_rss_mb"]
    if growth > 50:
        warn(f"a run 4x as long peaked {growth:.0f} MB higher: memory grows with steps")
    if after[2] - after[1] > 50:
        warn(f"RSS grew by {after[2] - after[1]:.0f} MB from the 2nd to the 3rd run in one process")


# --- 5. startup -----------------------------------------------------------------------------------

def fixture_run_files(folder: Path, n: int) -> Path:
    """n copies of a real run file (a tiny run), as from a grid of models x methods x seeds."""
    template = peftbench_run(["model=tiny", "hardware=cpu", "train.max_steps=2", "task.generator_args.n_train=64",
                              "task.generator_args.n_eval=32", "cache_dir=null"], folder / "template")
    methods = ["lora", "ia3", "bitfit", "full", "lst", "adapter_houlsby", "vera", "loha", "dora", "boft"]
    for i in range(n):
        model, method, seed = f"m{i % 10}", methods[(i // 10) % 10], i // 100
        record = {**template, "model": model, "method": method, "seed": seed,
                  "metrics": {"accuracy": 0.5 + (i % 37) / 100, "f1": 0.5 + (i % 41) / 100}}
        record["main_score"] = record["metrics"]["accuracy"]
        path = folder / "runs" / f"{model}_{method}_s{seed}" / "run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return folder / "runs"


def timed(cmd: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - began, out.stdout


def startup(args) -> None:
    runs = fixture_run_files(Path(args.tmp) / "fixture", args.run_files)
    py, code = sys.executable, ("import sys\nfrom peftbench.cli import main\ntry: main(sys.argv[1:])\nfinally: "
                                "print(sorted(m for m in ('torch', 'transformers', 'hydra', 'pandas') if m in sys.modules))")
    rows = []
    for label, argv in (("python -c pass", None), ("peftbench --help", ["--help"]),
                        ("peftbench report --help", ["report", "--help"]),
                        (f"peftbench report ({args.run_files:,} run files)", ["report", str(runs)]),
                        ("peftbench run --help", ["run", "--help"])):
        cmd = [py, "-c", "pass"] if argv is None else [py, "-c", code, *argv]
        seconds = min(timed(cmd)[0] for _ in range(2))
        heavy = "-" if argv is None else timed(cmd)[1].strip().splitlines()[-1]
        rows.append([label, f"{seconds:.2f}", heavy])
        if argv and argv[0] != "run" and ("torch" in heavy or "transformers" in heavy):
            warn(f"{label} imports {heavy}")
    table("5. Startup (best of 2, seconds)", ["command", "seconds", "heavy modules imported"], rows)


# --- main -----------------------------------------------------------------------------------------

# --- 6. concurrency -------------------------------------------------------------------------------

def concurrency(args) -> None:
    """Runs that share the machine: each in a fresh process; two start together and train 3x as long as
    section 1, so that their measured windows overlap. `all cores` is torch's default, one thread per core."""
    from peftbench.run.threads import available_cpus

    cpus = available_cpus()
    split = max(1, cpus // 2)
    steps = 3 * args.steps
    rows, totals = [], {}
    for label, n, threads in [("alone", 1, cpus), ("2 at once, all cores each", 2, cpus),
                              (f"2 at once, split ({split} each)", 2, split)]:
        procs = [start_worker(base_overrides(args, steps) + [f"hardware.threads={threads}", f"seed={i + 1}"])
                 for i in range(n)]
        figures = [worker_result(p)["throughput"] for p in procs]
        rates = [f["train_samples_per_s"] for f in figures]
        totals[label] = sum(rates)
        recorded = " + ".join(str(f["threads"]) for f in figures)  # as the run files record them
        rows.append([label, recorded, " + ".join(f"{r:.1f}" for r in rates), f"{sum(rates):.1f}"])
    table(f"6. Concurrency: {args.model} + lora, batch {args.batch}, {steps} steps, {cpus} CPUs, fresh process "
          "per run", ["runs", "threads per run", "samples/s each", "samples/s in all"], rows)
    default, shared = totals["2 at once, all cores each"], totals[rows[2][0]]
    print(f"\nsplit / all cores, two runs at once: {shared / default:.2f}x in all")
    if cpus > 1 and shared < default:
        warn(f"two runs with the cores split trained slower in all than at all cores each ({shared:.1f} vs "
             f"{default:.1f} samples/s)")


def text_throughput(args) -> None:
    import bench_text  # section 7 lives in its own file

    bench_text.section(args, sys.modules[__name__])


SECTIONS = {"overhead": overhead, "overhead-fast": overhead_fast, "profile": profile, "parity": parity,
            "trainer": trainer_parity, "memory": memory, "scaling": scaling, "startup": startup,
            "concurrency": concurrency, "text-throughput": text_throughput}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny model, few steps: a smoke test of this script")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads, here and in the worker processes (default 1: see the README)")
    p.add_argument("--data-root", help="a folder laid out as GLUE distributes it (SST-2/, RTE/): section 7")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch is imported, and for the workers
    import torch

    torch.set_num_threads(args.threads)
    if args.worker:
        with tempfile.TemporaryDirectory() as tmp:
            record = peftbench_run(json.loads(args.worker), Path(tmp) / "run")
        print(json.dumps({k: record[k] for k in ("memory", "throughput")}))
        return 0
    quick = args.quick
    args.model, args.batch, args.warmup = ("tiny", 16, 2) if quick else ("minilm", 32, 5)
    args.steps, args.rounds, args.mem_steps = (8, 2, 6) if quick else (20, 6, 12)
    args.batches, args.seq = ([8, 16], 32) if quick else ([8, 16, 32], 64)
    args.batch_for_seq, args.seqs = (8, [32, 64]) if quick else (16, [32, 64, 128])
    args.run_files = 500 if quick else 10_000
    import platform

    print(f"# peftbench bench{' --quick' if quick else ''}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"python {platform.python_version()}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peftbench-bench-") as tmp:
        args.tmp = tmp
        for name in args.only.split(","):
            SECTIONS[name.strip()](args)
    print(f"\n{len(WARNINGS)} warning(s); {time.perf_counter() - began:.0f} s in all")
    for w in WARNINGS:
        print(f"WARNING: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
