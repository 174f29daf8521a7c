"""Readings the model is not asked about: no signal at all, or no wear signal ever measured (motor_maintenance.scoring).

Through InferenceFunction's handler, direct and batched, with AWS faked by moto and the endpoint by its fake.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from motor_adapters import state_item
from motor_maintenance.features import compute_features
from motor_maintenance.scoring import NO_SIGNAL, NO_WEAR_SIGNAL, not_scored
from motor_maintenance.telemetry import SIGNALS, Telemetry
from tests.conftest import FakeAws
from tests.support import FakeSageMakerRuntime, LambdaContext, kinesis_batch, load_event, metrics_of, reading_payload

NO_SIGNALS: dict[str, Any] = dict.fromkeys(SIGNALS)
"""Overrides that leave a reading_payload with `running` alone."""


def state_of(aws: FakeAws, motor_id: str) -> dict[str, Any]:
    item = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": motor_id}})["Item"]
    return state_item.state_of(item).to_dict()


def reading(payload: dict[str, Any]) -> Telemetry:
    return Telemetry.model_validate(payload, strict=False)


# --- the rule, on the feature function's own rows -------------------------------------------------


def test_a_reading_with_no_signal_is_not_scored_even_with_the_motor_s_averages_known() -> None:
    _, stats = compute_features(reading(reading_payload(1)), None)

    features, _ = compute_features(reading(reading_payload(2, at_s=60, **NO_SIGNALS)), stats)

    assert not_scored(features) == NO_SIGNAL


def test_a_motor_that_never_reported_a_wear_signal_is_not_scored() -> None:
    only_speed = reading_payload(1, **{**NO_SIGNALS, "speed_rpm": 1480.0})

    features, _ = compute_features(reading(only_speed), None)

    assert not_scored(features) == NO_WEAR_SIGNAL


@pytest.mark.parametrize("kept", ["bearing_temp_c", "vibration_mm_s", "flow_m3h"])
def test_one_wear_signal_is_enough_to_be_scored(kept: str) -> None:
    payload = reading_payload(1, **{**NO_SIGNALS, kept: reading_payload(1)[kept]})

    features, _ = compute_features(reading(payload), None)

    assert not_scored(features) is None


def test_a_reading_without_wear_signals_is_scored_once_the_motor_s_averages_are_known() -> None:
    _, stats = compute_features(reading(reading_payload(1)), None)
    ambient_only = reading_payload(2, at_s=60, **{**NO_SIGNALS, "ambient_temp_c": 24.0})

    features, _ = compute_features(reading(ambient_only), stats)

    assert not_scored(features) is None


# --- direct ingestion ---------------------------------------------------------------------------


def test_a_reading_with_no_signal_is_applied_without_asking_the_model_and_counted(
    inference: ModuleType,
    aws: FakeAws,
    sagemaker: FakeSageMakerRuntime,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = inference.lambda_handler(load_event("telemetry-no-signals"), lambda_context)

    assert response["status"] == "applied"
    assert sagemaker.calls == []
    assert (response["failure_probability"], response["not_scored"]) == (None, NO_SIGNAL)
    state = state_of(aws, "motor-042")
    assert (state["last_seq"], state["failure_probability"]) == (7, None)
    [record] = [r for r in caplog.records if r.getMessage() == "reading not scored by the model"]
    assert record.reason == NO_SIGNAL
    metrics = metrics_of(capsys.readouterr().out)
    assert metrics["ReadingsNotScored"] == 1.0
    assert "PredictionsMade" not in metrics
    assert "PredictionsFailed" not in metrics


def test_the_state_keeps_the_last_probability_and_when_it_was_given(
    inference: ModuleType, aws: FakeAws, sagemaker: FakeSageMakerRuntime, lambda_context: LambdaContext
) -> None:
    scored = inference.lambda_handler(reading_payload(1), lambda_context)
    probability_ts_ms = state_of(aws, "motor-001")["probability_ts_ms"]

    silent = inference.lambda_handler(reading_payload(2, at_s=60, **NO_SIGNALS), lambda_context)

    assert len(sagemaker.calls) == 1
    assert silent["not_scored"] == NO_SIGNAL
    state = state_of(aws, "motor-001")
    assert state["last_seq"] == 2
    assert (state["failure_probability"], state["probability_ts_ms"]) == (
        scored["failure_probability"],
        probability_ts_ms,
    )


def test_a_raised_predictive_alarm_is_neither_cleared_nor_raised_again_by_a_reading_with_no_signal(
    inference: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    worn: dict[str, Any] = {"vibration_mm_s": 8.0, "bearing_temp_c": 100.0}
    for seq in (1, 2):
        raised = inference.lambda_handler(reading_payload(seq, at_s=60 * seq, **worn), lambda_context)
    assert raised["alarm_states"]["predictive"] == "ACTIVE"

    silent = inference.lambda_handler(reading_payload(3, at_s=180, **NO_SIGNALS), lambda_context)

    assert silent["alarm_states"]["predictive"] == "ACTIVE"
    assert silent["events"] == []
    assert [payload["transition"] for _, payload in aws.published()] == ["raised"]


def test_a_motor_reporting_only_its_speed_is_not_scored_until_a_wear_signal_comes(
    inference: ModuleType, sagemaker: FakeSageMakerRuntime, lambda_context: LambdaContext
) -> None:
    only_speed = inference.lambda_handler(reading_payload(1, **{**NO_SIGNALS, "speed_rpm": 1480.0}), lambda_context)
    full = inference.lambda_handler(reading_payload(2, at_s=60), lambda_context)

    assert (only_speed["not_scored"], only_speed["failure_probability"]) == (NO_WEAR_SIGNAL, None)
    assert (full["not_scored"], len(sagemaker.calls)) == (None, 1)
    assert full["failure_probability"] is not None


def test_a_stopped_motor_is_not_counted_as_not_scored(
    inference: ModuleType, sagemaker: FakeSageMakerRuntime, lambda_context: LambdaContext
) -> None:
    response = inference.lambda_handler(reading_payload(1, running=False, **NO_SIGNALS), lambda_context)

    assert (response["not_scored"], sagemaker.calls) == (None, [])


# --- batched ingestion --------------------------------------------------------------------------


def test_a_batch_asks_the_model_only_about_the_readings_with_something_to_score(
    inference: ModuleType,
    sagemaker: FakeSageMakerRuntime,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = kinesis_batch(
        [
            reading_payload(1, motor_id="motor-042", **NO_SIGNALS),
            reading_payload(1),
            reading_payload(2, at_s=60, motor_id="motor-042", **NO_SIGNALS),
        ]
    )

    response = inference.lambda_handler(event, lambda_context)

    assert response["batchItemFailures"] == []
    readings = response["readings"]
    assert [(r["motor_id"], r["not_scored"]) for r in readings] == [
        ("motor-042", NO_SIGNAL),
        ("motor-001", None),
        ("motor-042", NO_SIGNAL),
    ]
    assert [r["failure_probability"] is None for r in readings] == [True, False, True]
    [call] = sagemaker.calls
    assert len(call["Body"].decode().splitlines()) == 1
    metrics = metrics_of(capsys.readouterr().out)
    assert (metrics["ReadingsNotScored"], metrics["PredictionsMade"], metrics["ModelCalls"]) == (2.0, 1.0, 1.0)


def test_a_batch_with_nothing_to_score_makes_no_model_call(
    inference: ModuleType,
    sagemaker: FakeSageMakerRuntime,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = kinesis_batch([reading_payload(1, **NO_SIGNALS), reading_payload(2, at_s=60, **NO_SIGNALS)])

    response = inference.lambda_handler(event, lambda_context)

    assert [r["status"] for r in response["readings"]] == ["applied", "applied"]
    assert sagemaker.calls == []
    metrics = metrics_of(capsys.readouterr().out)
    assert metrics["ReadingsNotScored"] == 2.0
    assert metrics.get("ModelCalls", 0.0) == 0.0
