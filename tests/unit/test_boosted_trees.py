"""motor_model: XGBoost's answers without XGBoost, from the booster in XGBoost's JSON format.

Every expectation is XGBoost 3.0.5's own answer for the same booster and rows: `inplace_predict` for
probabilities, `predict(pred_contribs=True)` for contributions. The booster is read as `save_raw("json")`
writes it, which model/artifact.py puts in the artifact beside `xgboost-model`.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

import motor_model.artifact
from model import artifact, inference
from motor_adapters import embedded_predictor
from motor_model import boosted_trees
from motor_model.artifact import load_artifact
from motor_model.boosted_trees import BoostedTrees, ModelFormatError, float32

PROBABILITY_TOLERANCE = 1e-6
CONTRIBUTION_TOLERANCE = 1e-4


def _data(rows: int, features: int, *, seed: int, missing: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Rows with NaN holes; the label depends on three features and on whether one is missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32) * 10
    x[rng.random(x.shape) < missing] = np.nan
    signal = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) - np.isnan(x[:, 2]) * 8
    y = (signal + rng.normal(size=rows) * 3 > 0).astype(np.float32)
    return x, y


def _booster(params: dict[str, Any] | None = None, *, rounds: int = 40, seed: int = 5, **train: Any) -> xgb.Booster:
    x, y = _data(600, 8, seed=seed)
    settings = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "seed": seed} | (params or {})
    booster = xgb.train(settings, xgb.DMatrix(x, y, missing=np.nan), rounds, **train)
    booster.set_attr(feature_names=",".join(f"feature_{i}" for i in range(8)))
    return booster


def _assert_agrees(booster: xgb.Booster, trees: BoostedTrees, *, seed: int = 9) -> None:
    x, _ = _data(200, booster.num_features(), seed=seed)
    expected = booster.inplace_predict(x, missing=np.nan)
    contributions = booster.predict(xgb.DMatrix(x, missing=np.nan), pred_contribs=True)
    for row, probability, row_contributions in zip(x, expected, contributions, strict=True):
        values = row.tolist()
        assert trees.probability(values) == pytest.approx(float(probability), abs=PROBABILITY_TOLERANCE)
        mine = trees.contributions(values)
        assert mine == pytest.approx(row_contributions.tolist(), abs=CONTRIBUTION_TOLERANCE)
        assert math.fsum(mine) == pytest.approx(trees._margin(float32(values)), abs=1e-9)  # SHAP's local accuracy


def test_probabilities_and_contributions_are_xgboosts_for_rows_with_missing_values() -> None:
    booster = _booster()
    trees = BoostedTrees.load(bytes(booster.save_raw("json")))

    _assert_agrees(booster, trees)
    assert trees.feature_names == [f"feature_{i}" for i in range(8)]


def test_both_default_directions_of_a_missing_value_are_taken_as_xgboost_takes_them() -> None:
    booster = _booster()
    model = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]
    internal = [
        flag
        for tree in model["trees"]
        for flag, left in zip(tree["default_left"], tree["left_children"], strict=True)
        if left != -1
    ]
    # Given a booster that learned both directions (else the test below could not tell them apart)
    assert 0 < sum(internal) < len(internal)
    trees = BoostedTrees.load(bytes(booster.save_raw("json")))
    # Then a row with every value missing follows the defaults alone, as XGBoost's does
    empty = np.full((1, 8), np.nan, dtype=np.float32)
    assert trees.probability(empty[0].tolist()) == pytest.approx(
        float(booster.inplace_predict(empty, missing=np.nan)[0]), abs=PROBABILITY_TOLERANCE
    )


def test_a_learned_base_score_and_a_best_iteration_are_applied_as_xgboost_applies_them() -> None:
    x, y = _data(600, 8, seed=21)
    train, valid = xgb.DMatrix(x[:450], y[:450], missing=np.nan), xgb.DMatrix(x[450:], y[450:], missing=np.nan)
    # boost_from_average: base_score is fitted (not 0.5); early stopping sets best_iteration,
    # which inplace_predict does not cut the sum at
    booster = xgb.train(
        {"objective": "binary:logistic", "eta": 0.8, "max_depth": 6},
        train,
        200,
        evals=[(valid, "valid")],
        early_stopping_rounds=2,
        verbose_eval=False,
    )
    document = json.loads(booster.save_raw("json"))
    assert float(document["learner"]["learner_model_param"]["base_score"].strip("[]")) != 0.5
    assert booster.best_iteration + 1 < booster.num_boosted_rounds()

    _assert_agrees(booster, BoostedTrees.load(bytes(booster.save_raw("json"))))


def test_trees_too_deep_for_generated_code_are_walked_node_by_node(monkeypatch: pytest.MonkeyPatch) -> None:
    booster = _booster({"max_depth": 6})
    monkeypatch.setattr(boosted_trees, "CODEGEN_MAX_DEPTH", 2)
    walked = BoostedTrees.load(bytes(booster.save_raw("json")))
    assert walked._margin == walked._walked_margin

    _assert_agrees(booster, walked)


def test_the_demo_models_shape_300_trees_with_feature_names_agrees_on_many_rows() -> None:
    x, y = _data(2000, 50, seed=33, missing=0.05)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 5, "eta": 0.1}, xgb.DMatrix(x, y, missing=np.nan), 300
    )
    trees = BoostedTrees.load(bytes(booster.save_raw("json")))
    expected = booster.inplace_predict(x[:500], missing=np.nan)

    worst = max(abs(trees.probability(row.tolist()) - float(p)) for row, p in zip(x[:500], expected, strict=True))
    assert worst <= PROBABILITY_TOLERANCE
    assert trees.feature_names == [f"f{i}" for i in range(50)]  # no attribute: XGBoost's own names


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"objective": "reg:squarederror"}, "objective 'reg:squarederror'"),
        ({"objective": "multi:softprob", "num_class": 3}, "objective 'multi:softprob'"),
        ({"booster": "dart"}, "booster 'dart'"),
        ({"booster": "gblinear"}, "booster 'gblinear'"),
    ],
)
def test_a_model_it_cannot_evaluate_exactly_is_refused_at_load(params: dict[str, Any], message: str) -> None:
    x, y = _data(200, 8, seed=1)
    if params.get("num_class"):
        y = (np.arange(200) % 3).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic"} | params, xgb.DMatrix(x, y, missing=np.nan), 3)
    with pytest.raises(ModelFormatError, match=message):
        BoostedTrees.load(bytes(booster.save_raw("json")))


def test_a_booster_with_categorical_splits_is_refused_at_load() -> None:
    x, y = _data(300, 3, seed=2, missing=0.0)
    x[:, 0] = np.abs(x[:, 0]).astype(np.int32) % 4
    y = (x[:, 0] == 2).astype(np.float32)
    matrix = xgb.DMatrix(x, y, feature_types=["c", "q", "q"], enable_categorical=True)
    booster = xgb.train({"objective": "binary:logistic", "max_cat_to_onehot": 1}, matrix, 3)
    with pytest.raises(ModelFormatError, match="categorical"):
        BoostedTrees.load(bytes(booster.save_raw("json")))


def _edited(change: Any) -> bytes:
    document = json.loads(_booster(rounds=2).save_raw("json"))
    change(document["learner"]["gradient_booster"]["model"]["trees"][0])
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda tree: tree["split_indices"].__setitem__(0, 99), "splits on feature 99"),
        (lambda tree: tree["left_children"].__setitem__(1, 0), "reached twice"),
        (lambda tree: tree["right_children"].__setitem__(0, 10_000), "out of range"),
        (lambda tree: tree["sum_hessian"].pop(), "different lengths"),
        (lambda tree: tree["split_conditions"].__setitem__(0, 1e300), "not finite"),
        (lambda tree: tree.pop("default_left"), "KeyError"),
    ],
)
def test_a_corrupt_tree_is_refused_at_load_not_answered_wrongly(change: Any, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message):
        BoostedTrees.load(_edited(change))


@pytest.mark.parametrize(
    "data", [b"", b"not a model", b"\x1f\x8b\x08\x00", b'{"learner": {}}', b"{L\x00", b"[1, 2]", b"\xff\xfe{"]
)
def test_bytes_that_are_not_a_booster_are_a_model_format_error(data: bytes) -> None:
    with pytest.raises(ModelFormatError):
        BoostedTrees.load(data)


def test_the_embedded_drivers_rules_are_the_endpoints() -> None:
    assert embedded_predictor.TOP_DRIVERS == inference.TOP_DRIVERS
    assert embedded_predictor.DRIVERS_MIN_PROBABILITY == inference.DRIVERS_MIN_PROBABILITY
    assert boosted_trees.FEATURE_NAMES_ATTR == inference.FEATURE_NAMES_ATTR


def test_xgboosts_binary_format_is_refused_as_not_json() -> None:
    with pytest.raises(ModelFormatError, match="not an XGBoost JSON model"):
        BoostedTrees.load(bytes(_booster(rounds=2).save_raw("ubj")))


# The artifact


def test_the_artifact_carries_the_booster_the_endpoint_serves_as_json_for_the_embedded_model(tmp_path: Path) -> None:
    booster = _booster()
    script = Path(inference.__file__)
    archive = artifact.write_model_tar(booster, tmp_path / "model.tar.gz", inference_script=script).read_bytes()

    trees = load_artifact(archive)

    served = artifact.load_booster(tmp_path / "model.tar.gz")  # xgboost-model, as the endpoint loads it
    _assert_agrees(served, trees)
    assert motor_model.artifact.EMBEDDED_MODEL_FILE == artifact.EMBEDDED_MODEL_FILE


def test_an_artifact_without_the_json_booster_is_refused_with_the_command_that_makes_one(tmp_path: Path) -> None:
    # Given an artifact as SageMaker's server reads it, with `xgboost-model` alone
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        data = artifact.model_bytes(_booster(rounds=2))
        member = tarfile.TarInfo(artifact.MODEL_FILE)
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))

    with pytest.raises(ModelFormatError) as refused:
        load_artifact(path.read_bytes())

    message = str(refused.value)
    assert "\n" not in message
    assert "embedded/xgboost-model.json" in message
    assert "retrain with `python model/train.py`" in message


@pytest.mark.parametrize("data", [b"", b"not a tarball", b"\x1f\x8b\x08\x00\x00"])
def test_bytes_that_are_not_an_artifact_are_a_model_format_error(data: bytes) -> None:
    with pytest.raises(ModelFormatError, match=r"not a model\.tar\.gz"):
        load_artifact(data)
