"""The committed MiniLM GLUE v2 tables (docs/results/glue-minilm-v2) are what `peftbench report` makes of
the committed run files (`make glue-v2-report`), and the committed picks follow scripts/glue_v2.py's rules."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from peftbench.report.command import main as report

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "results" / "glue-minilm-v2"
MAKEFILE = (ROOT / "Makefile").read_text()


def _var(name: str) -> str:
    return re.search(rf"^{name}\s*:= (.+)$", MAKEFILE, re.M).group(1)


@pytest.mark.parametrize("name, args", [
    ("scores.md", ["runs", "--columns", _var("GLUE2_COLUMNS")]),
    ("scores.tex", ["runs", "--columns", _var("GLUE2_COLUMNS"), "--format", "latex"]),
    ("head.md", ["head/runs", "--rows", "method,config.model.pooling", "--columns", _var("GLUE2_HEAD")]),
    ("pilot.md", ["pilot/runs", "runs", "--rows", "method,config.train.lr", "--tasks", "glue/cola,glue/rte",
                  "--seeds", "1", "--columns", _var("GLUE2_PILOT")]),
    ("parity.md", ["head/runs", "parity/runs", "--methods", "lora", "--where", "model.pooling=cls", "--rows",
                   _var("GLUE2_PARITY_ROWS"), "--columns", _var("GLUE2_PARITY")]),
])
def test_committed_v2_tables_are_what_the_report_makes_of_the_committed_runs(name, args, tmp_path, monkeypatch):
    monkeypatch.chdir(DOCS)
    report([*args, "-o", str(tmp_path / name)])
    assert (tmp_path / name).read_text() == (DOCS / name).read_text()


def test_committed_picks_follow_the_drivers_rules():
    spec = importlib.util.spec_from_file_location("glue_v2", ROOT / "scripts" / "glue_v2.py")
    glue_v2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(glue_v2)
    picks = json.loads((DOCS / "picks.json").read_text())
    head = glue_v2.read_runs(DOCS / "head")
    assert glue_v2.pick_pooling(head)["pooling"] == picks["_pooling"]["pooling"]
    pilot = glue_v2.read_runs(DOCS) + glue_v2.read_runs(DOCS / "pilot")
    for method, picked in picks.items():
        if not method.startswith("_"):
            again = glue_v2.pick(method, pilot, glue_v2.PILOT_RATES[method], {"model.pooling": picks["_pooling"]["pooling"]})
            assert again["lr"] == picked["lr"], method
    table = [json.loads(p.read_text()) for p in (DOCS / "runs").glob("*/run.json")]
    assert all(r["status"] == "ok" and float(r["config"]["train"]["lr"]) == float(picks[r["method"]]["lr"]) for r in table)
    assert all(r["config"]["model"]["pooling"] == picks["_pooling"]["pooling"] for r in table)
    assert all(r["git"]["dirty"] is False and r["git"]["commit"] for r in table)  # a clean commit, recorded
