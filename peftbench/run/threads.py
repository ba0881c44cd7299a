"""How many CPU threads torch uses in a run: `hardware.threads`.

`auto` (the default) is OMP_NUM_THREADS when the environment sets it, else the CPUs this process may use
(its CPU affinity, at most SLURM_CPUS_PER_TASK) divided among the runs started at once (`PEFTBENCH_RUNS_AT_ONCE`, which run/job.py sets from the launcher: joblib's
n_jobs for `hydra/launcher=local`, else 1) and among a run's processes (`hardware.num_processes`), at
least 1. Oversubscribed OpenMP threads spin: on 2 cores, two runs at torch's default of 2 threads each
trained at 15.6 + 15.8 samples/s, at 1 thread each 34.7 + 34.3 (README.md, "Sweeps").
"""

from __future__ import annotations

import os

from ..errors import UserError

RUNS_AT_ONCE = "PEFTBENCH_RUNS_AT_ONCE"
ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cpus() -> int:
    """CPUs this process may run on: its affinity (taskset, cgroups, SLURM), at most SLURM_CPUS_PER_TASK."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        n = os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(n, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else n


def resolve(setting, processes: int = 1, runs_at_once: int | None = None) -> int:
    """The number of threads for `hardware.threads=setting` (auto, or a whole number >= 1)."""
    if str(setting) != "auto":
        try:
            n = int(setting)
        except (TypeError, ValueError):
            n = 0
        if n < 1 or isinstance(setting, bool) or str(n) != str(setting).strip():
            raise UserError(f"hardware.threads={setting!r}: give auto (the CPUs this process may use, split "
                            "among the runs started at once) or a whole number >= 1.")
        return n
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:  # the user's (or this launcher's) choice for OpenMP programs; "4,2" (nested levels): 4
        first = env.split(",")[0].strip()
        if not all(p.strip().isdigit() and int(p) > 0 for p in env.split(",")):
            raise UserError(f"OMP_NUM_THREADS={env!r} (in the environment): not a whole number >= 1. Set it to one "
                            "(export OMP_NUM_THREADS=4), unset it, or choose with hardware.threads=N.")
        return int(first)
    if runs_at_once is None:
        runs_at_once = int(os.environ.get(RUNS_AT_ONCE, "1") or 1)
    return max(1, available_cpus() // max(1, runs_at_once) // max(1, processes))


def apply(n: int) -> None:
    """Use n threads from now on: the environment (read when a child process or torch's pools start)
    and torch itself when it is loaded."""
    for key in ENV_KEYS:
        os.environ[key] = str(n)
    import torch

    torch.set_num_threads(n)
