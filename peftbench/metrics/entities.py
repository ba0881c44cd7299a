"""Entity-level scores of tag sequences (token classification), as `seqeval` computes them by default
(the CoNLL evaluation script `conlleval`'s chunking): an entity is a maximal run of tokens `B-X I-X ...`;
an `I-X` after `O` or after another type starts one, so IOB1 files (CoNLL-2003's originals) and IOB2
files score the same way. An entity counts as found only with the same type, start and end.
Precision, recall and F1 are micro-averaged over all entities; `token_accuracy` is per token.

Each metric takes (predictions, references) as lists of tag-name lists, one per sentence.
"""

from __future__ import annotations

from .registry import METRICS


def _seqeval():
    from seqeval import metrics  # imported when a token classification task is scored

    return metrics


@METRICS.register("entity_f1")
def entity_f1(preds, refs) -> float:
    return float(_seqeval().f1_score(list(map(list, refs)), list(map(list, preds)), zero_division=0))


@METRICS.register("entity_precision")
def entity_precision(preds, refs) -> float:
    return float(_seqeval().precision_score(list(map(list, refs)), list(map(list, preds)), zero_division=0))


@METRICS.register("entity_recall")
def entity_recall(preds, refs) -> float:
    return float(_seqeval().recall_score(list(map(list, refs)), list(map(list, preds)), zero_division=0))


@METRICS.register("token_accuracy")
def token_accuracy(preds, refs) -> float:
    pairs = [(p, r) for pred, ref in zip(preds, refs) for p, r in zip(pred, ref)]
    return sum(p == r for p, r in pairs) / len(pairs) if pairs else 0.0
