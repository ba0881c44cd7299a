"""A lock per run: `<run dir>/run.lock` says which process runs it (pid, host, start time), so that two
sweeps over the same results_dir, or the same command started twice, never train one run twice.

- Taken by creating the file in one step (a temp file hard-linked to the lock's name: atomic on local
  file systems and on NFS), so the lock file always has its content.
- Held: the other process skips the run or waits for it (`launch.if_locked`), naming the holder.
- Stale: on this host, the holder's processes (the job and its child) are gone (a pid that now belongs to
  another program does not count: its start time is compared); on another host, the holder stopped
  refreshing the file (it touches it every `heartbeat_s`) more than `launch.stale_lock_min` ago. A
  stale lock is taken over, and said so. One taker at a time holds a guard file (made the same way) and
  overwrites the stale file in one step, so of several processes that find the same stale lock, one takes
  it, and the lock file is never missing meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

LOCK_NAME = "run.lock"
GUARD_STALE_S = 60  # a take-over guard older than this was left by a taker that died half-way


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None, start: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    now = _process_start(pid)
    return start is None or now is None or now == start


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process (its lock file is empty or unreadable)"
    child = f", child pid {holder['child_pid']}" if holder.get("child_pid") else ""
    return f"pid {holder.get('pid')}{child} on {holder.get('host')} since {holder.get('started_at')}"


class RunLock:
    """`acquire()` -> True when this process holds the run's lock, False when another one does (then
    `holder` says who); `release()` gives it back. Holding it, a thread refreshes the file's mtime."""

    def __init__(self, run_dir: str | Path, stale_after_s: float = 600.0, heartbeat_s: float = 60.0,
                 say=print):
        self.path = Path(run_dir) / LOCK_NAME
        self.stale_after_s, self.heartbeat_s, self.say = stale_after_s, heartbeat_s, say
        self.token = uuid.uuid4().hex
        self.holder: dict | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._record = {"pid": os.getpid(), "child_pid": None, "host": platform.node(),
                        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "pid_start": _process_start(os.getpid()), "child_start": None, "token": self.token}

    def acquire(self, wait: bool = False, poll_s: float = 2.0) -> bool:
        said = False
        while True:
            if self._try_acquire():
                self._stop.clear()
                self._beat = threading.Thread(target=self._heartbeat, name="peftbench-lock", daemon=True)
                self._beat.start()
                return True
            if not wait:
                return False
            if not said:
                self.say(f"peftbench: waiting for {self.path.parent.name}: {describe(self.holder)} runs it "
                         "(launch.if_locked=wait)")
                said = True
            time.sleep(poll_s)

    def note_child(self, pid: int) -> None:
        """The run goes on in a child process: while it lives, the lock is not stale."""
        self._record.update(child_pid=pid, child_start=_process_start(pid))
        self._write(self.path, replace=True)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        held = self._read(self.path)
        if held and held.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _try_acquire(self) -> bool:
        for _ in range(3):  # a stale lock taken over, or one released meanwhile: try again
            if self._write(self.path, replace=False):
                return True
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                continue
            self.holder = self._read(self.path)
            reason = self.stale_reason(self.holder, stat.st_mtime)
            if reason is None:
                return False
            if self._take_over(self.holder):
                self.say(f"peftbench: taking over the stale lock of {self.path.parent.name} "
                         f"({describe(self.holder)}): {reason}")
                return True
        return False

    def stale_reason(self, holder: dict | None, mtime: float) -> str | None:
        """Why a lock held by `holder` (its file last touched at `mtime`) is stale, or None if it is live."""
        age = time.time() - mtime
        if holder is None:
            return f"unreadable and {age:.0f} s old" if age > max(self.heartbeat_s, 5) else None
        if holder.get("host") == platform.node():
            if _alive(holder.get("pid"), holder.get("pid_start")) or \
                    _alive(holder.get("child_pid"), holder.get("child_start")):
                return None
            return f"pid {holder.get('pid')} is no longer running on this host"
        if age > self.stale_after_s:
            return (f"not refreshed for {age / 60:.1f} min (another host; launch.stale_lock_min="
                    f"{self.stale_after_s / 60:g})")
        return None

    def _take_over(self, holder: dict | None) -> bool:
        """Replace the stale lock `holder` with ours; True if this process now holds the lock. One taker at a
        time (a guard file made with link()), and the lock file is overwritten in one step (os.replace), never
        moved away: a lock file that is missing even for a moment lets a third process in beside the taker."""
        guard = self.path.with_name(f".{LOCK_NAME}.takeover")
        mine = guard.with_name(f"{guard.name}.{self.token}")
        mine.write_text(self.token + "\n")
        try:
            os.link(mine, guard)
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - guard.stat().st_mtime > GUARD_STALE_S:  # a taker died half-way: clear it
                    guard.unlink()
            return False
        finally:
            mine.unlink(missing_ok=True)
        try:
            if self._read(self.path) != holder:  # taken over or released meanwhile
                return False
            return self._write(self.path, replace=True)
        finally:
            guard.unlink(missing_ok=True)

    def _write(self, path: Path, replace: bool) -> bool:
        """Write the lock record: in one step (link, fails if the lock exists), or over our own lock."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{LOCK_NAME}.{self.token}.tmp")
        tmp.write_text(json.dumps(self._record) + "\n")
        try:
            if replace:
                os.replace(tmp, path)
                return True
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError:
                pass
