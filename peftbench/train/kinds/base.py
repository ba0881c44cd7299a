"""What every task kind shares: `EvalSet` (an eval split's features carrying the function that scores
them), the loaders of a kind (`loaders`), and the loaders of the kinds read from media files
(`media_loaders`: images, audio)."""

from __future__ import annotations

import functools

from torch.utils.data import Dataset

from ...config import eval_splits
from ..batches import make_loader, score_labels


class EvalSet(Dataset):
    """One eval split's features, with `score(model, loader, accelerator, suffix) -> metrics`;
    `examples`: how many examples they score (multiple choice has one feature per choice)."""

    def __init__(self, features, score, examples: int | None = None):
        self.features, self.score = features, score
        self.examples = len(features) if examples is None else examples

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]


def loaders(train, evals: dict, train_collate, eval_collate, t, seed: int, task):
    """(train loader, {split: (eval loader, metric suffix)}): the per-epoch shuffle (length-grouped with
    `train.group_by_length`) and own generators of `batches.make_loader` (a resumed run replays the same
    order, and evaluation draws nothing from the RNG that dropout uses) with the kind's collate."""
    suffixes = eval_splits(task)
    eval_loaders = {s: (make_loader(ds, None, t.eval_batch_size, False, seed, collate=eval_collate), suffixes[s])
                    for s, ds in evals.items()}
    return make_loader(train, None, t.batch_size, True, seed, collate=train_collate,
                       group_megabatch=t.group_megabatch if t.group_by_length else 0), eval_loaders


def media_loaders(cfg, data, media, processor):
    """Loaders of a kind read from files when each batch is made (`media`: the kind's module with
    `features(df)` and `collate(batch, processor)`), scored like classification; no token cache."""
    task = cfg.task
    collate = functools.partial(media.collate, processor=processor)
    evals = {s: EvalSet(media.features(df), functools.partial(score_labels, task=task)) for s, df in data.evals.items()}
    return (*loaders(media.features(data.train), evals, collate, collate, cfg.train, cfg.seed, task),
            {s: "none" for s in (task.train_split, *data.evals)})
