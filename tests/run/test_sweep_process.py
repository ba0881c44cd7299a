"""One process per run in a multirun, and threads that fit (issue 12, points 1-2): each job of a sweep runs
in a child process of its own (fresh memory, its own pid), a child killed by the OOM killer leaves a
`killed` run file and the sweep goes on, and `hardware.threads=auto` splits the CPUs among the runs
that run at once."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import TINY
from peftbench.cli import is_installed
from peftbench.errors import UserError
from peftbench.run import threads
from peftbench.run.job import runs_at_once, use_child


def test_threads_auto_splits_the_cpus_and_a_number_is_kept(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    monkeypatch.setattr(threads, "busy_cpus", lambda: 0.0)  # a quiet machine (the load: the test below)
    assert threads.resolve("auto", runs_at_once=1) == 8
    assert threads.resolve("auto", runs_at_once=2) == 4
    assert threads.resolve("auto", processes=2, runs_at_once=2) == 2
    assert threads.resolve("auto", runs_at_once=16) == 1
    assert threads.resolve(3, runs_at_once=4) == 3 and threads.resolve("3") == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's (or the launcher's) setting wins over auto
    assert threads.resolve("auto", runs_at_once=1) == 1
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(UserError, match="hardware.threads=.*give auto .* or a whole number >= 1"):
            threads.resolve(bad)


@pytest.mark.parametrize("env", ["abc", "0", "-2", "2.5", "4,x"])
def test_an_invalid_omp_num_threads_is_named_not_dropped(monkeypatch, env):
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    with pytest.raises(UserError, match=rf"OMP_NUM_THREADS='{env}' \(in the environment\): not a whole number >= 1"):
        threads.resolve("auto")
    assert threads.resolve(2) == 2  # hardware.threads=N does not read it


def test_a_nested_omp_num_threads_gives_its_first_level(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")
    assert threads.resolve("auto") == 4


def test_threads_auto_leaves_out_the_cpus_other_work_keeps_busy(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    for busy, expected in ((0.2, 2), (0.9, 1), (1.6, 1), (5.0, 1)):  # 5.0: more runnable work than CPUs
        monkeypatch.setattr(threads, "busy_cpus", lambda: busy)
        n, why = threads.choose("auto", runs_at_once=1)
        assert n == expected and f"{busy:.1f} CPUs busy with other work" in why and "load average" in why
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    assert threads.choose("auto", runs_at_once=2)[0] == 3  # a share of 4, but 5 of the 8 CPUs are busy
    monkeypatch.setattr(threads, "busy_cpus", lambda: 2.6)
    assert threads.choose("auto", runs_at_once=1)[0] == 5 and threads.choose("auto", runs_at_once=2)[0] == 4
    # what a launcher chose, and why, reaches its child processes through the environment
    assert threads.resolve("auto", runs_at_once=1) == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert threads.choose("auto") == (5, threads.reason()) and threads.reason().startswith("auto: 8 CPUs")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # set by the user, not by resolve
    assert threads.choose("auto") == (3, "OMP_NUM_THREADS=3")


def test_slurm_cpus_per_task_caps_the_cpus(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert threads.available_cpus() == 1
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert threads.available_cpus() == len(os.sched_getaffinity(0))


def test_which_jobs_run_in_a_child_and_how_many_runs_at_once(monkeypatch):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert use_child("auto", multirun=True) and not use_child("auto", multirun=False)
    assert use_child("child", multirun=False) and not use_child("inline", multirun=True)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")  # a SLURM job is a process of its own already
    assert not use_child("auto", multirun=True)
    with pytest.raises(UserError, match="Unknown value for launch.process 'chlid'. Did you mean 'child'"):
        use_child("chlid", multirun=True)
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert runs_at_once({"launcher": {"_target_": joblib, "n_jobs": 3}}) == 3
    assert runs_at_once({"launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}}) == 1


def env_without_threads():
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PEFTBENCH_SWEEP_ID")}


def runs(results_dir):
    return {p.parent.name: json.loads(p.read_text()) for p in (results_dir / "runs").glob("*/run.json")}


def start_sweep(results_dir):
    """A sweep whose first job trains 'forever'; returns it and its first job's child pid, once training."""
    sweep = subprocess.Popen([sys.executable, "-m", "peftbench.cli", "run", "-m", *TINY, "seed=1",
                              "train.max_steps=100000,2", f"results_dir={results_dir}"], env=env_without_threads(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, child = time.time() + 600, None
    while child is None and time.time() < deadline and sweep.poll() is None:
        for lock in (results_dir / "runs").glob("*max_steps=100000*/run.lock"):
            holder = json.loads(lock.read_text() or "{}")
            if holder.get("child_pid") and (lock.parent / "run.json").exists():
                child = holder["child_pid"]
        time.sleep(0.5)
    assert child is not None, sweep.communicate()[0]
    return sweep, child


@pytest.mark.slow
def test_each_job_runs_in_its_own_process_and_a_killed_one_does_not_stop_the_sweep(tmp_path):
    """The first job is killed with SIGKILL (as the OOM killer does); the second runs."""
    sweep, child = start_sweep(tmp_path)
    os.kill(child, signal.SIGKILL)
    out = sweep.communicate(timeout=600)[0]
    assert sweep.returncode == 1, out  # a job was killed; the sweep ran the next one
    found = {r["config"]["train"]["max_steps"]: r for r in runs(tmp_path).values()}
    killed, ok = found[100000], found[2]
    assert killed["status"] == "killed" and killed["error"]["type"] == "SIGKILL" and "OOM killer" in out
    assert killed["host"]["pid"] == child and killed["finished_at"]
    assert ok["status"] == "ok" and ok["memory"]["runs_before_in_process"] == 0
    assert ok["host"]["pid"] not in (child, sweep.pid)
    # threads=auto under the basic launcher (one run at a time): every CPU this process may use, less those
    # other work keeps busy at the start (the machine's load decides that part, so it is read from the record)
    cpus = threads.available_cpus()
    assert ok["memory"]["threads_why"].startswith(f"auto: {cpus} CPUs / 1 runs at once / 1 processes = {cpus}; ")
    free = int(ok["memory"]["threads_why"].rsplit("leave ", 1)[1])
    assert ok["throughput"]["threads"] == ok["memory"]["threads"] == min(cpus, free)
    assert "peftbench sweep: 2 jobs: 1 ok, 1 killed" in out


@pytest.mark.slow
@pytest.mark.skipif(not is_installed("hydra_plugins.hydra_joblib_launcher"), reason="needs hydra-joblib-launcher")
def test_the_local_launcher_splits_the_cpus_among_its_parallel_jobs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "peftbench.cli", "run", "-m", "hydra/launcher=local", *TINY,
                          "train.max_steps=2", "seed=1,2", f"results_dir={tmp_path}"], env=env_without_threads(),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    found = list(runs(tmp_path).values())
    assert len(found) == 2 and {r["status"] for r in found} == {"ok"}
    assert len({r["host"]["pid"] for r in found}) == 2 and {r["memory"]["runs_before_in_process"] for r in found} == {0}
    assert {r["throughput"]["threads"] for r in found} == {max(1, threads.available_cpus() // 2)}  # n_jobs: 2


@pytest.mark.slow
def test_sigterm_to_the_sweep_stops_its_child_and_the_sweep(tmp_path):
    sweep, child = start_sweep(tmp_path)
    os.kill(sweep.pid, signal.SIGTERM)
    out = sweep.communicate(timeout=600)[0]
    assert sweep.returncode != 0, out
    with pytest.raises(ProcessLookupError):  # the child was stopped and reaped, not left running
        os.kill(child, 0)
    found = {r["config"]["train"]["max_steps"]: r for r in runs(tmp_path).values()}
    assert set(found) == {100000}  # the sweep stopped: the second job never started
    assert found[100000]["status"] == "killed" and found[100000]["error"]["type"] == "Stopped"
    assert not list((tmp_path / "runs").glob("*/run.lock"))
