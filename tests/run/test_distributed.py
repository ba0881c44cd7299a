"""Real multi-process runs on CPU (gloo): `hardware=multi_cpu` starts 2 processes through torch elastic
and accelerate wraps the model in DDP. With dropout off, 2 processes x batch 8 see the same examples per
step as 1 process x batch 16, so they must train the same model and report the same evaluation; the eval
set (101 examples, batches of 16) does not split evenly over 2 processes, so a duplicated or dropped
sample would show."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, make_cfg
from peftbench.run.runner import run

SAME_DATA = [*TINY, "method=full", "train.lr=1e-3", "train.max_steps=6", "train.eval_batch_size=16",
             "task.generator_args.n_eval=101", "+model.arch.hidden_dropout_prob=0",
             "+model.arch.attention_probs_dropout_prob=0"]


def test_two_processes_train_and_evaluate_like_one(tmp_path):
    two = run(make_cfg(*SAME_DATA, "hardware=multi_cpu", "train.batch_size=8"), tmp_path / "two")
    one = run(make_cfg(*SAME_DATA, "hardware=cpu", "train.batch_size=16"), tmp_path / "one")
    print("2 processes", two["metrics"], two["loss_history"], "1 process", one["metrics"], one["loss_history"])
    assert two["status"] == one["status"] == "ok"
    assert two["memory"]["num_processes"] == 2 and one["memory"]["num_processes"] == 1
    assert two["data"]["eval_examples"] == {"validation": 101}
    assert two["metrics"] == pytest.approx(one["metrics"], abs=1e-9)
    assert [s for s, _ in two["loss_history"]] == [2, 4, 6]
    assert np.allclose(two["loss_history"], one["loss_history"], atol=1e-5)  # the mean over both processes
    assert two["throughput"]["train_samples"] == one["throughput"]["train_samples"] == 6 * 16  # all processes
    trained = [load_file(str(tmp_path / d / "trainable.safetensors")) for d in ("two", "one")]
    for name in trained[1]:
        torch.testing.assert_close(trained[0][name], trained[1][name], rtol=0, atol=1e-5)
    # one run file, written by the main process
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.suffix == ".json") == ["run.json"]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["status"] == "ok"


def test_two_processes_resume_bit_for_bit(tmp_path):
    """A 2-process run resumed from its step-4 checkpoint (each process's RNG state and counts from its
    own rank files) ends exactly where the uninterrupted one ended."""
    import shutil

    args = [*SAME_DATA, "hardware=multi_cpu", "train.batch_size=8", "train.checkpoint_every=2",
            "train.keep_checkpoint=true", "task.generator_args.n_train=32"]  # 2 steps an epoch: a reshuffle
    whole = run(make_cfg(*args), tmp_path / "whole")
    assert sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    assert {p.name for p in (tmp_path / "whole" / "checkpoints" / "step-0000004").glob("rank-*.json")} == \
        {"rank-0.json", "rank-1.json"}
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    (tmp_path / "resumed" / "run.json").write_text(json.dumps({**whole, "status": "killed"}))
    resumed = run(make_cfg(*args), tmp_path / "resumed")
    assert resumed["status"] == "ok" and resumed["resumed_from"]["step"] == 4
    assert resumed["metrics"] == whole["metrics"] and resumed["loss_history"] == whole["loss_history"]
    assert resumed["throughput"]["train_samples"] == whole["throughput"]["train_samples"] == 6 * 16
    trained = [load_file(str(tmp_path / d / "trainable.safetensors")) for d in ("whole", "resumed")]
    assert all(torch.equal(trained[0][name], trained[1][name]) for name in trained[0])


def _evaluate_in_process(out: str) -> None:
    """One of 2 processes (fresh interpreters started by torch elastic, as `hardware=multi_cpu` does)."""
    from accelerate import PartialState

    scores = _regression_scores(cpu=True)  # every process evaluates its share
    if PartialState().is_main_process:
        Path(out).write_text(json.dumps(scores))


def _regression_scores(cpu: bool) -> dict:
    """pearson/spearman of a random-init regression head on 101 examples: any sample gathered twice or
    missed moves them."""
    from types import SimpleNamespace

    from accelerate import Accelerator
    from transformers import BertConfig, BertForSequenceClassification

    from peftbench.train import evaluate, make_loader, score_labels
    from peftbench.train.kinds import EvalSet

    accelerator = Accelerator(cpu=cpu)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=1))
    g = torch.Generator().manual_seed(1)
    features = [{"input_ids": torch.randint(1, 100, (int(n),), generator=g).tolist(),
                 "attention_mask": [1] * int(n), "labels": float(i % 7)}
                for i, n in enumerate(torch.randint(4, 12, (101,), generator=g))]
    pad = SimpleNamespace(pad=lambda batch, return_tensors: {
        k: torch.tensor([f[k] + [0] * (max(len(b["input_ids"]) for b in batch) - len(f[k])) for f in batch])
        if k != "labels" else torch.tensor([f[k] for f in batch]) for k in batch[0]})
    task = SimpleNamespace(kind="classification", label_names=[], metrics=["pearson", "spearmanr"])
    scored = EvalSet(features, lambda *args: score_labels(*args, task=task))  # as train/kinds/classification.py
    loader = make_loader(scored, pad, batch_size=16, shuffle=False, seed=0)
    model, loader = accelerator.prepare(model, loader)  # each process gets its share of the batches
    return evaluate(model, {"validation": (loader, "")}, task, accelerator)


@pytest.mark.slow  # ~20 s; the run above checks the gathered count on every evaluation too
def test_eval_gather_is_exact_over_two_processes(tmp_path):
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    out = tmp_path / "scores.json"
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=2, rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn")
    elastic_launch(config, _evaluate_in_process)(str(out))
    two = json.loads(out.read_text())
    one = _regression_scores(cpu=True)
    print("eval gather: 2 processes", two, "1 process", one)
    assert 0 < abs(one["pearson"]) < 1 and two == pytest.approx(one, abs=1e-6)
