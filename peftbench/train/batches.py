"""Batches in and scores out, shared by the training loop and every task kind: the per-epoch shuffle,
the data loader (dynamic padding or a kind's collate), and classification/regression scoring with its
cross-process gather check."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from .. import metrics


class EpochShuffle(torch.utils.data.Sampler):
    """A new order each epoch that depends only on (seed, epoch): a resumed run sees the same batches,
    and every process of a multi-process run the same order (accelerate then gives each its share)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(features, tokenizer, batch_size: int, shuffle: bool, seed: int, collate=None) -> DataLoader:
    """Batches padded to their longest example by the tokenizer (dynamic padding), or made by `collate`."""
    if collate is None:
        def collate(batch):
            return tokenizer.pad(batch, return_tensors="pt")

    sampler = EpochShuffle(len(features), seed) if shuffle else None
    # Its own generator: starting an iteration draws a seed from it, not from the global RNG, so the
    # global RNG (dropout) goes on the same way in a run and in a run resumed mid-epoch.
    return DataLoader(features, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


def score_labels(model, loader, accelerator, suffix: str, task) -> dict:
    """Classification (argmax) or regression (the single logit) metrics of one eval split."""
    regression = not task.label_names
    preds, refs = [], []
    for batch in loader:
        labels = batch.pop("labels")
        logits = model(**batch).logits
        pred = logits.squeeze(-1).float() if regression else logits.argmax(-1)
        pred, labels = accelerator.gather_for_metrics((pred, labels))
        preds.append(pred.cpu())
        refs.append(labels.cpu())
    check_gathered(sum(len(r) for r in refs), len(loader.dataset))
    return metrics.compute(task.metrics, torch.cat(preds).numpy(), torch.cat(refs).numpy(), suffix)


def check_gathered(gathered: int, expected: int) -> None:
    """Every process's predictions, each example exactly once: a wrong count would bias the metric."""
    if gathered != expected:
        raise RuntimeError(f"evaluation gathered {gathered} predictions for {expected} examples")
