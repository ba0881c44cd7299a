"""Which cells cannot be told apart from the best of their column: Welch's t-test over the seeds of the
best row and of each other row (two-sided, p >= ALPHA means "not distinguishable"), per task.

Seeds only: run files do not keep per-example predictions, so a paired bootstrap over dev examples is
not possible yet. With 3 seeds the test is weak; an unmarked cell is a difference the seeds show, a
marked one is a difference they do not."""

from __future__ import annotations

import math
import warnings

ALPHA = 0.05


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p of Welch's t-test; None with fewer than 2 values a side; 0 when both sides have no
    spread and differ, 1 when they are equal."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import ttest_ind

    if max(a) == min(a) and max(b) == min(b):
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():  # nearly equal values: scipy warns of precision loss, p is still defined
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return 1.0 if math.isnan(p) else p


def ties_with_best(groups: dict[str, list[float]]) -> tuple[str | None, dict[str, float]]:
    """(the key with the highest mean, {other key: p} for those the test cannot tell from it)."""
    scored = {k: v for k, v in groups.items() if v}
    if not scored:
        return None, {}
    best = max(scored, key=lambda k: (sum(scored[k]) / len(scored[k]), k))
    ties = {}
    for k, values in scored.items():
        p = welch_p(values, scored[best]) if k != best else None
        if p is not None and p >= ALPHA:
            ties[k] = p
    return best, ties
