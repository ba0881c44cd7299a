"""The official GLUE metrics, computed offline with scikit-learn and scipy.

Each metric takes (predictions, references) as 1-D arrays and returns a float. Classification
predictions are label ids; regression predictions are floats. `evaluate.load` is not used: it fetches
metric scripts from a hub at run time and fails offline.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from .registry import METRICS


@METRICS.register("accuracy")
def accuracy(preds, refs) -> float:
    return float(skm.accuracy_score(refs, preds))


@METRICS.register("f1")
def f1(preds, refs) -> float:
    """Binary F1 of the positive class (label 1), as GLUE reports for MRPC and QQP."""
    return float(skm.f1_score(refs, preds, average="binary", pos_label=1, zero_division=0.0))


@METRICS.register("matthews_correlation")
def matthews_correlation(preds, refs) -> float:
    return float(skm.matthews_corrcoef(refs, preds))


def _constant(x) -> bool:
    return np.ptp(np.asarray(x, dtype=float)) == 0


@METRICS.register("pearson")
def pearson(preds, refs) -> float:
    """Pearson r; 0.0 when either side is constant (undefined otherwise)."""
    if _constant(preds) or _constant(refs):
        return 0.0
    return float(stats.pearsonr(preds, refs)[0])


@METRICS.register("spearmanr")
def spearmanr(preds, refs) -> float:
    if _constant(preds) or _constant(refs):
        return 0.0
    return float(stats.spearmanr(preds, refs)[0])
