"""Paper-ready output: the task's score columns by default (CoLA's MCC, not the accuracy a majority-class
model gets), LaTeX notes that wrap at the column's width, and the static plots (seed error bars, labels
apart, colour by family, parameters counted as the table counts them, cost only from runs measured alone)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from peftbench.cli import main
from peftbench.report.plots import pareto_front
from peftbench.runfile import write_atomic
from test_report_page import make_runs


def cola_run(root: Path, method: str, seed: int, mcc: float, score_metrics: bool) -> None:
    task = {"name": "glue/cola", "metrics": ["matthews_correlation", "accuracy"], "main_metric": "matthews_correlation"}
    if score_metrics:
        task["score_metrics"] = ["matthews_correlation"]
    write_atomic(root / f"m_{method}_cola_s{seed}" / "run.json", {
        "status": "ok", "model": "m", "method": method, "task": "glue/cola", "seed": seed, "config": {"task": task},
        "metrics": {"matthews_correlation": mcc, "accuracy": 0.691}, "main_metric": "matthews_correlation",
        "params": {"trainable": 10, "trainable_pct": 0.1}, "memory": {"peak_rss_mb": 1.0},
        "throughput": {"train_samples_per_s": 1.0}, "timing": {"train_s": 1.0}})


@pytest.mark.parametrize("declared", [True, False])  # run files before task.score_metrics: CoLA still MCC only
def test_score_columns_by_default_every_metric_on_request(tmp_path, capsys, declared):
    for seed, (lora, full) in enumerate([(0.0, 0.02), (0.0, 0.04)], 1):
        cola_run(tmp_path, "lora", seed, lora, declared)
        cola_run(tmp_path, "full", seed, full, declared)
    assert main(["report", str(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("| method | glue/cola MCC | avg |")
    assert main(["report", str(tmp_path), "--metrics", "all"]) == 0
    assert "| glue/cola MCC | glue/cola acc |" in capsys.readouterr().out


def test_unknown_metrics_choice_lists_the_choices(tmp_path, capsys):
    cola_run(tmp_path, "lora", 1, 0.0, True)
    assert main(["report", str(tmp_path), "--metrics", "every"]) == 2
    assert "Unknown metrics 'every'. Available: all, main, score." in capsys.readouterr().err


def test_latex_notes_wrap_at_the_column_width(tmp_path, capsys):
    make_runs(tmp_path / "runs")
    assert main(["report", str(tmp_path / "runs"), "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    assert "\\multicolumn" not in tex  # a note row in the tabular made the table as wide as the longest note
    table, notes = tex.split("\\end{tabular}")
    assert "Scores: metric" not in table
    assert notes.lstrip().startswith("\\par\\smallskip\n\\begin{minipage}{\\linewidth}\\footnotesize\\raggedright")
    assert "Scores: metric $\\times$ 100" in notes and "\\end{minipage}" in notes


def test_pareto_front_either_way():
    points = [(10, 80), (100, 85), (50, 70), (1000, 85), (5, 60), (200, 90)]
    assert pareto_front(points, lower_x=False) == [(1000, 85), (200, 90)]


def plots(tmp_path: Path, capsys) -> tuple[Path, str]:
    pytest.importorskip("matplotlib")
    make_runs(tmp_path / "runs")
    assert main(["report", str(tmp_path / "runs"), "--plots", str(tmp_path / "plots")]) == 0
    return tmp_path / "plots", capsys.readouterr().err


def test_plots_views_error_bars_and_the_parameter_axis(tmp_path, capsys, monkeypatch):
    import matplotlib.figure

    seen = {}
    save = matplotlib.figure.Figure.savefig

    def keep(fig, path, **kwargs):  # the figures as drawn, read back from matplotlib's own objects
        seen[Path(path).stem] = fig
        return save(fig, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    out, _ = plots(tmp_path, capsys)
    assert sorted(p.name for p in out.iterdir()) == [f"{n}.{e}" for n in ("eval", "loss", "memory", "score_vs_memory",
                                                                          "score_vs_params", "score_vs_throughput")
                                                     for e in ("pdf", "png")]
    curve = {line.get_label(): list(line.get_ydata()) for line in seen["eval"].axes[0].lines}  # glue/rte
    assert curve["full"] == pytest.approx([57.0, 62.0])  # the mean over seeds of each evaluation, × 100
    ax = seen["score_vs_params"].axes[0]
    labels = {t.get_text().strip(): t.get_position() for t in ax.texts}
    assert labels.keys() == {"full", "lora", "bitfit", "prompt_tuning"}
    assert ax.get_xscale() == "log"
    xs = sorted(x for line in ax.lines if line.get_marker() == "o" for x in line.get_xdata())
    assert xs == [7_680, 26_000, 73_728, 22_000_000]  # params.method: the head's 770 left out, as in the table
    bars = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    assert bars and all(len(c.get_segments()) for c in bars)  # error bars, one per point
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"full fine-tuning", "low-rank / reparameterised", "selective", "soft prompts"} <= set(legend)
    memory = seen["score_vs_memory"].axes[0]
    assert {t.get_text().strip() for t in memory.texts} == {"full", "lora"}  # measured alone; the others not
    assert "Not shown: bitfit, prompt_tuning" in seen["score_vs_memory"].texts[0].get_text()


def test_no_cost_plots_without_runs_measured_alone(tmp_path, capsys):
    make_runs(tmp_path / "runs")
    for path in (tmp_path / "runs").glob("*/run.json"):
        record = json.loads(path.read_text())
        if record["status"] == "ok":
            record["memory"]["runs_before_in_process"] = 3
            write_atomic(path, record)
    assert main(["report", str(tmp_path / "runs"), "--plots", str(tmp_path / "plots")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"no score_vs_memory \(memory only from runs measured alone", err)
    assert sorted({p.stem for p in (tmp_path / "plots").iterdir()}) == ["eval", "loss", "score_vs_params"]


def test_labels_do_not_overlap(tmp_path, capsys, monkeypatch):
    pytest.importorskip("adjustText")
    import matplotlib.figure

    seen = {}
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, **kw: (seen.setdefault(Path(path).stem, fig), save(fig, path, **kw))[1])
    make_runs(tmp_path / "runs")
    for src in (tmp_path / "runs").glob("minilm_lora_*/run.json"):  # lora's twin: same parameters and scores,
        record = json.loads(src.read_text())                          # where the labels would sit on each other
        if record["status"] == "ok":
            record["method"] = record["config"]["method"]["name"] = "dora"
            write_atomic(src.parent.parent / src.parent.name.replace("lora", "dora") / "run.json", record)
    assert main(["report", str(tmp_path / "runs"), "--plots", str(tmp_path / "plots")]) == 0
    fig = seen["score_vs_params"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure was closed after saving
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert len(boxes) == 5
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (apt: texlive-latex-base "
                                                              "texlive-latex-recommended)")
def test_latex_notes_fit_a_two_column_papers_column(tmp_path, capsys):
    make_runs(tmp_path / "runs")
    assert main(["report", str(tmp_path / "runs"), "--format", "latex", "--columns", "glue/rte,avg"]) == 0
    (tmp_path / "table.tex").write_text(capsys.readouterr().out)
    (tmp_path / "doc.tex").write_text("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n"
                                      "\\usepackage[utf8]{inputenc}\n\\begin{document}\n"
                                      "\\begin{table}\\centering\\small\\input{table}\\end{table}\nText.\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Overfull \\hbox" not in (tmp_path / "doc.log").read_text()  # note rows made it 200+ pt too wide
