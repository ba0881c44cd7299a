"""One run in a child process of its own (`launch.process`): what a sweep's job runs by default.

The job (run/job.py) starts `python -m peftbench.run.child <run dir> <error file>`, sends it the resolved
config on stdin, and waits. The child is a fresh interpreter: torch starts its thread pools with the
job's `hardware.threads` (set in its environment), no memory is kept from an earlier run, and a crash,
segfault or OOM kill ends only this run: the job then writes the run file (`failed` or `killed`, with
the signal) and the sweep goes on. A mistake in the command comes back as a UserError.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import runfile
from ..errors import UserError
from .runner import reason, sigterm_raises  # SIGTERM while waiting for the child: runner.Stopped, as in an inline run

KILLED_BY = {signal.SIGKILL: "killed", signal.SIGTERM: "killed", signal.SIGINT: "killed"}  # else failed


class RunFailed(Exception):
    """The child's run ended failed or killed; `type_name` is the error's type in the child."""

    def __init__(self, type_name: str, message: str, status: str = "failed"):
        super().__init__(message)
        self.type_name, self.status = type_name, status


def run_in_child(cfg: DictConfig, run_dir: Path, threads: int, on_start=lambda pid: None, ident: dict | None = None) -> dict:
    """Run `runner.run(cfg, run_dir, ident)` in a child process with `threads` threads; return its run file."""
    env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    config = json.dumps({"config": OmegaConf.to_container(cfg, resolve=True), "identity": ident})
    with tempfile.TemporaryDirectory(prefix="peftbench-child-") as tmp:
        error_file = Path(tmp) / "error.json"
        proc = subprocess.Popen([sys.executable, "-m", "peftbench.run.child", str(run_dir), str(error_file)],
                                stdin=subprocess.PIPE, env=env)
        on_start(proc.pid)
        try:
            with sigterm_raises():
                proc.stdin.write(config.encode())
                proc.stdin.close()
                code = proc.wait()
        except BaseException:  # Ctrl-C or SIGTERM to this process: stop the child the same way, then go
            _stop(proc)
            raise
        error = runfile.read(error_file)
    if code == 0:
        return runfile.read(run_dir / runfile.FILE_NAME)
    if error is not None:
        if error["type"] == "UserError":
            raise UserError(error["message"])
        raise RunFailed(error["type"], error["message"], "failed" if error["exception"] else "killed")
    name = signal.Signals(-code).name if code < 0 else f"exit status {code}"
    status = KILLED_BY.get(signal.Signals(-code), "failed") if code < 0 else "failed"
    message = (f"the run's process (pid {proc.pid}) ended by {name}"
               + (" (SIGKILL: the OOM killer, or kill -9)" if code == -signal.SIGKILL else ""))
    _close_run_file(cfg, run_dir, status, name, message, ident)
    raise RunFailed(name, message, status)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _close_run_file(cfg: DictConfig, run_dir: Path, status: str, type_name: str, message: str,
                    ident: dict | None = None) -> None:
    """The child died without a word: end its run file (or write one) with how it ended."""
    from .runner import new_record, record_path

    path = record_path(run_dir)  # rerun/run.json beside an earlier ok run: that one stays
    record = runfile.read(path)
    if record is None or record.get("status") != "running":
        record = new_record(cfg, run_dir, ident)
    record.update(status=status, error={"type": type_name, "message": message, "traceback": None},
                  finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    runfile.write_atomic(path, record)


def main(argv: list[str]) -> int:
    from .runner import run

    run_dir, error_file = Path(argv[1]), Path(argv[2])
    sent = json.loads(sys.stdin.read())
    cfg = OmegaConf.create(sent["config"])
    handlers = [logging.StreamHandler()]
    if run_dir.is_dir():
        handlers.append(logging.FileHandler(run_dir / "run.log"))
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(levelname)s] %(message)s", datefmt="%H:%M:%S",
                        handlers=handlers)
    try:
        run(cfg, run_dir, sent["identity"])
    except BaseException as exc:
        runfile.write_atomic(error_file, {"type": type(exc).__name__, "message": reason(exc),
                                          "exception": isinstance(exc, Exception)})
        return 2 if isinstance(exc, UserError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
