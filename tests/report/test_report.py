"""`peftbench report` on hand-made run files. The golden files in tests/report/golden/ are the exact output
(the HTML page: tests/report/test_report_page.py);
regenerate them with `UPDATE_GOLDEN=1 python -m pytest tests/report/test_report.py` and review the diff.

Fixture (hand-computed, scores x 100): three methods on MRPC (acc, F1), MNLI (acc m/mm) and RTE.
- lora, 2 seeds everywhere: MRPC acc 80/84 -> 82.0 +- 2.8, F1 86/90 -> 88.0 +- 2.8 (task score 85.0);
  MNLI 80/82 and mm 81/83 (task 81.5); RTE 70/74 -> 72.0 +- 2.8; avg (85 + 81.5 + 72) / 3 = 79.5.
- full, 2 seeds: MRPC 84/86, 89/91 (task 87.5); MNLI 84/84, 85/85 (84.5); RTE 75/77 (76); avg 82.7.
- bitfit, 1 seed (marked: fewer than 2), an older run file (no method params), its RTE run failed:
  no RTE cell, no avg.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from peftbench.cli import main
from peftbench.report.plots import pareto_front
from reportdata import COST, MEMORY, PARAMS, TASKS, fake_run, fixture_runs, report  # noqa: F401

GOLDEN = Path(__file__).parent / "golden"
@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """The fixture under ./runs, with the working directory at tmp_path: paths in the output are relative."""
    monkeypatch.chdir(tmp_path)
    fixture_runs(tmp_path / "runs")
    return "runs"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; UPDATE_GOLDEN=1 rewrites it (then review the diff)"


@pytest.mark.parametrize("fmt, name", [("md", "scores.md"), ("latex", "scores.tex"), ("csv", "scores.csv")])
def test_scores_table_golden(runs_dir, capsys, fmt, name):
    check_golden(name, report(capsys, runs_dir, "--format", fmt))


def test_cost_table_golden(runs_dir, capsys):
    check_golden("cost.md", report(capsys, runs_dir, "--table", "cost"))


def test_hand_computed_values(runs_dir, capsys):
    assert main(["report", runs_dir, "--format", "csv", "--columns", "glue/mrpc,glue/rte,avg"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "method,glue/mrpc acc,glue/mrpc acc std,glue/mrpc acc n,glue/mrpc F1,glue/mrpc F1 std,glue/mrpc F1 n,"
        "glue/rte acc,glue/rte acc std,glue/rte acc n,avg",
        "bitfit,78.0,,1,85.0,,1,,,,",
        "full,85.0,1.4,2,90.0,1.4,2,76.0,1.4,2,82.7",
        "lora,82.0,2.8,2,88.0,2.8,2,72.0,2.8,2,79.5"]
    assert "bitfit / glue/rte seed 1: NonFiniteLoss: loss is nan at step 3" in err  # CSV: failed runs on stderr


def test_confidence_interval_and_expected_seeds(runs_dir, capsys):
    # 95% t interval, 2 runs: t(0.975, 1) = 12.706; RTE lora 70/74: 12.706 * 2.828 / sqrt(2) = 25.4
    out = report(capsys, runs_dir, "--ci", "--columns", "glue/rte", "--decimals", "2", "--seeds", "3")
    assert "| lora | 72.00 ± 25.41 (n=2)† |" in out and "† fewer than 3 runs." in out


def test_filters_main_metric_and_renamed_columns(runs_dir, capsys):
    out = report(capsys, runs_dir, "--tasks", "glue/m*", "--methods", "lora,bitfit", "--metrics", "main",
                 "--columns", "glue/mrpc=MRPC,glue/mnli=MNLI-m,avg")
    assert out.splitlines()[:4] == ["| method | MRPC | MNLI-m | avg |", "|---|---:|---:|---:|",
                                    "| bitfit | 78.0 (n=1)† | 79.0 (n=1)† | 80.5 |",
                                    "| lora | **82.0** ± 2.8 (n=2) | **81.0** ± 1.4 (n=2) | **83.2** |"]
    assert "Failed" not in out  # the failed RTE run is filtered out with its task


def test_compare_two_result_sets(tmp_path, capsys):
    fake_run(tmp_path / "a", "lora", "glue/rte", 1, {"accuracy": .70})
    fake_run(tmp_path / "a", "lora", "glue/rte", 2, {"accuracy": .74})
    fake_run(tmp_path / "a", "bitfit", "glue/rte", 1, {"accuracy": .60})
    fake_run(tmp_path / "b", "lora", "glue/rte", 1, {"accuracy": .75})
    fake_run(tmp_path / "b", "lora", "glue/rte", 2, {"accuracy": .77})
    out = report(capsys, "--compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert "| bitfit | – | – |" in out and "| lora | +4.0 | +4.0 |" in out and "B − A in points" in out


def test_rows_by_model_and_config_key(tmp_path, capsys):
    fake_run(tmp_path, "lora", "demo", 1, {"accuracy": .9})
    fake_run(tmp_path, "lora", "demo", 1, {"accuracy": .6}, model="tiny")
    out = report(capsys, str(tmp_path), "--columns", "demo,params")
    assert "| model / method | demo acc | # params |" in out
    assert "| roberta-base / lora | **90.0** (n=1) | 294.9K |" in out and "| tiny / lora | 60.0 (n=1) |" in out
    out = report(capsys, str(tmp_path), "--rows", "method,config.method.name", "--columns", "demo")
    assert "| lora / lora | 75.0 ± 21.2 (n=2) |" in out


def test_where_keeps_runs_by_config_value(tmp_path, capsys):
    fake_run(tmp_path, "lora", "demo", 1, {"accuracy": .9}, config={"model": {"pooling": "cls"}})
    fake_run(tmp_path, "lora", "demo", 2, {"accuracy": .5}, config={"model": {"pooling": "mean"}})
    fake_run(tmp_path, "lora", "demo", 3, {"accuracy": .7}, config={"model": {"pooling": "cls"}})
    out = report(capsys, str(tmp_path), "--columns", "demo", "--where", "model.pooling=cls")
    assert "| lora | 80.0 ± 14.1 (n=2) |" in out
    out = report(capsys, str(tmp_path), "--columns", "demo", "--where", "config.model.pooling=m*")
    assert "| lora | 50.0 (n=1) |" in out
    assert main(["report", str(tmp_path), "--where", "model.pooling=pooler"]) == 2
    assert "Unknown value of config.model.pooling 'pooler'" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--where", "model.pooling"]) == 2
    assert "write KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--format", "docx"], "Unknown format 'docx'. Available: csv, html, latex, md."),
    (["--columns", "glue/rtx"], "Unknown column 'glue/rtx'. Did you mean 'glue/rte'? Available: avg, glue/mnli, glue/mnli:accuracy,"),
    (["--tasks", "glue/sst2"], "Unknown task 'glue/sst2'. Did you mean 'glue/rte'? Available: glue/mnli, glue/mrpc, glue/rte."),
    (["--methods", "loraa"], "Unknown method 'loraa'. Did you mean 'lora'?"),
    (["--rows", "seed"], "Unknown row key 'seed'. Available: method, model."),
    (["--table", "costs"], "Unknown table 'costs'. Did you mean 'cost'?"),
])
def test_bad_input_names_the_value_and_the_choices(runs_dir, capsys, args, message):
    assert main(["report", runs_dir, *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_or_empty_input(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing-*")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no run files (run.json)" in capsys.readouterr().err


def test_globs_pick_run_folders(runs_dir, capsys):
    out = report(capsys, "runs/*_lora_*", "--columns", "glue/rte")
    assert out.splitlines()[2] == "| lora | 72.0 ± 2.8 (n=2) |" and "bitfit" not in out


@pytest.mark.parametrize("content,reason", [
    ("[1, 2]", "a JSON list, not a run file's object"),
    ('{"name": "x", "results": {}}', "not a run file: no status, model, method, task"),
    ('{"schema_version": 2, "status": "ok"}', "schema_version 2; this peftbench reads 1"),
    ('{"status": "ok", "model": "m", "method": "lora", "task": "glue/rte"}', "status ok but no metrics"),
    ("{not json", "unreadable (Expecting property name"),
])
def test_a_file_that_is_not_a_run_file_is_listed_and_the_rest_reported(runs_dir, capsys, content, reason):
    bad = Path(runs_dir) / "other" / "run.json"
    bad.parent.mkdir()
    bad.write_text(content)
    out = report(capsys, runs_dir)
    assert "| lora |" in out and "| full |" in out
    assert f"{bad}: unreadable (" in out and reason in out


def test_pareto_front():
    points = [(10, 80), (100, 85), (50, 70), (1000, 85), (5, 60), (200, 90)]
    assert pareto_front(points) == [(5, 60), (10, 80), (100, 85), (200, 90)]


def test_plots_png_and_pdf(runs_dir, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    report(capsys, runs_dir, "--plots", "plots")
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["score_vs_params.pdf", "score_vs_params.png"]  # no memory views: no run measured alone
    assert (tmp_path / "plots" / "score_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_imports_neither_torch_nor_matplotlib(runs_dir):
    code = ("import sys; from peftbench.cli import main; main(['report', sys.argv[1], '--format', 'latex']); "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}  # this checkout, not an installed one
    out = subprocess.run([sys.executable, "-c", code, runs_dir], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip().endswith("False False"), out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (apt: texlive-latex-base "
                                                              "texlive-latex-recommended)")
def test_latex_table_compiles(runs_dir, capsys, tmp_path):
    (tmp_path / "table.tex").write_text(report(capsys, runs_dir, "--format", "latex"))
    (tmp_path / "cost.tex").write_text(report(capsys, runs_dir, "--format", "latex", "--table", "cost"))
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[utf8]{inputenc}\n"
                                      "\\usepackage[margin=1cm,landscape]{geometry}\n\\begin{document}\n"
                                      "\\begin{table}\\centering\\small\\input{table}\\end{table}\n"
                                      "\\begin{table}\\centering\\small\\input{cost}\\end{table}\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_cpu_memory_is_what_training_added_to_the_process():
    from peftbench.report.runs import peak_memory_mb

    cpu = {"device": "cpu", "peak_rss_mb": 1122.0, "rss_before_train_mb": 529.0, "cuda_max_allocated_mb": None}
    assert peak_memory_mb({"memory": cpu}) == 593.0
    assert peak_memory_mb({"memory": {**cpu, "rss_before_train_mb": None}}) == 1122.0  # older run files
    assert peak_memory_mb({"memory": {**cpu, "device": "cuda:0", "cuda_max_allocated_mb": 310.5}}) == 310.5


def test_cpu_runs_that_shared_a_process_are_flagged(tmp_path, capsys):
    fake_run(tmp_path, "lora", "glue/rte", 1, {"accuracy": .7})
    fake_run(tmp_path, "full", "glue/rte", 1, {"accuracy": .8})
    assert "trained after other runs in the same process" not in report(capsys, str(tmp_path))
    path = tmp_path / "roberta-base_lora_glue-rte_s1" / "run.json"
    record = json.loads(path.read_text())
    record["memory"]["runs_before_in_process"] = 1
    path.write_text(json.dumps(record))
    for table in ("scores", "cost"):
        out = report(capsys, str(tmp_path), "--table", table)
        assert "1 CPU run trained after other runs in the same process" in out
