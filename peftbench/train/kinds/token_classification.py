"""Task kind `token_classification` (NER, tagging): sentences as token lists, each token's tag predicted by
a linear head on its first subword (the tag trains there; the other subwords and the special tokens carry
label -100, so no loss); scored on the word-level tag sequences with the entity-level metrics of
metrics/entities.py (seqeval). Words cut off by `model.max_length` are scored as predicted `O`, so a
truncated sentence loses its entities there instead of leaving the metric."""

from __future__ import annotations

import functools

import torch

from ... import metrics
from ...errors import UserError
from ...models import load_tokenizer
from ..batches import check_gathered
from . import lm
from .base import EvalSet, loaders

IGNORE = -100


def make_loaders(cfg, data):
    """(train loader, {split: (eval loader, metric suffix)}, {split: 'memory' | 'disk' | 'miss'})."""
    task, max_length = cfg.task, cfg.model.max_length
    tokenizer, cache = load_tokenizer(cfg.model), {}
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"task kind token_classification needs a fast tokenizer (word ids of each subword); "
                        f"model '{cfg.model.name}' has {type(tokenizer).__name__}.")
    features = lm.cached_features(cfg, tokenizer, cache)
    train = features(task.train_split, data.train, word_features, max_length)
    evals = {s: EvalSet(features(s, df, word_features, max_length),
                        functools.partial(score_tags, task=task, golds=df["tags"].tolist()))
             for s, df in data.evals.items()}
    pad = tokenizer.pad_token_id
    train_collate = functools.partial(collate, pad_id=pad, keep_index=False)
    eval_collate = functools.partial(collate, pad_id=pad, keep_index=True)
    return (*loaders(train, evals, train_collate, eval_collate, cfg.train, cfg.seed, task), cache)


def word_features(df, tokenizer, max_length: int) -> list[dict]:
    """Each sentence tokenised word by word (truncated to `max_length`): input ids, attention mask (and
    token type ids), `labels` (a word's tag on its first subword, -100 elsewhere) and its row `index`."""
    enc = tokenizer(df["tokens"].tolist(), is_split_into_words=True, truncation=True, max_length=max_length)
    out = []
    for i, tags in enumerate(df["tags"]):
        labels, previous = [], None
        for word in enc.word_ids(i):
            labels.append(IGNORE if word is None or word == previous else int(tags[word]))
            previous = word
        out.append({**{k: v[i] for k, v in enc.items()}, "labels": labels, "index": i})
    return out


def collate(batch: list[dict], pad_id: int, keep_index: bool) -> dict:
    """Right-padded tensors (labels padded with -100); `index` (the sentence's row) only for evaluation."""
    width = max(len(f["input_ids"]) for f in batch)
    out = {}
    for key in batch[0]:
        if key == "index":
            if keep_index:
                out[key] = torch.tensor([f[key] for f in batch])
            continue
        fill = IGNORE if key == "labels" else pad_id if key == "input_ids" else 0
        out[key] = torch.tensor([f[key] + [fill] * (width - len(f[key])) for f in batch])
    return out


def score_tags(model, loader, accelerator, suffix: str, task, golds: list[list[int]]) -> dict:
    """Each sentence's predicted tags (at first subwords; `O` for words cut off), gathered across
    processes, scored against its gold tags with the task's metrics."""
    words: dict[int, list[int]] = {}
    for batch in loader:
        index = batch.pop("index")
        pred = model(**batch).logits.argmax(-1)
        pred = pred.masked_fill(batch["labels"] == IGNORE, IGNORE)
        pred = accelerator.pad_across_processes(pred, dim=1, pad_index=IGNORE)
        pred, index = accelerator.gather_for_metrics((pred, index))
        for i, row in zip(index.tolist(), pred.cpu()):
            words[i] = row[row != IGNORE].tolist()
    check_gathered(len(words), len(golds))
    names = list(task.label_names)
    outside = "O" if "O" in names else names[0]
    pred_tags = [[names[t] for t in words[i]] + [outside] * (len(gold) - len(words[i])) for i, gold in enumerate(golds)]
    gold_tags = [[names[t] for t in gold] for gold in golds]
    return {m + suffix: metrics.METRICS.get(m)(pred_tags, gold_tags) for m in task.metrics}
