"""Task kind `classification` (and regression, with `label_names: null`): one text or a pair, tokenised
once per task x tokenizer x max_length (tasks/tokenized.py), batches padded to their longest example;
scored by the argmax of the logits (or the single logit for regression) with the task's metrics."""

from __future__ import annotations

import functools

from ...models import load_tokenizer
from ...tasks.tokenized import tokenize
from ..batches import score_labels
from .base import EvalSet, loaders


def make_loaders(cfg, data):
    """(train loader, {split: (eval loader, metric suffix)}, {split: 'memory' | 'disk' | 'miss'})."""
    task = cfg.task
    tokenizer = load_tokenizer(cfg.model)
    cache = {}

    def features(split, df):
        out, cache[split] = tokenize(df, tokenizer, task.text_fields, cfg.model.max_length, cfg.cache_dir)
        return out

    train = features(task.train_split, data.train)
    evals = {s: EvalSet(features(s, df), functools.partial(score_labels, task=task)) for s, df in data.evals.items()}
    collate = functools.partial(_pad, tokenizer=tokenizer)
    return (*loaders(train, evals, collate, collate, cfg.train, cfg.seed, task), cache)


def _pad(batch, tokenizer):
    """Dynamic padding: each batch padded to its longest example by the tokenizer."""
    return tokenizer.pad(batch, return_tensors="pt")
