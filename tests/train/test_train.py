import pytest

from conftest import TINY, TINY_MODEL, make_cfg
from peftbench.run.runner import run

# A random-init model needs ~80 steps before the loss leaves ln(2); 120 steps take ~2 s here.
LEARN = [*TINY, "method=full", "train.lr=3e-3", "train.max_steps=120", "train.log_every=10",
         "train.warmup_ratio=0", "task.generator_args.n_train=512"]


def test_loss_goes_down_on_a_real_training_run(tmp_path):
    record = run(make_cfg(*LEARN), tmp_path)
    losses = [loss for _, loss in record["loss_history"]]
    assert len(losses) == 12
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.1, losses
    assert record["metrics"]["accuracy"] > 0.6


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    a = run(make_cfg(*TINY), tmp_path / "a")
    b = run(make_cfg(*TINY), tmp_path / "b")
    c = run(make_cfg(*TINY, "seed=7"), tmp_path / "c")
    assert a["loss_history"] == b["loss_history"] and a["metrics"] == b["metrics"]
    assert a["loss_history"] != c["loss_history"]


def test_periodic_eval_tracks_the_best(tmp_path):
    record = run(make_cfg(*TINY, "train.eval_every=3"), tmp_path)
    assert [h["step"] for h in record["eval_history"]] == [3, 6, 8]
    best = max(record["eval_history"], key=lambda h: h["accuracy"])
    assert record["best"]["score"] == best["accuracy"] and record["best"]["metric"] == "accuracy"
    assert record["metrics"] == {k: v for k, v in record["eval_history"][-1].items() if k != "step"}


def test_grad_accumulation_counts_optimizer_steps(tmp_path):
    record = run(make_cfg(*TINY, "train.grad_accum=2", "train.batch_size=16"), tmp_path)
    assert record["throughput"]["steps"] == 8
    assert record["throughput"]["train_samples"] == 8 * 2 * 16


def test_epochs_set_the_step_count(tmp_path):
    record = run(make_cfg(*TINY, "train.max_steps=-1", "train.epochs=2", "train.batch_size=64"), tmp_path)
    assert record["throughput"]["steps"] == 2 * 256 // 64
    assert record["data"]["train_examples"] == 256


def test_regression_task_trains_and_reports_correlations(tmp_path):
    data = tmp_path / "stsb"
    data.mkdir()
    rows = "".join(f"a cat sat {i}\tthe cat sat {i % 7}\t{i % 6}.0\n" for i in range(64))
    for name in ("train.tsv", "dev.tsv"):
        (data / name).write_text("sentence1\tsentence2\tscore\n" + rows)
    record = run(make_cfg(*TINY_MODEL, "task=glue/stsb", f"task.data_dir={data}"), tmp_path / "run")
    assert set(record["metrics"]) == {"pearson", "spearmanr"}
    assert record["main_metric"] == "pearson" and record["params"]["trainable"] > 0


def test_nan_loss_stops_the_run_with_a_failed_run_file(tmp_path):
    with pytest.raises(RuntimeError, match="loss is nan"):
        run(make_cfg(*TINY, "train.lr=1e30", "method=full", "train.max_grad_norm=0", "train.max_steps=30"),
            tmp_path)
    import json
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed" and record["error"]["type"] == "NonFiniteLoss"


def test_losses_are_read_at_log_steps_and_the_first_non_finite_step_is_named():
    import torch

    from peftbench.train.loop import NonFiniteLoss, _finite_mean

    assert _finite_mean([0.5, torch.tensor(1.5), torch.tensor(1.0, dtype=torch.bfloat16)], 10, 1) == 1.0
    with pytest.raises(NonFiniteLoss, match="loss is inf at step 8"):  # steps 8, 9, 10 in the window
        _finite_mean([torch.tensor(float("inf")), torch.tensor(float("nan")), 1.0], 10, 1)
    with pytest.raises(NonFiniteLoss, match="loss is nan at step 9"):  # 2 batches a step: 9, 9, 10, 10
        _finite_mean([1.0, torch.tensor(float("nan")), 1.0, 1.0], 10, 2)
