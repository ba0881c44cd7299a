"""Task kind `seq2seq`: encoder input the prompt, decoder labels the target + eos; scored by greedy
decoding, then exact match / ROUGE (kinds/lm.py)."""

from __future__ import annotations

import functools

from ...models import load_tokenizer, special_ids
from . import lm
from .base import EvalSet, loaders


def make_loaders(cfg, data):
    task, max_length = cfg.task, cfg.model.max_length
    tokenizer, cache = load_tokenizer(cfg.model), {}
    features = lm.cached_features(cfg, tokenizer, cache)
    collate = functools.partial(lm.collate, pad_id=special_ids(tokenizer)["pad"])
    train = features(task.train_split, data.train, lm.seq2seq_features, max_length)
    evals = {s: EvalSet(features(s, df, lm.seq2seq_features, max_length, with_labels=False),
                        functools.partial(lm.score_generated, task=task, tokenizer=tokenizer,
                                          refs=list(df["target"]), decoder_only=False))
             for s, df in data.evals.items()}
    return (*loaders(train, evals, collate, collate, cfg.train, cfg.seed, task), cache)
