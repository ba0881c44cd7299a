"""A run killed mid-training (SIGKILL, SIGTERM) resumes from its last checkpoint when run again and
ends where an uninterrupted run with the same seed ends, bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, make_cfg
from peftbench.run.runner import run

LONG = [*TINY, "train.max_steps=60", "train.checkpoint_every=10", "train.log_every=5", "train.eval_every=20"]
ROOT = Path(__file__).resolve().parents[2]


def _start_and_kill(run_dir: Path, sig: int) -> int:
    """Start the run in a subprocess, wait for its first checkpoint, send `sig`; returns the exit code."""
    code = ("import sys; from peftbench.run.runner import run; sys.path.insert(0, 'tests'); "
            "from conftest import make_cfg; run(make_cfg(*sys.argv[2:]), sys.argv[1])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir), *LONG], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not list((run_dir / "checkpoints").glob("step-*")):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        os.kill(proc.pid, sig)
        return proc.wait(timeout=60)
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return run(make_cfg(*LONG), tmp_path_factory.mktemp("whole"))


@pytest.mark.parametrize("sig, status", [(signal.SIGKILL, "running"), (signal.SIGTERM, "killed")])
def test_killed_run_resumes_from_its_checkpoint_and_ends_the_same(tmp_path, uninterrupted, sig, status):
    assert _start_and_kill(tmp_path, sig) != 0
    left = json.loads((tmp_path / "run.json").read_text())
    assert left["status"] == status  # SIGKILL leaves the `running` file; SIGTERM is recorded
    if sig == signal.SIGTERM:
        assert left["error"]["type"] == "Stopped" and "SIGTERM" in left["error"]["message"]
    record = run(make_cfg(*LONG), tmp_path)
    assert record["status"] == "ok" and record["resumed_from"]["step"] >= 10
    assert record["metrics"] == uninterrupted["metrics"]  # exact: optimizer, scheduler and RNG states as saved
    assert record["loss_history"] == uninterrupted["loss_history"]
    print("resumed from step", record["resumed_from"]["step"], record["metrics"], "uninterrupted",
          uninterrupted["metrics"])
    assert [h["step"] for h in record["eval_history"]] == [20, 40, 60]
    assert record["throughput"]["train_samples"] == uninterrupted["throughput"]["train_samples"] == 60 * 32
    assert not (tmp_path / "checkpoints").exists()  # removed after success (train.keep_checkpoint=false)
    # the tiny model barely moves its accuracy in 60 steps: the trained tensors are the sharper check
    resumed, whole = (load_file(str(Path(d) / "trainable.safetensors")) for d in (tmp_path, uninterrupted["run_dir"]))
    assert resumed.keys() == whole.keys()
    for name in whole:
        assert torch.equal(resumed[name], whole[name]), name


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    first = run(make_cfg(*TINY, "train.checkpoint_every=4", "train.keep_checkpoint=true"), tmp_path)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-0000004"]
    # as if it had been killed after its checkpoint (an ok run of another config would be moved aside, whole)
    (tmp_path / "run.json").write_text(json.dumps({**first, "status": "killed"}))
    record = run(make_cfg(*TINY, "train.checkpoint_every=4", "seed=3"), tmp_path)
    assert record["resumed_from"] is None and record["seed"] == 3
