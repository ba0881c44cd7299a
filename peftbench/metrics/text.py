"""Metrics on generated text, computed offline: exact match (with GSM8K-style numeric answer
extraction) and ROUGE-1/2/L.

Each metric takes (predictions, references) as sequences of strings and returns the mean over
examples. ROUGE follows Lin (2004) as Google's `rouge-score` package computes it by default:
lowercase, every run of characters other than a-z and 0-9 is a token boundary, no stemming; ROUGE-N
is the F1 of clipped n-gram overlap, ROUGE-L the F1 of the longest common subsequence of tokens.
"""

from __future__ import annotations

import re
from collections import Counter

from .registry import METRICS

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)")


def normalize(text: str) -> str:
    """For exact match: lowercase, whitespace collapsed, surrounding spaces and end punctuation dropped."""
    return " ".join(str(text).lower().split()).strip(" .!?,;:")


def extract_number(text: str) -> str:
    """The answer of a GSM8K-style solution: the number after '####' if there is one, else the last
    number in the text; commas dropped and trailing zeros of decimals removed ('1,000.50' -> '1000.5').
    '' when the text has no number."""
    text = str(text)
    final = _FINAL.search(text)
    numbers = [final.group(1)] if final else _NUMBER.findall(text)
    if not numbers:
        return ""
    number = numbers[-1].replace(",", "")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number or "0"


EXTRACTORS = {"number": extract_number}


@METRICS.register("exact_match")
def exact_match(preds, refs) -> float:
    if len(refs) == 0:
        return 0.0
    return sum(normalize(p) == normalize(r) for p, r in zip(preds, refs)) / len(refs)


def tokens(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9]+", " ", str(text).lower()).split()


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_ref
    return 2 * precision * recall / (precision + recall)


def rouge_n(pred: str, ref: str, n: int) -> float:
    """F1 of the n-grams the prediction shares with the reference, each counted at most as often as
    it occurs in the reference."""
    def grams(words):
        return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    p, r = grams(tokens(pred)), grams(tokens(ref))
    return _f1(sum((p & r).values()), sum(p.values()), sum(r.values()))


def lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, 1):
            prev_diag, row[j] = row[j], prev_diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(pred: str, ref: str) -> float:
    p, r = tokens(pred), tokens(ref)
    return _f1(lcs_length(p, r), len(p), len(r))


def _mean(scores: list[float]) -> float:
    return sum(scores) / len(scores) if scores else 0.0


@METRICS.register("rouge1")
def rouge1(preds, refs) -> float:
    return _mean([rouge_n(p, r, 1) for p, r in zip(preds, refs)])


@METRICS.register("rouge2")
def rouge2(preds, refs) -> float:
    return _mean([rouge_n(p, r, 2) for p, r in zip(preds, refs)])


@METRICS.register("rougel")
def rougel(preds, refs) -> float:
    return _mean([rouge_l(p, r) for p, r in zip(preds, refs)])


@METRICS.register("accuracy_norm")
def accuracy_norm(preds, refs) -> float:
    """Multiple choice: accuracy when each choice's log-likelihood is divided by its length in
    characters (lm-evaluation-harness's acc_norm). The evaluator passes those predictions."""
    return METRICS.get("accuracy")(preds, refs)
