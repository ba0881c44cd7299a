"""Task kind `multiple_choice` (causal LMs): trains on prompt + the correct choice, loss on the choice;
scored by the log-likelihood of each choice: its sum (accuracy) and per character (accuracy_norm)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from ... import metrics
from ...models import load_tokenizer, special_ids
from ..batches import check_gathered
from . import lm
from .base import EvalSet, loaders


def make_loaders(cfg, data):
    task, max_length = cfg.task, cfg.model.max_length
    tokenizer, cache = load_tokenizer(cfg.model), {}
    features = lm.cached_features(cfg, tokenizer, cache)
    collate = functools.partial(lm.collate, pad_id=special_ids(tokenizer)["pad"])
    data.train = data.train.assign(target=[c[i] for c, i in zip(data.train["choices"], data.train["label"])])
    evals = {s: EvalSet(features(s, df, lm.choice_features, task.target_delimiter, max_length),
                        functools.partial(score_choices, task=task, labels=np.asarray(df["label"])), len(df))
             for s, df in data.evals.items()}
    train = features(task.train_split, data.train, lm.causal_features, task.target_delimiter, max_length)
    return (*loaders(train, evals, collate, collate, cfg.train, cfg.seed, task), cache)


def score_choices(model, loader, accelerator, suffix, task, labels):
    """The choice of the highest log-likelihood, in sum and per character, gathered across processes."""
    rows = []
    for batch in loader:
        score = lm.continuation_logprobs(model, batch)
        rows.append(torch.stack(accelerator.gather_for_metrics(
            (batch["example"].double(), batch["choice"].double(), score.double(), batch["chars"].double())), 1).cpu())
    table = torch.cat(rows).numpy()
    check_gathered(len(table), len(loader.dataset))  # one row per (example, choice)
    n = len(labels)
    width = int(table[:, 1].max()) + 1
    total = np.full((n, width), -np.inf)
    per_char = np.full((n, width), -np.inf)
    example, choice = table[:, 0].astype(int), table[:, 1].astype(int)
    total[example, choice] = table[:, 2]
    per_char[example, choice] = table[:, 2] / table[:, 3]
    preds = {"accuracy": total.argmax(1), "accuracy_norm": per_char.argmax(1)}
    return {m + suffix: metrics.METRICS.get(m)(preds[m], labels) for m in task.metrics}
