"""Task kind `generation` (causal LMs): trains on prompt + target with the loss on the target tokens and
eos only; scored by greedy decoding of left-padded batches (`max_new_tokens`), then exact match / ROUGE
after `extract` (kinds/lm.py)."""

from __future__ import annotations

import functools

from ...models import load_tokenizer, special_ids
from . import lm
from .base import EvalSet, loaders


def make_loaders(cfg, data):
    task, max_length = cfg.task, cfg.model.max_length
    tokenizer, cache = load_tokenizer(cfg.model), {}
    features = lm.cached_features(cfg, tokenizer, cache)
    pad = special_ids(tokenizer)["pad"]
    evals = {s: EvalSet(features(s, df, lm.prompt_features, max_length),
                        functools.partial(lm.score_generated, task=task, tokenizer=tokenizer,
                                          refs=list(df["target"]), decoder_only=True))
             for s, df in data.evals.items()}
    train = features(task.train_split, data.train, lm.causal_features, task.target_delimiter, max_length)
    return (*loaders(train, evals, functools.partial(lm.collate, pad_id=pad),
                     functools.partial(lm.collate, pad_id=pad, left=True),  # generation continues the right end
                     cfg.train, cfg.seed, task), cache)
