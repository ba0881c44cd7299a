"""Metrics, computed offline: the official GLUE metrics with scikit-learn and SciPy (`classification`),
exact match and ROUGE on generated text (`text`), all in one registry (`registry.METRICS`).
Importing the package registers every metric."""

from . import text  # noqa: F401  (registers exact_match, rouge1/2/l, accuracy_norm)
from .classification import accuracy, f1, matthews_correlation, pearson, spearmanr
from .registry import METRICS, compute
from .text import EXTRACTORS

__all__ = ["EXTRACTORS", "METRICS", "accuracy", "compute", "f1", "matthews_correlation", "pearson", "spearmanr"]
