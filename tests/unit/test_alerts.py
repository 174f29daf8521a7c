"""Alert wording: what a maintenance engineer reads in the e-mail and the SMS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from motor_adapters.sns_notifier import SnsNotifier
from motor_maintenance.alarms import NOTE_MAX, OPERATOR_MAX, AlarmEvent, OperatorAction
from motor_maintenance.alerts import SMS_MAX, SUBJECT_MAX, SUBJECT_WHAT_MIN, format_alert
from motor_maintenance.config import FAILURE_MODE_PATTERN, DetectorConfig
from motor_maintenance.detector import ReadingInput, step
from motor_maintenance.prediction import DRIVERS_MAX, FEATURE_NAME_PATTERN
from motor_maintenance.telemetry import Telemetry
from tests.support import T0_MS, load_event, reading_payload


def test_a_raised_condition_alarm_says_what_where_why_and_what_to_do() -> None:
    alert = format_alert(AlarmEvent.model_validate(load_event("alarm-raised")))

    assert alert.subject == "[CRITICAL] motor-001: Fluid temperature above 200 C for 5 minutes - ALARM"
    assert "Motor motor-001 (pump-37kw)" in alert.body
    assert "went from NORMAL to ACTIVE at 2026-11-27 12:06:00 UTC" in alert.body
    assert "fluid_temp_c = 212.50 C (raises above 200.0 C held for 5 min, clears at 190.0 C)" in alert.body
    assert "probability of failure within 24 h: 18%" in alert.body
    assert "Check the cooling circuit" in alert.body
    assert 'publishing to motors/motor-001/actions: {"motor_id": "motor-001", "action": "acknowledge"' in alert.body
    assert alert.sms.startswith("CRITICAL motor-001 Fluid temperature above 200 C")


def test_subject_and_sms_fit_their_channels_and_stay_ascii() -> None:
    event = load_event("alarm-raised")
    event["rule"]["description"] = "Température du fluide ≥ 200 °C " * 10
    event["motor_type"] = "pompe-é"

    alert = format_alert(AlarmEvent.model_validate(event))

    assert len(alert.subject) <= SUBJECT_MAX
    assert len(alert.sms) <= SMS_MAX
    assert alert.subject.isascii()
    assert alert.sms.isascii()
    assert "\n" not in alert.subject


def test_a_predictive_alarm_states_the_probability_and_the_rule() -> None:
    event = load_event("alarm-raised") | {
        "alarm": "predictive",
        "kind": "predictive",
        "failure_probability": 0.83,
        "value": 0.83,
        "rule": {"raise_threshold": 0.5, "clear_threshold": 0.3, "consecutive": 2},
        "severity": "high",
    }

    alert = format_alert(AlarmEvent.model_validate(event))

    assert alert.subject == "[HIGH] motor-001: Failure predicted within 24 h - ALARM"
    assert "failure probability 83% (raises at 50% on 2 predictions in a row, clears below 30%)" in alert.body


def test_a_predictive_alarm_says_in_words_which_features_drove_it() -> None:
    alert = format_alert(AlarmEvent.model_validate(load_event("alarm-predictive-raised")))

    assert alert.subject == "[HIGH] motor-001: Failure predicted within 24 h - ALARM"
    assert "Model's probability of failure within 24 h: 83%." in alert.body
    assert (
        "Main drivers: bearing temperature trend (1 h vs 24 h), vibration (1 h average), "
        "bearing temperature above ambient." in alert.body
    )
    assert alert.sms.startswith(
        "HIGH motor-001 Failure predicted within 24 h: ALARM. Failure probability 83%, "
        "main drivers: bearing temperature trend (1 h vs 24 h), vibration"
    )
    assert len(alert.sms) <= SMS_MAX


def test_a_driver_this_code_has_no_words_for_is_named_as_the_model_names_it() -> None:
    event = load_event("alarm-predictive-raised") | {"drivers": [{"feature": "f12", "contribution": 0.9}]}

    alert = format_alert(AlarmEvent.model_validate(event))

    assert "Main drivers: f12." in alert.body


def test_an_alert_without_drivers_does_not_mention_them() -> None:
    predictive = format_alert(AlarmEvent.model_validate(load_event("alarm-predictive-raised") | {"drivers": []}))
    condition = format_alert(AlarmEvent.model_validate(load_event("alarm-raised")))

    assert "drivers" not in predictive.body + predictive.sms + condition.body + condition.sms
    assert "failure probability 83% (raises at 50% on 2 predictions in a row" in predictive.sms


def test_service_recorded_tells_how_long_the_motor_ran() -> None:
    event = load_event("alarm-raised") | {
        "alarm": "schedule",
        "kind": "schedule",
        "transition": "serviced",
        "from_state": "ACTIVE",
        "to_state": "NORMAL",
        "severity": "medium",
        "cause": "action",
        "value": 1012.5,
        "run_hours": 1012.5,
        "rule": {"service_interval_h": 1000.0},
        "operator": "maintenance-team",
        "note": "bearings regreased",
    }

    alert = format_alert(AlarmEvent.model_validate(event))

    assert alert.subject == "[MEDIUM] motor-001: Scheduled service due - service recorded"
    assert "1,012.5 run hours since the last service (interval 1000.0 h)" in alert.body
    assert "By maintenance-team: bearings regreased" in alert.body
    assert "Nothing to do." in alert.body


def test_the_action_an_alert_suggests_is_one_the_action_topic_accepts() -> None:
    import re

    event = load_event("alarm-raised") | {"alarm": "schedule", "kind": "schedule", "rule": {"service_interval_h": 1000}}
    body = format_alert(AlarmEvent.model_validate(event)).body
    suggested = [json.loads(match) for match in re.findall(r"\{.*\}", body)]

    assert [payload["action"] for payload in suggested] == ["acknowledge", "service_complete"]
    for payload in suggested:
        filled = payload | {"action_id": "a-1", "ts": "2026-11-27T12:30:00Z"}
        assert OperatorAction.model_validate(filled).motor_id == "motor-001"


def test_a_reported_failure_says_when_how_who_and_whether_the_model_saw_it_coming() -> None:
    alert = format_alert(AlarmEvent.model_validate(load_event("alarm-failure-reported")))

    assert alert.subject == "[HIGH] motor-001: failed at 2026-11-27 12:16:00 UTC (bearing_wear) - failure reported"
    assert (
        "motor-001 failed at 2026-11-27 12:16:00 UTC (bearing_wear), reported by j.smith, "
        "note: Drive-end bearing seized; the motor tripped on overcurrent.\n" in alert.body
    )
    assert "Model's last probability of failure within 24 h as of 2026-11-27 12:15:00 UTC: 91%." in alert.body
    assert "The predictive alarm is ACKNOWLEDGED since 2026-11-27 12:06:00 UTC." in alert.body
    assert "Failure predicted" not in alert.subject + alert.body  # a failure, not a prediction
    assert alert.sms.startswith("HIGH motor-001 failed at 2026-11-27 12:16:00 UTC (bearing_wear), reported by j.smith")


def test_a_failure_the_predictive_alarm_missed_says_so_and_asks_for_no_verdict() -> None:
    event = load_event("alarm-failure-reported") | {"from_state": "NORMAL", "to_state": "NORMAL", "note": None}

    alert = format_alert(AlarmEvent.model_validate(event))

    assert "The predictive alarm is NORMAL: it did not forewarn of this failure." in alert.body
    assert "verdict" not in alert.body
    assert alert.sms == "HIGH motor-001 failed at 2026-11-27 12:16:00 UTC (bearing_wear), reported by j.smith"


@pytest.mark.parametrize(("state", "action"), [("ACTIVE", "acknowledge"), ("ACKNOWLEDGED", "reset")])
def test_the_verdict_a_failure_alert_suggests_is_one_the_detector_applies(state: str, action: str) -> None:
    import re

    event = load_event("alarm-failure-reported") | {"from_state": state, "to_state": state}
    body = format_alert(AlarmEvent.model_validate(event)).body
    [suggested] = [json.loads(match) for match in re.findall(r"\{.*\}", body)]

    filled = OperatorAction.model_validate(suggested | {"action_id": "a-1", "ts": "2026-11-27T12:30:00Z"})
    assert (filled.action.value, filled.alarm, filled.verdict) == (action, "predictive", "confirmed")


@pytest.mark.parametrize(
    ("verdict", "words", "explained"),
    [
        ("confirmed", "confirmed", "confirmed, the alarm was right"),
        ("false_alarm", "false alarm", "false alarm, nothing was wrong"),
        ("unsure", "unsure", "unsure whether the alarm was right"),
    ],
)
def test_an_acknowledge_or_reset_with_a_verdict_says_it(verdict: str, words: str, explained: str) -> None:
    event = load_event("alarm-raised") | {
        "transition": "reset",
        "from_state": "ACKNOWLEDGED",
        "to_state": "NORMAL",
        "cause": "action",
        "operator": "j.smith",
        "verdict": verdict,
    }

    alert = format_alert(AlarmEvent.model_validate(event))

    assert alert.subject == f"[CRITICAL] motor-001: Fluid temperature above 200 C for 5 minutes - reset, {words}"
    assert f"Verdict on the alarm: {explained}." in alert.body
    assert alert.sms.endswith(f"reset, {words}")


def test_an_alert_without_a_verdict_does_not_mention_one() -> None:
    alert = format_alert(AlarmEvent.model_validate(load_event("alarm-raised")))

    assert "erdict" not in alert.subject + alert.body + alert.sms


# Integers a float holds exactly: a larger one (10**400) is refused by the schema, tested below.
rule_values = st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-(2**53), 2**53), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["schedule", "condition", "predictive", "offline", "health"]),
    transition=st.sampled_from(["raised", "cleared", "serviced", "acknowledged", "snoozed", "failure_reported"]),
    rule=st.dictionaries(
        st.sampled_from(
            [
                "signal",
                "direction",
                "raise_threshold",
                "clear_threshold",
                "min_duration_s",
                "consecutive",
                "service_interval_h",
                "description",
            ]
        ),
        rule_values,
    ),
    value=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    drivers=st.lists(
        st.fixed_dictionaries(
            {
                "feature": st.from_regex(FEATURE_NAME_PATTERN, fullmatch=True),
                "contribution": st.floats(min_value=0.0, exclude_min=True, allow_infinity=False),
            }
        ),
        max_size=DRIVERS_MAX,
        unique_by=lambda driver: driver["feature"],
    ),
    labels=st.fixed_dictionaries(
        {},
        optional={
            "verdict": st.sampled_from(["confirmed", "false_alarm", "unsure"]),
            "failure_mode": st.from_regex(FAILURE_MODE_PATTERN, fullmatch=True),
            "failed_at": st.integers(T0_MS - 30 * 86_400_000, T0_MS),
            "note": st.text(max_size=NOTE_MAX),
            "operator": st.one_of(st.none(), st.text(max_size=OPERATOR_MAX)),
        },
    ),
)
def test_any_alarm_event_that_parses_can_be_worded(
    kind: str,
    transition: str,
    rule: dict,
    value: float | None,
    drivers: list[dict[str, Any]],
    labels: dict[str, Any],
) -> None:
    """Alerting must never fail on an event's content: a crash here would retry and park a real alarm."""
    event = load_event("alarm-raised") | {
        "kind": kind,
        "transition": transition,
        "rule": rule,
        "value": value,
        "drivers": drivers,
        **labels,
    }

    alert = format_alert(AlarmEvent.model_validate(event))

    assert alert.subject.isascii()
    assert 0 < len(alert.subject) <= SUBJECT_MAX
    assert len(alert.sms) <= SMS_MAX


def test_an_alarm_event_without_a_valid_alarm_name_is_rejected() -> None:
    with pytest.raises(ValidationError, match="alarm"):
        AlarmEvent.model_validate(load_event("alarm-raised") | {"alarm": ""})


# --- what the alerts function refuses, and what it must always accept ----------------------------

SAMPLE_RULE = load_event("alarm-raised")["rule"]
LONE_SURROGATE = "\udcff"  # JSON can spell one ("\\udcff"); no UTF-8 encoder writes it
SNS_MAX_MESSAGE_BYTES = 256 * 1024


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "not-an-event-id"),
        ("event_id", "9f3b2c1d0e4a5b6c7d8e9f0a1b2c3d4e5"),  # 33 digits: event_id() makes 32
        ("advice", "\u00e9" * 60_000),  # 120 KB, under IoT's 128 KB: over SNS's 256 KB as the alert's JSON
        ("note", "n" * 501),
        ("operator", "o" * 101),
        ("motor_type", "t" * 65),
        ("action_id", "an action id"),
        ("event_id", "9f3b2c1d0e4a5b6c7d8e9f0a1b2c3d4" + LONE_SURROGATE),
        ("motor_type", "pump" + LONE_SURROGATE),
        ("advice", "Check" + LONE_SURROGATE),
        ("note", "done" + LONE_SURROGATE),
        ("operator", "j.smith" + LONE_SURROGATE),
        ("action_id", "a-1" + LONE_SURROGATE),
        ("rule", SAMPLE_RULE | {"description": "Hot" + LONE_SURROGATE}),
        ("rule", SAMPLE_RULE | {"note" + LONE_SURROGATE: 1}),
        ("rule", SAMPLE_RULE | {"description": "d" * 501}),
        ("rule", SAMPLE_RULE | {"raise_threshold": 10**400}),  # raised OverflowError in the alert text
        ("rule", SAMPLE_RULE | {"nested": {"a": {"b": 1}}}),  # a few hundred levels broke the idempotency hash
        ("rule", SAMPLE_RULE | {f"extra_{i}": i for i in range(3)}),  # 9 items
        ("readings", {"fluid_temp_c": 212.5, "not_a_signal": 1.0}),
        ("readings", {"fluid_temp_c" + LONE_SURROGATE: 212.5}),
        ("drivers", [{"feature": f"f{i}", "contribution": 1.0} for i in range(6)]),  # 6: at most 5
        ("drivers", [{"feature": "f1", "contribution": 1.0}, {"feature": "f1", "contribution": 0.5}]),
        ("drivers", [{"feature": "motor-001/#", "contribution": 1.0}]),
        ("drivers", [{"feature": "f" * 65, "contribution": 1.0}]),
        ("drivers", [{"feature": "f1" + LONE_SURROGATE, "contribution": 1.0}]),
        ("drivers", [{"feature": "f1", "contribution": float("inf")}]),
        ("drivers", [{"feature": "f1", "contribution": 10**400}]),
        ("drivers", [{"feature": "f1", "contribution": -0.5}]),  # lowered the probability: not a driver
        ("drivers", [{"feature": "f1", "contribution": "1.0"}]),
        ("drivers", [{"feature": "f1", "contribution": 1.0, "note": "x"}]),
        ("drivers", [{"feature": {"nested": ["f1"]}, "contribution": 1.0}]),
        ("drivers", {"feature": "f1", "contribution": 1.0}),
    ],
)
def test_an_alarm_event_the_alert_could_not_carry_is_refused_by_name(field: str, value: Any) -> None:
    """Refused, the alerts function answers 'rejected'; accepted, the SNS publish or the log line would fail."""
    with pytest.raises(ValidationError) as refused:
        AlarmEvent.model_validate(load_event("alarm-raised") | {field: value})

    assert {str(error["loc"][0]) for error in refused.value.errors()} == {field}


class CapturingSns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.published.append(kwargs)
        return {"MessageId": str(len(self.published))}


def test_the_largest_events_the_detector_can_make_are_accepted_and_each_alert_fits_one_sns_message() -> None:
    """Every free text at its longest, in 4-byte characters: the detector never makes an event the alerts refuse."""
    wide = "\U0001d7ce"  # four bytes in UTF-8, twelve as a JSON escape
    config = DetectorConfig.with_overrides(
        {
            "conditions": [
                {
                    "name": "h" * 40,
                    "signal": "fluid_temp_c",
                    "raise_threshold": 200.0,
                    "clear_threshold": 190.0,
                    "description": wide * 500,
                    "advice": wide * 1000,
                }
            ],
            "failure_modes": ["m" * 40],
        }
    )
    t0 = datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
    reading = Telemetry.model_validate(reading_payload(motor_type="t" * 64, fluid_temp_c=250.0))
    raised = step(None, ReadingInput(reading), t0, config)
    action = OperatorAction(
        motor_id="motor-001",
        action="acknowledge",
        alarm="h" * 40,
        action_id="a" * 100,
        ts=t0 + timedelta(minutes=1),
        operator="o" * 100,
        note=wide * 500,
        verdict="false_alarm",
    )
    acknowledged = step(raised.state, action, t0 + timedelta(minutes=1), config)
    report = OperatorAction(
        motor_id="motor-001",
        action="report_failure",
        action_id="b" * 100,
        ts=t0 + timedelta(minutes=1),
        failed_at=t0 - timedelta(days=29),
        failure_mode="m" * 40,
        operator="o" * 100,
        note=wide * 500,
    )
    reported = step(acknowledged.state, report, t0 + timedelta(minutes=1), config)
    sns = CapturingSns()

    for event in (*raised.events, *acknowledged.events, *reported.events):
        arrived = AlarmEvent.model_validate(json.loads(event.model_dump_json()))  # as the alerts function gets it
        SnsNotifier("arn:aws:sns:eu-west-1:123456789012:alerts", sns).send(format_alert(arrived), arrived)

    assert [message["MessageAttributes"]["transition"]["StringValue"] for message in sns.published] == [
        "raised",
        "acknowledged",
        "failure_reported",
    ]
    for message in sns.published:
        assert len(message["Message"].encode()) + len(message["Subject"]) < SNS_MAX_MESSAGE_BYTES


@pytest.mark.parametrize("transition", ["raised", "acknowledged", "cleared", "reset"])
def test_a_500_character_description_is_shortened_never_the_motor_or_the_transition(transition: str) -> None:
    """A long rule description must not push the transition out of the subject: the raised and the
    acknowledged alert of one alarm would read the same."""
    event = load_event("alarm-raised") | {"transition": transition}
    event["rule"]["description"] = "Fluid temperature above the limit of the cooling circuit " + "x" * 443
    assert len(event["rule"]["description"]) == 500

    alert = format_alert(AlarmEvent.model_validate(event))

    headline = {"raised": "ALARM", "acknowledged": "acknowledged", "cleared": "cleared", "reset": "reset"}[transition]
    assert len(alert.subject) <= SUBJECT_MAX
    assert alert.subject.startswith("[CRITICAL] motor-001: Fluid temperature above the limit")
    assert alert.subject.endswith(f"... - {headline}")


def test_subjects_of_two_transitions_of_one_alarm_differ_even_with_the_longest_motor_id() -> None:
    subjects = set()
    for transition in ("raised", "acknowledged"):
        event = load_event("alarm-raised") | {"transition": transition, "motor_id": "m" * 64}
        event["rule"]["description"] = "D" * 500
        alert = format_alert(AlarmEvent.model_validate(event))
        assert len(alert.subject) <= SUBJECT_MAX
        assert "D" * SUBJECT_WHAT_MIN in alert.subject  # the alarm, shortened
        assert "m" * 40 in alert.subject  # the motor
        subjects.add(alert.subject)

    assert len(subjects) == 2
