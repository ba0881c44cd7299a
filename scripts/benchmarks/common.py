"""What the sections share: composing a config, the plain PyTorch loop and peftbench's runner on the
same batches, fresh worker processes, and the table/warning printers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench.py"  # the command line; `--worker` runs one config in a fresh process
WARNINGS: list[str] = []


def compose(*overrides):
    """The config as `peftbench run` composes it for a run (peftbench.cli.compose)."""
    from peftbench.cli import compose as run_config

    return run_config(list(overrides))


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


def loader_for(cfg):
    """The task's training batches exactly as the runner makes them (its kind's loaders: same order under
    the seed), and the task's number of labels."""
    from peftbench.tasks import load_task
    from peftbench.train.kinds import make_loaders

    data = load_task(cfg.task, seed=cfg.seed, data_root=cfg.data_root)
    return make_loaders(cfg, data)[0], data.num_labels


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
    return subprocess.Popen([sys.executable, str(BENCH), "--worker", json.dumps(overrides)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def worker_result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {proc.args[-1]} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])
