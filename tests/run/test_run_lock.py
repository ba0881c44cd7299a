"""A lock per run (issue 12, point 3): held, stale (dead pid, reused pid, another host's old lock) and
taken over, waited for; two identical sweeps started together train each run once."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import TINY
from peftbench.run.lock import LOCK_NAME, RunLock


def messages():
    said = []
    return said, said.append


def test_a_held_lock_names_its_holder_and_is_given_back(tmp_path):
    first = RunLock(tmp_path)
    assert first.acquire()
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    assert record["pid"] == os.getpid() and record["host"] and record["started_at"]
    second = RunLock(tmp_path)
    assert not second.acquire()
    assert second.holder["pid"] == os.getpid() and second.holder["token"] == first.token
    second.release()  # not its lock: leaves it
    assert (tmp_path / LOCK_NAME).exists()
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    assert second.acquire()
    second.release()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    holder = RunLock(tmp_path)
    holder._record.update(pid=dead_pid(), pid_start=None)
    assert holder.acquire()
    holder._stop.set()  # as if that process had died holding it: nobody releases it
    said, say = messages()
    taker = RunLock(tmp_path, say=say)
    assert taker.acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == taker.token
    assert len(said) == 1 and "taking over the stale lock" in said[0] and "is no longer running" in said[0]
    taker.release()


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path):
    holder = RunLock(tmp_path)
    holder._record.update(pid_start=1)  # this (live) pid, but a process that started at another time
    assert holder.acquire()
    assert RunLock(tmp_path, say=lambda m: None).acquire()


def test_a_lock_from_another_host_is_stale_only_when_not_refreshed(tmp_path):
    holder = RunLock(tmp_path)
    holder._record.update(host="elsewhere", pid=1)
    assert holder.acquire()
    holder._stop.set()
    assert not RunLock(tmp_path, stale_after_s=60).acquire()  # refreshed just now: live
    old = time.time() - 120
    os.utime(tmp_path / LOCK_NAME, (old, old))
    said, say = messages()
    assert RunLock(tmp_path, stale_after_s=60, say=say).acquire()
    assert "not refreshed for 2.0 min" in said[0] and "launch.stale_lock_min=1" in said[0]


def test_the_holder_refreshes_its_lock(tmp_path):
    lock = RunLock(tmp_path, heartbeat_s=0.2)
    assert lock.acquire()
    os.utime(tmp_path / LOCK_NAME, (1, 1))
    time.sleep(1.0)
    assert time.time() - (tmp_path / LOCK_NAME).stat().st_mtime < 5
    lock.release()


def test_waiting_for_a_lock_gets_it_when_the_holder_lets_go(tmp_path):
    holder = RunLock(tmp_path)
    assert holder.acquire()
    threading.Timer(1.0, holder.release).start()
    said, say = messages()
    waiter = RunLock(tmp_path, say=say)
    assert waiter.acquire(wait=True, poll_s=0.1)
    assert "waiting for" in said[0] and f"pid {os.getpid()}" in said[0]
    waiter.release()


def test_of_two_takers_of_one_stale_lock_one_gets_it(tmp_path):
    holder = RunLock(tmp_path)
    holder._record.update(pid=dead_pid(), pid_start=None)
    assert holder.acquire()
    holder._stop.set()
    takers = [RunLock(tmp_path, say=lambda m: None) for _ in range(8)]
    results = []
    barrier = threading.Barrier(len(takers))

    def take(lock):
        barrier.wait()
        results.append(lock.acquire())

    threads = [threading.Thread(target=take, args=(t,)) for t in takers]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sum(results) == 1
    assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] in {t.token for t in takers}


def sweep_process(results_dir):
    env = {k: v for k, v in os.environ.items() if k != "PEFTBENCH_SWEEP_ID"}
    return subprocess.Popen([sys.executable, "-m", "peftbench.cli", "run", "-m", *TINY, "train.max_steps=3",
                             "seed=1,2", f"results_dir={results_dir}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.slow
def test_two_identical_sweeps_started_together_train_each_run_once(tmp_path):
    procs = [sweep_process(tmp_path), sweep_process(tmp_path)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = sorted((tmp_path / "runs").glob("*/run.json"))
    assert len(runs) == 2 and {json.loads(r.read_text())["status"] for r in runs} == {"ok"}
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweeps").glob("*/summary.json")]
    assert len(summaries) == 2
    assert sum(s["counts"]["ok"] for s in summaries) == 2  # each run trained by one sweep
    assert sum(s["counts"]["skipped"] for s in summaries) == 2  # and skipped by the other (done or locked)
    for run in runs:  # both sweeps logged into the run's folder, one of them trained it
        assert (run.parent / "run.log").read_text().count("(ok)") == 1
    assert not list((tmp_path / "runs").glob(f"*/{LOCK_NAME}"))
