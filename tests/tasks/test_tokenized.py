"""The tokenised-split cache: a sweep tokenises a task once (in memory, or on disk across processes)."""

import json

import pandas as pd
import torch

from conftest import TINY, make_cfg
from peftbench.models import load_tokenizer
from peftbench.run.runner import run
from peftbench.tasks import tokenized
from peftbench.train import make_loader


def frame(n=40, shift=0):
    return pd.DataFrame({"sentence": [f"the movie {i + shift} was fine" * (1 + i % 3) for i in range(n)],
                         "label": [i % 2 for i in range(n)]})


def batches(split, tokenizer):
    return list(make_loader(split, tokenizer, 8, shuffle=True, seed=3))


def test_second_tokenisation_hits_the_cache_and_gives_identical_tensors(tmp_path):
    tok = load_tokenizer(make_cfg("model=tiny").model)
    tokenized.clear_memory()
    first, how1 = tokenized.tokenize(frame(), tok, ["sentence"], 16, tmp_path)
    again, how2 = tokenized.tokenize(frame(), tok, ["sentence"], 16, tmp_path)
    tokenized.clear_memory()  # as another process of the sweep would
    from_disk, how3 = tokenized.tokenize(frame(), tok, ["sentence"], 16, tmp_path)
    assert (how1, how2, how3) == ("miss", "memory", "disk")
    assert len(list((tmp_path / "tokenized").glob("*.npz"))) == 1
    expected = batches(first, tok)
    for split in (again, from_disk):
        for a, b in zip(expected, batches(split, tok), strict=True):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    plain = tok(frame()["sentence"].tolist(), truncation=True, max_length=16)
    assert from_disk[5] == {**{k: v[5] for k, v in plain.items()}, "labels": 1}


def test_other_data_or_max_length_is_another_key(tmp_path):
    tok = load_tokenizer(make_cfg("model=tiny").model)
    keys = {tokenized.cache_key(frame(), tok, ["sentence"], 16), tokenized.cache_key(frame(), tok, ["sentence"], 32),
            tokenized.cache_key(frame(shift=1), tok, ["sentence"], 16),
            tokenized.cache_key(frame().assign(label=[float(i % 2) for i in range(40)]), tok, ["sentence"], 16)}
    assert len(keys) == 4


def test_runs_of_a_sweep_share_the_tokenised_task(tmp_path):
    tokenized.clear_memory()
    cfg = [*TINY, f"cache_dir={tmp_path / 'cache'}"]
    a = run(make_cfg(*cfg), tmp_path / "a")
    b = run(make_cfg(*cfg, "method=bitfit"), tmp_path / "b")
    assert a["data"]["tokenized"]["cache"] == {"train": "miss", "validation": "miss"}
    assert b["data"]["tokenized"]["cache"] == {"train": "memory", "validation": "memory"}
    tokenized.clear_memory()
    c = run(make_cfg(*cfg, "seed=5"), tmp_path / "c")
    assert c["data"]["tokenized"]["cache"] == {"train": "disk", "validation": "disk"}
    again = run(make_cfg(*cfg), tmp_path / "d")  # the same config from cached tokens: the same run
    assert again["loss_history"] == a["loss_history"] and again["metrics"] == a["metrics"]
    assert json.loads((tmp_path / "a" / "run.json").read_text())["status"] == "ok"
