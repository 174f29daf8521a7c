"""Failure probabilities computed inside the function, from the artifact's booster, fetched from S3, without XGBoost.

The template's `InferenceMode: embedded`. The artifact (model.tar.gz, ModelDataUrl) is the one the endpoint
serves; only its booster in XGBoost's JSON format is read (motor_model.artifact), and motor_model.boosted_trees
evaluates it in plain Python: the probability XGBoost's `inplace_predict` gives and, for a row at or above
DRIVERS_MIN_PROBABILITY, the TreeSHAP drivers its `pred_contribs` gives, chosen and rounded as the endpoint's
code/inference.py does
(tests/unit/test_embedded_inference.py checks the alarms against the endpoint's, reading by reading). Each
prediction carries the artifact's version, as the endpoint's answer does. An artifact trained on other
features than this layer's FEATURE_NAMES is refused when it is loaded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from motor_adapters.sagemaker_predictor import prediction_with_drivers, with_model_version
from motor_maintenance.errors import PredictionUnavailable
from motor_maintenance.features import FEATURE_NAMES
from motor_maintenance.prediction import Prediction
from motor_model.artifact import ServedModel, read_artifact
from motor_model.boosted_trees import BoostedTrees, ModelFormatError

TOP_DRIVERS = 3
DRIVERS_MIN_PROBABILITY = 0.2
"""As model/inference.py's defaults: up to three drivers, for rows at least this likely to fail."""
CONTRIBUTION_DIGITS = 4
"""The endpoint rounds each contribution to four decimals and drops those that round to zero or below."""
DRIVERS_BUDGET_S = 2.0
"""Wall seconds one call may spend on drivers. TreeSHAP in Python costs about 20 ms a row here (more on
a Lambda with a fraction of a vCPU): a batch of 500 readings all above the threshold would take the
function past its timeout, fail, and come back to fail again. Past the budget, rows keep their
probability and say why they have no drivers; the most likely rows are explained first."""


def s3_location(url: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(f"{url!r} is not an s3://bucket/key URL")
    return parsed.netloc, parsed.path.lstrip("/")


class EmbeddedPredictor:
    """Implements motor_maintenance.service.Predictor with the model loaded into this execution environment.

    The artifact is fetched on the first prediction, not at import: a model that cannot be fetched or
    loaded costs that reading its probability (PredictionUnavailable), as an endpoint that does not
    answer does, the conditions and the schedule are still evaluated, and the next reading tries again.
    """

    def __init__(
        self,
        model_url: str,
        client: Any,
        *,
        drivers_min_probability: float = DRIVERS_MIN_PROBABILITY,
        drivers_budget_s: float = DRIVERS_BUDGET_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._url = model_url
        self._bucket, self._key = s3_location(model_url)
        self._client = client
        self._drivers_min_probability = drivers_min_probability
        self._drivers_budget_s = drivers_budget_s
        self._clock = clock
        self._served: ServedModel | None = None

    @property
    def model_version(self) -> str | None:
        """The loaded model's version; None before the first prediction loads it."""
        return self._served.version if self._served else None

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        served = self._served or self._load()
        model = served.trees
        for number, row in enumerate(rows, start=1):  # refused as the endpoint refuses them (RequestError)
            if len(row) != model.num_features:
                raise PredictionUnavailable(
                    f"model {self._url}: rows have {len(row)} features; the model expects {model.num_features}"
                )
            if any(math.isinf(value) for value in row):
                raise PredictionUnavailable(f"model {self._url}: row {number} has an infinite value")
        probabilities = [model.probability(row) for row in rows]
        predictions = [Prediction(probability=probability) for probability in probabilities]
        explained = [index for index, p in enumerate(probabilities) if p >= self._drivers_min_probability]
        explained.sort(key=lambda index: -probabilities[index])  # stable: the earlier row first on a tie
        deadline = self._clock() + self._drivers_budget_s
        for done, index in enumerate(explained):
            if self._clock() >= deadline:
                reason = (
                    f"drivers not computed: {done} of this call's {len(explained)} rows above "
                    f"{self._drivers_min_probability} took its {self._drivers_budget_s} s budget"
                )
                for skipped in explained[done:]:
                    predictions[skipped] = Prediction(probability=probabilities[skipped], drivers_dropped=reason)
                break
            predictions[index] = _explained(model, rows[index], probabilities[index])
        return with_model_version(predictions, served.version)

    def _load(self) -> ServedModel:
        try:
            archive = self._client.get_object(Bucket=self._bucket, Key=self._key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise PredictionUnavailable(f"model {self._url}: {exc}") from exc
        try:
            self._served = read_artifact(archive, feature_names=FEATURE_NAMES)
        except ModelFormatError as exc:
            raise PredictionUnavailable(f"model {self._url} cannot be loaded: {exc}") from exc
        return self._served


def _explained(model: BoostedTrees, row: Sequence[float], probability: float) -> Prediction:
    """The prediction with its drivers: the largest positive TreeSHAP contributions, picked as the endpoint does."""
    try:
        contributions = model.contributions(row)[:-1]  # the last is the bias
    except (ArithmeticError, RecursionError) as exc:  # a degenerate tree: keep the probability
        return Prediction(probability=probability, drivers_dropped=f"drivers not computed: {exc!r}")
    largest = sorted(range(len(contributions)), key=lambda index: -contributions[index])[:TOP_DRIVERS]
    drivers = [  # as code/inference.py writes them, then read as the endpoint's answer is
        {"feature": model.feature_names[index], "contribution": rounded}
        for index in largest
        if (rounded := round(contributions[index], CONTRIBUTION_DIGITS)) > 0
    ]
    return prediction_with_drivers(probability, drivers)
