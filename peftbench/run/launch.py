"""Multi-process runs on one node: `hardware.num_processes=N` starts N processes with torch elastic
(what `torchrun --standalone --nproc_per_node N` does) and each runs the entry the runner passes (`runner.process_entry`); accelerate sees
RANK/WORLD_SIZE and wraps the model in DDP (NCCL on GPUs, gloo on CPUs). Only the main process writes
the run file; evaluation gathers predictions from every process exactly once (`gather_for_metrics`),
and throughput sums the samples and tokens of all processes.

Processes started by someone else (torchrun, `accelerate launch`, the tasks of a SLURM job) already
have LOCAL_RANK set: then each just runs.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import runfile
from ..errors import UserError

log = logging.getLogger("peftbench")


def needs_processes(cfg: DictConfig) -> bool:
    return cfg.hardware.num_processes > 1 and "LOCAL_RANK" not in os.environ


def run_processes(cfg: DictConfig, run_dir: Path, entry, ident: dict) -> dict:
    """Start `hardware.num_processes` processes, each calling `entry(config_dict, run_dir, ident)` (a
    module-level function, so that the spawned interpreters can import it; `ident`: the run's identity,
    computed once), and return the main process's run file."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    n = cfg.hardware.num_processes
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=f"peftbench-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.2, start_method="spawn")
    log.info("starting %d processes for %s", n, run_dir)
    try:
        elastic_launch(config, entry)(OmegaConf.to_container(cfg, resolve=True), str(run_dir), ident)
    except ChildFailedError as exc:
        record = _read(run_dir)
        error = (record or {}).get("error") or {}
        if error.get("type") == "UserError":
            raise UserError(error["message"]) from None
        raise RuntimeError(f"{error.get('type', 'process failed')}: {error.get('message', exc)}") from None
    return _read(run_dir)


def _read(run_dir: Path) -> dict | None:
    """The main process's record: a failed `--force` re-run's is in rerun/run.json (runner.record_path)."""
    for path in (Path(run_dir) / runfile.RERUN_DIR / runfile.FILE_NAME, Path(run_dir) / runfile.FILE_NAME):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") != "ok" or path.parent == Path(run_dir):
            return record
    return None
