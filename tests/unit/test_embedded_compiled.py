"""The benchmark's compiled model (benchmarks/embedded_model.py): XGBoost's probabilities, missing values too."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from benchmarks.embedded_model import CompiledModel, compile_booster, installed_bytes
from benchmarks.report import XGBOOST_DISTRIBUTION


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    """A small binary:logistic booster whose trees split on features that are often missing."""
    generator = np.random.default_rng(11)
    features = generator.normal(size=(2000, 6)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * features[:, 1] ** 2 - features[:, 2] > 0.3).astype(np.float32)
    features[generator.random(features.shape) < 0.2] = np.nan  # XGBoost learns a default branch for each split
    return xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 1, "base_score": 0.3},
        xgb.DMatrix(features, label=labels, missing=np.nan),
        num_boost_round=25,
    )


def test_the_compiled_model_predicts_xgboosts_probabilities_missing_values_included(
    booster: xgb.Booster, tmp_path: Path
) -> None:
    library, _ = compile_booster(booster, tmp_path, log=lambda _: None)
    compiled = CompiledModel(library)
    generator = np.random.default_rng(12)
    rows = generator.normal(size=(300, 6)).astype(np.float32)
    rows[generator.random(rows.shape) < 0.3] = np.nan
    rows[0, :] = np.nan  # every value missing: each split's default branch

    expected = booster.inplace_predict(rows, missing=np.nan)
    got = [compiled.predict_one([float(value) for value in row]) for row in rows]

    assert compiled.features == 6
    assert any(math.isnan(value) for value in rows[5])  # the rows do exercise the missing branches
    assert max(abs(a - float(b)) for a, b in zip(got, expected, strict=True)) < 1e-6
    assert len({round(value, 4) for value in got}) > 50  # not one constant answer


def test_a_row_of_the_wrong_length_is_refused(booster: xgb.Booster, tmp_path: Path) -> None:
    compiled = CompiledModel(compile_booster(booster, tmp_path, log=lambda _: None)[0])

    with pytest.raises(ValueError, match="zip"):
        compiled.predict_one([0.0] * 5)


def test_installed_sizes_are_read_from_the_distributions_files() -> None:
    sizes = installed_bytes((XGBOOST_DISTRIBUTION, "numpy"))

    assert set(sizes) == {XGBOOST_DISTRIBUTION, "numpy"}
    assert sizes["numpy"] > 5_000_000  # its compiled extension modules and bundled libraries count
