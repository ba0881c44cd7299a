"""`train.group_by_length`: batches of similar length (mega-batches sorted by length, batch order shuffled,
seeded), the same batches in a resumed run and under several processes, and the padding efficiency of the
timed window in the run file and the cost table."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, make_cfg
from peftbench.cli import main
from peftbench.errors import UserError
from peftbench.run.runner import run
from peftbench.runfile import write_atomic
from peftbench.train.batches import EpochShuffle, LengthGroupedShuffle, example_lengths, make_loader

LENGTHS = torch.randint(3, 60, (203,), generator=torch.Generator().manual_seed(0)).tolist()


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


def _padding(batches: list[list[int]]) -> float:
    """real / padded tokens of batches padded to their longest example"""
    return sum(LENGTHS[i] for b in batches for i in b) / sum(len(b) * max(LENGTHS[i] for i in b) for b in batches)


def test_grouped_order_is_a_seeded_permutation_of_sorted_mega_batches():
    sampler = LengthGroupedShuffle(LENGTHS, batch_size=8, megabatch=4, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(LENGTHS)))
    assert order == list(LengthGroupedShuffle(LENGTHS, 8, 4, seed=3))  # depends only on (seed, epoch)
    sampler.set_epoch(1)
    assert list(sampler) != order and sorted(sampler) == sorted(order)
    batches = _batches(order, 8)
    assert len(batches[-1]) == len(LENGTHS) % 8  # the one short batch stays last
    # each full batch is a run of one mega-batch sorted longest first: its lengths do not increase
    assert all([LENGTHS[i] for i in b] == sorted((LENGTHS[i] for i in b), reverse=True) for b in batches)
    plain = _padding(_batches(list(EpochShuffle(len(LENGTHS), 3)), 8))
    print("padding efficiency: plain", plain, "grouped", _padding(batches))
    assert _padding(batches) > 0.8 and plain < 0.6


def test_each_of_two_processes_gets_whole_grouped_batches():
    """accelerate shards a loader's batches over processes (BatchSamplerShard): every process takes whole
    batches of the grouped order, and together they see the epoch once."""
    from accelerate.data_loader import BatchSamplerShard

    sampler = LengthGroupedShuffle(LENGTHS, batch_size=8, megabatch=4, seed=3)
    grouped = _batches(list(sampler), 8)
    batch_sampler = torch.utils.data.BatchSampler(sampler, 8, drop_last=False)
    shares = [list(BatchSamplerShard(batch_sampler, num_processes=2, process_index=i, even_batches=False))
              for i in range(2)]
    assert sorted(map(tuple, shares[0] + shares[1])) == sorted(map(tuple, grouped))


def test_grouping_needs_token_lengths():
    features = [{"pixel_values": [0.0], "labels": 0}] * 4
    assert example_lengths(features) is None
    with pytest.raises(UserError, match="train.group_by_length=false"):
        make_loader(features, None, 2, shuffle=True, seed=0, collate=list, group_megabatch=2)


GROUPED = [*TINY, "train.group_by_length=true", "train.group_megabatch=2", "task.generator_args.n_train=200",
           "train.batch_size=16", "train.max_steps=16"]


def test_a_grouped_run_records_its_padding_efficiency_and_resumes_bit_equal(tmp_path):
    """13 batches an epoch: the checkpoint at step 15 is mid-epoch, in the second epoch's order."""
    whole = run(make_cfg(*GROUPED, "train.checkpoint_every=15", "train.keep_checkpoint=true"), tmp_path / "run")
    plain = run(make_cfg(*GROUPED, "train.group_by_length=false"), tmp_path / "plain")
    efficiency = [r["throughput"]["padding_efficiency"] for r in (whole, plain)]
    window = whole["throughput"]["window"]
    print("padding efficiency grouped, plain:", efficiency)
    assert efficiency[0] == round(window["tokens"] / window["padded_tokens"], 4) and efficiency[0] > efficiency[1]
    assert whole["memory"]["group_by_length"] is True and plain["throughput"]["group_by_length"] is False
    assert whole["memory"]["threads"] >= 1 and whole["memory"]["threads_why"]  # hardware.threads and why
    shutil.copy(tmp_path / "run" / "trainable.safetensors", tmp_path / "whole.safetensors")
    # as if killed after its checkpoint at step 15
    (tmp_path / "run" / "run.json").write_text(json.dumps({**whole, "status": "killed"}))
    resumed = run(make_cfg(*GROUPED, "train.checkpoint_every=15", "train.keep_checkpoint=true"), tmp_path / "run")
    assert resumed["resumed_from"]["step"] == 15 and resumed["loss_history"] == whole["loss_history"]
    assert resumed["metrics"] == whole["metrics"]
    a, b = load_file(str(tmp_path / "whole.safetensors")), load_file(str(tmp_path / "run" / "trainable.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_grouped_run_over_two_processes(tmp_path):
    record = run(make_cfg(*GROUPED, "hardware=multi_cpu", "train.batch_size=8", "train.max_steps=6"), tmp_path)
    assert record["status"] == "ok" and record["memory"]["num_processes"] == 2
    assert record["throughput"]["train_samples"] == 6 * 16  # every process its batch of 8
    assert record["throughput"]["padding_efficiency"] > 0.8


def test_cost_table_shows_padding_efficiency(tmp_path, capsys):
    for seed, (grouped, efficiency) in enumerate([(True, 0.9), (False, 0.4)], 1):
        record = {"status": "ok", "model": "m", "method": "lora", "task": "glue/sst2", "seed": seed,
                  "config": {"task": {"name": "glue/sst2", "metrics": ["accuracy"]}, "method": {"name": "lora"},
                             "train": {"group_by_length": grouped}},
                  "metrics": {"accuracy": 0.8}, "main_metric": "accuracy", "main_score": 0.8,
                  "params": {"trainable": 10, "total": 100, "trainable_pct": 10.0},
                  "memory": {"device": "cpu", "peak_rss_mb": 100.0, "mixed_precision": "bf16",
                             "mixed_precision_why": "auto: CPU flags avx512_bf16"},
                  "throughput": {"train_samples_per_s": 10.0, "padding_efficiency": efficiency},
                  "timing": {"train_s": 1.0}}
        write_atomic(Path(tmp_path) / f"s{seed}" / "run.json", record)
    assert main(["report", str(tmp_path), "--table", "cost"]) == 0
    out = capsys.readouterr().out
    assert "real/padded tokens" in out and "| 0.65 |" in out  # the mean over the row's runs
    assert "length-grouped in 1 of 2 runs" in out
    assert "float32, bf16 (auto: CPU flags avx512_bf16)" in out
