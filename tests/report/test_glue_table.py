"""The committed MiniLM GLUE table (docs/results/glue-minilm) is what `peftbench report` makes of the
committed run files: `make glue-report` regenerates scores.md, scores.tex and cost.md byte for byte."""

import re
from pathlib import Path

import pytest

from peftbench.report.command import main as report

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "results" / "glue-minilm"
COLUMNS = re.search(r"^GLUE_COLUMNS := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


@pytest.mark.parametrize("name, args", [
    ("scores.md", ["runs", "--best-of", "train.lr", "--columns", COLUMNS]),
    ("scores.tex", ["runs", "--best-of", "train.lr", "--columns", COLUMNS, "--format", "latex"]),
    ("cost.md", ["cost-runs", "--table", "cost", "--tasks", "glue/sst2"]),
])
def test_committed_tables_are_what_the_report_makes_of_the_committed_runs(name, args, tmp_path, monkeypatch):
    monkeypatch.chdir(DOCS)  # the run-file paths in the failed-runs list are relative, as make writes them
    report([*args, "-o", str(tmp_path / name)])
    assert (tmp_path / name).read_text() == (DOCS / name).read_text()


def test_the_table_has_13_methods_5_tasks_3_seeds():
    import json

    runs = [json.loads(p.read_text()) for p in (DOCS / "runs").glob("*/run.json")]
    ok = [r for r in runs if r["status"] == "ok"]
    assert len({r["method"] for r in ok}) == 13 and len({r["task"] for r in ok}) == 5
    assert {r["seed"] for r in ok} == {1, 2, 3}
    assert all(r["data"]["source"].endswith(("RTE", "MRPC", "STS-B", "CoLA", "SST-2")) for r in ok)
