"""`peftbench report --format html`: the page's data and that it is self-contained (here), and how it
behaves in a real browser (test_report_browser.py). Fixture: four methods x two tasks x three seeds,
hand-made run files with loss and eval histories; lora and full measured alone, the others not."""

import json
import re
from pathlib import Path

import pytest

from peftbench.cli import main
from peftbench.report.families import family
from peftbench.report.runs import measured_alone
from peftbench.report.significance import ties_with_best, welch_p
from peftbench.runfile import write_atomic

# method -> (method params, per task: three seeds' main scores)
METHODS = {"full": (22_000_000, {"glue/sst2": (.90, .91, .92), "glue/rte": (.60, .62, .64)}),
           "lora": (73_728, {"glue/sst2": (.89, .90, .91), "glue/rte": (.50, .51, .52)}),
           "bitfit": (26_000, {"glue/sst2": (.80, .81, .80), "glue/rte": (.61, .59, .60)}),
           "prompt_tuning": (7_680, {"glue/sst2": (.70, .72, .74), "glue/rte": (.53, .52, .54)})}


def make_runs(root: Path) -> None:
    for method, (count, tasks) in METHODS.items():
        for task, scores in tasks.items():
            for seed, score in enumerate(scores, 1):
                alone = method in ("full", "lora")
                record = {
                    "status": "ok", "model": "minilm", "method": method, "task": task, "seed": seed,
                    "config": {"task": {"name": task, "metrics": ["accuracy"]}, "method": {"name": method},
                               "train": {"lr": 1e-3, "epochs": 1.0, "max_steps": -1, "batch_size": 32}, "seed": seed},
                    "metrics": {"accuracy": score}, "main_metric": "accuracy", "main_score": score,
                    "eval_history": [{"step": 10, "accuracy": score - 0.05}, {"step": 20, "accuracy": score}],
                    "loss_history": [[5, 0.7], [10, 0.6], [15, 0.5], [20, 0.45]],
                    "params": {"trainable": count + 770, "method": count, "method_pct": 100 * count / 22e6, "head": 770},
                    "memory": {"device": "cpu", "peak_rss_mb": 900.0 + count / 1e5, "rss_before_train_mb": 500.0,
                               "cuda_max_allocated_mb": None, "runs_before_in_process": 0 if alone else 2},
                    "throughput": {"train_samples_per_s": 100.0 - count / 1e6}, "timing": {"train_s": 10.0}}
                write_atomic(root / f"minilm_{method}_{task.replace('/', '-')}_s{seed}" / "run.json", record)
    write_atomic(root / "minilm_lora_glue-rte_s4" / "run.json",
                 {"status": "failed", "model": "minilm", "method": "lora", "task": "glue/rte", "seed": 4,
                  "error": {"type": "NonFiniteLoss", "message": "loss is nan at step 3"}})


def make_page(tmp_path: Path, *args: str) -> Path:
    make_runs(tmp_path / "runs")
    out = tmp_path / "site" / "page.html"
    assert main(["report", str(tmp_path / "runs"), "--format", "html", "-o", str(out), *args]) == 0
    return out


def page_data(page: Path) -> dict:
    text = page.read_text()
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1))


def test_page_is_one_self_contained_file(tmp_path):
    text = make_page(tmp_path).read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import|url\(http", text)  # nothing fetched
    assert "Chart.js v4" in text and text.count("<script") == 5  # 3 vendored, the data, the page's own
    assert "{{" not in text.split('id="data"')[0].split("<script>")[0]  # every slot of the template filled


def test_page_data_rows_runs_and_links(tmp_path):
    page = make_page(tmp_path)
    data = page_data(page)
    assert len(data["rows"]) == 8 and len(data["runs"]) == 24 and data["tasks"] == ["glue/rte", "glue/sst2"]
    full_rte = next(r for r in data["rows"] if r["label"] == "full" and r["task"] == "glue/rte")
    assert full_rte["score"]["mean"] == pytest.approx(62.0) and full_rte["score"]["std"] == pytest.approx(2.0)
    assert full_rte["family"] == "full fine-tuning" and full_rte["budget"] == "1 epoch, batch 32"
    run = data["runs"][full_rte["runs"][0]]
    assert (page.parent / run["link"]).resolve() == (tmp_path / "runs" / "minilm_full_glue-rte_s1" / "run.json")
    assert run["diff"] == {"seed": 1} and full_rte["common"]["train.lr"] == 0.001  # what differs between its runs
    assert len(run["loss"]) == 4 and len(run["evals"]) == 2
    assert data["failed"][1].startswith("- minilm / lora / glue/rte seed 4: NonFiniteLoss")


def test_cost_only_from_runs_measured_alone(tmp_path):
    data = page_data(make_page(tmp_path))
    by = {(r["label"], r["task"]): r for r in data["rows"]}
    assert by["lora", "glue/rte"]["memory"]["mean"] == pytest.approx(900 + 0.73728 - 500)
    assert by["bitfit", "glue/rte"]["memory"] is None and by["bitfit", "glue/rte"]["throughput"] is None
    assert data["alone"] == 12 and any("only where every run of a row was measured alone (12 of 24 runs were)" in n for n in data["notes"])


def test_best_and_ties_per_task(tmp_path):
    by = {(r["label"], r["task"]): r for r in page_data(make_page(tmp_path))["rows"]}
    assert by["full", "glue/rte"].get("best") and by["full", "glue/sst2"].get("best")
    assert "tie_p" in by["bitfit", "glue/rte"]  # 60 ± 1 against 62 ± 2: three seeds cannot tell them apart
    assert "tie_p" not in by["lora", "glue/rte"]  # 51 ± 1 against 62 ± 2: they can
    assert "tie_p" in by["lora", "glue/sst2"]


def test_welch_p():
    assert welch_p([1.0], [1.0, 2.0]) is None
    assert welch_p([1.0, 1.0], [2.0, 2.0]) == 0.0 and welch_p([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert welch_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    best, ties = ties_with_best({"a": [50.0, 51.0, 52.0], "b": [60.0, 62.0, 64.0], "c": [59.0, 60.0, 61.0]})
    assert best == "b" and set(ties) == {"c"}


def test_families_and_measured_alone():
    assert family("lora") == "low-rank / reparameterised" and family("ia3") == "rescaling"
    assert family("no_such_method") == "other"
    gpu = {"device": "cuda", "cuda_max_allocated_mb": 700.0, "runs_before_in_process": 0}
    assert not measured_alone({"memory": gpu})  # a GPU run that does not say what else held the GPU
    assert measured_alone({"memory": gpu | {"cuda_in_use_by_others_mb": 3.0}})
    assert not measured_alone({"memory": gpu | {"cuda_in_use_by_others_mb": 9000.0}})
    assert not measured_alone({"memory": {"cuda_max_allocated_mb": None, "runs_before_in_process": 3}})
    assert not measured_alone({"memory": {"cuda_max_allocated_mb": None}})  # an older run file


def test_cost_and_compare_tables_stay_plain_html(tmp_path):
    make_runs(tmp_path / "runs")
    out = tmp_path / "cost.html"
    assert main(["report", str(tmp_path / "runs"), "--table", "cost", "--format", "html", "-o", str(out)]) == 0
    assert out.read_text().startswith('<table class="peftbench">')


def test_data_that_would_break_the_page_is_escaped(tmp_path):
    make_runs(tmp_path / "runs")
    path = tmp_path / "runs" / "minilm_lora_glue-rte_s1" / "run.json"
    record = json.loads(path.read_text())
    record["config"]["note"] = "</script><script>alert(1)</script>"
    record["eval_history"][0]["accuracy"] = float("nan")  # json.dumps writes NaN, which JSON.parse refuses
    path.write_text(json.dumps(record))
    out = tmp_path / "page.html"
    assert main(["report", str(tmp_path / "runs"), "--format", "html", "-o", str(out)]) == 0
    text = out.read_text()
    assert "alert(1)</script>" not in text and "NaN" not in text.split('id="data">')[1].split("</script>")[0]
    data = page_data(out)
    lora = next(r for r in data["rows"] if r["label"] == "lora" and r["task"] == "glue/rte")
    assert data["runs"][lora["runs"][0]]["evals"][0]["accuracy"] is None
    assert data["runs"][lora["runs"][0]]["diff"]["note"] == "</script><script>alert(1)</script>"


DOCS = Path(__file__).resolve().parents[1] / "docs" / "results" / "glue-minilm"


@pytest.mark.parametrize("docs, args", [  # the commands in the folders' READMEs (make glue-report for the first)
    (DOCS, ["--best-of", "train.lr"]),
    (DOCS / "literature-sst2", ["--rows", "method,config.method.mask,config.train.lr,config.train.ist.layers"])])
def test_the_committed_pages_are_what_the_report_makes(tmp_path, monkeypatch, docs, args):
    """The committed pages: the same page but for where its links point (relative to where it is written)."""
    monkeypatch.chdir(docs)
    out = tmp_path / "page.html"
    assert main(["report", "runs", *args, "--format", "html", "-o", str(out)]) == 0
    made, committed = page_data(out), page_data(docs / "page.html")
    for data, base in ((made, tmp_path), (committed, docs)):
        for run in data["runs"]:
            run["link"] = str((base / run.pop("link")).resolve())
    assert made == committed
    strip = re.compile(r'(<script type="application/json" id="data">).*?(</script>)', re.S)
    assert strip.sub(r"\1\2", out.read_text()) == strip.sub(r"\1\2", (docs / "page.html").read_text())
