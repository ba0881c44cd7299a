import math

import pytest

from peftbench import metrics
from peftbench.errors import UserError


def test_accuracy():
    assert metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5


def test_f1_of_the_positive_class():
    # tp=2, fp=1, fn=0 -> P=2/3, R=1 -> F1 = 0.8
    assert metrics.f1([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(0.8)
    # tp=1, fp=1, fn=1 -> 0.5
    assert metrics.f1([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)


def test_matthews_correlation():
    # tp=2, tn=1, fp=1, fn=0 -> (2*1 - 1*0) / sqrt(3*2*2*1)
    assert metrics.matthews_correlation([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(2 / math.sqrt(12))
    assert metrics.matthews_correlation([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.0)


def test_pearson_and_spearman():
    # deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5): sum xy = 4, sum x2 = sum y2 = 5 -> 0.8
    assert metrics.pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert metrics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # same ranks as above -> 0.8, whatever the values
    assert metrics.spearmanr([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)


def test_correlation_of_a_constant_is_zero_not_nan():
    assert metrics.pearson([1, 1, 1], [1, 2, 3]) == 0.0
    assert metrics.spearmanr([1, 2, 3], [2, 2, 2]) == 0.0


def test_compute_names_and_suffixes():
    out = metrics.compute(["accuracy", "f1"], [1, 0], [1, 1], suffix="_mm")
    assert out == {"accuracy_mm": 0.5, "f1_mm": pytest.approx(2 / 3)}


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(UserError, match=r"Unknown metric 'acuracy'. Did you mean 'accuracy'\?"):
        metrics.compute(["acuracy"], [1], [1])
