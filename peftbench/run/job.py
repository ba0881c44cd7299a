"""One Hydra job of `peftbench run`: skip it when an ok run file with the same config exists, else run
it, record how it ended in the sweep's ledger, and print its summary. A user mistake becomes one clear
message; in a multirun an error ends only its own job."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import apply_per_task
from ..errors import UserError
from . import sweep
from .runner import run


def run_job(cfg) -> None:
    """One Hydra job: skip it if done, else run it; print a summary, turn a user mistake into a clear
    message. In a multirun an error ends only this job (its run file says why) and the sweep goes on."""
    import warnings

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft calling transformers 5
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    main_task = _export_slurm_tasks()
    try:  # a protocol's per-task settings; what the command line sets wins
        apply_per_task(cfg, explicit=[o.split("=")[0].lstrip("+~") for o in hydra_cfg.overrides.task])
    except UserError as exc:
        print(f"peftbench: error: {exc}", file=sys.stderr)
        if multirun:
            return
        sys.exit(2)
    key = sweep.config_hash(cfg)
    done = None if cfg.force else sweep.find_ok_run(cfg.results_dir, key, first=run_dir / "run.json")
    if done is not None:
        print(f"peftbench: skipped  {run_dir.name}: an ok run file with the same config exists: {done} "
              "(--force re-runs it)")
        if main_task:
            sweep.record_outcome(cfg, run_dir, "skipped", run_file=str(done))
        return
    if main_task:
        sweep.record_outcome(cfg, run_dir, "running")
    try:
        record = run(cfg, run_dir)
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "killed"
        if main_task:
            sweep.record_outcome(cfg, run_dir, status, error_type=type(exc).__name__, message=str(exc))
        if isinstance(exc, UserError):
            print(f"peftbench: error: {exc}", file=sys.stderr)
            if multirun:
                return  # the failed run file is written; the sweep goes on
            sys.exit(2)
        if multirun and isinstance(exc, Exception):  # OOM, NaN loss, bad data: this job only
            print(f"peftbench: failed  {run_dir.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        raise  # Ctrl-C, SIGTERM, a SLURM requeue: stop here
    if main_task:
        sweep.record_outcome(cfg, run_dir, "ok", main_metric=record["main_metric"],
                             main_score=record["main_score"])
    print(summary(record))


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
