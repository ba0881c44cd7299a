"""A sweep checks before its jobs start what it can (every task's data folder, hub models offline) and
names every problem at once; while it runs, the same error in several jobs in a row stops it."""

import json
import os
import subprocess
import sys

from omegaconf import OmegaConf

from peftbench.run import precheck
from peftbench.run.sweep import SWEEP_ENV


def test_a_sweep_names_every_missing_task_folder_before_any_job_starts(tmp_path):
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-m", "peftbench.cli", "run", "-m", "model=tiny", "hardware=cpu",
                          "task=glue/sst2,glue/rte,glue/mrpc", f"data_root={tmp_path / 'glue'}",
                          f"results_dir={tmp_path / 'results'}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "2 problem(s) in this sweep, found before any job started" in out.stderr
    assert "task 'glue/rte': no folder RTE/" in out.stderr and "task 'glue/mrpc': no folder MRPC/" in out.stderr
    assert "Folders there: SST-2/" in out.stderr
    assert not (tmp_path / "results").exists()  # no job started


def test_a_hub_model_missing_offline_is_named_for_the_sweep(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = OmegaConf.create({"name": "hf", "name_or_path": "nobody/no-such-model-here"})
    assert "not in the local hub cache, and the hub is offline" in precheck._offline_model_problem(model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert precheck._offline_model_problem(model) == ""  # online: loading will say what is wrong, if anything


def _ledger(tmp_path, monkeypatch, outcomes):
    monkeypatch.setenv(SWEEP_ENV, "s1")
    jobs = tmp_path / "sweeps" / "s1" / "jobs"
    jobs.mkdir(parents=True)
    for i, (status, message) in enumerate(outcomes):
        path = jobs / f"job{i}.json"
        path.write_text(json.dumps({"status": status, "error_type": "OSError", "message": message}))
        os.utime(path, (1000 + i, 1000 + i))  # the order they ended in
    return OmegaConf.create({"results_dir": str(tmp_path)})


def test_the_same_error_three_jobs_in_a_row_stops_the_sweep(tmp_path, monkeypatch):
    monkeypatch.delenv(precheck.KEEP_GOING_ENV, raising=False)
    cfg = _ledger(tmp_path, monkeypatch, [("ok", ""), *[("failed", "hub offline\ndetails")] * 3, ("skipped", "")])
    assert precheck.repeated_failure(cfg) == "OSError: hub offline"
    monkeypatch.setenv(precheck.KEEP_GOING_ENV, "1")  # --keep-going
    assert precheck.repeated_failure(cfg) is None


def test_different_errors_or_an_ok_job_between_do_not_stop_it(tmp_path, monkeypatch):
    monkeypatch.delenv(precheck.KEEP_GOING_ENV, raising=False)
    cfg = _ledger(tmp_path, monkeypatch, [("failed", "a"), ("failed", "a"), ("ok", ""), ("failed", "a"),
                                          ("failed", "b")])
    assert precheck.repeated_failure(cfg) is None
