"""train.log_with=tensorboard: accelerate's TensorBoard tracker writes the training loss, learning rate,
samples/s and every eval metric into <run dir>/tracker/peftbench/, read back here from the event files."""

import importlib.util

import pytest

from conftest import TINY, make_cfg
from peftbench.errors import UserError
from peftbench.run.runner import run
from peftbench.train.trackers import tracker_names

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard not installed: pip install 'peftbench[track]'")


@needs_tensorboard
def test_tensorboard_event_files_hold_the_logged_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    record = run(make_cfg(*TINY, "train.log_with=tensorboard", "train.eval_every=4"), tmp_path)
    tracker = record["artifacts"]["tracker"]
    assert tracker == {"log_with": ["tensorboard"], "dir": "tracker/peftbench"}
    events = EventAccumulator(str(tmp_path / tracker["dir"]))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/samples_per_s", "eval/accuracy", "eval/f1"} <= tags

    def series(tag):
        return [(e.step, e.value) for e in events.Scalars(tag)]

    logged = series("train/loss")
    assert [s for s, _ in logged] == [s for s, _ in record["loss_history"]] == [2, 4, 6, 8]
    assert [v for _, v in logged] == pytest.approx([v for _, v in record["loss_history"]], rel=1e-5)
    assert [s for s, _ in series("eval/accuracy")] == [4, 8]
    assert [v for _, v in series("eval/accuracy")] == pytest.approx([h["accuracy"] for h in record["eval_history"]])
    lr = record["config"]["train"]["lr"]  # 8 steps, no warm-up step (int(0.06 * 8) = 0), linear decay to 0
    assert [v for _, v in series("train/lr")] == pytest.approx([lr * (8 - s) / 8 for s in (2, 4, 6, 8)], abs=1e-9)
    assert all(v > 0 for _, v in series("train/samples_per_s"))


def test_tracker_names_are_checked():
    assert tracker_names(None) == [] and tracker_names("none") == []
    with pytest.raises(UserError, match="Unknown tracker 'tensorbord'. Did you mean 'tensorboard'?"):
        tracker_names("tensorbord")


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed here")
def test_a_tracker_that_is_not_installed_says_what_to_install(tmp_path):
    with pytest.raises(UserError, match="'mlflow' package is not installed. pip install mlflow"):
        run(make_cfg(*TINY, "train.log_with=mlflow"), tmp_path)
