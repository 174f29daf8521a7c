"""The trained artifact behind the inference use case: features -> CSV -> model/inference.py -> alarm with drivers.

The endpoint is answered by the artifact's own code (model_fn, input_fn, predict_fn, output_fn),
as SageMaker's script mode and the local stack run it; the rest is the Lambda's code path.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import xgboost as xgb

from device.history import History, generate
from device.physics import DAY_S, FailureMode, FleetConfig
from model import inference
from motor_adapters.sagemaker_predictor import SageMakerPredictor
from motor_maintenance.alarms import AlarmKind, Transition
from motor_maintenance.alerts import format_alert
from motor_maintenance.config import DetectorConfig
from motor_maintenance.features import FEATURE_NAMES
from motor_maintenance.service import process_reading
from tests.support import MemoryStore, Recorder


@dataclass
class ArtifactEndpoint:
    """A sagemaker-runtime client whose InvokeEndpoint runs the artifact's inference.py on its booster."""

    booster: xgb.Booster
    accepts: list[str] = field(default_factory=list)

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.accepts.append(kwargs["Accept"])
        # The raising steps: a request the contract refuses fails the test with the reason.
        data = inference.read_rows(kwargs["Body"], kwargs["ContentType"])
        body, content_type = inference.serialise(inference.score(data, self.booster), kwargs["Accept"])
        return {"Body": io.BytesIO(body.encode()), "ContentType": content_type}


@pytest.fixture(scope="module")
def endpoint(small_model_run: tuple[dict[str, Any], Path]) -> ArtifactEndpoint:
    _, out = small_model_run
    with tarfile.open(out / "model.tar.gz") as archive:
        archive.extractall(out / "unpacked", filter="data")
    return ArtifactEndpoint(inference.model_fn(str(out / "unpacked")))


def _first_wear_failure(history: History) -> tuple[int, int]:
    for column in range(len(history.motor_ids)):
        for onset in history.failure_onsets(column):
            if int(history.failed_mode[onset, column]) != list(FailureMode).index(FailureMode.RANDOM):
                return column, int(onset)
    raise AssertionError("no wear failure in the history")


def test_a_motor_wearing_out_raises_the_predictive_alarm_before_it_fails_naming_the_drivers(
    endpoint: ArtifactEndpoint,
) -> None:
    # Given a motor the model never saw, wearing out
    history = generate(FleetConfig(motors=2, seed=77, wear_scale=4.0), duration_s=60 * DAY_S)
    column, onset = _first_wear_failure(history)
    start = max(onset - 14 * 144, 0)  # two weeks of readings warm the weekly baseline
    store, publisher = MemoryStore(), Recorder()
    predictor = SageMakerPredictor("motor-failure", endpoint)

    # When its readings go through the inference use case up to the failure
    for t in range(start, onset):
        reading = history.reading(t, column)
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        process_reading(
            reading, store=store, predictor=predictor, publisher=publisher, config=DetectorConfig(), now=now
        )

    # Then the predictive alarm was raised before the failure, saying which features drove it
    raised = [e for e in publisher.events if e.kind is AlarmKind.PREDICTIVE and e.transition is Transition.RAISED]
    assert raised, "the model never raised the predictive alarm before the failure"
    first = raised[0]
    assert first.at < datetime.fromtimestamp(history.ts_ms[onset] / 1000, UTC)
    assert first.failure_probability is not None
    assert first.failure_probability >= 0.5
    assert first.drivers
    assert {driver.feature for driver in first.drivers} <= set(FEATURE_NAMES)
    assert "Main drivers: " in format_alert(first).body
    assert set(endpoint.accepts) == {"application/json"}


def test_a_healthy_motor_raises_nothing(endpoint: ArtifactEndpoint) -> None:
    history = generate(FleetConfig(motors=1, seed=78), duration_s=10 * DAY_S)
    assert history.failure_count[-1, 0] == 0
    store, publisher = MemoryStore(), Recorder()
    predictor = SageMakerPredictor("motor-failure", endpoint)

    for t in range(history.steps):
        reading = history.reading(t, 0)
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        result = process_reading(
            reading, store=store, predictor=predictor, publisher=publisher, config=DetectorConfig(), now=now
        )
        assert result.prediction_error is None

    assert not [e for e in publisher.events if e.kind is AlarmKind.PREDICTIVE]
