"""model/inference.py: the contract SageMaker's XGBoost script mode (and the local stack) serves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from model import artifact, inference
from motor_maintenance.features import FEATURE_NAMES

NAMES = list(FEATURE_NAMES)


@pytest.fixture(scope="module")
def booster(tmp_path_factory: pytest.TempPathFactory) -> xgb.Booster:
    """A model whose failures are driven by columns 3 and 7 only, loaded the way SageMaker loads it."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4000, len(NAMES))).astype(np.float32)
    labels = (features[:, 3] + features[:, 7] > 2.0).astype(np.int8)
    trained = artifact.fit(
        features, labels, feature_names=NAMES, num_boost_round=30, log=None, negative_fraction=1.0, nthread=1
    )
    model_dir = tmp_path_factory.mktemp("model")
    (model_dir / artifact.MODEL_FILE).write_bytes(artifact.model_bytes(trained))
    return inference.model_fn(str(model_dir))


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in rows).encode()


def _answer(booster: xgb.Booster, body: bytes | str, accept: str | None) -> tuple[str, str]:
    answer = inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/csv"), booster), accept)
    assert isinstance(answer, tuple), answer
    return answer


def test_csv_rows_in_one_probability_per_line_out(booster: xgb.Booster) -> None:
    rows = np.zeros((3, len(NAMES)), dtype=np.float32)
    rows[1, 3] = rows[1, 7] = 3.0
    rows[2, 5] = np.nan

    text, content_type = _answer(booster, _csv(rows), "text/csv")

    assert content_type == "text/csv"
    probabilities = [float(line) for line in text.splitlines()]
    assert probabilities[1] > 0.9
    assert probabilities[0] < 0.1
    assert probabilities == pytest.approx(booster.inplace_predict(rows, missing=np.nan).tolist(), rel=1e-5)
    assert _answer(booster, _csv(rows), None)[1] == "text/csv"  # no Accept: CSV, as the built-in algorithm


def test_json_names_the_features_that_drove_a_likely_failure(booster: xgb.Booster) -> None:
    rows = np.zeros((2, len(NAMES)), dtype=np.float32)
    rows[1, 3] = rows[1, 7] = 3.0

    text, content_type = _answer(booster, _csv(rows), "application/json; charset=utf-8")

    assert content_type == "application/json"
    healthy, failing = json.loads(text)["predictions"]
    assert healthy["drivers"] == []  # below DRIVERS_MIN_PROBABILITY: nothing to explain
    assert failing["score"] > 0.9
    top = [driver["feature"] for driver in failing["drivers"]]
    assert set(top[:2]) == {NAMES[3], NAMES[7]}
    assert len(failing["drivers"]) <= inference.TOP_DRIVERS
    contributions = [driver["contribution"] for driver in failing["drivers"]]
    assert contributions == sorted(contributions, reverse=True)
    assert all(value > 0 for value in contributions)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"1,2,3", "application/x-npy", 415, "not supported"),
        (b"", "text/csv", 400, "no CSV rows"),
        (b"1,abc,3", "text/csv", 400, "row 1, field 2"),
        (b"1,2,3\n1,2", "text/csv", 400, "row 2 has 2 fields"),
        (b"1,inf,3", "text/csv", 400, "infinite"),
        (b"\xff\xfe", "text/csv", 400, "not UTF-8"),
    ],
)
def test_a_request_it_cannot_answer_is_refused_with_the_reason(
    body: bytes, content_type: str, status: int, message: str
) -> None:
    with pytest.raises(inference.RequestError, match=message) as raised:
        inference.read_rows(body, content_type)
    assert raised.value.status == status

    refusal = inference.input_fn(body, content_type)  # what the container gets: passed on, not raised

    assert refusal == inference.Refusal(status, str(raised.value))


def test_rows_of_the_wrong_width_or_too_many_rows_are_refused(booster: xgb.Booster) -> None:
    with pytest.raises(inference.RequestError, match=f"the model expects {len(NAMES)}"):
        inference.score(inference.read_rows("1,2,3", "text/csv"), booster)
    too_many = "\n".join(["0"] * (inference.MAX_ROWS + 1))
    with pytest.raises(inference.RequestError, match="at most"):
        inference.read_rows(too_many, "text/csv")
    scored = inference.score(np.zeros((1, len(NAMES)), dtype=np.float32), booster)
    with pytest.raises(inference.UnsupportedAccept, match="accept type"):
        inference.serialise(scored, "application/x-protobuf")


def test_a_refusal_passes_through_predict_fn_and_output_fn_and_answers_with_its_status(booster: xgb.Booster) -> None:
    narrow = inference.predict_fn(inference.input_fn("1,2,3", "text/csv"), booster)
    assert isinstance(narrow, inference.Refusal)
    assert narrow.status == 400
    assert inference.output_fn(narrow, "text/csv") is narrow
    scored = inference.predict_fn(np.zeros((1, len(NAMES)), dtype=np.float32), booster)
    unacceptable = inference.output_fn(scored, "application/x-protobuf")
    assert isinstance(unacceptable, inference.Refusal)
    started: list[tuple[str, list[tuple[str, str]]]] = []

    body = b"".join(unacceptable({}, lambda status, headers: started.append((status, headers))))

    assert started == [
        ("406 Not Acceptable", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    ]
    assert body.decode() == unacceptable.reason
    assert "accept type 'application/x-protobuf' is not supported" in unacceptable.reason


def test_the_feature_names_travel_as_an_attribute_not_as_booster_names(booster: xgb.Booster, tmp_path: Path) -> None:
    # The algorithm-mode server predicts on matrices without names; a named booster would refuse them.
    assert booster.feature_names is None
    assert inference.feature_names(booster) == NAMES
    unnamed = xgb.DMatrix(np.zeros((1, len(NAMES)), dtype=np.float32))
    assert booster.predict(unnamed).shape == (1,)
