"""How sure an accuracy is: the Wilson score interval.

An accuracy measured on a few queries is a binomial proportion, and its uncertainty is large:
0.60 on 40 queries and 0.90 on 21 overlap less than they seem to. Every accuracy the app shows
carries its number of queries and a 95% interval. The Wilson interval (Wilson, "Probable
inference, the law of succession, and statistical inference", 1927) stays inside [0, 1] and is
not degenerate at 0 or 1 correct, unlike the normal approximation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


@dataclass(frozen=True)
class Accuracy:
    """``n_correct`` right answers out of ``n`` queries, with a 95% Wilson interval."""

    n_correct: int
    n: int

    def __post_init__(self) -> None:
        if not 0 <= self.n_correct <= self.n:
            raise ValueError(f"n_correct must be between 0 and n (got {self.n_correct} of {self.n})")

    @classmethod
    def of(cls, value: float, n: int) -> Accuracy:
        """From an accuracy over ``n`` queries (``value * n`` is a whole number of queries)."""
        return cls(round(value * n), n)

    @property
    def value(self) -> float:
        return self.n_correct / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.n_correct, self.n)

    def to_json(self) -> dict:
        low, high = self.interval
        return {"n": self.n, "low": low, "high": high}

    def __str__(self) -> str:
        return f"{self.value:.0%} of {self.n} ({self.interval_text()})"

    def interval_text(self) -> str:
        """``"95% CI 45%-74%"``."""
        low, high = self.interval
        return f"95% CI {low:.0%}-{high:.0%}"


def curve(values: Sequence[float], n: int) -> list[Accuracy]:
    """One :class:`Accuracy` per point of a curve whose every point was measured on ``n`` queries."""
    return [Accuracy.of(v, n) for v in values]


def wilson_interval(n_correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """``(low, high)``: the Wilson score interval for ``n_correct`` successes in ``n`` trials
    (95% by default). With no trials nothing is known: ``(0, 1)``."""
    if n <= 0:
        return 0.0, 1.0
    p = n_correct / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # exactly 0 (1) with no (all) successes; the float formula leaves about 1e-17 there
    low = 0.0 if n_correct == 0 else max(0.0, centre - half)
    high = 1.0 if n_correct == n else min(1.0, centre + half)
    return low, high
