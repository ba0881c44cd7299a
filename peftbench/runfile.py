"""Run files: one JSON document per run, written atomically. The schema is documented in README.md
("Run files"); `SCHEMA_KEYS` is the list every run file has, whatever its status."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

SCHEMA_VERSION = 1
FILE_NAME = "run.json"
# A re-run (`--force`) of a run dir whose run.json is ok writes its record to <run dir>/rerun/run.json until
# it succeeds: the ok result stays in reports and sweeps skip it; a failed re-run is listed beside it.
RERUN_DIR = "rerun"
SCHEMA_KEYS = (
    "schema_version", "status", "error", "run_dir", "model", "method", "task", "seed", "config",
    "config_hash", "data", "metrics", "main_metric", "main_score", "best", "eval_history", "loss_history",
    "params", "memory", "throughput", "timing", "artifacts", "inference", "forgetting", "resumed_from", "init_from", "versions", "git",
    "host", "started_at", "finished_at",
)
PACKAGES = ("peftbench", "torch", "transformers", "peft", "accelerate", "datasets", "hydra-core",
            "omegaconf", "scikit-learn", "scipy", "pandas")


def umask() -> int:
    """The process's umask (read without changing it where Linux allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mkstemp_shared(path: Path, suffix: str) -> tuple[int, str]:
    """mkstemp beside `path`, with the mode a plain open() would give (0666 less the umask): mkstemp's 0600
    would hide run files from the colleagues who share a results folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~umask())
    return fd, tmp


def write_atomic(path: str | Path, record: dict) -> Path:
    """Write JSON to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp_shared(path, ".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


RESERVE_BYTES = 1 << 16  # kept free for a run's last run file: a disk filled meanwhile cannot stop it


def reserve(path: str | Path) -> Path:
    """Hold RESERVE_BYTES beside the run file `path` (a hidden file of zeros) until `write_last`."""
    spare = Path(path).with_name(f".{Path(path).name}.reserve")
    try:
        with open(spare, "wb") as f:
            f.write(bytes(RESERVE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError:  # already full: write_last still tries
        spare.unlink(missing_ok=True)
    return spare


def write_last(path: str | Path, record: dict, spare: Path | None = None) -> Path | None:
    """A run's last run file, also on a full disk: the reserve made at its start is given back first; if
    the record still does not fit, it is written without its histories and traceback (`error.message`
    says so). Returns the path, or None (with one line on the log) when nothing could be written."""
    import logging

    if spare is not None:
        spare.unlink(missing_ok=True)
    try:
        return write_atomic(path, record)
    except OSError as exc:
        first = exc
    slim = {**record, "eval_history": None, "loss_history": None}
    error = dict(record.get("error") or {})
    error["message"] = (f"{error.get('message', '')} (run file written without histories"
                        f"{' and traceback' if error else ''}: {first.strerror})").strip()
    slim["error"] = {**error, "traceback": None}
    try:
        return write_atomic(path, slim)
    except OSError as exc:
        logging.getLogger("peftbench").error("could not write the run file %s (%s); the run ended %s%s", path,
                                             exc, record.get("status"),
                                             f": {record['error']['message']}" if record.get("error") else "")
        return None


def read(path: str | Path) -> dict | None:
    """A run file's record, or None when it is missing or unreadable (e.g. another job is writing it)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def unfinished_reason(record: dict) -> str:
    """What a `running` run file with no error means, seen from here: its process is gone (a run killed
    without a word, or one whose last run file could not be written), alive, or on another host."""
    where = record.get("host") or {}
    pid, name = where.get("pid"), where.get("hostname")
    if record.get("status") != "running" or not pid:
        return ""
    if name != platform.node():
        return f"running on {name} (pid {pid}), or ended there without a word"
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return (f"its process (pid {pid}) is gone: the run ended without a word (SIGKILL, the OOM killer, a full "
                "disk); run the same command again to resume from its last checkpoint")
    except (OSError, ValueError):
        pass
    return f"running (pid {pid} on this host)"


def find_run_files(paths) -> list[Path]:
    """Every run.json under the given folders (or the files themselves), sorted."""
    found = set()
    for p in map(Path, paths):
        if p.is_file():
            found.add(p)
        elif p.is_dir():
            found.update(p.rglob(FILE_NAME))
    return sorted(found)


def versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict:
    """Commit of the peftbench source tree this run used, and whether it had local changes."""
    src = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def host() -> dict:
    return {"hostname": platform.node(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "pid": os.getpid()}
