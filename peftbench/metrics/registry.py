"""The metric registry: `METRICS.get(name)(preds, refs) -> float`; `compute` scores several at once."""

from __future__ import annotations

import numpy as np

from ..errors import Registry

METRICS = Registry("metric")


def compute(names, preds, refs, suffix: str = "") -> dict[str, float]:
    preds, refs = np.asarray(preds), np.asarray(refs)
    return {name + suffix: METRICS.get(name)(preds, refs) for name in names}
