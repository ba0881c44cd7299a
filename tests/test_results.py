"""The Python API for results: every run file as one row of a DataFrame, read as `peftbench report`
reads them, giving the numbers its tables print."""

import csv
import json
import shutil
from pathlib import Path

from peftbench import results
from peftbench.report.command import main as report
from peftbench.runfile import find_run_files

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results" / "glue-minilm"


def test_one_row_per_run_file_with_the_documented_columns():
    frame = results.load(DOCS / "runs")
    assert len(frame) == len(find_run_files([DOCS / "runs"])) > 500 and frame.attrs["problems"] == []
    assert list(frame.columns[:10]) == list(results.FIRST)
    ok = frame[frame.status == "ok"]
    assert (ok.method == ok["config.method.name"]).all() and (ok.seed == ok["config.seed"]).all()
    assert set(ok.task) == {"glue/sst2", "glue/mrpc", "glue/cola", "glue/rte", "glue/stsb"}
    mrpc = ok[ok.task == "glue/mrpc"].iloc[0]  # GLUE scores MRPC by the mean of accuracy and F1
    assert mrpc.task_score == (mrpc["metric.accuracy"] + mrpc["metric.f1"]) / 2
    assert {"params.method", "memory.peak_rss_mb", "throughput.train_samples_per_s", "timing.train_s",
            "config.train.lr", "config.method.placement"} <= set(frame.columns)
    assert isinstance(ok["config.method.placement"].dropna().iloc[0], tuple)  # lists as tuples: they group


def test_the_frame_gives_the_numbers_the_report_prints(tmp_path):
    report([str(DOCS / "cost-runs"), "--format", "csv", "-o", str(tmp_path / "cost.csv")])
    rows = [r for r in csv.DictReader((tmp_path / "cost.csv").open()) if r["method"] and r["glue/sst2 acc"]]
    frame = results.load(DOCS / "cost-runs")
    by_method = frame.groupby("method")
    assert len(rows) == frame.method.nunique() == 13
    for r in rows:
        assert f"{by_method.task_score.mean()[r['method']] * 100:.1f}" == r["glue/sst2 acc"]
        assert f"{by_method['throughput.train_samples_per_s'].mean()[r['method']]:.1f}" == r["samples/s"]


def test_a_file_it_cannot_read_is_named_not_fatal_and_no_runs_is_an_empty_frame(tmp_path):
    good = next((DOCS / "cost-runs").glob("*/run.json"))
    (tmp_path / "a").mkdir()
    shutil.copy(good, tmp_path / "a" / "run.json")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run.json").write_text(json.dumps({"status": "ok"}))
    frame = results.load(tmp_path)
    assert len(frame) == 1 and len(frame.attrs["problems"]) == 1 and "b/run.json" in frame.attrs["problems"][0]
    (tmp_path / "empty").mkdir()
    empty = results.load(tmp_path / "empty")
    assert len(empty) == 0 and list(empty.columns) == list(results.FIRST)
