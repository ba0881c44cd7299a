"""A benchmark of peftbench's own measurements (not a test): prints one table per question.

    python scripts/bench.py            # or `make bench`: MiniLM on this machine's CPU, ~5-8 minutes
    python scripts/bench.py --quick    # the tiny model, a minute: a smoke test (tests/scripts/test_bench.py)
    python scripts/bench.py --only overhead,startup

One module per section in scripts/benchmarks/ (common.py: what they share); `--only` takes these names:

1. overhead  a hand-written PyTorch loop vs `peftbench.run.runner.run` on the same model x method x data x
             batch x steps, alternating in one process; seconds per step after the same warm-up.
             overhead-fast: the same at GPU-like step times (tiny model); profile: the harness's own work
             per step, piece by piece.
2. parity    LoRA, IA3, prefix tuning applied with `peft` + the plain loop vs through peftbench:
             trainable count, per-step loss under one seed, throughput ratio. trainer: vs HF Trainer + peft.
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
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("PYTHONPATH", str(ROOT))

from benchmarks import concurrency, memory, overhead, parity, profile, scaling, startup, trainer  # noqa: E402
from benchmarks.common import WARNINGS, peftbench_run  # noqa: E402

def text_throughput(args) -> None:
    """Section 7 lives in scripts/bench_text.py, which takes the helpers it shares with the others."""
    from types import SimpleNamespace

    import bench_text
    from benchmarks import common

    bench_text.section(args, SimpleNamespace(compose=common.compose, peftbench_run=common.peftbench_run,
                                             loader_for=common.loader_for, peft_model=parity.peft_model,
                                             table=common.table, warn=common.warn))


SECTIONS = {"overhead": overhead.overhead, "overhead-fast": overhead.overhead_fast, "profile": profile.profile,
            "parity": parity.parity, "trainer": trainer.trainer_parity, "memory": memory.memory,
            "scaling": scaling.scaling, "startup": startup.startup, "concurrency": concurrency.concurrency,
            "text-throughput": text_throughput}


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
