"""One Hydra job of `peftbench run`: take the run's lock, skip the run when an ok run file with the same
config exists, else run it (in a child process of its own in a multirun: `launch.process`), record how
it ended in the sweep's ledger, and print its summary. A user mistake becomes one clear message and
leaves no run folder; in a multirun an error ends only its own job."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..config import apply_per_task
from ..errors import UserError, unknown_name
from . import sweep, threads
from .child import run_in_child
from .lock import LOCK_NAME, RunLock, describe
from .precheck import SAME_ERROR_IN_A_ROW, repeated_failure
from .runner import Stopped, identity, reason, record_path, run

HYDRA_FILES = (".hydra", "run.log", LOCK_NAME)  # what a run dir holds before the run writes anything
# How the last job in this process ended, for peftbench.api.run: {"run_file": path} (ok, or skipped for an ok
# run file with the same config) or {"error": message} (a user mistake, exit 2)
LAST_OUTCOME: dict | None = None


def run_job(cfg) -> None:
    """One Hydra job: skip it if done or held by another process, else run it; print a summary, turn a
    user mistake into a clear message. In a multirun an error ends only this job (its run file says why)
    and the sweep goes on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    main_task = _export_slurm_tasks()
    os.environ[threads.RUNS_AT_ONCE] = str(runs_at_once(hydra_cfg))
    try:  # a protocol's per-task settings (what the command line sets wins), then the launch settings
        apply_per_task(cfg, explicit=[o.split("=")[0].lstrip("+~") for o in hydra_cfg.overrides.task])
        in_child = use_child(cfg.launch.process, multirun)
        wait = _choice("launch.if_locked", cfg.launch.if_locked, ("skip", "wait")) == "wait"
        n_threads = threads.resolve(cfg.hardware.threads, cfg.hardware.num_processes)
    except UserError as exc:
        _remove_if_unused(run_dir)
        _note(error=str(exc))
        print(f"peftbench: error: {exc}", file=sys.stderr)
        if multirun:
            return
        sys.exit(2)
    lock = RunLock(run_dir, stale_after_s=cfg.launch.stale_lock_min * 60) if main_task else None
    if lock is not None and not lock.acquire(wait=wait):
        print(f"peftbench: skipped  {run_dir.name}: {describe(lock.holder)} is running it "
              "(launch.if_locked=wait waits for it)")
        sweep.record_outcome(cfg, run_dir, "skipped", reason=f"locked by {describe(lock.holder)}")
        return
    try:
        _run_held(cfg, run_dir, multirun, main_task, in_child, n_threads, lock)
    finally:
        if lock is not None:
            _remove_if_unused(run_dir, lock)


def _run_held(cfg, run_dir: Path, multirun: bool, main_task: bool, in_child: bool, n_threads: int, lock) -> None:
    ident = identity(cfg)  # the config hash, once for the skip and the run file
    key = ident["config_hash"]
    done = None if cfg.force else sweep.find_ok_run(cfg.results_dir, key, first=run_dir / "run.json")
    if done is not None:
        print(f"peftbench: skipped  {run_dir.name}: an ok run file with the same config exists: {done} "
              "(--force re-runs it)")
        if main_task:
            sweep.record_outcome(cfg, run_dir, "skipped", run_file=str(done))
        _note(run_file=str(done))
        return
    stop = repeated_failure(cfg) if multirun else None
    if stop is not None:  # the same error in several jobs in a row (hub offline, data missing): stop here
        print(f"peftbench: skipped  {run_dir.name}: the last {SAME_ERROR_IN_A_ROW} jobs failed with the same error "
              f"({stop}); the sweep stops here (--keep-going runs every job)", file=sys.stderr)
        if main_task:
            sweep.record_outcome(cfg, run_dir, "skipped", reason=f"stopped after the same error: {stop}")
        return
    if main_task:
        sweep.record_outcome(cfg, run_dir, "running")
    try:
        if in_child:
            record = run_in_child(cfg, run_dir, n_threads, on_start=lock.note_child if lock else lambda pid: None,
                                  ident=ident)
        else:
            record = run(cfg, run_dir, ident)
    except BaseException as exc:
        status = getattr(exc, "status", "failed" if isinstance(exc, Exception) else "killed")
        error_type = getattr(exc, "type_name", type(exc).__name__)
        if main_task:
            sweep.record_outcome(cfg, run_dir, status, error_type=error_type, message=reason(exc))
        if isinstance(exc, UserError):
            _note(error=str(exc))
            print(f"peftbench: error: {exc}", file=sys.stderr)
            if multirun:
                return  # no run file (a mistake found before training); the sweep goes on
            sys.exit(2)
        if multirun and isinstance(exc, Exception):  # OOM, NaN loss, bad data, a crashed child: this job only
            print(f"peftbench: {status}  {run_dir.name}: {error_type}: {exc}", file=sys.stderr)
            return
        if isinstance(exc, (Stopped, KeyboardInterrupt)):  # the run file says `killed`; one line, no traceback
            print(f"peftbench: killed  {run_dir.name}: {reason(exc)}; run file: "
                  f"{record_path(run_dir)}", file=sys.stderr)
            sys.exit(getattr(exc, "exit_status", 130))  # 143 for SIGTERM, 130 for Ctrl-C, as a shell reports them
        raise  # a SLURM requeue and the like: the launcher handles it
    if main_task:
        sweep.record_outcome(cfg, run_dir, "ok", main_metric=record["main_metric"],
                             main_score=record["main_score"])
    _note(run_file=str(Path(record["run_dir"]) / "run.json"))
    print(summary(record))


def _note(**outcome) -> None:
    global LAST_OUTCOME
    LAST_OUTCOME = outcome


def use_child(setting: str, multirun: bool) -> bool:
    """launch.process: `auto` runs each job of a multirun in a child process, except in a SLURM job
    (already a process of its own); `child` always; `inline` in this process (tests, a debugger)."""
    setting = _choice("launch.process", setting, ("auto", "child", "inline"))
    if setting == "auto":
        return multirun and "SUBMITIT_EXECUTOR" not in os.environ
    return setting == "child"


def runs_at_once(hydra_cfg) -> int:
    """How many runs this job's launcher starts at once: joblib's n_jobs (hydra/launcher=local), else 1."""
    launcher = hydra_cfg.get("launcher") or {}
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n = int(launcher.get("n_jobs") or 1)
    return n if n > 0 else max(1, threads.available_cpus() + 1 + n)  # joblib: -1 = all CPUs, -2 = all but one


def _choice(key: str, value, choices: tuple) -> str:
    if value not in choices:
        raise unknown_name(f"value for {key}", value, choices)
    return value


def _remove_if_unused(run_dir: Path, lock: RunLock | None = None) -> None:
    """A run dir with nothing but Hydra's files (a mistake before training, a run done elsewhere) goes.
    Holding the lock, remove the rest first, then the lock, then the folder if nobody came meanwhile."""
    unused = HYDRA_FILES if lock is not None else HYDRA_FILES[:-1]  # another's lock: in use
    try:
        if not run_dir.is_dir() or any(p.name not in unused for p in run_dir.iterdir()):
            if lock is not None:
                lock.release()
            return
        for p in run_dir.iterdir():
            if p.name != LOCK_NAME:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        if lock is not None:
            lock.release()
        run_dir.rmdir()
        if not any(run_dir.parent.iterdir()):  # results/runs/ holds nothing else: no empty folder either
            run_dir.parent.rmdir()
    except OSError:  # another process started in it meanwhile: its folder now
        if lock is not None:
            lock.release()


def _export_slurm_tasks() -> bool:
    """In a SLURM job with several tasks (hydra.launcher.tasks_per_node/nodes), each task is one DDP
    process: export RANK/WORLD_SIZE/MASTER_ADDR for torch. Returns whether this is the main task."""
    import os

    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "SUBMITIT_EXECUTOR" not in os.environ:
        return int(os.environ.get("RANK", "0")) == 0
    from submitit.helpers import TorchDistributedEnvironment

    env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return env.rank == 0


def _per_s(value, unit: str, decimals: int) -> str:
    return f"{value:.{decimals}f} {unit}/s" if value is not None else f"no {unit}/s"


def summary(record: dict) -> str:
    p, mem, tp, tm = record["params"], record["memory"], record["throughput"], record["timing"]
    scores = "  ".join(f"{k} {v:.4f}" for k, v in record["metrics"].items())
    cuda = (f", CUDA max allocated {mem['cuda_max_allocated_mb']:.0f} MB / reserved "
            f"{mem['cuda_max_reserved_mb']:.0f} MB" if mem["cuda_max_allocated_mb"] is not None else "")
    before = mem.get("rss_before_train_mb")
    added = f" (+{mem['peak_rss_mb'] - before:.0f} MB over the {before:.0f} MB before it)" if before is not None else ""
    return "\n".join([
        f"peftbench: {record['status']}  {record['model']} + {record['method']} on {record['task']} "
        f"(seed {record['seed']})",
        f"  eval:       {scores}",
        f"  params:     {p['trainable']:,} trainable of {p['base_total']:,} ({p['trainable_pct']:.4f}%; "
        f"method {p['method']:,}, head {p['head']:,})"
        + (f"; method stored {p['method_stored']:,}" if p.get("method_stored", p["method"]) != p["method"] else ""),
        f"  memory:     peak RSS {mem['peak_rss_mb']:.0f} MB during training{added} on {mem['device']}{cuda}",
        f"  throughput: {_per_s(tp['train_samples_per_s'], 'samples', 1)}, "
        f"{_per_s(tp['train_tokens_per_s'], 'tokens', 0)} ({tp['steps']} steps)",
        f"  time:       train {tm['train_s']:.1f} s, eval {tm['eval_s']:.1f} s, total {tm['total_s']:.1f} s",
        f"  run file:   {Path(record['run_dir']) / 'run.json'}",
    ])
