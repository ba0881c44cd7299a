"""Task kinds beyond classification: how each one batches its data and how it is evaluated.

`make_loaders(cfg, data)` gives the training loop what it gives for classification: a training
loader whose batches the model takes as `model(**batch)` (returning `.loss`), and eval loaders
{split: (loader, metric suffix)}. Each eval loader's dataset is an `EvalSet` that carries its own
`score` function (accelerate keeps the dataset when it prepares a loader), so `evaluate` needs no
more than the training loop already passes it.

| kind | trains on | evaluates by |
|---|---|---|
| generation | prompt + target, loss on the target tokens and eos only | greedy decoding (left-padded batches, max_new_tokens), then exact match / ROUGE, after `extract` |
| multiple_choice | prompt + the correct choice, loss on the choice | the log-likelihood of each choice: sum (accuracy) and per character (accuracy_norm) |
| seq2seq | encoder: prompt; decoder labels: target + eos | greedy decoding, exact match / ROUGE |
| image_classification | pixel values from the image processor, cross-entropy | argmax of the logits: accuracy |
| audio_classification | input features (AST: log-mel frames) from the feature extractor, cross-entropy | argmax of the logits: accuracy |
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import Dataset

from ... import metrics
from ...config import eval_splits
from ...models import load_feature_extractor, load_image_processor, load_tokenizer, special_ids
from ...tasks.tokenized import cached, recipe_key
from ..batches import check_gathered, make_loader, score_labels
from . import audio, image, lm


class EvalSet(Dataset):
    """One eval split's features, with `score(model, loader, accelerator, suffix) -> metrics`;
    `examples`: how many examples they score (multiple choice has one feature per choice)."""

    def __init__(self, features: list[dict], score, examples: int | None = None):
        self.features, self.score = features, score
        self.examples = len(features) if examples is None else examples

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]


def make_loaders(cfg, data):
    """(train loader, {split: (eval loader, metric suffix)}, {split: where its features came from})
    for the task's kind. Token features are cached like classification's (tasks/tokenized.py):
    `memory`, `disk` or `miss`; images and audio are read in each batch (`none`)."""
    task, t = cfg.task, cfg.train
    max_length = cfg.model.max_length
    if task.kind in ("image_classification", "audio_classification"):
        media, processor = ((image, load_image_processor(cfg.model)) if task.kind == "image_classification"
                            else (audio, load_feature_extractor(cfg.model)))
        collate = functools.partial(media.collate, processor=processor)
        train = media.features(data.train)
        evals = {s: EvalSet(media.features(df), functools.partial(score_labels, task=task))
                 for s, df in data.evals.items()}
        return (*_loaders(train, evals, collate, collate, t, cfg.seed, task),
                {s: "none" for s in (task.train_split, *data.evals)})
    tokenizer = load_tokenizer(cfg.model)
    pad = special_ids(tokenizer)["pad"]
    train_collate = functools.partial(lm.collate, pad_id=pad)
    cache = {}

    def features(split, df, build, *args, **kwargs):  # build(df, tokenizer, *args, **kwargs), cached
        recipe = {"kind": task.kind, "features": build.__name__, "args": args, "kwargs": kwargs}
        out, cache[split] = cached(recipe_key(recipe, df, tokenizer), cfg.cache_dir,
                                   lambda: build(df, tokenizer, *args, **kwargs))
        return out

    if task.kind == "seq2seq":
        train = features(task.train_split, data.train, lm.seq2seq_features, max_length)
        evals = {s: EvalSet(features(s, df, lm.seq2seq_features, max_length, with_labels=False),
                            functools.partial(_score_generated, task=task, tokenizer=tokenizer,
                                              refs=list(df["target"]), decoder_only=False))
                 for s, df in data.evals.items()}
        return (*_loaders(train, evals, train_collate, train_collate, t, cfg.seed, task), cache)
    if task.kind == "multiple_choice":  # trains on the correct choice as the answer
        data.train = data.train.assign(target=[c[i] for c, i in zip(data.train["choices"], data.train["label"])])
        evals = {s: EvalSet(features(s, df, lm.choice_features, task.target_delimiter, max_length),
                            functools.partial(_score_choices, task=task, labels=np.asarray(df["label"])), len(df))
                 for s, df in data.evals.items()}
        eval_collate = train_collate
    else:  # generation
        evals = {s: EvalSet(features(s, df, lm.prompt_features, max_length),
                            functools.partial(_score_generated, task=task, tokenizer=tokenizer,
                                              refs=list(df["target"]), decoder_only=True))
                 for s, df in data.evals.items()}
        eval_collate = functools.partial(lm.collate, pad_id=pad, left=True)  # generation continues the right end
    train = features(task.train_split, data.train, lm.causal_features, task.target_delimiter, max_length)
    return (*_loaders(train, evals, train_collate, eval_collate, t, cfg.seed, task), cache)


def _loaders(train, evals, train_collate, eval_collate, t, seed, task):
    """Classification's loaders (per-epoch shuffle, own generators: a resumed run replays the same
    order, and evaluation draws nothing from the RNG that dropout uses) with the kind's collate."""
    suffixes = eval_splits(task)
    eval_loaders = {s: (make_loader(ds, None, t.eval_batch_size, False, seed, collate=eval_collate), suffixes[s])
                    for s, ds in evals.items()}
    return make_loader(train, None, t.batch_size, True, seed, collate=train_collate,
                       group_megabatch=t.group_megabatch if t.group_by_length else 0), eval_loaders


@torch.no_grad()
def evaluate(model, eval_loaders: dict, task, accelerator) -> dict:
    """Every eval split scored its kind's way; predictions gathered across processes without duplicates."""
    model.eval()
    out = {}
    for loader, suffix in eval_loaders.values():
        out.update(loader.dataset.score(model, loader, accelerator, suffix))
    model.train()
    return out


def _score_generated(model, loader, accelerator, suffix, task, tokenizer, refs, decoder_only):
    pad = special_ids(tokenizer)["pad"]
    unwrapped = accelerator.unwrap_model(model)
    texts: dict[int, str] = {}
    for batch in loader:
        new = lm.generate(unwrapped, batch, tokenizer, task.max_new_tokens, decoder_only)
        new = accelerator.pad_across_processes(new, dim=1, pad_index=pad)
        new, index = accelerator.gather_for_metrics((new, batch["index"]))
        texts.update(zip(index.tolist(), lm.decode(tokenizer, new.cpu(), list(task.stop))))
    check_gathered(len(texts), len(refs))
    preds = lm.answers([texts[i] for i in range(len(refs))], task.extract)
    golds = lm.answers(refs, task.extract)
    return {m + suffix: metrics.METRICS.get(m)(preds, golds) for m in task.metrics}


def _score_choices(model, loader, accelerator, suffix, task, labels):
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
