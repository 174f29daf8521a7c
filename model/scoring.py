"""Binary classifier scores (precision, recall, F1, PR curve, average precision) and stratified folds, numpy only.

Each function gives what scikit-learn's namesake gives for binary 0/1 labels (tests/unit/test_scoring.py holds
values scikit-learn 1.9 computed): the figures the model reports stay comparable with published ones, and the
folds of `stratified_folds` are those of `StratifiedKFold(n_splits, shuffle=True, random_state=seed)`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Floats = NDArray[np.float64]
Indices = NDArray[np.intp]


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 when nothing was counted (scikit-learn's zero_division=0.0)."""
    return numerator / denominator if denominator else 0.0


def precision_recall_f1(labels: ArrayLike, predicted: ArrayLike) -> tuple[float, float, float]:
    """Precision, recall and F1 of 0/1 predictions against 0/1 labels; a score with nothing to count is 0."""
    truth, flagged = np.asarray(labels) == 1, np.asarray(predicted) == 1
    true_positives = int(np.sum(truth & flagged))
    positives, flags = int(np.sum(truth)), int(np.sum(flagged))
    return (
        _ratio(true_positives, flags),
        _ratio(true_positives, positives),
        _ratio(2.0 * true_positives, float(positives + flags)),
    )


def precision_recall_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[Floats, Floats, Floats]:
    """Precision and recall at every distinct score used as the cut (flag when score >= cut).

    As scikit-learn orders them: thresholds ascending, recall descending, and a last point
    (precision 1, recall 0) with no threshold. With no positive label recall is 1 throughout.
    """
    truth = np.asarray(labels).ravel() == 1
    values = np.asarray(scores, dtype=np.float64).ravel()
    if len(truth) != len(values) or len(values) == 0:
        raise ValueError(f"need as many scores as labels, at least one: {len(truth)} labels, {len(values)} scores")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite")
    order = np.argsort(values, kind="stable")[::-1]
    values, truth = values[order], truth[order]
    # The last row of each run of equal scores: all of them are flagged together.
    cut_rows = np.r_[np.nonzero(np.diff(values))[0], len(values) - 1]
    true_positives = np.cumsum(truth, dtype=np.float64)[cut_rows]
    flagged = 1.0 + cut_rows.astype(np.float64)
    precision = true_positives / flagged
    recall = true_positives / true_positives[-1] if true_positives[-1] else np.ones_like(true_positives)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], values[cut_rows][::-1]


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """The area under the precision-recall step curve: each recall step weighted by the precision reached there."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def stratified_folds(labels: ArrayLike, n_splits: int, seed: int) -> list[tuple[Indices, Indices]]:
    """(training rows, test rows) of each of `n_splits` folds, every class spread evenly over the folds.

    The rows of each class are dealt round-robin into fold sizes, then the fold numbers within the
    class are shuffled by a `numpy.random.RandomState(seed)`, classes taken in order of first
    appearance: the folds scikit-learn's `StratifiedKFold(n_splits, shuffle=True, random_state=seed)`
    makes, so a cross-validation's figures can be reproduced with it.
    """
    values = np.asarray(labels).ravel()
    if n_splits < 2:
        raise ValueError(f"need at least two folds, not {n_splits}")
    _, first_row, class_of_row = np.unique(values, return_index=True, return_inverse=True)
    # Number the classes by first appearance, as the shuffles below are drawn in that order.
    class_of_row = np.argsort(np.argsort(first_row))[class_of_row.ravel()]
    counts = np.bincount(class_of_row)
    if np.all(counts < n_splits):
        raise ValueError(f"n_splits={n_splits} is more than the rows of every class ({counts.tolist()})")
    dealt = np.sort(class_of_row)
    per_fold = np.array([np.bincount(dealt[i::n_splits], minlength=len(counts)) for i in range(n_splits)])
    rng = np.random.RandomState(seed)
    fold_of_row = np.empty(len(values), dtype=np.intp)
    for k in range(len(counts)):
        folds = np.arange(n_splits).repeat(per_fold[:, k])
        rng.shuffle(folds)
        fold_of_row[class_of_row == k] = folds
    rows = np.arange(len(values))
    return [(rows[fold_of_row != i], rows[fold_of_row == i]) for i in range(n_splits)]
