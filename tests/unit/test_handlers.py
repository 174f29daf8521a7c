"""Every sample event through its handler, with AWS faked by moto and the model answered from its input."""

from __future__ import annotations

import io
import json
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

import motor_adapters.clients
from motor_adapters import state_item
from motor_adapters.clients import client as real_client
from tests.conftest import FakeAws
from tests.support import FakeSageMakerRuntime, LambdaContext, load_event, load_handler


@pytest.fixture
def actions(aws: FakeAws) -> ModuleType:
    return load_handler("actions")


@pytest.fixture
def alerts(aws: FakeAws) -> ModuleType:
    return load_handler("alerts")


def state_of(aws: FakeAws, motor_id: str) -> dict[str, Any]:
    item = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": motor_id}})["Item"]
    return state_item.state_of(item).to_dict()


def seed_fluid_excursion(inference: ModuleType, context: LambdaContext) -> None:
    """Six minutes before the breach sample, the fluid was already past 200 C."""
    early = load_event("telemetry-condition-breach") | {"ts": "2026-11-27T12:00:30Z", "seq": 1001}
    assert inference.lambda_handler(early, context)["status"] == "applied"


# --- inference ------------------------------------------------------------------------------


def test_normal_reading_is_scored_by_the_model_and_stored(
    inference: ModuleType, aws: FakeAws, sagemaker: FakeSageMakerRuntime, lambda_context: LambdaContext
) -> None:
    response = inference.lambda_handler(load_event("telemetry-normal"), lambda_context)

    assert response["status"] == "applied"
    assert response["events"] == []
    assert len(sagemaker.calls) == 1
    assert sagemaker.calls[0]["EndpointName"] == "motor-failure-xgboost"
    assert 0.0 < response["failure_probability"] < 0.5
    state = state_of(aws, "motor-001")
    assert state["last_seq"] == 1042
    assert state["failure_probability"] == response["failure_probability"]
    assert aws.published() == []


def test_condition_breach_held_five_minutes_raises_and_publishes_the_alarm_event(
    inference: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    seed_fluid_excursion(inference, lambda_context)

    response = inference.lambda_handler(load_event("telemetry-condition-breach"), lambda_context)

    assert response["alarm_states"]["fluid_overtemperature"] == "ACTIVE"
    published = aws.published()
    assert [topic for topic, _ in published] == ["motors/motor-001/alarms"]
    payload = published[0][1]
    assert payload["event_id"] == response["events"][0]
    assert (payload["alarm"], payload["transition"], payload["value"]) == ("fluid_overtemperature", "raised", 212.5)
    assert state_of(aws, "motor-001")["outbox"] == []


def test_a_raised_alarm_is_counted_for_the_fleet_and_for_its_kind(
    inference: ModuleType, aws: FakeAws, lambda_context: LambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_fluid_excursion(inference, lambda_context)
    capsys.readouterr()

    inference.lambda_handler(load_event("telemetry-condition-breach"), lambda_context)

    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"CloudWatchMetrics"' in line]
    raised = {
        tuple(sorted(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])): (line["AlarmsRaised"], line.get("kind"))
        for line in emf
        if "AlarmsRaised" in line
    }
    assert raised == {("service",): ([1.0], None), ("kind", "service"): ([1.0], "condition")}


def test_the_same_reading_delivered_twice_alerts_once(
    inference: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    seed_fluid_excursion(inference, lambda_context)
    event = load_event("telemetry-condition-breach")

    first = inference.lambda_handler(event, lambda_context)
    second = inference.lambda_handler(event, lambda_context)

    assert (first["status"], second["status"]) == ("applied", "duplicate")
    assert len(aws.published()) == 1


def test_legacy_reading_from_the_original_sample_is_processed(
    inference: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    response = inference.lambda_handler(load_event("telemetry-legacy"), lambda_context)

    assert response["status"] == "applied"
    assert response["motor_id"] == "AWS98765"
    assert state_of(aws, "AWS98765")["last_readings"]["fluid_temp_c"] == 231


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ("telemetry-malformed", "speed_rpm: Input should be greater than or equal to 0"),
        ("telemetry-topic-mismatch", "does not match the topic's motor id"),
    ],
)
def test_bad_reading_is_rejected_with_a_reason_and_stores_nothing(
    inference: ModuleType,
    aws: FakeAws,
    lambda_context: LambdaContext,
    sample: str,
    reason: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = inference.lambda_handler(load_event(sample), lambda_context)

    assert response["status"] == "rejected"
    assert reason in response["reason"]
    assert aws.dynamodb.scan(TableName="motor-state")["Items"] == []
    [record] = [r for r in caplog.records if r.getMessage() == "reading rejected"]
    assert reason in record.reason
    assert '"ReadingsRejected"' in capsys.readouterr().out  # the EMF metric


@pytest.mark.parametrize("payload", [None, [], "motor-001", 42, {"motor_id": 7}])
def test_payloads_that_are_not_readings_at_all_are_rejected(
    inference: ModuleType, lambda_context: LambdaContext, payload: Any
) -> None:
    assert inference.lambda_handler(payload, lambda_context)["status"] == "rejected"


def test_when_the_endpoint_times_out_the_reading_is_still_stored_and_conditions_evaluated(
    inference: ModuleType,
    aws: FakeAws,
    sagemaker: FakeSageMakerRuntime,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sagemaker.fail_with = ReadTimeoutError(endpoint_url="https://runtime.sagemaker.eu-west-1.amazonaws.com")
    seed_fluid_excursion(inference, lambda_context)

    response = inference.lambda_handler(load_event("telemetry-condition-breach"), lambda_context)

    assert response["status"] == "applied"
    assert response["failure_probability"] is None
    assert response["alarm_states"]["fluid_overtemperature"] == "ACTIVE"
    assert state_of(aws, "motor-001")["last_seq"] == 1078
    assert "prediction failed; schedule and condition rules still evaluated" in caplog.messages
    assert '"PredictionsFailed"' in capsys.readouterr().out


def worn_readings() -> list[dict[str, Any]]:
    """Two readings a minute apart of a pump whose bearing runs hot and vibrates, short of any condition alarm."""
    worn = load_event("telemetry-normal") | {"vibration_mm_s": 8.0, "bearing_temp_c": 100.0}
    return [worn, worn | {"ts": "2026-11-27T12:01:00Z", "seq": 1043}]


def test_a_predicted_failure_is_raised_with_its_drivers_and_alerted_with_them_in_words(
    inference: ModuleType, alerts: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    """Given an endpoint that explains its predictions (the project's script-mode handler),
    when two readings in a row are predicted to fail,
    then the predictive alarm event names the features that drove it and the alert says them in words.
    """
    first, second = (inference.lambda_handler(event, lambda_context) for event in worn_readings())

    assert [d["feature"] for d in first["drivers"]] == ["vibration_mm_s_ewm_1h", "bearing_temp_c"]
    assert second["alarm_states"]["predictive"] == "ACTIVE"
    [(topic, payload)] = aws.published()
    assert topic == "motors/motor-001/alarms"
    assert (payload["alarm"], payload["transition"]) == ("predictive", "raised")
    assert payload["drivers"] == second["drivers"]
    assert payload["drivers"][0]["contribution"] > payload["drivers"][1]["contribution"] > 0

    assert alerts.lambda_handler(payload, lambda_context)["status"] == "sent"
    [notification] = aws.alerts()
    assert "Main drivers: vibration (1 h average), bearing temperature." in notification["Message"]


def test_an_endpoint_that_gives_scores_only_still_raises_the_predictive_alarm(
    inference: ModuleType, aws: FakeAws, sagemaker: FakeSageMakerRuntime, lambda_context: LambdaContext
) -> None:
    """SageMaker's plain built-in algorithm (an ExistingEndpointName) answers JSON without drivers."""
    sagemaker.explains = False

    responses = [inference.lambda_handler(event, lambda_context) for event in worn_readings()]

    assert [r["drivers"] for r in responses] == [[], []]
    assert responses[1]["alarm_states"]["predictive"] == "ACTIVE"
    [(_topic, payload)] = aws.published()
    assert (payload["alarm"], payload["drivers"]) == ("predictive", [])


def test_malformed_drivers_are_logged_and_counted_and_the_probability_still_counts(
    inference: ModuleType,
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Garbled:
        def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
            answer = {"predictions": [{"score": 0.9, "drivers": [{"feature": "vibration", "contribution": "high"}]}]}
            return {"Body": io.BytesIO(json.dumps(answer).encode())}

    monkeypatch.setattr(
        motor_adapters.clients,
        "client",
        lambda service, **kwargs: Garbled() if service == "sagemaker-runtime" else real_client(service, **kwargs),
    )

    responses = [inference.lambda_handler(event, lambda_context) for event in worn_readings()]

    assert [(r["failure_probability"], r["drivers"]) for r in responses] == [(0.9, []), (0.9, [])]
    assert responses[1]["alarm_states"]["predictive"] == "ACTIVE"
    reasons = [r.reason for r in caplog.records if r.getMessage() == "prediction drivers dropped; probability kept"]
    assert len(reasons) == 2
    assert "contribution" in reasons[0]
    out = capsys.readouterr().out
    assert '"PredictionDriversDropped"' in out
    assert '"PredictionsFailed"' not in out


def test_invalid_detector_config_keeps_the_defaults_and_says_so(
    inference: ModuleType, aws: FakeAws, lambda_context: LambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    aws.ssm.put_parameter(
        Name="/motor-maintenance/detector-config", Value='{"schedule": {"service_interval_h": -5}}', Overwrite=True
    )

    response = inference.lambda_handler(load_event("telemetry-normal"), lambda_context)

    assert response["status"] == "applied"
    [record] = [r for r in caplog.records if r.getMessage().startswith("configuration rejected")]
    assert "service_interval_h" in record.reason


def test_detector_config_overrides_from_ssm_apply(
    inference: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    aws.ssm.put_parameter(
        Name="/motor-maintenance/detector-config",
        Value=json.dumps(
            {
                "conditions": [
                    {
                        "name": "hot_fluid",
                        "signal": "fluid_temp_c",
                        "raise_threshold": 200,
                        "clear_threshold": 190,
                        "min_duration_s": 0,
                    }
                ]
            }
        ),
        Overwrite=True,
    )

    response = inference.lambda_handler(load_event("telemetry-condition-breach"), lambda_context)

    assert response["alarm_states"]["hot_fluid"] == "ACTIVE"
    assert "fluid_overtemperature" not in response["alarm_states"]


# --- operator actions -----------------------------------------------------------------------


def raise_fluid_alarm(inference: ModuleType, context: LambdaContext) -> None:
    seed_fluid_excursion(inference, context)
    assert (
        inference.lambda_handler(load_event("telemetry-condition-breach"), context)["alarm_states"][
            "fluid_overtemperature"
        ]
        == "ACTIVE"
    )


def test_acknowledge_moves_the_active_alarm_to_acknowledged(
    inference: ModuleType, actions: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    raise_fluid_alarm(inference, lambda_context)

    response = actions.lambda_handler(load_event("action-acknowledge"), lambda_context)

    assert response["status"] == "applied"
    assert response["alarm_states"]["fluid_overtemperature"] == "ACKNOWLEDGED"
    topic, payload = aws.published()[-1]
    assert topic == "motors/motor-001/alarms"
    assert (payload["transition"], payload["operator"]) == ("acknowledged", "j.smith")


def test_reset_returns_the_alarm_to_normal(
    inference: ModuleType, actions: ModuleType, lambda_context: LambdaContext
) -> None:
    raise_fluid_alarm(inference, lambda_context)

    response = actions.lambda_handler(load_event("action-reset"), lambda_context)

    assert response["alarm_states"]["fluid_overtemperature"] == "NORMAL"


def test_snooze_silences_the_alarm(inference: ModuleType, actions: ModuleType, lambda_context: LambdaContext) -> None:
    inference.lambda_handler(load_event("telemetry-normal"), lambda_context)

    response = actions.lambda_handler(load_event("action-snooze"), lambda_context)

    assert response["status"] == "applied"
    assert response["alarm_states"]["vibration_zone_d"] == "SNOOZED"


def test_disable_then_enable(inference: ModuleType, actions: ModuleType, lambda_context: LambdaContext) -> None:
    inference.lambda_handler(load_event("telemetry-normal"), lambda_context)

    disabled = actions.lambda_handler(load_event("action-disable"), lambda_context)
    enabled = actions.lambda_handler(load_event("action-enable"), lambda_context)

    assert disabled["alarm_states"]["predictive"] == "DISABLED"
    assert enabled["alarm_states"]["predictive"] == "NORMAL"


def test_service_complete_resets_run_hours(
    inference: ModuleType, actions: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    inference.lambda_handler(load_event("telemetry-normal"), lambda_context)
    later = load_event("telemetry-normal") | {"ts": "2026-11-27T12:05:00Z", "seq": 1100}
    inference.lambda_handler(later, lambda_context)
    assert state_of(aws, "motor-001")["run_hours"] > 0

    response = actions.lambda_handler(load_event("action-service-complete"), lambda_context)

    assert response["status"] == "applied"
    assert state_of(aws, "motor-001")["run_hours"] == 0.0
    assert aws.published()[-1][1]["transition"] == "serviced"


def test_a_redelivered_action_is_reported_as_duplicate(
    inference: ModuleType, actions: ModuleType, lambda_context: LambdaContext
) -> None:
    raise_fluid_alarm(inference, lambda_context)

    first = actions.lambda_handler(load_event("action-acknowledge"), lambda_context)
    second = actions.lambda_handler(load_event("action-acknowledge"), lambda_context)

    assert (first["status"], second["status"]) == ("applied", "duplicate")


def test_malformed_action_is_rejected_with_the_reason(actions: ModuleType, lambda_context: LambdaContext) -> None:
    response = actions.lambda_handler(load_event("action-malformed"), lambda_context)

    assert response["status"] == "rejected"
    assert "action: Input should be" in response["reason"]
    assert "action_id: Field required" in response["reason"]


def test_reset_with_a_verdict_publishes_it_on_the_reset_event(
    inference: ModuleType, actions: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    raise_fluid_alarm(inference, lambda_context)

    response = actions.lambda_handler(load_event("action-reset"), lambda_context)

    assert response["status"] == "applied"
    payload = aws.published()[-1][1]
    assert (payload["transition"], payload["verdict"]) == ("reset", "confirmed")


def test_a_predictive_alarm_acknowledged_with_a_verdict_then_a_failure_reported_chain_to_two_alerts(
    inference: ModuleType, actions: ModuleType, alerts: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    for reading in worn_readings():
        inference.lambda_handler(reading, lambda_context)

    acknowledged = actions.lambda_handler(load_event("action-acknowledge-verdict"), lambda_context)
    reported = actions.lambda_handler(load_event("action-report-failure"), lambda_context)
    again = actions.lambda_handler(load_event("action-report-failure"), lambda_context)

    assert (acknowledged["status"], reported["status"], again["status"]) == ("applied", "applied", "duplicate")
    assert reported["alarm_states"]["predictive"] == "ACKNOWLEDGED"
    raised, ack, failed = (payload for _topic, payload in aws.published())
    assert raised["transition"] == "raised"
    assert (ack["transition"], ack["verdict"]) == ("acknowledged", "confirmed")
    assert (failed["transition"], failed["failure_mode"], failed["failed_at"]) == (
        "failure_reported",
        "bearing_wear",
        "2026-11-27T12:16:00Z",
    )
    assert state_of(aws, "motor-001")["last_failure"] == {
        "at_ms": 1_795_781_760_000,
        "mode": "bearing_wear",
        "action_id": load_event("action-report-failure")["action_id"],
    }
    for payload in (ack, failed):
        assert alerts.lambda_handler(payload, lambda_context)["status"] == "sent"
    subjects = [notification["Subject"] for notification in aws.alerts()]
    assert subjects == [
        "[HIGH] motor-001: Failure predicted within 24 h - acknowledged, confirmed",
        "[HIGH] motor-001: failed at 2026-11-27 12:16:00 UTC (bearing_wear) - failure reported",
    ]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"failed_at": "2026-11-27T12:21:00Z"}, "failed_at is after the report's ts"),
        ({"failed_at": "2026-10-28T12:19:59Z"}, "failed_at is more than 30 days before the report's ts"),
        ({"failure_mode": "gremlins"}, "unknown failure_mode 'gremlins'; modes: bearing_wear, winding_insulation"),
        ({"ts": "2099-01-01T00:00:00Z", "failed_at": "2098-12-31T00:00:00Z"}, "action stamped in the future"),
        (
            {
                "alarm": "schedule",
                "action": "acknowledge",
                "verdict": "confirmed",
                "failed_at": None,
                "failure_mode": None,
            },
            "a verdict applies to a predictive or condition alarm, not to 'schedule'",
        ),
        (
            {
                "action": "snooze",
                "alarm": "predictive",
                "snooze_minutes": 5,
                "verdict": "unsure",
                "failed_at": None,
                "failure_mode": None,
            },
            "verdict only applies to acknowledge and reset",
        ),
        ({"action": "acknowledge", "alarm": "predictive"}, "failed_at and failure_mode only apply to report_failure"),
    ],
)
def test_a_bad_label_is_rejected_with_the_reason_and_counted(
    actions: ModuleType,
    aws: FakeAws,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    override: dict[str, Any],
    reason: str,
) -> None:
    event = {k: v for k, v in (load_event("action-report-failure") | override).items() if v is not None}

    response = actions.lambda_handler(event, lambda_context)

    assert response["status"] in ("rejected", "future")
    assert reason in response["reason"]
    assert '"ActionsRejected"' in capsys.readouterr().out  # the EMF metric
    assert aws.published() == []


# --- alerts ---------------------------------------------------------------------------------


def test_alarm_event_becomes_one_sns_alert_with_filterable_attributes(
    alerts: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    response = alerts.lambda_handler(load_event("alarm-raised"), lambda_context)

    assert response["status"] == "sent"
    [notification] = aws.alerts()
    assert notification["Subject"] == "[CRITICAL] motor-001: Fluid temperature above 200 C for 5 minutes - ALARM"
    assert "Check the cooling circuit" in notification["Message"]
    attributes = {name: value["Value"] for name, value in notification["MessageAttributes"].items()}
    assert attributes == {
        "severity": "critical",
        "motor_id": "motor-001",
        "alarm_kind": "condition",
        "alarm": "fluid_overtemperature",
        "transition": "raised",
        "event_id": load_event("alarm-raised")["event_id"],
    }


def test_a_predictive_alarm_event_is_alerted_with_its_drivers_in_words(
    alerts: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    response = alerts.lambda_handler(load_event("alarm-predictive-raised"), lambda_context)

    assert response["status"] == "sent"
    [notification] = aws.alerts()
    assert notification["Subject"] == "[HIGH] motor-001: Failure predicted within 24 h - ALARM"
    assert "Main drivers: bearing temperature trend (1 h vs 24 h), vibration (1 h average)" in notification["Message"]
    assert notification["MessageAttributes"]["alarm_kind"]["Value"] == "predictive"


def test_the_same_alarm_event_delivered_twice_alerts_once(
    alerts: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    event = load_event("alarm-raised")

    first = alerts.lambda_handler(event, lambda_context)
    second = alerts.lambda_handler(event, lambda_context)

    assert first["message_id"] == second["message_id"]
    assert len(aws.alerts()) == 1


def test_a_malformed_alarm_event_is_rejected(alerts: ModuleType, aws: FakeAws, lambda_context: LambdaContext) -> None:
    event = load_event("alarm-raised") | {"transition": "exploded"}

    response = alerts.lambda_handler(event, lambda_context)

    assert response["status"] == "rejected"
    assert aws.alerts() == []


def test_the_whole_chain_reading_to_alert(
    inference: ModuleType, alerts: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    """What IoT Core does between the functions, done by hand: each published alarm event to the alert rule."""
    raise_fluid_alarm(inference, lambda_context)

    for _topic, payload in aws.published():
        alerts.lambda_handler(payload, lambda_context)

    [notification] = aws.alerts()
    assert "fluid_temp_c = 212.50 C" in notification["Message"]
