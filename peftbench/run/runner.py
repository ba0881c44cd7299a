"""`run(cfg, run_dir)`: one model x method x task x hardware run, start to run file: the run file's
lifecycle around the run's stages (peftbench/pipeline).

A plain function (no Hydra inside), so tests and scripts call it with a composed config. A run file
is written when the run starts (`running`) and when it ends: `ok` with the results, `failed` with the
error (re-raised), or `killed` (SIGTERM, Ctrl-C, a SLURM requeue). A run that dies without a word
(SIGKILL, the OOM killer) stays `running`. Running it again in the same run dir resumes from the last
checkpoint. With `hardware.num_processes` > 1 it starts that many processes (run/launch.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import runfile
from ..errors import UserError
from ..pipeline import cuda_available, execute, is_main_process, no_cuda, process_state
from ..train.checkpoint import CHECKPOINTS
from . import launch, threads
from .sweep import config_hash

log = logging.getLogger("peftbench")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def identity(cfg: DictConfig) -> dict:
    """The run's identity, computed once per run: its data files' fingerprint (tasks/fingerprint.py) and the
    config hash over the config and those files (run/sweep.py)."""
    from ..tasks import data_fingerprint

    files = data_fingerprint(cfg.task, cfg.get("data_root"))
    return {"config_hash": config_hash(cfg, files), "files": files}


def new_record(cfg: DictConfig, run_dir: Path, ident: dict | None = None) -> dict:
    """A run file with every schema key, filled in as the run goes; `ident`: `identity(cfg)`, computed
    here when not given."""
    ident = ident or identity(cfg)
    files = ident["files"]
    record = dict.fromkeys(runfile.SCHEMA_KEYS)
    record.update(schema_version=runfile.SCHEMA_VERSION, status="running", run_dir=str(run_dir),
                  model=cfg.model.name, method=cfg.method.name, task=cfg.task.name, seed=cfg.seed,
                  config=OmegaConf.to_container(cfg, resolve=True), config_hash=ident["config_hash"],
                  versions=runfile.versions(),
                  git=runfile.git_state(), host=runfile.host(), started_at=_now(), timing={},
                  data={"files": files})
    return record


class Stopped(BaseException):
    """SIGTERM arrived (`kill`, a scheduler stopping the job): end the run, saying so in the run file.
    `exit_status` is the shell's convention for a process ended by that signal (128 + 15)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}; run the same command again to resume "
                         "from the last checkpoint")
        self.exit_status = 128 + signum


def reason(exc: BaseException) -> str:
    """An error's message, never empty: Ctrl-C's KeyboardInterrupt carries none."""
    if isinstance(exc, KeyboardInterrupt) and not str(exc):
        return "interrupted (Ctrl-C); run the same command again to resume from the last checkpoint"
    return str(exc) or type(exc).__name__


def run(cfg: DictConfig, run_dir: str | Path, ident: dict | None = None) -> dict:
    """Run the composed, per-task-resolved config `cfg` (cli.compose or run/job.py) in `run_dir`; `ident`:
    its `identity`, when the caller computed it already (to skip a done run)."""
    run_dir = Path(run_dir)
    if launch.needs_processes(cfg):
        if cfg.hardware.device == "cuda" and not cuda_available():
            raise no_cuda(cfg.hardware)  # once here, not once per process inside torch elastic's tracebacks
        return launch.run_processes(cfg, run_dir, process_entry, ident or identity(cfg))
    threads.apply(threads.resolve(cfg.hardware.get("threads", "auto"), cfg.hardware.num_processes))
    record = new_record(cfg, run_dir, ident)
    process_state(cfg.hardware)
    existed, previous, aside, training, spare = run_dir.exists(), None, None, [], None
    path = run_dir / runfile.FILE_NAME
    if is_main_process():
        aside = _move_other_config_run(run_dir, record["config_hash"])
        path = record_path(run_dir)  # rerun/run.json while run.json holds an ok run
        previous = runfile.read(path)
        runfile.write_atomic(path, record)
        spare = runfile.reserve(path)  # room for the last run file, should the disk fill meanwhile
    started, write = time.perf_counter(), True
    try:
        with sigterm_raises():
            execute(cfg, record, on_train=lambda: training.append(True), setup={"threads_why": threads.reason()})
        record["status"] = "ok"
    except BaseException as exc:  # Ctrl-C and SIGTERM too: the run file says how the run ended
        if isinstance(exc, UserError) and not training:  # a mistake in the command: no run file (README, "Run files")
            write = False
            if is_main_process():
                if spare is not None:
                    spare.unlink(missing_ok=True)
                _undo_start(run_dir, path, existed, previous, aside)
        record["status"] = "failed" if isinstance(exc, Exception) else "killed"
        record["error"] = {"type": type(exc).__name__, "message": reason(exc), "traceback": traceback.format_exc()}
        raise
    finally:
        record["finished_at"] = _now()
        record["timing"]["total_s"] = round(time.perf_counter() - started, 3)
        if is_main_process() and write:
            if record["status"] == "ok":  # a re-run that succeeded replaces the earlier ok run file
                path = run_dir / runfile.FILE_NAME
                shutil.rmtree(run_dir / runfile.RERUN_DIR, ignore_errors=True)
            if runfile.write_last(path, record, spare):
                log.info("run file: %s (%s)", path, record["status"])
            if record["status"] == "ok" and not cfg.train.keep_checkpoint:
                shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
    return record


def record_path(run_dir: Path) -> Path:
    """Where a run in run_dir writes its record until it ends ok: run.json, or rerun/run.json when run.json
    already holds an ok run (a `--force` re-run), so that the ok result is not lost if the re-run fails."""
    path = run_dir / runfile.FILE_NAME
    return run_dir / runfile.RERUN_DIR / runfile.FILE_NAME if (runfile.read(path) or {}).get("status") == "ok" else path


def _undo_start(run_dir: Path, path: Path, existed: bool, previous: dict | None, aside: Path | None) -> None:
    """Put the run dir back as it was before this run started, the run having written its record to `path`
    (run.json, or rerun/run.json beside an ok run): the earlier record there (or the ok run moved aside,
    moved back), or no folder at all."""
    if aside is not None:
        (run_dir / runfile.FILE_NAME).unlink(missing_ok=True)
        for item in aside.iterdir():
            os.replace(item, run_dir / item.name)
        with contextlib.suppress(OSError):
            aside.rmdir()
        runfile.write_atomic(run_dir / runfile.FILE_NAME, {**runfile.read(run_dir / runfile.FILE_NAME),
                                                           "run_dir": str(run_dir)})
    elif not existed:
        shutil.rmtree(run_dir, ignore_errors=True)
    elif previous is not None:
        runfile.write_atomic(path, previous)
    else:
        path.unlink(missing_ok=True)
        if path.parent.name == runfile.RERUN_DIR:
            with contextlib.suppress(OSError):
                path.parent.rmdir()


def _move_other_config_run(run_dir: Path, key: str) -> Path | None:
    """A run dir that holds an ok run of another config (a group file changed since): move that run, with
    its files, to the sibling folder <name>.<its hash>, where report and skip still find it."""
    path = run_dir / runfile.FILE_NAME
    old = runfile.read(path)
    if old is None or old.get("status") != "ok" or old.get("config_hash") in (key, None):
        return None
    aside = run_dir.with_name(f"{run_dir.name}.{old['config_hash'][:12]}")
    aside.mkdir(parents=True, exist_ok=True)
    for item in run_dir.iterdir():  # Hydra's .hydra/ and run.log are this job's by now; the lock is ours
        if item.name not in (".hydra", "run.log", "run.lock") and not item.name.startswith("."):
            os.replace(item, aside / item.name)
    runfile.write_atomic(aside / runfile.FILE_NAME, {**old, "run_dir": str(aside)})
    log.warning("%s held an ok run of another config (hash %s): moved to %s", run_dir, old["config_hash"], aside)
    return aside


@contextlib.contextmanager
def sigterm_raises():
    """Turn SIGTERM into `Stopped` while the run goes on, unless someone else handles it (submitit does)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum, frame):
        raise Stopped(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def process_entry(config: dict, run_dir: str, ident: dict | None = None) -> None:
    """One of the `hardware.num_processes` processes that launch.run_processes starts (a fresh interpreter)."""
    if os.environ.get("RANK") == "0":
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(levelname)s] %(message)s", datefmt="%H:%M:%S")
    run(OmegaConf.create(config), run_dir, ident)
