"""Failure probabilities, and what drove them, from the SageMaker endpoint (XGBoost, text/csv rows in).

The endpoint is asked for JSON: `{"predictions": [{"score": 0.87, "drivers": [{"feature": ..., "contribution":
...}]}], "model_version": "m-0123456789ab"}`, one object per row. The project's script-mode handler
(model/inference.py) adds `drivers`, the features with the largest positive SHAP contributions, and the
served model's version, which every prediction of the answer carries; SageMaker's plain built-in algorithm
(an existing endpoint) answers the same without them, and an answer of newline- or comma-separated numbers
is read too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from motor_maintenance.errors import PredictionUnavailable
from motor_maintenance.features import to_csv_row
from motor_maintenance.prediction import DRIVERS_MAX, MODEL_VERSION_PATTERN, Driver, Prediction
from motor_maintenance.telemetry import describe_validation_error

ACCEPT = "application/json"


class SageMakerPredictor:
    """Implements motor_maintenance.service.Predictor over sagemaker-runtime InvokeEndpoint."""

    def __init__(self, endpoint_name: str, client: Any) -> None:
        self._endpoint = endpoint_name
        self._client = client

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        body = "\n".join(to_csv_row(list(row)) for row in rows)
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self._endpoint, ContentType="text/csv", Accept=ACCEPT, Body=body.encode()
            )
            payload = response["Body"].read().decode()
        except (ClientError, BotoCoreError) as exc:
            raise PredictionUnavailable(f"endpoint {self._endpoint}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise PredictionUnavailable(f"endpoint {self._endpoint} answered bytes that are not UTF-8") from exc
        predictions = parse_predictions(payload)
        if len(predictions) != len(rows):
            raise PredictionUnavailable(f"endpoint answered {len(predictions)} predictions for {len(rows)} rows")
        return predictions


def parse_predictions(payload: str) -> list[Prediction]:
    """Read the endpoint's answer: its JSON form (drivers optional), or numbers separated by newlines or commas.

    A score that is not a probability makes the whole answer unusable (PredictionUnavailable). Drivers
    are an explanation, not the prediction: a row whose drivers are malformed keeps its probability,
    with no drivers and `drivers_dropped` saying why.
    """
    text = payload.strip()
    if not text.startswith("{"):
        try:
            scores: list[Any] = [float(part) for part in text.replace("\n", ",").split(",") if part.strip()]
        except ValueError as exc:
            raise _unreadable(text) from exc
        return [Prediction(probability=_probability(score)) for score in scores]
    try:
        answer = json.loads(text)
        items = answer["predictions"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise _unreadable(text) from exc
    if not isinstance(items, list) or not all(isinstance(item, dict) and "score" in item for item in items):
        raise _unreadable(text)
    predictions = [prediction_with_drivers(_probability(item["score"]), item.get("drivers")) for item in items]
    return with_model_version(predictions, answer.get("model_version"))


def with_model_version(predictions: list[Prediction], version: Any) -> list[Prediction]:
    """The predictions, each stamped with the model's version; as they were if `version` is not one.

    The version labels the answer, it is not the answer: one that is not a version string is left out.
    """
    if not isinstance(version, str) or not re.fullmatch(MODEL_VERSION_PATTERN, version):
        return predictions
    return [prediction.model_copy(update={"model_version": version}) for prediction in predictions]


def _unreadable(text: str) -> PredictionUnavailable:
    return PredictionUnavailable(f"unreadable prediction payload {text[:80]!r}")


def _probability(score: Any) -> float:
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise PredictionUnavailable(f"prediction is a {type(score).__name__}, not a probability")
    try:
        value = float(score)
    except OverflowError as exc:  # an integer too large for a float: 10**400
        raise PredictionUnavailable("prediction is not a probability") from exc
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise PredictionUnavailable(f"prediction {value} is not a probability")
    return value


def prediction_with_drivers(probability: float, raw: Any) -> Prediction:
    """The row's prediction with its drivers, largest first; without them if they are malformed.

    `raw` is a row's `drivers` as the contract writes them (`[{"feature": ..., "contribution": ...}]`), from
    the endpoint's answer or from the embedded model, read the same way.
    """
    if raw is None:  # the built-in algorithm, or a model that does not explain itself
        return Prediction(probability=probability)
    try:
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            raise ValueError("drivers is not a list of objects")
        # A tolerant reader: fields the contract does not name are left out, not refused.
        named = ({"feature": item.get("feature"), "contribution": item.get("contribution")} for item in raw)
        drivers = sorted(
            (Driver.model_validate(item) for item in named if not _pushes_down(item["contribution"])),
            key=lambda driver: (-driver.contribution, driver.feature),
        )
        return Prediction(probability=probability, drivers=tuple(drivers[:DRIVERS_MAX]))
    except ValidationError as exc:  # before ValueError, its base
        return Prediction(
            probability=probability, drivers_dropped=f"malformed drivers: {describe_validation_error(exc)}"
        )
    except ValueError as exc:
        return Prediction(probability=probability, drivers_dropped=str(exc))


def _pushes_down(contribution: Any) -> bool:
    """Zero or less lowered the probability: not a driver (the contract sends positive ones only)."""
    number = isinstance(contribution, int | float) and not isinstance(contribution, bool)
    return number and -math.inf < contribution <= 0
