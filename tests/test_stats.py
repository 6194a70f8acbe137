"""The Wilson interval against textbook values (computed by hand from the closed form)."""

from __future__ import annotations

import pytest

from core.stats import Accuracy, wilson_interval


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (8, 10, 0.4902, 0.9433),  # Newcombe (1998), table I: 0.490-0.943
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (24, 40, 0.4460, 0.7365),
        (19, 21, 0.7109, 0.9735),
    ],
)
def test_known_intervals(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_more_queries_narrow_the_interval_and_contain_the_estimate():
    widths = []
    for n in (10, 40, 160):
        lo, hi = wilson_interval(n // 2, n)
        assert lo < 0.5 < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


def test_accuracy_object():
    acc = Accuracy.of(0.6, 40)
    assert (acc.n_correct, acc.n, acc.value) == (24, 40, 0.6)
    assert acc.to_json() == {"n": 40, "low": pytest.approx(0.4460, abs=1e-4), "high": pytest.approx(0.7365, abs=1e-4)}
    assert str(acc) == "60% of 40 (95% CI 45%-74%)"
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        Accuracy(5, 4)


def test_edges_are_exact():
    """No (all) right answers: the bound is exactly 0 (1), not a float residue of about 1e-17."""
    assert [wilson_interval(0, n)[0] for n in (35, 50, 63)] == [0.0, 0.0, 0.0]
    assert [wilson_interval(n, n)[1] for n in (35, 50, 63)] == [1.0, 1.0, 1.0]
