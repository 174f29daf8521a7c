"""The maintenance detector, by example: each strategy, the alarm lifecycle and operator actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from motor_maintenance.alarms import AlarmKind, AlarmState, OperatorAction, Transition
from motor_maintenance.config import ConditionRule, DetectorConfig
from motor_maintenance.detector import Decision, Outcome, ReadingInput, step
from motor_maintenance.prediction import DRIVERS_MAX, Driver
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from tests.support import T0_MS, reading_payload

T0 = datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
CONFIG = DetectorConfig()


class Motor:
    """Drives one motor's state through the detector, reading by reading, like the Lambda does."""

    def __init__(self, config: DetectorConfig = CONFIG, motor_id: str = "motor-001") -> None:
        self.config = config
        self.motor_id = motor_id
        self.state: MotorState | None = None
        self.seq = 0
        self.events: list[Any] = []

    def read(
        self, at_s: float, probability: float | None = None, drivers: tuple[Driver, ...] = (), **signals: Any
    ) -> Decision:
        self.seq += 1
        reading = Telemetry.model_validate(reading_payload(self.seq, at_s=at_s, motor_id=self.motor_id, **signals))
        return self._apply(ReadingInput(reading, probability, drivers), T0 + timedelta(seconds=at_s))

    def act(self, action: str, at_s: float, alarm: str | None = None, **extra: Any) -> Decision:
        self.seq += 1
        command = OperatorAction(
            motor_id=self.motor_id,
            action=action,
            alarm=alarm,
            action_id=f"act-{self.seq}",
            ts=T0 + timedelta(seconds=at_s),
            operator="tester",
            **extra,
        )
        return self._apply(command, T0 + timedelta(seconds=at_s))

    def _apply(self, item: Any, now: datetime) -> Decision:
        decision = step(self.state, item, now, self.config)
        self.state = decision.state
        self.events.extend(decision.events)
        return decision

    def alarm(self, name: str) -> AlarmState:
        assert self.state is not None
        return self.state.alarms[name].state

    def alarm_or_none(self, name: str) -> AlarmState | None:
        return None if self.state is None else self.state.alarms[name].state


def transitions(decision: Decision) -> list[tuple[str, str, str]]:
    return [(e.alarm, e.transition.value, e.to_state.value) for e in decision.events]


# --- condition-based ------------------------------------------------------------------------


def test_fluid_overtemperature_raises_only_after_five_minutes_above_200c() -> None:
    motor = Motor()
    motor.read(0, fluid_temp_c=205.0)
    before = motor.read(299, fluid_temp_c=206.0)
    at_five_minutes = motor.read(300, fluid_temp_c=207.0)

    assert transitions(before) == []
    assert transitions(at_five_minutes) == [("fluid_overtemperature", "raised", "ACTIVE")]
    event = at_five_minutes.events[0]
    assert event.kind is AlarmKind.CONDITION
    assert event.value == 207.0
    assert event.readings["fluid_temp_c"] == 207.0
    assert event.active_since == T0 + timedelta(seconds=300)


def test_a_dip_below_the_raise_threshold_restarts_the_duration() -> None:
    motor = Motor()
    motor.read(0, fluid_temp_c=205.0)
    motor.read(200, fluid_temp_c=199.0)
    motor.read(250, fluid_temp_c=205.0)
    still_pending = motor.read(500, fluid_temp_c=205.0)
    raised = motor.read(550, fluid_temp_c=205.0)

    assert transitions(still_pending) == []
    assert transitions(raised) == [("fluid_overtemperature", "raised", "ACTIVE")]


def test_hysteresis_keeps_the_alarm_until_the_clear_threshold() -> None:
    motor = Motor()
    motor.read(0, vibration_mm_s=12.0)
    motor.read(60, vibration_mm_s=12.0)
    assert motor.alarm("vibration_zone_d") is AlarmState.ACTIVE

    in_band = motor.read(120, vibration_mm_s=9.0)  # below 11.2 but above the 7.1 clear threshold
    cleared = motor.read(180, vibration_mm_s=7.0)

    assert transitions(in_band) == []
    assert transitions(cleared) == [("vibration_zone_d", "cleared", "LATCHED")]


def test_a_below_rule_raises_on_low_values() -> None:
    config = DetectorConfig(
        conditions=(
            ConditionRule(
                name="low_pressure",
                signal="pressure_bar",
                direction="below",
                raise_threshold=2.0,
                clear_threshold=3.0,
                min_duration_s=0,
            ),
        )
    )
    motor = Motor(config)

    raised = motor.read(0, pressure_bar=1.5)
    held = motor.read(10, pressure_bar=2.5)
    cleared = motor.read(20, pressure_bar=3.5)

    assert transitions(raised) == [("low_pressure", "raised", "ACTIVE")]
    assert transitions(held) == []
    assert transitions(cleared) == [("low_pressure", "cleared", "LATCHED")]


def test_a_reading_without_the_watched_signal_leaves_the_rule_as_it_was() -> None:
    motor = Motor()
    motor.read(0, fluid_temp_c=205.0)
    motor.read(200, fluid_temp_c=None)
    raised = motor.read(300, fluid_temp_c=205.0)

    assert transitions(raised) == [("fluid_overtemperature", "raised", "ACTIVE")]


# --- schedule-based -------------------------------------------------------------------------


def test_run_hours_accumulate_only_while_running() -> None:
    motor = Motor()
    motor.read(0)
    motor.read(300)
    motor.read(600, running=False)
    motor.read(3600, running=False)  # stopped for most of an hour
    motor.read(3900)

    assert motor.state is not None
    assert motor.state.run_hours == pytest.approx(600 / 3600)


def test_a_long_silence_counts_only_the_capped_gap() -> None:
    motor = Motor()
    motor.read(0)
    motor.read(7 * 24 * 3600)  # a week later, still "running"

    assert motor.state is not None
    assert motor.state.run_hours == pytest.approx(CONFIG.max_gap_s / 3600)


HOURLY = DetectorConfig.with_overrides({"offline": {"after_s": 2 * 3600}})
"""A fleet that reports every hour: its offline alarm is set past the hour, or every reading would be an outage."""


def test_a_motor_reporting_every_hour_earns_an_hour_of_run_time_a_reading() -> None:
    motor = Motor(HOURLY)
    for hour in range(25):
        motor.read(hour * 3600)

    assert motor.state is not None
    assert motor.state.run_hours == pytest.approx(24.0)


def test_a_silence_longer_than_the_offline_limit_still_counts_only_up_to_it() -> None:
    motor = Motor(HOURLY)
    motor.read(0)
    motor.read(7 * 24 * 3600)

    assert motor.state is not None
    assert motor.state.run_hours == pytest.approx(2.0)


def test_with_the_offline_alarm_off_max_gap_s_alone_bounds_the_run_time() -> None:
    motor = Motor(DetectorConfig.with_overrides({"offline": {"enabled": False, "after_s": 2 * 3600}}))
    motor.read(0)
    motor.read(3600)

    assert motor.state is not None
    assert motor.state.run_hours == pytest.approx(CONFIG.max_gap_s / 3600)


def test_a_condition_crossed_on_two_hourly_readings_has_held_for_the_hour() -> None:
    motor = Motor(HOURLY)
    motor.read(0, fluid_temp_c=215.0)
    decision = motor.read(3600, fluid_temp_c=214.0)

    assert motor.alarm("fluid_overtemperature") is AlarmState.ACTIVE
    assert [e.transition for e in decision.events] == [Transition.RAISED]


def test_schedule_alarm_raises_at_the_service_interval_and_service_complete_clears_it() -> None:
    config = DetectorConfig.with_overrides({"schedule": {"service_interval_h": 1.0}})
    motor = Motor(config)
    at = 0.0
    while motor.alarm_or_none("schedule") is not AlarmState.ACTIVE and at < 2 * 3600:
        motor.read(at)
        at += 300
    assert motor.alarm("schedule") is AlarmState.ACTIVE
    assert motor.state is not None
    assert motor.state.run_hours >= 1.0
    raised = next(e for e in motor.events if e.transition is Transition.RAISED)
    assert raised.kind is AlarmKind.SCHEDULE

    serviced = motor.act("service_complete", at)

    assert transitions(serviced) == [("schedule", "serviced", "NORMAL")]
    hours_at_service = serviced.events[0].run_hours
    assert hours_at_service is not None
    assert hours_at_service >= 1.0
    assert motor.state.run_hours == 0.0
    assert motor.alarm("schedule") is AlarmState.NORMAL
    assert transitions(motor.read(at + 300)) == []


# --- predictive -----------------------------------------------------------------------------


def test_predictive_alarm_needs_consecutive_high_probabilities() -> None:
    motor = Motor()
    first = motor.read(0, probability=0.7)
    interrupted = motor.read(10, probability=0.45)
    again = motor.read(20, probability=0.8)
    raised = motor.read(30, probability=0.6)

    assert [transitions(d) for d in (first, interrupted, again)] == [[], [], []]
    assert transitions(raised) == [("predictive", "raised", "ACTIVE")]
    assert raised.events[0].failure_probability == 0.6


def test_predictive_alarm_clears_only_below_the_lower_threshold() -> None:
    motor = Motor()
    motor.read(0, probability=0.9)
    motor.read(10, probability=0.9)
    motor.act("acknowledge", 15, alarm="predictive")

    between = motor.read(20, probability=0.4)
    cleared = motor.read(30, probability=0.2)

    assert transitions(between) == []
    assert transitions(cleared) == [("predictive", "cleared", "NORMAL")]


def test_no_prediction_leaves_the_predictive_rule_unchanged() -> None:
    motor = Motor()
    motor.read(0, probability=0.9)
    motor.read(10, probability=None)  # endpoint down
    raised = motor.read(20, probability=0.9)

    assert transitions(raised) == [("predictive", "raised", "ACTIVE")]


BEARING = (
    Driver(feature="bearing_temp_c_trend", contribution=1.23),
    Driver(feature="vibration_mm_s", contribution=0.4),
)
VIBRATION = (Driver(feature="vibration_mm_s_ewm_1h", contribution=2.1),)


def test_the_predictive_raise_says_which_features_drove_the_prediction_that_raised_it() -> None:
    motor = Motor()
    motor.read(0, probability=0.7, drivers=VIBRATION)
    raised = motor.read(10, probability=0.8, drivers=BEARING)

    assert transitions(raised) == [("predictive", "raised", "ACTIVE")]
    assert raised.events[0].drivers == BEARING
    assert raised.state.probability_drivers == BEARING


def test_only_the_predictive_raise_carries_drivers() -> None:
    """Schedule and condition alarms are not the model's; a clear or an action is not news about its reasons."""
    motor = Motor()
    motor.read(0, probability=0.9, drivers=BEARING, vibration_mm_s=12.0)
    same_reading = motor.read(60, probability=0.9, drivers=BEARING, vibration_mm_s=12.0)
    acknowledged = motor.act("acknowledge", 70, alarm="predictive")
    cleared = motor.read(80, probability=0.1, drivers=VIBRATION, vibration_mm_s=12.0)

    assert transitions(same_reading) == [
        ("vibration_zone_d", "raised", "ACTIVE"),
        ("predictive", "raised", "ACTIVE"),
    ]
    assert [e.drivers for e in same_reading.events] == [(), BEARING]
    assert transitions(acknowledged) + transitions(cleared) == [
        ("predictive", "acknowledged", "ACKNOWLEDGED"),
        ("predictive", "cleared", "NORMAL"),
    ]
    assert [e.drivers for e in (*acknowledged.events, *cleared.events)] == [(), ()]


def test_a_raise_on_a_reading_the_model_did_not_score_quotes_the_last_prediction_and_its_drivers() -> None:
    """A snooze that ends while the model is down: the raise quotes the probability it has, and that one's drivers."""
    motor = Motor()
    motor.read(0, probability=0.9, drivers=VIBRATION)
    motor.act("snooze", 5, alarm="predictive", snooze_minutes=1)
    motor.read(10, probability=0.9, drivers=BEARING)  # the rule holds while snoozed
    after = motor.read(120)  # no prediction: endpoint down

    assert transitions(after) == [("predictive", "snooze_expired", "NORMAL"), ("predictive", "raised", "ACTIVE")]
    raised = after.events[1]
    assert (raised.failure_probability, raised.probability_at, raised.drivers) == (
        0.9,
        T0 + timedelta(seconds=10),
        BEARING,
    )
    assert after.events[0].drivers == ()


def test_drivers_do_not_change_event_ids() -> None:
    def raise_predictive(drivers: tuple[Driver, ...]) -> list[str]:
        motor = Motor()
        motor.read(0, probability=0.9, drivers=drivers)
        motor.read(10, probability=0.9, drivers=drivers)
        return [e.event_id for e in motor.events]

    assert raise_predictive(BEARING) == raise_predictive(VIBRATION) == raise_predictive(())


def test_the_state_keeps_a_bounded_number_of_drivers() -> None:
    many = tuple(Driver(feature=f"f{i}", contribution=10.0 - i) for i in range(DRIVERS_MAX + 3))
    motor = Motor()
    motor.read(0, probability=0.9, drivers=many)
    raised = motor.read(10, probability=0.9, drivers=many)

    assert raised.state.probability_drivers == many[:DRIVERS_MAX]
    assert raised.events[0].drivers == many[:DRIVERS_MAX]
    assert MotorState.from_dict(raised.state.to_dict()).probability_drivers == many[:DRIVERS_MAX]


def test_drivers_without_a_probability_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="drivers without a failure probability"):
        Motor().read(0, probability=None, drivers=BEARING)


# --- lifecycle and operator actions ---------------------------------------------------------


def raise_vibration(motor: Motor, at: float = 0) -> None:
    motor.read(at, vibration_mm_s=12.0)
    motor.read(at + 60, vibration_mm_s=12.0)
    assert motor.alarm("vibration_zone_d") is AlarmState.ACTIVE


def test_acknowledged_alarm_returns_to_normal_when_the_condition_clears() -> None:
    motor = Motor()
    raise_vibration(motor)

    acked = motor.act("acknowledge", 70, alarm="vibration_zone_d")
    cleared = motor.read(80, vibration_mm_s=3.0)

    assert transitions(acked) == [("vibration_zone_d", "acknowledged", "ACKNOWLEDGED")]
    assert acked.events[0].operator == "tester"
    assert transitions(cleared) == [("vibration_zone_d", "cleared", "NORMAL")]


def test_latched_alarm_needs_an_acknowledge_and_raises_again_if_the_condition_returns() -> None:
    motor = Motor()
    raise_vibration(motor)
    motor.read(80, vibration_mm_s=3.0)
    assert motor.alarm("vibration_zone_d") is AlarmState.LATCHED

    motor.read(100, vibration_mm_s=12.0)
    back = motor.read(160, vibration_mm_s=12.0)
    assert transitions(back) == [("vibration_zone_d", "raised", "ACTIVE")]

    motor.read(200, vibration_mm_s=3.0)
    closed = motor.act("acknowledge", 210, alarm="vibration_zone_d")
    assert transitions(closed) == [("vibration_zone_d", "acknowledged", "NORMAL")]


def test_without_latching_a_cleared_alarm_goes_straight_to_normal() -> None:
    motor = Motor(DetectorConfig(latch=False))
    raise_vibration(motor)

    cleared = motor.read(80, vibration_mm_s=3.0)

    assert transitions(cleared) == [("vibration_zone_d", "cleared", "NORMAL")]


def test_snoozed_alarm_stays_quiet_then_raises_again_if_still_breached() -> None:
    motor = Motor()
    raise_vibration(motor)

    snoozed = motor.act("snooze", 70, alarm="vibration_zone_d", snooze_minutes=10)
    quiet = motor.read(300, vibration_mm_s=12.0)
    after = motor.read(70 + 600, vibration_mm_s=12.0)

    assert transitions(snoozed) == [("vibration_zone_d", "snoozed", "SNOOZED")]
    assert snoozed.events[0].snoozed_until == T0 + timedelta(seconds=670)
    assert transitions(quiet) == []
    assert transitions(after) == [
        ("vibration_zone_d", "snooze_expired", "NORMAL"),
        ("vibration_zone_d", "raised", "ACTIVE"),
    ]


def test_disabled_alarm_ignores_its_rule_until_enabled() -> None:
    motor = Motor()
    motor.act("disable", 0, alarm="vibration_zone_d")
    quiet = [motor.read(t, vibration_mm_s=12.0) for t in (10, 100, 200)]

    enabled = motor.act("enable", 210, alarm="vibration_zone_d")
    restarted = motor.read(220, vibration_mm_s=12.0)
    raised = motor.read(280, vibration_mm_s=12.0)

    assert all(transitions(d) == [] for d in quiet)
    assert transitions(enabled) == [("vibration_zone_d", "enabled", "NORMAL")]
    assert transitions(restarted) == []  # the duration starts again after enable
    assert transitions(raised) == [("vibration_zone_d", "raised", "ACTIVE")]


def test_reset_returns_to_normal_and_reevaluates_from_scratch() -> None:
    motor = Motor()
    raise_vibration(motor)

    reset = motor.act("reset", 70, alarm="vibration_zone_d")
    pending = motor.read(80, vibration_mm_s=12.0)
    raised = motor.read(140, vibration_mm_s=12.0)

    assert transitions(reset) == [("vibration_zone_d", "reset", "NORMAL")]
    assert transitions(pending) == []
    assert transitions(raised) == [("vibration_zone_d", "raised", "ACTIVE")]


@pytest.mark.parametrize(
    ("action", "state_needed"),
    [("acknowledge", "NORMAL"), ("reset", "NORMAL"), ("enable", "NORMAL")],
)
def test_an_action_that_does_not_apply_is_ignored_with_a_reason(action: str, state_needed: str) -> None:
    motor = Motor()
    motor.read(0)

    decision = motor.act(action, 10, alarm="vibration_zone_d")

    assert decision.outcome is Outcome.IGNORED
    assert decision.events == ()
    assert decision.reason


def test_an_action_on_an_unknown_alarm_is_rejected_listing_the_alarms() -> None:
    motor = Motor()
    motor.read(0)

    decision = motor.act("acknowledge", 10, alarm="no_such_alarm")

    assert decision.outcome is Outcome.REJECTED
    assert "vibration_zone_d" in decision.reason


def test_a_redelivered_action_is_applied_once() -> None:
    motor = Motor()
    raise_vibration(motor)
    action = OperatorAction(
        motor_id="motor-001", action="snooze", alarm="vibration_zone_d", action_id="same", ts=T0, snooze_minutes=5
    )
    first = step(motor.state, action, T0 + timedelta(seconds=70), CONFIG)
    second = step(first.state, action, T0 + timedelta(seconds=71), CONFIG)

    assert first.outcome is Outcome.APPLIED
    assert second.outcome is Outcome.DUPLICATE
    assert second.state == first.state


# --- ordering and identity ------------------------------------------------------------------


def test_duplicate_and_out_of_order_readings_change_nothing() -> None:
    reading = Telemetry.model_validate(reading_payload(5, at_s=100))
    older = Telemetry.model_validate(reading_payload(4, at_s=90, vibration_mm_s=50.0))
    applied = step(None, ReadingInput(reading), T0 + timedelta(seconds=100), CONFIG)

    duplicate = step(applied.state, ReadingInput(reading, 0.99), T0 + timedelta(seconds=101), CONFIG)
    stale = step(applied.state, ReadingInput(older), T0 + timedelta(seconds=101), CONFIG)

    assert (duplicate.outcome, stale.outcome) == (Outcome.DUPLICATE, Outcome.STALE)
    assert duplicate.state is applied.state
    assert stale.state is applied.state
    assert duplicate.events == stale.events == ()


def test_a_device_reboot_resets_seq_but_newer_timestamps_still_apply() -> None:
    first = Telemetry.model_validate(reading_payload(900, at_s=0))
    after_reboot = Telemetry.model_validate(reading_payload(1, at_s=30))
    state = step(None, ReadingInput(first), T0, CONFIG).state

    decision = step(state, ReadingInput(after_reboot), T0 + timedelta(seconds=30), CONFIG)

    assert decision.outcome is Outcome.APPLIED


def test_a_reading_from_the_future_is_refused_so_it_cannot_block_later_ones() -> None:
    future = Telemetry.model_validate(reading_payload(1, at_s=3600))

    decision = step(None, ReadingInput(future), T0, CONFIG)

    assert decision.outcome is Outcome.FUTURE
    assert decision.state.last_ts_ms is None


def test_event_ids_are_deterministic_and_distinct_per_transition() -> None:
    def run() -> list[str]:
        motor = Motor()
        raise_vibration(motor)
        motor.act("acknowledge", 70, alarm="vibration_zone_d")
        motor.read(80, vibration_mm_s=3.0)
        return [e.event_id for e in motor.events]

    first, second = run(), run()

    assert first == second
    assert len(set(first)) == len(first) == 3


def test_the_input_state_is_never_mutated() -> None:
    motor = Motor()
    raise_vibration(motor)
    assert motor.state is not None
    snapshot = motor.state.to_dict()

    later = Telemetry.model_validate(reading_payload(99, at_s=500, vibration_mm_s=1))
    applied = step(motor.state, ReadingInput(later, 0.9), T0 + timedelta(seconds=500), CONFIG)
    ack = OperatorAction(motor_id="motor-001", action="acknowledge", alarm="vibration_zone_d", action_id="x", ts=T0)
    acted = step(motor.state, ack, T0 + timedelta(seconds=70), CONFIG)

    assert applied.outcome is Outcome.APPLIED  # the copy really was worked on...
    assert acted.outcome is Outcome.APPLIED
    assert applied.events
    assert motor.state.to_dict() == snapshot  # ...and the original is as it was


def test_an_alarm_outside_the_config_in_force_is_kept_frozen_and_not_raised_again() -> None:
    """Two containers can run different configurations for a while (SSM caching)."""
    motor = Motor()
    raise_vibration(motor)
    raised_events = len(motor.events)

    motor.config = DetectorConfig(conditions=())  # a container still on an older document
    motor.read(100, vibration_mm_s=3.0)
    assert motor.alarm("vibration_zone_d") is AlarmState.ACTIVE  # frozen, not dropped
    assert len(motor.events) == raised_events

    motor.config = CONFIG  # back on the full configuration: no second "raised"
    resumed = motor.read(110, vibration_mm_s=12.0)
    assert transitions(resumed) == []
    assert motor.alarm("vibration_zone_d") is AlarmState.ACTIVE


def test_an_expired_snooze_ends_on_the_next_action_too_not_only_on_a_reading() -> None:
    motor = Motor()
    raise_vibration(motor)
    motor.act("snooze", 70, alarm="vibration_zone_d", snooze_minutes=1)

    later = motor.act("acknowledge", 200, alarm="predictive")  # ignored itself: predictive is NORMAL

    assert later.outcome is Outcome.IGNORED
    assert transitions(later) == [("vibration_zone_d", "snooze_expired", "NORMAL")]


def test_run_time_before_a_service_does_not_count_after_it() -> None:
    motor = Motor()
    motor.read(0)
    motor.act("service_complete", 500)

    motor.read(560)  # 560 s after the last reading, but only 60 s after the service

    assert motor.state is not None
    assert motor.state.run_hours == pytest.approx(60 / 3600)


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"snooze_minutes": "120"}, "snooze_minutes: Input should be a valid number"),
        ({"snooze_minutes": None}, "snooze needs snooze_minutes"),
        ({"alarm": None}, "needs the name of an alarm"),
        ({"topic_motor_id": "motor-002"}, "does not match the topic's motor id"),
        ({"action_id": "x" * 101}, "action_id: String should match pattern"),
        ({"ts": "1969-12-31T23:59:00Z"}, "ts: Value error, timestamp 1969-12-31T23:59:00+00:00 is outside"),
        ({"ts": 1_795_780_800}, "ts: Value error, timestamp 1970-01-21"),  # epoch seconds sent as ms
    ],
)
def test_a_malformed_action_is_rejected_naming_why(override: dict[str, Any], why: str) -> None:
    from pydantic import ValidationError

    from motor_maintenance.telemetry import describe_validation_error
    from tests.support import load_event

    with pytest.raises(ValidationError) as caught:
        OperatorAction.model_validate(load_event("action-snooze") | override)
    assert why in describe_validation_error(caught.value)


def test_events_from_a_motors_first_reading_name_its_type() -> None:
    config = DetectorConfig.with_overrides(
        {"conditions": [{"name": "hot", "signal": "fluid_temp_c", "raise_threshold": 100, "clear_threshold": 90}]}
    )

    decision = Motor(config).read(0, fluid_temp_c=150.0)

    assert [e.motor_type for e in decision.events] == ["pump-37kw"]


def test_an_event_says_when_the_probability_it_quotes_was_computed() -> None:
    motor = Motor()
    motor.read(0, probability=0.2)
    motor.read(60, vibration_mm_s=12.0)  # model down from here on
    raised = motor.read(120, vibration_mm_s=12.0)

    [event] = raised.events
    assert event.failure_probability == 0.2
    assert event.probability_at == T0


def test_a_duration_is_not_held_across_a_long_silence_of_the_signal() -> None:
    motor = Motor()
    motor.read(0, fluid_temp_c=205.0)
    for hour in range(1, 5):
        motor.read(hour * 3600, fluid_temp_c=None)  # readings that do not carry the signal
    after_silence = motor.read(5 * 3600, fluid_temp_c=205.0)
    five_minutes_later = motor.read(5 * 3600 + 300, fluid_temp_c=205.0)

    assert transitions(after_silence) == []
    assert transitions(five_minutes_later) == [("fluid_overtemperature", "raised", "ACTIVE")]


def test_an_input_and_a_decision_are_immutable_values_with_their_defaults() -> None:
    reading = Telemetry.model_validate(reading_payload(1))
    item = ReadingInput(reading, 0.4)
    decision = step(None, item, T0, CONFIG)

    assert (item.drivers, item.received_ms, item.stats) == ((), None, None)
    assert decision.reason == ""
    assert item._replace(received_ms=5) == ReadingInput(reading, 0.4, received_ms=5)
    assert decision._replace(reason="why").reason == "why"
    with pytest.raises(AttributeError):
        item.failure_probability = 0.9  # type: ignore[misc]
    with pytest.raises(AttributeError):
        decision.outcome = Outcome.STALE  # type: ignore[misc]
