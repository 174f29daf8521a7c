"""95 % intervals for the evaluation's figures: over independent seeds, and over repeated cross-validation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided 95 % Student-t interval; `n` values went into it."""

    mean: float
    low: float
    high: float
    n: int
    method: str

    def as_dict(self, digits: int = 4) -> dict[str, Any]:
        """JSON-ready, rounded; a bound that does not exist (one value) is None."""
        values = asdict(self)
        return {key: _json_number(value, digits) for key, value in values.items()}

    def text(self, fmt: str = ".3f") -> str:
        """E.g. '0.912 (95 % interval 0.890 to 0.934, 3 seeds)'."""
        if self.n < 2:
            return f"{self.mean:{fmt}} (one value: no interval)"
        return f"{self.mean:{fmt}} (95 % interval {self.low:{fmt}} to {self.high:{fmt}}, n={self.n})"


def over_seeds(values: ArrayLike) -> Interval:
    """The mean of independent runs (one per seed) and its t-interval; a single run has none (nan bounds)."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) == 0:
        raise ValueError("no values to take an interval of")
    mean = float(array.mean())
    if len(array) < 2:
        return Interval(mean, math.nan, math.nan, 1, "single run")
    half = _t(len(array) - 1) * float(array.std(ddof=1)) / math.sqrt(len(array))
    return Interval(mean, mean - half, mean + half, len(array), "Student t over independent seeds")


def over_repeated_folds(scores: ArrayLike, *, folds: int) -> Interval:
    """Mean of the k x r fold scores of repeated k-fold cross-validation, with the corrected t-interval.

    Folds share most of their training rows, so their scores are correlated and the plain standard
    error (s / sqrt(k r)) is far too small. Nadeau and Bengio's correction (2003), as used for
    repeated k-fold by Bouckaert and Frank (2004), scales the variance by 1 / (k r) + n_test / n_train,
    with n_test / n_train = 1 / (k - 1).
    """
    array = np.asarray(scores, dtype=np.float64)
    if len(array) < 2 or folds < 2:
        raise ValueError("need at least two fold scores and two folds")
    mean = float(array.mean())
    variance = (1 / len(array) + 1 / (folds - 1)) * float(array.var(ddof=1))
    half = _t(len(array) - 1) * math.sqrt(variance)
    return Interval(mean, mean - half, mean + half, len(array), "corrected repeated k-fold t (Nadeau-Bengio)")


def _json_number(value: Any, digits: int) -> Any:
    if not isinstance(value, float):
        return value
    return None if math.isnan(value) else round(value, digits)


def _t(degrees_of_freedom: int) -> float:
    """The Student t value that `LEVEL` of the distribution lies within plus or minus (2.0639 for 24 df)."""
    low, high = 0.0, 1.0
    while _central_probability(high, degrees_of_freedom) < LEVEL:
        low, high = high, 2 * high
    while low < (middle := (low + high) / 2) < high:  # bisect down to neighbouring floats
        low, high = (middle, high) if _central_probability(middle, degrees_of_freedom) < LEVEL else (low, middle)
    return high


def _central_probability(t: float, degrees_of_freedom: int) -> float:
    """P(-t < T < t) for Student's t with a whole number of degrees of freedom, in closed form.

    Abramowitz and Stegun 26.7.3 and 26.7.4: a finite series in theta = atan(t / sqrt(df)), so the
    quantile is exact to rounding (tests/unit/test_intervals.py compares it with SciPy's).
    """
    if degrees_of_freedom < 1:
        raise ValueError(f"need at least one degree of freedom, not {degrees_of_freedom}")
    theta = math.atan(t / math.sqrt(degrees_of_freedom))
    cos_squared = math.cos(theta) ** 2
    if degrees_of_freedom % 2 == 0:
        term = total = 1.0
        for k in range(1, degrees_of_freedom // 2):
            term *= (2 * k - 1) / (2 * k) * cos_squared
            total += term
        return math.sin(theta) * total
    term = total = math.cos(theta)
    for k in range(1, (degrees_of_freedom - 1) // 2):
        term *= 2 * k / (2 * k + 1) * cos_squared
        total += term
    series = math.sin(theta) * total if degrees_of_freedom > 1 else 0.0
    return 2 / math.pi * (theta + series)
