"""A results folder is data, never code: checkpoints are JSON + safetensors with a manifest, resuming
unpickles nothing, a planted pickle is refused without running, and a damaged checkpoint is passed over
for the one before it (or the run starts over), with one warning and the same result."""

import json
import logging
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import TINY, make_cfg
from peftbench.run.runner import run
from peftbench.train.statefile import Damaged, load_tree, save_tree, verify_manifest, write_manifest

KEPT = [*TINY, "train.checkpoint_every=2", "train.keep_checkpoint=true"]  # 8 steps: checkpoints 2, 4, 6


def test_optimizer_scheduler_and_rng_state_round_trip_bit_for_bit(tmp_path):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    for _ in range(3):
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
    tree = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "window": [0.1, float("inf")],
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}}
    save_tree(tree, tmp_path, "state")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.safetensors"]
    back = load_tree(tmp_path, "state")
    assert back["optimizer"]["param_groups"] == tree["optimizer"]["param_groups"]  # betas stay a tuple
    assert back["optimizer"]["state"].keys() == tree["optimizer"]["state"].keys() == {0, 1}  # int keys
    for key, moments in tree["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(back["optimizer"]["state"][key][name], value), name
    assert back["scheduler"] == tree["scheduler"] and back["window"] == tree["window"]
    assert back["rng"]["python"] == tree["rng"]["python"]
    assert torch.equal(back["rng"]["torch"], tree["rng"]["torch"])
    np.random.set_state(back["rng"]["numpy"])
    drawn = np.random.rand(3)
    np.random.set_state(tree["rng"]["numpy"])
    assert np.array_equal(drawn, np.random.rand(3))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_the_manifest_finds_a_damaged_file(tmp_path, damage):
    save_tree({"x": torch.arange(100.0)}, tmp_path, "state")
    write_manifest(tmp_path, ["state.json", "state.safetensors"])
    assert verify_manifest(tmp_path) == ["state.json", "state.safetensors"]
    target = tmp_path / "state.safetensors"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other contents
    else:
        target.unlink()
    with pytest.raises(Damaged, match="state.safetensors"):
        verify_manifest(tmp_path)


class _Payload:
    """Unpickling this creates `marker`: what a hostile state.pt could do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_planted_pickle_checkpoint_is_refused_without_running_it(tmp_path):
    run_dir, marker = tmp_path / "run", tmp_path / "marker"
    step = run_dir / "checkpoints" / "step-0000004"  # the layout older peftbench versions wrote
    step.mkdir(parents=True)
    torch.save({"config_hash": "anything", "step": _Payload(marker)}, step / "state.pt")
    torch.save({"rng": _Payload(marker)}, step / "rank-0.pt")
    save_file({"w": torch.zeros(1)}, str(step / "trainable.safetensors"))
    command = [sys.executable, "-m", "peftbench.cli", "run", *TINY, f"results_dir={tmp_path}", f"hydra.run.dir={run_dir}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert not marker.exists()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    [line] = [x for x in out.stderr.splitlines() if x.startswith("peftbench: error:")]
    assert "step-0000004 was written by an older peftbench" in line and "--force" in line
    out = subprocess.run([*command, "--force"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert not marker.exists() and not (run_dir / "checkpoints").exists()  # started over; removed when ok
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """An uninterrupted run that kept its last two checkpoints (steps 4 and 6)."""
    run_dir = tmp_path_factory.mktemp("whole")
    return run(make_cfg(*KEPT), run_dir), run_dir


def _as_if_killed(whole, tmp_path) -> Path:
    record, source = whole
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    (run_dir / "run.json").write_text(json.dumps({**record, "status": "killed", "run_dir": str(run_dir)}))
    return run_dir


def _assert_same_end(record, run_dir, whole):
    first, source = whole
    assert record["status"] == "ok"
    assert record["metrics"] == first["metrics"] and record["loss_history"] == first["loss_history"]
    trained, expected = (load_file(str(d / "trainable.safetensors")) for d in (run_dir, source))
    assert trained.keys() == expected.keys()
    assert all(torch.equal(trained[k], expected[k]) for k in expected)


def test_checkpoints_keep_the_last_two(whole):
    _, run_dir = whole
    steps = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert steps == ["step-0000004", "step-0000006"]
    assert not list((run_dir / "checkpoints").rglob("*.pt"))  # no pickles
    assert "manifest.json" in {p.name for p in (run_dir / "checkpoints" / "step-0000006").iterdir()}


def test_a_damaged_checkpoint_falls_back_to_the_one_before(whole, tmp_path, caplog):
    run_dir = _as_if_killed(whole, tmp_path)
    state = run_dir / "checkpoints" / "step-0000006" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:100])  # cut short (a full disk, a copy that stopped)
    with caplog.at_level(logging.WARNING, logger="peftbench"):
        record = run(make_cfg(*KEPT), run_dir)
    assert record["resumed_from"]["step"] == 4
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "step-0000006" in warning and "resuming from step-0000004" in warning
    _assert_same_end(record, run_dir, whole)


def test_no_readable_checkpoint_starts_over_with_one_warning(whole, tmp_path, caplog):
    run_dir = _as_if_killed(whole, tmp_path)
    for step in (run_dir / "checkpoints").iterdir():
        (step / "manifest.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="peftbench"):
        record = run(make_cfg(*KEPT), run_dir)
    assert record["resumed_from"] is None
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "starting this run over from step 0" in warning
    _assert_same_end(record, run_dir, whole)


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_every_file_of_a_checkpoint_is_verified_before_any_is_used(whole, tmp_path, damage):
    from peftbench.train.checkpoint import _read_checkpoint

    _, source = whole
    names = sorted(p.name for p in (source / "checkpoints" / "step-0000006").iterdir())
    assert names == ["manifest.json", "rank-0.json", "rank-0.safetensors", "state.json", "state.safetensors",
                     "trainable.safetensors"]
    for name in names:
        step = tmp_path / name / "step-0000006"
        shutil.copytree(source / "checkpoints" / "step-0000006", step)
        target = step / name
        if damage == "delete":
            target.unlink()
        else:
            target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        with pytest.raises(Damaged):
            _read_checkpoint(step, rank=0)
