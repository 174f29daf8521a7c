"""Predictions carry the model's version: the predictors, the motor's state, alarm events, alerts, the handler."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from botocore.exceptions import ClientError

from device.archive_layout import ALARMS, object_name, partition_dir
from model import artifact, inference, versions
from model.archive import Archive
from motor_adapters.embedded_predictor import EmbeddedPredictor
from motor_adapters.sagemaker_predictor import parse_predictions
from motor_maintenance.alarms import ActionName, AlarmEvent, AlarmKind, OperatorAction, Transition
from motor_maintenance.alerts import format_alert
from motor_maintenance.config import DetectorConfig
from motor_maintenance.errors import PredictionUnavailable
from motor_maintenance.features import FEATURE_NAMES
from motor_maintenance.prediction import Prediction
from motor_maintenance.service import process_action, process_reading
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from tests.conftest import FakeAws
from tests.support import (
    T0_MS,
    FakeSageMakerRuntime,
    LambdaContext,
    MemoryStore,
    Recorder,
    load_event,
    load_handler,
    reading_payload,
)

VERSION = "m-0123456789ab"
MODEL_URL = "s3://models/model.tar.gz"


class Answering:
    """A Predictor that gives every row the same probability, from a model of a given version."""

    def __init__(self, probability: float, version: str | None) -> None:
        self.probability, self.version = probability, version

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        return [Prediction(probability=self.probability, model_version=self.version) for _ in rows]


class OneObject:
    """An S3 client holding one artifact."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, io.BytesIO]:
        if f"s3://{Bucket}/{Key}" != MODEL_URL:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no such key"}}, "GetObject")
        return {"Body": io.BytesIO(self.data)}


def _artifact(tmp_path: Path, names: Sequence[str] = FEATURE_NAMES) -> Path:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, len(names))).astype(np.float32)
    booster = artifact.fit(
        features,
        (features[:, 0] > 1.0).astype(np.int8),
        feature_names=list(names),
        num_boost_round=3,
        log=None,
        negative_fraction=1.0,
        nthread=1,
    )
    return artifact.write_model_tar(booster, tmp_path / "model.tar.gz", inference_script=Path(inference.__file__))


def _readings(count: int) -> list[Telemetry]:
    return [Telemetry.model_validate(reading_payload(seq, at_s=60.0 * seq)) for seq in range(1, count + 1)]


# The predictors


def test_the_endpoints_version_is_carried_by_every_prediction_of_its_answer() -> None:
    answer = {"predictions": [{"score": 0.1}, {"score": 0.9, "drivers": []}], "model_version": VERSION}

    predictions = parse_predictions(json.dumps(answer))

    assert [p.model_version for p in predictions] == [VERSION, VERSION]


@pytest.mark.parametrize(
    "payload",
    [
        '{"predictions": [{"score": 0.4}]}',  # the plain built-in algorithm
        '{"predictions": [{"score": 0.4}], "model_version": 7}',
        '{"predictions": [{"score": 0.4}], "model_version": "not a version, it has spaces"}',
        "0.4\n",  # the CSV answer
    ],
)
def test_an_answer_without_a_usable_version_keeps_its_probability(payload: str) -> None:
    [prediction] = parse_predictions(payload)

    assert (prediction.probability, prediction.model_version) == (0.4, None)


def test_the_embedded_model_quotes_its_artifacts_version(tmp_path: Path) -> None:
    path = _artifact(tmp_path)
    version = versions.load_versioned(path).version
    predictor = EmbeddedPredictor(MODEL_URL, OneObject(path.read_bytes()))

    predictions = predictor.predict([[0.0] * len(FEATURE_NAMES), [3.0] * len(FEATURE_NAMES)])

    assert [p.model_version for p in predictions] == [version, version]
    assert predictor.model_version == version


def test_the_embedded_model_refuses_an_artifact_trained_on_other_features(tmp_path: Path) -> None:
    path = _artifact(tmp_path, [*FEATURE_NAMES[:-1], "retired_feature"])
    predictor = EmbeddedPredictor(MODEL_URL, OneObject(path.read_bytes()))

    with pytest.raises(PredictionUnavailable) as refused:
        predictor.predict([[0.0] * len(FEATURE_NAMES)])

    message = str(refused.value)
    assert message.startswith(f"model {MODEL_URL} cannot be loaded: model m-")
    assert "trained on other features than this code computes" in message
    assert "retired_feature" in message
    assert "\n" not in message


# The detector, the motor's state, alarm events and alerts


def test_a_predictive_alarm_names_the_model_version_that_raised_it_and_the_state_keeps_it() -> None:
    # Given a motor predicted to fail, reading after reading, by model VERSION
    store, publisher, config = MemoryStore(), Recorder(), DetectorConfig()
    results = []
    for reading in _readings(config.predictive.consecutive):
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        results.append(
            process_reading(
                reading, store=store, predictor=Answering(0.9, VERSION), publisher=publisher, config=config, now=now
            )
        )

    # Then the raise names the version, the results and the stored state say it too
    [raised] = [e for e in publisher.events if e.kind is AlarmKind.PREDICTIVE]
    assert raised.transition is Transition.RAISED
    assert raised.model_version == VERSION
    assert {r.model_version for r in results} == {VERSION}
    state = MotorState.from_dict(store.items["motor-001"])
    assert state.probability_model_version == VERSION
    # And the event survives the wire and the alert names the version
    assert AlarmEvent.model_validate_json(raised.model_dump_json()) == raised
    assert f"Model version: {VERSION}." in format_alert(raised).body


def test_an_acknowledgement_quotes_the_version_of_the_probability_it_quotes() -> None:
    store, publisher, config = MemoryStore(), Recorder(), DetectorConfig()
    readings = _readings(config.predictive.consecutive)
    for reading in readings:
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        process_reading(
            reading, store=store, predictor=Answering(0.9, VERSION), publisher=publisher, config=config, now=now
        )
    at_ms = readings[-1].ts_ms + 60_000
    action = OperatorAction(
        motor_id="motor-001", action=ActionName.ACKNOWLEDGE, alarm="predictive", action_id="ack-1", ts=at_ms
    )

    result = process_action(
        action, store=store, publisher=publisher, config=config, now=datetime.fromtimestamp(at_ms / 1000, UTC)
    )

    [acknowledged] = result.events
    assert (acknowledged.failure_probability, acknowledged.model_version) == (0.9, VERSION)


def test_a_model_that_does_not_say_its_version_raises_alarms_as_before() -> None:
    store, publisher, config = MemoryStore(), Recorder(), DetectorConfig()
    for reading in _readings(config.predictive.consecutive):
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        process_reading(
            reading, store=store, predictor=Answering(0.9, None), publisher=publisher, config=config, now=now
        )

    [raised] = publisher.events
    assert (raised.transition, raised.model_version) == (Transition.RAISED, None)
    assert "Model version" not in format_alert(raised).body
    assert "probability_model_version" not in store.items["motor-001"]  # the item stays as it was


def test_a_state_stored_before_versions_reads_as_unversioned() -> None:
    stored = MotorState(motor_id="motor-001", failure_probability=0.2).to_dict()

    assert MotorState.from_dict(stored).probability_model_version is None


def test_the_sample_predictive_event_carries_a_version_and_its_alert_names_it() -> None:
    event = AlarmEvent.model_validate(load_event("alarm-predictive-raised"))

    assert event.model_version is not None
    assert f"Model version: {event.model_version}." in format_alert(event).body


def test_an_event_with_a_malformed_version_is_refused() -> None:
    with pytest.raises(ValueError, match="model_version"):
        AlarmEvent.model_validate(load_event("alarm-predictive-raised") | {"model_version": "m 1; drop"})


def test_the_archive_reads_alarm_events_with_and_without_a_version(tmp_path: Path) -> None:
    with_version = load_event("alarm-predictive-raised")
    without = {k: v for k, v in with_version.items() if k != "model_version"} | {"event_id": "0" * 32}
    folder = partition_dir(tmp_path, ALARMS, "2026-11-27")
    folder.mkdir(parents=True)
    lines = "".join(json.dumps(record) + "\n" for record in (with_version, without))
    (folder / object_name("alarms", T0_MS, ".jsonl")).write_text(lines)

    read = Archive.open(tmp_path).events(ALARMS)

    assert read.counts.invalid_total == 0
    assert [record.get("model_version") for record in read.records] == [with_version["model_version"], None]


# The handler


def test_the_handler_answers_and_alerts_with_the_endpoints_model_version(
    inference: ModuleType,
    alerts: ModuleType,
    aws: FakeAws,
    sagemaker: FakeSageMakerRuntime,
    lambda_context: LambdaContext,
) -> None:
    worn = load_event("telemetry-normal") | {"vibration_mm_s": 8.0, "bearing_temp_c": 100.0}
    events = [worn, worn | {"ts": "2026-11-27T12:01:00Z", "seq": 1043}]

    responses = [inference.lambda_handler(event, lambda_context) for event in events]

    assert [r["model_version"] for r in responses] == [sagemaker.model_version] * 2
    [(_topic, payload)] = aws.published()
    assert (payload["transition"], payload["model_version"]) == ("raised", sagemaker.model_version)
    assert alerts.lambda_handler(payload, lambda_context)["status"] == "sent"
    [notification] = aws.alerts()
    assert f"Model version: {sagemaker.model_version}." in notification["Message"]


@pytest.fixture
def alerts(aws: FakeAws) -> ModuleType:
    return load_handler("alerts")
