"""Failure probabilities from the SageMaker endpoint (built-in XGBoost container, text/csv rows)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_maintenance.errors import PredictionUnavailable
from motor_maintenance.features import to_csv_row


class SageMakerPredictor:
    """Implements motor_maintenance.service.Predictor over sagemaker-runtime InvokeEndpoint."""

    def __init__(self, endpoint_name: str, client: Any) -> None:
        self._endpoint = endpoint_name
        self._client = client

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        body = "\n".join(to_csv_row(list(row)) for row in rows)
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self._endpoint, ContentType="text/csv", Accept="text/csv", Body=body.encode()
            )
            payload = response["Body"].read().decode()
        except (ClientError, BotoCoreError) as exc:
            raise PredictionUnavailable(f"endpoint {self._endpoint}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise PredictionUnavailable(f"endpoint {self._endpoint} answered bytes that are not UTF-8") from exc
        probabilities = parse_predictions(payload)
        if len(probabilities) != len(rows):
            raise PredictionUnavailable(f"endpoint answered {len(probabilities)} predictions for {len(rows)} rows")
        return probabilities


def parse_predictions(payload: str) -> list[float]:
    """Read the XGBoost container's answer: CSV/newline-separated numbers, or its JSON form."""
    text = payload.strip()
    try:
        if text.startswith("{"):
            values = [float(item["score"]) for item in json.loads(text)["predictions"]]
        else:
            values = [float(part) for part in text.replace("\n", ",").split(",") if part.strip()]
    except (ValueError, KeyError, TypeError) as exc:
        raise PredictionUnavailable(f"unreadable prediction payload {text[:80]!r}") from exc
    for value in values:
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise PredictionUnavailable(f"prediction {value} is not a probability")
    return values
