"""Labels from the people who maintain the motors: report_failure and a verdict on acknowledge or reset."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from motor_maintenance.alarms import AlarmEvent, AlarmKind, AlarmState, OperatorAction, Transition, Verdict, event_id
from motor_maintenance.config import DEFAULT_FAILURE_MODES, DetectorConfig
from motor_maintenance.detector import Outcome, step
from motor_maintenance.service import process_action
from motor_maintenance.state import FailureRecord, MotorState
from motor_maintenance.telemetry import describe_validation_error, to_epoch_ms
from tests.support import T0_MS, MemoryStore, Recorder, load_event
from tests.unit.test_detector import T0, Motor, raise_vibration

CONFIG = DetectorConfig()


def failure(at_s: float = 3600, failed_s: float = 1800, mode: str = "bearing_wear", **extra: Any) -> dict[str, Any]:
    """A report_failure as an operator sends it: reported at T0 + at_s, failed at T0 + failed_s."""
    return {
        "motor_id": "motor-001",
        "action": "report_failure",
        "action_id": "fail-1",
        "ts": (T0 + timedelta(seconds=at_s)).isoformat(),
        "failed_at": (T0 + timedelta(seconds=failed_s)).isoformat(),
        "failure_mode": mode,
        "operator": "j.smith",
        "note": "bearing seized",
    } | extra


def raise_predictive(motor: Motor) -> None:
    motor.read(0, probability=0.8)
    motor.read(60, probability=0.9)
    assert motor.alarm("predictive") is AlarmState.ACTIVE


# --- the schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"failed_at": (T0 + timedelta(seconds=3601)).isoformat()}, "failed_at is after the report's ts"),
        ({"failed_at": (T0 - timedelta(days=30)).isoformat()}, "more than 30 days before the report's ts"),
        ({"failed_at": None}, "report_failure needs failed_at and failure_mode"),
        ({"failure_mode": None}, "report_failure needs failed_at and failure_mode"),
        ({"failure_mode": "Bearing Wear"}, "failure_mode: String should match pattern"),
        ({"failed_at": "yesterday"}, "failed_at"),
        ({"alarm": "predictive"}, "report_failure concerns the motor, not an alarm"),
        ({"verdict": "confirmed"}, "verdict only applies to acknowledge and reset"),
    ],
)
def test_a_malformed_failure_report_is_refused_naming_why(override: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OperatorAction.model_validate(failure() | override)
    assert why in describe_validation_error(caught.value)


def test_a_failure_may_be_reported_up_to_30_days_late_and_at_the_moment_it_happens() -> None:
    late = OperatorAction.model_validate(failure(at_s=30 * 86400, failed_s=0))
    at_once = OperatorAction.model_validate(failure(at_s=100, failed_s=100))

    assert late.ts - late.failed_at == timedelta(days=30)  # type: ignore[operator]
    assert at_once.failed_at == at_once.ts


@pytest.mark.parametrize(
    ("event", "override", "why"),
    [
        ("action-snooze", {"verdict": "confirmed"}, "verdict only applies to acknowledge and reset"),
        ("action-acknowledge", {"verdict": "maybe"}, "verdict: Input should be 'confirmed', 'false_alarm' or 'unsure'"),
        ("action-acknowledge", {"failed_at": "2026-11-27T12:00:00Z"}, "failed_at and failure_mode only apply"),
        ("action-reset", {"failure_mode": "bearing_wear"}, "failed_at and failure_mode only apply"),
        ("action-service-complete", {"failed_at": "2026-11-27T12:00:00Z"}, "only apply to report_failure"),
    ],
)
def test_label_fields_on_the_wrong_action_are_refused(event: str, override: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OperatorAction.model_validate(load_event(event) | override)
    assert why in describe_validation_error(caught.value)


def test_the_default_failure_modes_are_the_simulators_wear_modes_and_other() -> None:
    from device.physics import WEAR_MODES

    assert (*(mode.value for mode in WEAR_MODES), "other") == DEFAULT_FAILURE_MODES
    assert CONFIG.failure_modes == DEFAULT_FAILURE_MODES


@pytest.mark.parametrize(
    ("modes", "why"),
    [([], "at least 1 item"), (["Bearing"], "should match pattern"), (["seal", "seal"], "must be unique")],
)
def test_failure_modes_are_validated(modes: list[str], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        DetectorConfig.with_overrides({"failure_modes": modes})


# --- the detector ---------------------------------------------------------------------------


def test_report_failure_records_the_failure_and_announces_it_on_the_predictive_alarm_unmoved() -> None:
    motor = Motor()
    raise_predictive(motor)
    action = OperatorAction.model_validate(failure(at_s=120, failed_s=90))

    decision = step(motor.state, action, T0 + timedelta(seconds=121), CONFIG)

    assert decision.outcome is Outcome.APPLIED
    (event,) = decision.events
    assert (event.alarm, event.kind, event.transition) == (
        "predictive",
        AlarmKind.PREDICTIVE,
        Transition.FAILURE_REPORTED,
    )
    assert event.from_state is event.to_state is AlarmState.ACTIVE
    assert decision.state.alarms["predictive"].state is AlarmState.ACTIVE
    assert (event.failure_mode, event.failed_at, event.at) == ("bearing_wear", action.failed_at, action.ts)
    assert (event.operator, event.note, event.action_id, event.cause) == (
        "j.smith",
        "bearing seized",
        "fail-1",
        "action",
    )
    assert event.failure_probability == 0.9  # what the model said before it failed
    assert event.verdict is None
    assert event.event_id == event_id("motor-001", "predictive", Transition.FAILURE_REPORTED, "a:fail-1")
    assert decision.state.last_failure == FailureRecord(T0_MS + 90_000, "bearing_wear", "fail-1")


def test_a_failure_of_a_motor_never_seen_is_recorded() -> None:
    decision = step(None, OperatorAction.model_validate(failure()), T0 + timedelta(hours=1), CONFIG)

    assert decision.outcome is Outcome.APPLIED
    assert [(e.from_state, e.to_state) for e in decision.events] == [(AlarmState.NORMAL, AlarmState.NORMAL)]
    assert decision.state.last_failure is not None


def test_a_late_report_of_an_older_failure_is_announced_but_the_newest_stays_recorded() -> None:
    newer = step(None, OperatorAction.model_validate(failure(failed_s=1800)), T0 + timedelta(hours=1), CONFIG)
    older = OperatorAction.model_validate(failure(failed_s=600, mode="cooling_loss", action_id="fail-2"))

    decision = step(newer.state, older, T0 + timedelta(hours=1), CONFIG)

    assert [e.failure_mode for e in decision.events] == ["cooling_loss"]
    assert decision.state.last_failure == FailureRecord(T0_MS + 1_800_000, "bearing_wear", "fail-1")


def test_an_unknown_failure_mode_is_rejected_listing_the_modes() -> None:
    decision = step(None, OperatorAction.model_validate(failure(mode="gremlins")), T0 + timedelta(hours=1), CONFIG)

    assert decision.outcome is Outcome.REJECTED
    assert decision.events == ()
    assert "unknown failure_mode 'gremlins'" in decision.reason
    assert "bearing_wear" in decision.reason
    assert "other" in decision.reason


def test_a_configured_failure_mode_is_accepted() -> None:
    config = DetectorConfig.with_overrides({"failure_modes": ["seal_leak", "other"]})

    decision = step(None, OperatorAction.model_validate(failure(mode="seal_leak")), T0 + timedelta(hours=1), config)

    assert decision.outcome is Outcome.APPLIED


def test_a_report_stamped_in_the_future_is_refused() -> None:
    decision = step(None, OperatorAction.model_validate(failure(at_s=3600)), T0, CONFIG)

    assert decision.outcome is Outcome.FUTURE


def test_a_redelivered_failure_report_is_applied_once() -> None:
    action = OperatorAction.model_validate(failure())
    first = step(None, action, T0 + timedelta(hours=1), CONFIG)

    second = step(first.state, action, T0 + timedelta(hours=1, seconds=5), CONFIG)

    assert (first.outcome, second.outcome) == (Outcome.APPLIED, Outcome.DUPLICATE)
    assert second.events == ()
    assert second.state == first.state


@pytest.mark.parametrize("action", ["acknowledge", "reset"])
@pytest.mark.parametrize("verdict", list(Verdict))
def test_a_verdict_on_a_condition_alarm_rides_on_its_event(action: str, verdict: Verdict) -> None:
    motor = Motor()
    raise_vibration(motor)

    decision = motor.act(action, 70, alarm="vibration_zone_d", verdict=verdict.value)

    assert decision.outcome is Outcome.APPLIED
    (event,) = decision.events
    assert (event.transition.value, event.verdict) == (
        "acknowledged" if action == "acknowledge" else "reset",
        verdict,
    )
    assert (event.failure_mode, event.failed_at) == (None, None)


def test_a_verdict_on_the_predictive_alarm_is_accepted() -> None:
    motor = Motor()
    raise_predictive(motor)

    decision = motor.act("acknowledge", 70, alarm="predictive", verdict="false_alarm")

    assert [e.verdict for e in decision.events] == [Verdict.FALSE_ALARM]


@pytest.mark.parametrize("alarm", ["schedule", "offline"])
def test_a_verdict_on_an_alarm_that_predicts_nothing_is_rejected(alarm: str) -> None:
    motor = Motor()
    motor.read(0)

    decision = motor.act("acknowledge", 10, alarm=alarm, verdict="confirmed")

    assert decision.outcome is Outcome.REJECTED
    assert decision.reason == f"a verdict applies to a predictive or condition alarm, not to {alarm!r}"
    assert decision.events == ()


def test_an_acknowledge_without_a_verdict_is_as_before() -> None:
    motor = Motor()
    raise_vibration(motor)

    decision = motor.act("acknowledge", 70, alarm="vibration_zone_d")

    assert [e.verdict for e in decision.events] == [None]


# --- state and use case ---------------------------------------------------------------------


def test_the_last_failure_survives_the_stored_item() -> None:
    state = MotorState("motor-001", last_failure=FailureRecord(123, "impeller_wear", "a-9"))

    assert MotorState.from_dict(state.to_dict()).last_failure == FailureRecord(123, "impeller_wear", "a-9")


def test_an_item_stored_before_labels_existed_reads_as_no_failure() -> None:
    old = MotorState("motor-001", run_hours=5.0).to_dict()
    assert "last_failure" not in old  # what items written before the field look like, and still do

    loaded = MotorState.from_dict(old)

    assert loaded.last_failure is None
    assert loaded.run_hours == 5.0


def test_an_event_stored_before_labels_existed_still_loads() -> None:
    old = load_event("alarm-raised")
    assert not {"verdict", "failure_mode", "failed_at"} & old.keys()

    event = AlarmEvent.model_validate(old)

    assert (event.verdict, event.failure_mode, event.failed_at) == (None, None, None)


def test_a_redelivered_report_is_saved_and_alerted_once() -> None:
    store, publisher = MemoryStore(), Recorder()
    action = OperatorAction.model_validate(failure())
    now = T0 + timedelta(hours=1)

    first = process_action(action, store=store, publisher=publisher, config=CONFIG, now=now)
    second = process_action(action, store=store, publisher=publisher, config=CONFIG, now=now)

    assert (first.outcome, second.outcome) == (Outcome.APPLIED, Outcome.DUPLICATE)
    assert [e.transition for e in publisher.events] == [Transition.FAILURE_REPORTED]
    saved = store.load("motor-001")
    assert saved is not None
    assert saved.last_failure is not None
    assert saved.last_failure.at_ms == to_epoch_ms(T0 + timedelta(seconds=1800))


def test_the_alarm_transition_log_line_names_the_labels_only_when_there_are_some() -> None:
    from motor_lambda.observability import log_alarm_transition

    class Lines:
        def __init__(self) -> None:
            self.keys: list[dict[str, Any]] = []

        def info(self, message: str, **keys: Any) -> None:
            self.keys.append(keys)

    lines = Lines()
    log_alarm_transition(lines, AlarmEvent.model_validate(load_event("alarm-failure-reported")))  # type: ignore[arg-type]
    log_alarm_transition(lines, AlarmEvent.model_validate(load_event("alarm-raised")))  # type: ignore[arg-type]

    assert lines.keys[0]["failure_mode"] == "bearing_wear"
    assert "verdict" not in lines.keys[0]
    assert not {"verdict", "failure_mode"} & lines.keys[1].keys()


def test_a_failure_more_than_30_days_before_now_is_refused_however_the_report_is_stamped() -> None:
    # A report stamped long ago holds failed_at within 30 days of its own ts: the schema accepts it
    payload = failure(at_s=3600 - 60 * 86_400, failed_s=1800 - 60 * 86_400)
    action = OperatorAction.model_validate(payload)

    decision = step(None, action, T0 + timedelta(seconds=3600), CONFIG)

    assert decision.outcome is Outcome.REJECTED
    assert decision.reason == "failed_at is more than 30 days ago"
    assert decision.events == ()
