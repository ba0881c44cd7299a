import json

import pytest

from peftbench import runfile


def test_tiny_run_file_has_the_documented_schema(tiny_run):
    record, run_dir = tiny_run
    on_disk = json.loads((run_dir / "run.json").read_text())
    assert list(on_disk) == list(runfile.SCHEMA_KEYS)
    assert on_disk["status"] == "ok" and on_disk["error"] is None
    assert (on_disk["model"], on_disk["method"], on_disk["task"], on_disk["seed"]) == ("tiny", "lora", "demo", 42)
    assert on_disk["config"]["train"]["lr"] == 5e-4  # resolved, not "${method.default_lr}"
    assert set(on_disk["metrics"]) == {"accuracy", "f1"} and on_disk["main_metric"] == "accuracy"
    assert on_disk["main_score"] == on_disk["metrics"]["accuracy"]
    p = on_disk["params"]
    assert 0 < p["trainable"] < p["total"]
    assert p["trainable_pct"] == pytest.approx(100 * p["trainable"] / p["base_total"], abs=1e-6)
    assert p["method"] + p["head"] == p["trainable"] and p["head"] == 32 * 2 + 2  # the tiny classifier
    assert p["total"] == p["base_total"] + p["method"] + p["head"]  # LoRA factors + peft's copy of the head
    assert on_disk["memory"]["peak_rss_mb"] >= on_disk["memory"]["rss_before_train_mb"] > 0
    assert on_disk["memory"]["device"] == "cpu" and on_disk["memory"]["cuda_max_allocated_mb"] is None
    tp = on_disk["throughput"]
    assert tp["steps"] == 8 and tp["train_samples"] == 8 * 32
    assert tp["train_tokens"] < tp["train_samples"] * 64  # padding excluded, max_length 64
    assert tp["train_samples_per_s"] > 0 and tp["train_tokens_per_s"] > tp["train_samples_per_s"]
    window = tp["window"]  # 8 steps: 4 warm-up steps (at most half the run) left out
    assert (window["warmup_steps"], window["steps"], window["samples"]) == (4, 4, 4 * 32)
    assert 0 < window["tokens"] < window["padded_tokens"]  # padding counted apart, not as tokens
    assert tp["train_samples_per_s"] == pytest.approx(window["samples"] / window["seconds"], rel=0.01)
    assert tp["eval_samples_per_s"] > 0 and tp["eval_s_per_eval"] > 0
    for figure in (tp, on_disk["memory"]):  # each figure says how it was measured
        assert {k: figure[k] for k in ("device", "dtype", "mixed_precision", "batch_size", "max_length")} == \
            {"device": "cpu", "dtype": "float32", "mixed_precision": "no", "batch_size": 32, "max_length": 64}
        assert figure["measured"]
    assert on_disk["artifacts"]["trainable_weights_bytes"] > 4 * p["trainable"]
    assert on_disk["data"]["tokenized"]["cache"].keys() == {"train", "validation"}
    assert on_disk["timing"]["train_s"] > 0 and on_disk["timing"]["total_s"] >= on_disk["timing"]["train_s"]
    assert on_disk["versions"]["torch"] and on_disk["versions"]["peft"]
    assert set(on_disk["git"]) == {"commit", "dirty"}


def test_write_atomic_replaces_whole_files_and_leaves_no_temp(tmp_path):
    path = tmp_path / "run.json"
    runfile.write_atomic(path, {"status": "ok", "n": 1})
    runfile.write_atomic(path, {"status": "ok", "n": 2})
    assert json.loads(path.read_text()) == {"status": "ok", "n": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_write_that_fails_midway_keeps_the_old_file(tmp_path):
    class Boom:
        def __str__(self):
            raise KeyboardInterrupt  # as if the process were interrupted while serialising

    path = tmp_path / "run.json"
    runfile.write_atomic(path, {"status": "ok"})
    with pytest.raises(KeyboardInterrupt):
        runfile.write_atomic(path, {"status": "ok", "metrics": {"x": Boom()}})
    assert json.loads(path.read_text()) == {"status": "ok"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_find_run_files_recurses(tmp_path):
    for sub in ("a", "b/c"):
        runfile.write_atomic(tmp_path / sub / "run.json", {})
    (tmp_path / "b" / "other.json").write_text("{}")
    assert [p.relative_to(tmp_path).as_posix() for p in runfile.find_run_files([tmp_path])] == \
        ["a/run.json", "b/c/run.json"]


def test_runs_in_one_process_are_counted_for_the_memory_figures(tmp_path):
    from conftest import TINY, make_cfg
    from peftbench.run.runner import run

    first = run(make_cfg(*TINY), tmp_path / "a")
    second = run(make_cfg(*TINY, "seed=2"), tmp_path / "b")
    assert second["memory"]["runs_before_in_process"] == first["memory"]["runs_before_in_process"] + 1
