"""95 % intervals for the evaluation's figures: over independent seeds, and over repeated cross-validation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats  # type: ignore[import-untyped]  # scipy ships no type hints

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
    return float(stats.t.ppf(0.5 + LEVEL / 2, degrees_of_freedom))
