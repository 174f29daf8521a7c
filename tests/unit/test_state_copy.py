"""A state's copy carries every field and shares nothing the detector mutates."""

from __future__ import annotations

from dataclasses import fields

from motor_maintenance.alarms import AlarmEvent, AlarmState
from motor_maintenance.features import RunningStats
from motor_maintenance.prediction import Driver
from motor_maintenance.state import AlarmStatus, FailureRecord, MotorState
from tests.support import load_event


def _status() -> AlarmStatus:
    return AlarmStatus(
        state=AlarmState.LATCHED,
        held=True,
        pending_since_ms=11,
        consecutive=3,
        active_since_ms=12,
        snoozed_until_ms=13,
        last_value=4.5,
        last_seen_ms=14,
    )


def _state() -> MotorState:
    return MotorState(
        motor_id="m-1",
        motor_type="pump-37kw",
        version=7,
        last_ts_ms=101,
        last_seq=5,
        last_running=True,
        last_heard_ms=102,
        next_check_ms=103,
        run_hours=12.5,
        last_service_ms=104,
        failure_probability=0.4,
        probability_ts_ms=105,
        probability_drivers=(Driver(feature="vibration_mm_s", contribution=0.3),),
        last_readings={"vibration_mm_s": 2.5},
        alarms={"schedule": _status()},
        stats=RunningStats(last_ts_ms=99, fast={"current_a": 1.0}, operating_s=60.0),
        event_seq=9,
        recent_action_ids=("a-1",),
        outbox=(AlarmEvent.model_validate(load_event("alarm-raised")),),
        last_failure=FailureRecord(at_ms=100, mode="bearing_wear", action_id="a-0"),
        probability_model_version="m-0123456789ab",
    )


def test_every_field_is_set_away_from_its_default_here() -> None:
    """Guards the tests below: a new field must be given a non-default value above (and be copied)."""
    pairs: list[tuple[object, object]] = [(_state(), MotorState(motor_id="m-2")), (_status(), AlarmStatus())]
    for instance, default in pairs:
        unchanged = [f.name for f in fields(instance) if getattr(instance, f.name) == getattr(default, f.name)]  # type: ignore[arg-type]
        assert not unchanged, unchanged


def test_a_copy_equals_the_original_field_by_field() -> None:
    state = _state()

    copied = state.copy()

    assert copied == state
    assert copied.alarms["schedule"] == state.alarms["schedule"]
    for f in fields(MotorState):
        assert getattr(copied, f.name) == getattr(state, f.name), f.name


def test_changing_a_copy_leaves_the_original_as_it_was() -> None:
    state = _state()
    before = state.to_dict()

    copied = state.copy()
    copied.alarms["schedule"].state = AlarmState.NORMAL
    copied.alarms["offline"] = AlarmStatus()
    copied.last_readings["current_a"] = 1.0
    copied.run_hours = 0.0

    assert state.to_dict() == before
