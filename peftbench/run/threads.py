"""How many CPU threads torch uses in a run: `hardware.threads`.

`auto` (the default) is OMP_NUM_THREADS when the environment sets it, else the CPUs this process may use
(its CPU affinity, at most SLURM_CPUS_PER_TASK) divided among the runs started at once (`PEFTBENCH_RUNS_AT_ONCE`, which run/job.py sets from the launcher: joblib's
n_jobs for `hydra/launcher=local`, else 1) and among a run's processes (`hardware.num_processes`), at
least 1. Oversubscribed OpenMP threads spin: on 2 cores, two runs at torch's default of 2 threads each
trained at 15.6 + 15.8 samples/s, at 1 thread each 34.7 + 34.3 (README.md, "Sweeps").

`auto` also leaves out the CPUs that other work keeps busy: the CPU time of this process's CPUs over half
a second (`busy_cpus`), rounded, at least 1 thread. On a 2-core machine with load 3-7 from other jobs, the
demo took 1,766 s at 2 threads against 62 s quiet, and 1 thread ran about 3x faster than 2 there. The load
is read when the run starts (before it computes anything itself), so a sweep's own earlier run does not
count, as it would in os.getloadavg()'s decaying average (recorded beside it for context).
What was chosen and why is in every run file (`memory.threads`, `memory.threads_why`).
"""

from __future__ import annotations

import os

from ..errors import UserError

RUNS_AT_ONCE = "PEFTBENCH_RUNS_AT_ONCE"
WHY = "PEFTBENCH_THREADS_WHY"  # "<n>: <why>", set by resolve()
ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cpus() -> int:
    """CPUs this process may run on: its affinity (taskset, cgroups, SLURM), at most SLURM_CPUS_PER_TASK."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        n = os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(n, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else n


def busy_cpus() -> float:
    """CPUs of this process's affinity kept busy by other work now: their busy share over 0.5 s, summed
    (this process sleeps while it measures)."""
    import psutil

    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = None
    shares = psutil.cpu_percent(interval=0.5, percpu=True)
    return sum(shares[i] for i in cpus if i < len(shares)) / 100 if cpus else sum(shares) / 100


def choose(setting, processes: int = 1, runs_at_once: int | None = None) -> tuple[int, str]:
    """(threads for `hardware.threads=setting`, why): auto, or a whole number >= 1."""
    if str(setting) != "auto":
        try:
            n = int(setting)
        except (TypeError, ValueError):
            n = 0
        if n < 1 or isinstance(setting, bool) or str(n) != str(setting).strip():
            raise UserError(f"hardware.threads={setting!r}: give auto (the CPUs this process may use, split "
                            "among the runs started at once) or a whole number >= 1.")
        return n, f"hardware.threads={n}"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:  # the user's (or this launcher's) choice for OpenMP programs; "4,2" (nested levels): 4
        if not all(p.strip().isdigit() and int(p) > 0 for p in env.split(",")):
            raise UserError(f"OMP_NUM_THREADS={env!r} (in the environment): not a whole number >= 1. Set it to one "
                            "(export OMP_NUM_THREADS=4), unset it, or choose with hardware.threads=N.")
        env = env.split(",")[0].strip()
        told = os.environ.get(WHY, "")  # what the launcher chose it for (resolve below)
        return int(env), told.split(": ", 1)[1] if told.startswith(f"{env}: ") else f"OMP_NUM_THREADS={env}"
    if runs_at_once is None:
        runs_at_once = int(os.environ.get(RUNS_AT_ONCE, "1") or 1)
    cpus = available_cpus()
    share = max(1, cpus // max(1, runs_at_once) // max(1, processes))
    busy = busy_cpus()
    free = max(1, int(cpus - busy + 0.5))
    n = min(share, free)
    load = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"
    why = (f"auto: {cpus} CPUs / {max(1, runs_at_once)} runs at once / {max(1, processes)} processes = {share}; "
           f"{busy:.1f} CPUs busy with other work (load average {load}) leave {free}")
    return n, why


def resolve(setting, processes: int = 1, runs_at_once: int | None = None) -> int:
    """The number of threads for `hardware.threads=setting` (auto, or a whole number >= 1); why is kept in
    the environment (`reason()`), for this process and the child processes it starts."""
    n, why = choose(setting, processes, runs_at_once)
    os.environ[WHY] = f"{n}: {why}"
    return n


def reason() -> str | None:
    """Why this process uses the threads it uses (the last `resolve`)."""
    told = os.environ.get(WHY, "")
    return told.split(": ", 1)[1] if ": " in told else None


def apply(n: int) -> None:
    """Use n threads from now on: the environment (read when a child process or torch's pools start)
    and torch itself when it is loaded."""
    for key in ENV_KEYS:
        os.environ[key] = str(n)
    import torch

    torch.set_num_threads(n)
