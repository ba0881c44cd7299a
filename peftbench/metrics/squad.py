"""Exact match and F1 of extractive question answering, as the official SQuAD evaluation scripts compute
them (v2.0's `evaluate-v2.0.py`, which scores v1.1 data as `evaluate-v1.1.py` does).

Answers are normalised (lowercase; punctuation, the articles a / an / the and extra whitespace removed);
an example scores its best match over its gold answers; F1 is over the normalised answers' tokens (bag
of words). An unanswerable question (SQuAD v2) has the gold answer "" alone: a prediction of "" scores 1
on both, anything else 0. Both metrics are means over examples, in [0, 1] (the scripts print x 100).

Each metric takes (predictions, references): predicted strings, and for each example its list of gold
answer strings (empty: no answer).
"""

from __future__ import annotations

import re
import string
from collections import Counter

from .registry import METRICS

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation removed, articles removed, whitespace collapsed (the scripts' order)."""
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _golds(answers) -> list[str]:
    """The gold answers that survive normalisation; [""] for an unanswerable question (v2's rule)."""
    return [a for a in answers if normalize_answer(a)] or [""]


def exact(pred: str, gold: str) -> int:
    return int(normalize_answer(pred) == normalize_answer(gold))


def f1(pred: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:  # no answer on either side: right only if both are empty
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _mean(scores: list[float]) -> float:
    return sum(scores) / len(scores) if scores else 0.0


@METRICS.register("squad_exact_match")
def squad_exact_match(preds, refs) -> float:
    return _mean([max(exact(p, g) for g in _golds(r)) for p, r in zip(preds, refs)])


@METRICS.register("squad_f1")
def squad_f1(preds, refs) -> float:
    return _mean([max(f1(p, g) for g in _golds(r)) for p, r in zip(preds, refs)])
