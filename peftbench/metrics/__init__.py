"""Metrics, computed offline: the official GLUE metrics with scikit-learn and SciPy (`classification`),
exact match and ROUGE on generated text (`text`), entity-level F1 of tag sequences with seqeval
(`entities`), SQuAD's exact match and F1 (`squad`), all in one registry (`registry.METRICS`).
Importing the package registers every metric."""

from . import entities, squad, text  # noqa: F401  (register entity_*, squad_*, exact_match, rouge1/2/l, ...)
from .classification import accuracy, f1, matthews_correlation, pearson, spearmanr
from .registry import METRICS, compute
from .text import EXTRACTORS

__all__ = ["EXTRACTORS", "METRICS", "accuracy", "compute", "f1", "matthews_correlation", "pearson", "spearmanr"]
