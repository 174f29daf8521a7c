"""Alert wording: what a maintenance engineer reads in the e-mail and the SMS."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.alerts import SMS_MAX, SUBJECT_MAX, format_alert
from tests.support import load_event


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
    import json
    import re

    from motor_maintenance.alarms import OperatorAction

    event = load_event("alarm-raised") | {"alarm": "schedule", "kind": "schedule", "rule": {"service_interval_h": 1000}}
    body = format_alert(AlarmEvent.model_validate(event)).body
    suggested = [json.loads(match) for match in re.findall(r"\{.*\}", body)]

    assert [payload["action"] for payload in suggested] == ["acknowledge", "service_complete"]
    for payload in suggested:
        filled = payload | {"action_id": "a-1", "ts": "2026-11-27T12:30:00Z"}
        assert OperatorAction.model_validate(filled).motor_id == "motor-001"


rule_values = st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["schedule", "condition", "predictive", "offline", "health"]),
    transition=st.sampled_from(["raised", "cleared", "serviced", "acknowledged", "snoozed"]),
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
)
def test_any_alarm_event_that_parses_can_be_worded(kind: str, transition: str, rule: dict, value: float | None) -> None:
    """Alerting must never fail on an event's content: a crash here would retry and park a real alarm."""
    event = load_event("alarm-raised") | {"kind": kind, "transition": transition, "rule": rule, "value": value}

    alert = format_alert(AlarmEvent.model_validate(event))

    assert alert.subject.isascii()
    assert 0 < len(alert.subject) <= SUBJECT_MAX
    assert len(alert.sms) <= SMS_MAX


def test_an_alarm_event_without_a_valid_alarm_name_is_rejected() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="alarm"):
        AlarmEvent.model_validate(load_event("alarm-raised") | {"alarm": ""})
