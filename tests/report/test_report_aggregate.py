"""`peftbench report --aggregate median` and `--best-of KEY` on hand-made run files; every expected number is
worked out by hand in the test's docstring (scores x 100, std is the sample std)."""

import pytest
from test_report import fake_run, report

from peftbench.cli import main


def seeds(root, method, task, scores, lr=None):
    """One run per score (seeds 1, 2, ...), in root/lr<lr>/ so that runs differing only in lr don't collide.
    A score is the accuracy, or a dict of metrics."""
    config = {"train": {"lr": lr}} if lr is not None else None
    for seed, score in enumerate(scores, 1):
        metrics = score if isinstance(score, dict) else {"accuracy": score}
        fake_run(root / f"lr{lr}", method, task, seed, metrics, config=config)


@pytest.fixture
def three_seeds(tmp_path):
    """lora, 3 seeds. RTE acc 70, 80, 72: mean 74.0, median 72.0, std sqrt((16 + 36 + 4) / 2) = 5.3.
    MRPC (acc, F1) = (80, 90), (84, 80), (70, 86): acc mean 78.0, median 80.0, std sqrt(52) = 7.2;
    F1 mean 85.3, median 86.0, std 5.0; each run's task score (acc + F1) / 2 = 85, 82, 78.
    avg, mean: (74 + (85 + 82 + 78) / 3) / 2 = (74 + 81.67) / 2 = 77.8;
    avg, median: (72 + median(85, 82, 78)) / 2 = (72 + 82) / 2 = 77.0 -- not (72 + (80 + 86) / 2) / 2 = 77.5:
    the median is taken of each run's task score, not of each metric."""
    seeds(tmp_path, "lora", "glue/rte", [.70, .80, .72])
    seeds(tmp_path, "lora", "glue/mrpc", [{"accuracy": .80, "f1": .90}, {"accuracy": .84, "f1": .80},
                                          {"accuracy": .70, "f1": .86}])
    return str(tmp_path)


def csv_row(capsys, *args) -> str:
    out = report(capsys, *args, "--format", "csv", "--columns", "glue/mrpc,glue/rte,avg")
    return out.splitlines()[1]


def test_median_over_seeds_and_its_avg(three_seeds, capsys):
    assert csv_row(capsys, three_seeds) == "lora,78.0,7.2,3,85.3,5.0,3,74.0,5.3,3,77.8"
    assert csv_row(capsys, three_seeds, "--aggregate", "median") == "lora,80.0,7.2,3,86.0,5.0,3,72.0,5.3,3,77.0"


def test_median_notes_say_so(three_seeds, capsys):
    out = report(capsys, three_seeds, "--aggregate", "median", "--columns", "glue/rte,avg")
    assert "| lora | 72.0 ± 5.3 (n=3) | 77.0 |" in out
    assert "Scores: metric × 100, median ± std over runs (seeds); n = runs." in out
    assert "each task's score (the median over runs of each run's mean of its official metrics" in out
    out = report(capsys, three_seeds, "--aggregate", "median", "--ci")
    assert "median ± 95% CI of the mean over runs" in out


def test_compare_uses_the_aggregate(tmp_path, capsys):
    """A: RTE 70, 80, 72 (mean 74, median 72); B: 75, 75, 90 (mean 80, median 75). B - A: mean +6.0, median +3.0."""
    seeds(tmp_path / "a", "lora", "glue/rte", [.70, .80, .72])
    seeds(tmp_path / "b", "lora", "glue/rte", [.75, .75, .90])
    sets = ["--compare", str(tmp_path / "a"), str(tmp_path / "b")]
    assert "| lora | +6.0 | +6.0 |" in report(capsys, *sets)
    out = report(capsys, *sets, "--aggregate", "median")
    assert "| lora | +3.0 | +3.0 |" in out and "(metric × 100, medians over seeds)" in out


@pytest.fixture
def tuned(tmp_path):
    """lora tried two learning rates, 2 seeds each; full one.
    RTE: 1e-4 -> 60, 62 (mean 61); 1e-3 -> 70, 74 (mean 72): picks 1e-3, cell 72.0 ± 2.8 (n=2).
    MRPC, main metric acc: 1e-4 -> acc 85, 87 (86), F1 70, 70; 1e-3 -> acc 80, 82 (81), F1 90, 90: picks 1e-4
    on acc, though its task score (86 + 70) / 2 = 78 is below 1e-3's (81 + 90) / 2 = 85.5; cell acc 86.0.
    lora avg with the picks: (78 + 72) / 2 = 75.0.
    full: RTE 1e-5 -> 75: one value, unaffected, cell 75.0 (n=1).
    Without --best-of lora RTE averages all four: (60 + 62 + 70 + 74) / 4 = 66.5."""
    root = tmp_path / "tuned"
    seeds(root, "lora", "glue/rte", [.60, .62], lr=1e-4)
    seeds(root, "lora", "glue/rte", [.70, .74], lr=1e-3)
    seeds(root, "lora", "glue/mrpc", [{"accuracy": .85, "f1": .70}, {"accuracy": .87, "f1": .70}], lr=1e-4)
    seeds(root, "lora", "glue/mrpc", [{"accuracy": .80, "f1": .90}, {"accuracy": .82, "f1": .90}], lr=1e-3)
    seeds(root, "full", "glue/rte", [.75], lr=1e-5)
    return str(root)


def test_best_of_picks_per_row_and_task(tuned, capsys):
    out = report(capsys, tuned, "--best-of", "train.lr", "--columns", "glue/mrpc:accuracy,glue/rte,avg")
    assert "| lora | 86.0 ± 1.4 (n=2) | 72.0 ± 2.8 (n=2) | 75.0 |" in out
    assert "| full | – | **75.0** (n=1)† | – |" in out
    assert ("--best-of train.lr: per row and task the value with the highest mean main score over seeds (on a tie "
            "the smaller value); cells show only its runs. Picked:") in out
    assert "- lora: glue/mrpc 0.0001 (of 0.0001, 0.001; n=2), glue/rte 0.001 (of 0.0001, 0.001; n=2)" in out
    assert "- full: glue/rte 1e-05 (n=1)" in out
    assert "Cells that aggregate runs with different train.lr" not in out
    assert out == report(capsys, tuned, "--best-of", "config.train.lr", "--columns", "glue/mrpc:accuracy,glue/rte,avg")


def test_without_best_of_runs_are_averaged_and_the_mix_is_noted(tuned, capsys):
    out = report(capsys, tuned, "--columns", "glue/rte")
    assert "| lora | 66.5 ± 6.6 (n=4) |" in out  # std of 60, 62, 70, 74: sqrt((42.25+20.25+12.25+56.25)/3) = 6.6
    assert ("Cells that aggregate runs with different train.lr: lora / glue/mrpc (0.0001, 0.001); lora / glue/rte "
            "(0.0001, 0.001). --best-of train.lr keeps the best per cell; --rows method,config.train.lr shows each."
            ) in out
    out = report(capsys, tuned, "--rows", "method,config.train.lr", "--columns", "glue/rte")
    assert "| lora / 0.001 | <u>72.0</u> ± 2.8 (n=2) |" in out and "different train.lr" not in out


def test_best_of_uses_the_aggregate(tmp_path, capsys):
    """lr 1e-3: 60, 90, 61 (mean 70.3, median 61); lr 1e-4: 68, 69, 70 (mean 69, median 69).
    By mean 1e-3 wins (cell mean 70.3); by median 1e-4 wins (cell median 69.0)."""
    seeds(tmp_path, "lora", "glue/rte", [.60, .90, .61], lr=1e-3)
    seeds(tmp_path, "lora", "glue/rte", [.68, .69, .70], lr=1e-4)
    out = report(capsys, str(tmp_path), "--best-of", "train.lr", "--columns", "glue/rte")
    assert "| lora | 70.3 ± 17.0 (n=3) |" in out and "- lora: glue/rte 0.001 (of 0.0001, 0.001; n=3)" in out
    out = report(capsys, str(tmp_path), "--best-of", "train.lr", "--aggregate", "median", "--columns", "glue/rte")
    assert "| lora | 69.0 ± 1.0 (n=3) |" in out and "- lora: glue/rte 0.0001 (of 0.0001, 0.001; n=3)" in out


def test_best_of_tie_picks_the_smaller_value(tmp_path, capsys):
    """1e-4 -> 70, 74 and 1e-5 -> 74, 70: the same mean (72.0), so the smaller, 1e-5, by size: as text
    '0.0001' < '1e-05', and its folder lr0.0001 comes first, so neither text nor file order gives this."""
    seeds(tmp_path, "lora", "glue/rte", [.70, .74], lr=1e-4)
    seeds(tmp_path, "lora", "glue/rte", [.74, .70], lr=1e-5)
    out = report(capsys, str(tmp_path), "--best-of", "train.lr")
    assert "- lora: glue/rte 1e-05 (of 1e-05, 0.0001; n=2)" in out


def test_best_of_unknown_key(tuned, capsys):
    assert main(["report", tuned, "--best-of", "train.lrr"]) == 2
    assert ("Unknown config key 'train.lrr' for --best-of: no run's config has it. Did you mean 'train.lr'? Keys "
            "that differ between runs of one row and task: train.lr. Any dotted key of the run file's `config` works"
            ) in capsys.readouterr().err
    assert main(["report", tuned, "--best-of", "train"]) == 2  # a group, not a value
    assert "Did you mean 'train.lr'?" in capsys.readouterr().err


def test_compare_picks_in_each_set(tuned, tmp_path, capsys):
    """A: the tuned set (lora RTE picks 1e-3: 72); B: lora RTE 1e-3 -> 80 only. B - A = +8.0."""
    seeds(tmp_path / "b", "lora", "glue/rte", [.80], lr=1e-3)
    out = report(capsys, "--compare", tuned, str(tmp_path / "b"), "--best-of", "train.lr", "--tasks", "glue/rte")
    assert "| lora | +8.0 | +8.0 |" in out
    assert "--best-of train.lr in A: per row" in out and "--best-of train.lr in B: per row" in out


def test_bad_aggregate_and_help(three_seeds, capsys):
    assert main(["report", three_seeds, "--aggregate", "medain"]) == 2
    assert "Unknown aggregate 'medain'. Did you mean 'median'? Available: mean, median." in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "--aggregate mean|median" in out and "--best-of KEY" in out


def test_csv_keeps_the_picks_on_stderr(tuned, capsys):
    assert main(["report", tuned, "--best-of", "train.lr", "--format", "csv", "--columns", "glue/rte"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1:] == ["full,75.0,,1", "lora,72.0,2.8,2"]
    assert "- lora: glue/mrpc 0.0001 (of 0.0001, 0.001; n=2), glue/rte 0.001 (of 0.0001, 0.001; n=2)" in err


def test_a_range_that_shows_as_one_value_is_one_value():
    from peftbench.report.build import value_range

    def show(v):
        return f"{v:.2f}"

    assert value_range([1.0398, 1.0399], show) == "1.04"  # STS-B's 1-output head: a few parameters fewer
    assert value_range([1.0, 2.0], show) == "1.00–2.00"


def test_the_glue_score_of_a_task_uses_its_score_metrics():
    """CoLA is scored by MCC alone (task.score_metrics), also in run files made before that field existed;
    MRPC by the mean of accuracy and F1 (no score_metrics: every metric)."""
    from peftbench.report.runs import task_score

    cola = {"task": "glue/cola", "metrics": {"matthews_correlation": 0.2, "accuracy": 0.7},
            "config": {"task": {"metrics": ["matthews_correlation", "accuracy"]}}}
    assert task_score(cola) == 0.2
    cola["config"]["task"]["score_metrics"] = ["matthews_correlation", "accuracy"]
    assert task_score(cola) == pytest.approx(0.45)
    mrpc = {"task": "glue/mrpc", "metrics": {"accuracy": 0.7, "f1": 0.8},
            "config": {"task": {"metrics": ["accuracy", "f1"], "score_metrics": None}}}
    assert task_score(mrpc) == pytest.approx(0.75)
