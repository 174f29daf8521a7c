"""model/scoring.py gives scikit-learn's scores and folds: compared with values scikit-learn 1.9.1 computed.

tests/fixtures/scikit_learn_scores.json holds `precision_recall_curve`, `average_precision_score`,
`precision_score`, `recall_score`, `f1_score` (zero_division=0.0) and `StratifiedKFold(n_splits,
shuffle=True, random_state=seed)` folds of the inputs built below (labels and scores from
`numpy.random.RandomState`, whose stream numpy keeps fixed), so the figures and the AI4I folds
stay those of scikit-learn without it installed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model import scoring

FIXTURE = json.loads((Path(__file__).parent.parent / "fixtures" / "scikit_learn_scores.json").read_text())


def labels_of(n: int, rate: float, seed: int) -> np.ndarray:
    return (np.random.RandomState(seed).rand(n) < rate).astype(np.int64)


def scores_of(labels: np.ndarray, seed: int, decimals: int | None) -> np.ndarray:
    rng = np.random.RandomState(seed + 1000)
    raw = 1 / (1 + np.exp(-(rng.normal(0, 1, len(labels)) + 1.5 * labels)))
    return np.round(raw, decimals) if decimals is not None else raw


def case_id(case: dict[str, Any]) -> str:
    return "-".join(f"{key}{case[key]}" for key in ("n", "rate", "seed", "n_splits", "flip") if key in case)


@pytest.mark.parametrize("case", FIXTURE["pr_curves"], ids=case_id)
def test_precision_recall_curve_and_average_precision_equal_scikit_learns(case: dict[str, Any]) -> None:
    labels = labels_of(case["n"], case["rate"], case["seed"])
    scores = scores_of(labels, case["seed"], case["decimals"])

    precision, recall, thresholds = scoring.precision_recall_curve(labels, scores)

    assert precision.tolist() == case["precision"]
    assert recall.tolist() == case["recall"]
    assert thresholds.tolist() == case["thresholds"]
    assert scoring.average_precision(labels, scores) == case["average_precision"]


@pytest.mark.parametrize("case", FIXTURE["classification"], ids=case_id)
def test_precision_recall_f1_equal_scikit_learns(case: dict[str, Any]) -> None:
    labels = labels_of(case["n"], case["rate"], case["seed"])
    flipped = np.random.RandomState(case["seed"] + 7).rand(case["n"]) < case["flip"]
    predicted = np.where(flipped, 1 - labels, labels)
    if case["flip"] == 1.0 and case["rate"] == 0.0:
        predicted = np.zeros(case["n"], dtype=np.int64)

    assert scoring.precision_recall_f1(labels, predicted) == (case["precision"], case["recall"], case["f1"])


@pytest.mark.parametrize("case", FIXTURE["stratified_folds"], ids=case_id)
def test_stratified_folds_equal_scikit_learns(case: dict[str, Any]) -> None:
    labels = labels_of(case["n"], case["rate"], case["label_seed"])

    folds = scoring.stratified_folds(labels, case["n_splits"], case["seed"])

    fold_of_row = np.full(case["n"], -1, dtype=np.int64)
    for i, (train, test) in enumerate(folds):
        assert np.intersect1d(train, test).size == 0
        assert len(train) + len(test) == case["n"]
        fold_of_row[test] = i
    if "fold_of_row" in case:
        assert fold_of_row.tolist() == case["fold_of_row"]
    else:
        assert hashlib.sha256(fold_of_row.tobytes()).hexdigest() == case["fold_of_row_sha256"]


def test_each_fold_holds_its_share_of_each_class() -> None:
    labels = labels_of(1000, 0.034, 3)

    folds = scoring.stratified_folds(labels, 5, seed=9)

    failures = sorted(int(labels[test].sum()) for _, test in folds)
    assert failures[-1] - failures[0] <= 1
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(1000))


def test_another_seed_gives_other_folds() -> None:
    labels = labels_of(500, 0.1, 1)

    first, second = scoring.stratified_folds(labels, 5, seed=0), scoring.stratified_folds(labels, 5, seed=1)

    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, second, strict=True))


def test_more_folds_than_rows_of_every_class_is_refused() -> None:
    with pytest.raises(ValueError, match="n_splits=5"):
        scoring.stratified_folds([0, 1, 0, 1, 1, 0], 5, seed=0)


def test_scores_with_nothing_to_count_are_zero() -> None:
    assert scoring.precision_recall_f1([0, 0, 0], [0, 0, 0]) == (0.0, 0.0, 0.0)
