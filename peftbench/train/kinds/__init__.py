"""Task kinds: how each one batches its data and how it is evaluated, one file per kind named for it.

`make_loaders(cfg, data)` calls `train/kinds/<task.kind>.py`'s `make_loaders`, which gives the training
loop a training loader whose batches the model takes as `model(**batch)` (returning `.loss`), eval
loaders {split: (loader, metric suffix)} and where each split's features came from. Each eval loader's
dataset is an `EvalSet` that carries its own `score` function (accelerate keeps the dataset when it
prepares a loader), so `evaluate` needs no more than the training loop already passes it. A new kind is
its file here, its entry in config/kinds.py (fields and metrics) and its tests.

| kind | trains on | evaluates by |
|---|---|---|
| classification | one text or a pair, cross-entropy (MSE for regression) | argmax of the logits (the logit for regression) |
| generation | prompt + target, loss on the target tokens and eos only | greedy decoding (left-padded batches, max_new_tokens), then exact match / ROUGE, after `extract` |
| multiple_choice | prompt + the correct choice, loss on the choice | the log-likelihood of each choice: sum (accuracy) and per character (accuracy_norm) |
| seq2seq | encoder: prompt; decoder labels: target + eos | greedy decoding, exact match / ROUGE |
| image_classification | pixel values from the image processor, cross-entropy | argmax of the logits: accuracy |
| audio_classification | input features (AST: log-mel frames) from the feature extractor, cross-entropy | argmax of the logits: accuracy |
| token_classification | token lists, each word's tag on its first subword (others -100) | argmax per first subword, entity-level F1 (seqeval) |
"""

from __future__ import annotations

import importlib

import torch

from .base import EvalSet

__all__ = ["EvalSet", "evaluate", "make_loaders"]


def make_loaders(cfg, data):
    """(train loader, {split: (eval loader, metric suffix)}, {split: where its features came from}) for
    the task's kind: token features cached (tasks/tokenized.py) as `memory`, `disk` or `miss`; images and
    audio read in each batch (`none`)."""
    return importlib.import_module(f"{__name__}.{cfg.task.kind}").make_loaders(cfg, data)


@torch.no_grad()
def evaluate(model, eval_loaders: dict, task, accelerator) -> dict:
    """Every eval split scored its kind's way; predictions gathered across processes without duplicates."""
    model.eval()
    out = {}
    for loader, suffix in eval_loaders.values():
        out.update(loader.dataset.score(model, loader, accelerator, suffix))
    model.train()
    return out
