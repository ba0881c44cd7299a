"""Batches in and scores out, shared by the training loop and every task kind: the per-epoch shuffle
(optionally grouped by length, `train.group_by_length`), the data loader (dynamic padding or a kind's
collate), and classification/regression scoring with its cross-process gather check."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from .. import metrics
from ..errors import UserError


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


class LengthGroupedShuffle(EpochShuffle):
    """EpochShuffle's order regrouped so that each batch holds examples of about the same length (as HF
    Trainer's `group_by_length`), so that little of a batch padded to its longest example is padding.

    The epoch's permutation is cut into mega-batches of `megabatch` batches; each is sorted by length,
    longest first, and cut into batches of `batch_size`; then the order of the batches is shuffled. Only
    the last batch can be short and it stays last, so the batches the DataLoader cuts from this order are
    exactly these (and under accelerate each process takes whole batches: its share). Like EpochShuffle it
    depends only on (seed, epoch, lengths): a resumed run and every process see the same batches."""

    def __init__(self, lengths, batch_size: int, megabatch: int, seed: int):
        super().__init__(len(lengths), seed)
        self.lengths = torch.as_tensor(lengths, dtype=torch.int64)
        self.batch_size, self.megabatch = batch_size, megabatch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order, size = torch.randperm(self.n, generator=g), self.batch_size * self.megabatch
        batches = []
        for start in range(0, self.n, size):
            chunk = order[start:start + size]
            chunk = chunk[torch.argsort(self.lengths[chunk], descending=True, stable=True)]
            batches += list(chunk.split(self.batch_size))
        short = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()] + short
        return iter(torch.cat(shuffled).tolist() if shuffled else [])


def example_lengths(features) -> list[int] | None:
    """Tokens per example (its input_ids), read from a tokenised split's offsets without building the
    examples; None for features without input_ids (images, audio)."""
    arrays = getattr(features, "arrays", None)
    if arrays is not None and "input_ids.offsets" in arrays:
        return [int(n) for n in (arrays["input_ids.offsets"][1:] - arrays["input_ids.offsets"][:-1])]
    if len(features) and "input_ids" not in features[0]:
        return None
    return [len(features[i]["input_ids"]) for i in range(len(features))]


def make_loader(features, tokenizer, batch_size: int, shuffle: bool, seed: int, collate=None,
                group_megabatch: int = 0) -> DataLoader:
    """Batches padded to their longest example by the tokenizer (dynamic padding), or made by `collate`;
    `group_megabatch` > 0 (with `shuffle`): batches grouped by length (LengthGroupedShuffle)."""
    if collate is None:
        def collate(batch):
            return tokenizer.pad(batch, return_tensors="pt")

    sampler = EpochShuffle(len(features), seed) if shuffle else None
    if shuffle and group_megabatch > 0:
        lengths = example_lengths(features)
        if lengths is None:
            raise UserError("train.group_by_length=true: these examples have no token lengths (images, audio). "
                            "Set train.group_by_length=false for this task.")
        sampler = LengthGroupedShuffle(lengths, batch_size, group_megabatch, seed)
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
