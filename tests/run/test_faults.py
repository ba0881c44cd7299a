"""Fault injection: files peftbench writes, damaged or not written (cut short, a full disk), and runs
stopped without a message. Each ends in a recovered, identical result or one clear message, never a
traceback or a run file that says something untrue. Checkpoints: tests/train/test_checkpoint_safety.py."""

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY, make_cfg
from peftbench.errors import UserError
from peftbench.models import load_tokenizer
from peftbench.run.runner import run
from peftbench.tasks import tokenized

ROOT = Path(__file__).resolve().parents[2]


def _frame():
    return pd.DataFrame({"sentence": [f"the film {i} was fine" for i in range(30)], "label": [i % 2 for i in range(30)]})


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_cut_short_token_cache_is_rebuilt_with_one_warning(tmp_path, caplog):
    tok = load_tokenizer(make_cfg("model=tiny").model)
    tokenized.clear_memory()
    first, _ = tokenized.tokenize(_frame(), tok, ["sentence"], 16, tmp_path)
    [path] = (tmp_path / "tokenized").glob("*.npz")
    path.write_bytes(path.read_bytes()[:200])  # a copy or a write that stopped: not a zip file any more
    tokenized.clear_memory()
    with caplog.at_level(logging.WARNING, logger="peftbench"):
        again, how = tokenized.tokenize(_frame(), tok, ["sentence"], 16, tmp_path)
    assert how == "miss" and [again[i] for i in range(30)] == [first[i] for i in range(30)]
    [warning] = _warnings(caplog)
    assert "is damaged (BadZipFile" in warning and path.name in warning
    tokenized.clear_memory()
    assert tokenized.tokenize(_frame(), tok, ["sentence"], 16, tmp_path)[1] == "disk"  # replaced by a whole one


def test_a_full_disk_while_caching_tokens_is_a_warning_not_a_failure(tmp_path, caplog, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full)
    tok = load_tokenizer(make_cfg("model=tiny").model)
    tokenized.clear_memory()
    with caplog.at_level(logging.WARNING, logger="peftbench"):
        split, how = tokenized.tokenize(_frame(), tok, ["sentence"], 16, tmp_path)
    assert how == "miss" and len(split) == 30
    [warning] = _warnings(caplog)
    assert "not written" in warning and "No space left on device" in warning
    assert not list((tmp_path / "tokenized").iterdir())  # no temp file left behind
    tokenized.clear_memory()


FULL_DISK = """
import os, subprocess, sys
sys.path.insert(0, "tests")
from conftest import TINY, make_cfg
disk = sys.argv[1]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", disk], check=True)
import peftbench.train.checkpoint as checkpoint
save = checkpoint.save_trainable

def fill_then_save(model, path):  # another program fills the disk while this run trains
    with open(os.path.join(disk, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(4096))
        except OSError:
            pass
    return save(model, path)

checkpoint.save_trainable = fill_then_save
from peftbench.run.runner import run
try:
    run(make_cfg(*TINY, "method=full", "train.max_steps=2"), os.path.join(disk, "run"))
except Exception as exc:  # safetensors' own error type, saying "No space left on device"
    print("raised:", exc)
print("files:", sorted(os.listdir(os.path.join(disk, "run"))))
print("record:", open(os.path.join(disk, "run", "run.json")).read().replace(chr(10), " "))
"""


def test_a_disk_that_fills_before_the_final_save_still_gets_a_truthful_run_file(tmp_path):
    """A real full disk: a 2 MB tmpfs in a user namespace (skipped where the system allows none)."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("no user namespaces here to mount a small tmpfs in")
    disk = tmp_path / "disk"
    disk.mkdir()
    out = subprocess.run(["unshare", "-rm", sys.executable, "-c", FULL_DISK, str(disk)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if ":" in line}
    assert "No space left on device" in lines["raised"]
    assert "trainable.safetensors.tmp" not in lines["files"] and "trainable.safetensors" not in lines["files"]
    record = json.loads(lines["record"])
    assert record["status"] == "failed"
    assert "No space left on device" in record["error"]["message"]


def test_ctrl_c_gets_a_reason_in_the_run_file(tmp_path, monkeypatch):
    import peftbench.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(peftbench.train, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg(*TINY), tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "killed" and record["error"]["type"] == "KeyboardInterrupt"
    assert record["error"]["message"].startswith("interrupted (Ctrl-C); run the same command again")


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """An ok run whose trained tensors another run starts from (train.init_from)."""
    results = tmp_path_factory.mktemp("results")
    run(make_cfg(*TINY, "train.max_steps=2", f"results_dir={results}"), results / "runs" / "a")
    return results


def test_init_from_reads_the_folder_named_after_a_move(done, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(done / "runs" / "a", moved)
    (done / "runs" / "a" / "trainable.safetensors").rename(done / "runs" / "a" / "elsewhere.safetensors")
    try:  # as after `mv`: the run file still names the old folder, which no longer holds the tensors
        record = run(make_cfg(*TINY, "train.max_steps=2", f"train.init_from={moved}"), tmp_path / "b")
    finally:
        (done / "runs" / "a" / "elsewhere.safetensors").rename(done / "runs" / "a" / "trainable.safetensors")
    assert record["status"] == "ok" and record["init_from"]["run_dir"] == str(moved)


def test_init_from_a_copy_with_damaged_tensors_is_refused(done, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(done / "runs" / "a", copy)
    tensors = copy / "trainable.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:300])
    with pytest.raises(UserError, match=r"copy/trainable.safetensors cannot be read .* the file is damaged"):
        run(make_cfg(*TINY, "train.max_steps=2", f"train.init_from={copy}"), tmp_path / "b")
    assert not (tmp_path / "b").exists()  # found before training: no run folder


def test_a_run_file_left_running_by_a_dead_process_says_what_happened_in_the_report(tmp_path):
    import platform

    from peftbench.report.command import failed_lines

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = {"status": "running", "error": None, "model": "tiny", "method": "lora", "task": "demo", "seed": 42,
              "host": {"hostname": platform.node(), "pid": gone.pid}, "_path": str(tmp_path / "run.json")}
    [_, line] = failed_lines([record])
    assert f"running: its process (pid {gone.pid}) is gone: the run ended without a word" in line
    assert "run the same command again to resume" in line


def test_an_unreadable_run_lock_is_taken_over_once_it_is_old(tmp_path):
    from peftbench.run.lock import LOCK_NAME, RunLock

    lock_file = tmp_path / LOCK_NAME
    lock_file.write_text('{"pid": 12')  # cut short
    said = []
    assert not RunLock(tmp_path, say=said.append).acquire()  # fresh: perhaps being written right now
    os.utime(lock_file, (0, 0))
    lock = RunLock(tmp_path, say=said.append)
    assert lock.acquire()
    lock.release()
    assert "taking over the stale lock" in said[-1] and "unreadable" in said[-1]
