"""A `--force` re-run of a run dir that holds an ok run: its record goes to <run dir>/rerun/run.json until it
succeeds, so a failed re-run leaves the earlier ok result in reports and in sweeps' skip check."""

import json

import pytest

from conftest import TINY_MODEL, make_cfg
from peftbench.report.command import main as report_main
from peftbench import train
from peftbench.run import sweep
from peftbench.run.runner import run

ROWS = "sentence\tlabel\n" + "".join(f"a {w} film\t{i % 2}\n" for i, w in enumerate(["fine", "dull"] * 20))


def test_a_failed_forced_rerun_keeps_the_ok_run_file(tmp_path, capsys, monkeypatch):
    data, run_dir = tmp_path / "data", tmp_path / "runs" / "r"
    data.mkdir()
    (data / "train.tsv").write_text(ROWS)
    (data / "dev.tsv").write_text(ROWS)
    overrides = [*TINY_MODEL, "task=glue/sst2", f"task.data_dir={data}", f"results_dir={tmp_path}"]
    ok = run(make_cfg(*overrides), run_dir)
    weights = (run_dir / "trainable.safetensors").read_bytes()

    def broken_fit(*args, **kwargs):  # the same config, a run that fails once training started
        raise RuntimeError("out of memory (planted)")

    monkeypatch.setattr(train, "fit", broken_fit)  # run.runner imports it from peftbench.train at run time
    with pytest.raises(RuntimeError, match="planted"):
        run(make_cfg(*overrides, "force=true"), run_dir)
    monkeypatch.undo()
    kept = json.loads((run_dir / "run.json").read_text())
    assert kept["status"] == "ok" and kept["metrics"] == ok["metrics"] and kept["started_at"] == ok["started_at"]
    assert (run_dir / "trainable.safetensors").read_bytes() == weights
    failed = json.loads((run_dir / "rerun" / "run.json").read_text())
    assert failed["status"] == "failed" and failed["config_hash"] == ok["config_hash"]
    assert sweep.find_ok_run(tmp_path, ok["config_hash"]) == run_dir / "run.json"  # a sweep still skips it

    assert report_main([str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    table = out.split("Failed or unfinished runs")[0]
    assert "| lora |" in table and f"{100 * ok['metrics']['accuracy']:.1f}" in table
    assert "RuntimeError" in out and "rerun/run.json) (a re-run: the earlier ok run stays in the table)" in out

    # a re-run that succeeds replaces the ok run file
    again = run(make_cfg(*overrides, "force=true"), run_dir)
    now = json.loads((run_dir / "run.json").read_text())
    assert again["status"] == now["status"] == "ok" and now["started_at"] == again["started_at"]
    assert not (run_dir / "rerun").exists()
