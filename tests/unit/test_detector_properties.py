"""Invariants of the detector over generated histories of readings and operator actions (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from motor_maintenance.alarms import AlarmEvent, AlarmState, OperatorAction, Transition
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import Outcome, ReadingInput, step
from motor_maintenance.prediction import Driver
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from tests.support import T0_MS, reading_payload

T0 = datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
# Shorter than the defaults so that generated histories reach every transition often.
CONFIG = DetectorConfig.with_overrides(
    {
        "schedule": {"service_interval_h": 0.05},
        "conditions": [
            rule.model_dump() | {"min_duration_s": duration}
            for rule, duration in zip(DetectorConfig().conditions, (90.0, 30.0), strict=True)
        ],
    }
)
ALARMS = CONFIG.alarm_names()
RAISED_STATES = {AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED}


@dataclass(frozen=True)
class Read:
    """`repeat` readings `dt_s` apart with the same values: sustained excursions, not just noise."""

    repeat: int
    dt_s: float
    running: bool
    vibration_mm_s: float
    fluid_temp_c: float | None
    probability: float | None


@dataclass(frozen=True)
class Act:
    dt_s: float
    action: str
    alarm: str
    snooze_minutes: float
    verdict: str | None = None
    """Sent on acknowledge and reset of a predictive or condition alarm only: elsewhere it is refused (tested in
    test_labels.py), and the histories here are made of actions the detector takes."""


reads = st.builds(
    Read,
    repeat=st.integers(1, 6),
    dt_s=st.floats(0.5, 240),
    running=st.booleans(),
    vibration_mm_s=st.one_of(st.floats(0, 6), st.floats(6, 20)),
    fluid_temp_c=st.one_of(st.none(), st.floats(150, 195), st.floats(205, 260)),
    probability=st.one_of(st.none(), st.floats(0, 1)),
)
acts = st.builds(
    Act,
    dt_s=st.floats(0.5, 120),
    action=st.sampled_from(
        ["acknowledge", "snooze", "disable", "enable", "reset", "service_complete", "report_failure"]
    ),
    alarm=st.sampled_from(ALARMS),
    snooze_minutes=st.floats(1, 20),
    verdict=st.one_of(st.none(), st.sampled_from(["confirmed", "false_alarm", "unsure"])),
)
histories = st.lists(st.one_of(reads, reads, acts), min_size=1, max_size=40)


@dataclass
class Applied:
    item: Any
    now: datetime
    before: MotorState | None
    after: MotorState
    events: tuple[AlarmEvent, ...]
    outcome: Outcome


def drivers_of(ts_ms: int) -> tuple[Driver, ...]:
    """Made-up drivers for the prediction of the reading at `ts_ms`: telling which prediction an event quotes."""
    return (Driver(feature=f"f{ts_ms % 35}", contribution=1.0 + ts_ms % 1000 / 1000),)


def judged(entry: Act) -> bool:
    """Whether the action may carry a verdict."""
    return entry.action in ("acknowledge", "reset") and entry.alarm not in ("schedule", "offline")


def replay(history: list[Read | Act], *, explained: bool = False) -> list[Applied]:
    """Feed a generated history through the detector, as the Lambda would, recording every step.

    `explained`: each prediction comes with drivers (drivers_of its reading's time).
    """
    state: MotorState | None = None
    at = 0.0
    applied = []
    expanded: list[Read | Act] = []
    for entry in history:
        expanded.extend([entry] * entry.repeat if isinstance(entry, Read) else [entry])
    for seq, entry in enumerate(expanded, start=1):
        at += entry.dt_s
        now = T0 + timedelta(seconds=at)
        item: Any
        if isinstance(entry, Read):
            reading = Telemetry.model_validate(
                reading_payload(
                    seq,
                    at_s=at,
                    running=entry.running,
                    vibration_mm_s=entry.vibration_mm_s,
                    fluid_temp_c=entry.fluid_temp_c,
                )
            )
            explain = explained and entry.probability is not None
            item = ReadingInput(reading, entry.probability, drivers_of(reading.ts_ms) if explain else ())
        else:
            failure = entry.action == "report_failure"
            item = OperatorAction(
                motor_id="motor-001",
                action=entry.action,
                alarm=None if failure else entry.alarm,
                action_id=f"a{seq}",
                ts=now,
                snooze_minutes=entry.snooze_minutes if entry.action == "snooze" else None,
                verdict=entry.verdict if judged(entry) else None,
                failed_at=now - timedelta(seconds=entry.dt_s) if failure else None,
                failure_mode="bearing_wear" if failure else None,
            )
        decision = step(state, item, now, CONFIG)
        applied.append(Applied(item, now, state, decision.state, decision.events, decision.outcome))
        state = decision.state
    return applied


def run_hours_from_inputs(records: list[Applied]) -> float:
    """Run hours recomputed from the raw inputs: running time between readings, gaps capped, reset by a service."""
    hours, last_ms, last_running, service_ms = 0.0, None, False, 0
    for record in records:
        item = record.item
        if isinstance(item, OperatorAction):
            if item.action == "service_complete" and record.outcome is Outcome.APPLIED:
                hours, service_ms = 0.0, round(item.ts.timestamp() * 1000)
            continue
        if record.outcome is not Outcome.APPLIED:
            continue
        ts_ms = item.reading.ts_ms
        if last_ms is not None and last_running:
            hours += max(min((ts_ms - max(last_ms, service_ms)) / 1000, CONFIG.max_gap_s), 0.0) / 3600
        last_ms, last_running = ts_ms, item.reading.running
    return hours


@settings(max_examples=300, deadline=None)
@given(histories)
def test_replaying_any_reading_twice_changes_nothing(history: list[Read | Act]) -> None:
    for record in replay(history):
        again = step(record.after, record.item, record.now + timedelta(seconds=1), CONFIG)
        assert again.outcome is Outcome.DUPLICATE
        assert again.events == ()
        assert again.state.to_dict() == record.after.to_dict()


@settings(max_examples=300, deadline=None)
@given(histories)
def test_an_alarm_is_active_or_acknowledged_only_while_its_rule_holds(history: list[Read | Act]) -> None:
    for record in replay(history):
        for name, status in record.after.alarms.items():
            if status.state in RAISED_STATES:
                assert status.held, f"{name} is {status.state} but its rule does not hold"


@settings(max_examples=300, deadline=None)
@given(histories)
def test_every_raise_is_backed_by_the_inputs_that_caused_it(history: list[Read | Act]) -> None:
    """Checked against the raw history, not against the detector's own bookkeeping."""
    records = replay(history)
    for index, record in enumerate(records):
        for event in record.events:
            if event.transition is not Transition.RAISED:
                continue
            past = [r.item for r in records[: index + 1] if isinstance(r.item, ReadingInput)]
            if event.alarm == "predictive":
                rule = CONFIG.predictive
                probabilities = [r.failure_probability for r in past if r.failure_probability is not None]
                assert any(
                    all(p >= rule.raise_threshold for p in probabilities[i : i + rule.consecutive])
                    and len(probabilities[i : i + rule.consecutive]) == rule.consecutive
                    for i in range(len(probabilities))
                ), "predictive alarm raised without N consecutive high predictions"
            elif event.alarm == "schedule":
                assert run_hours_from_inputs(records[: index + 1]) >= CONFIG.schedule.service_interval_h - 1e-9
            else:
                rule = CONFIG.condition(event.alarm)
                assert rule is not None
                series = [
                    (r.reading.ts_ms, getattr(r.reading, rule.signal))
                    for r in past
                    if getattr(r.reading, rule.signal) is not None
                ]
                raise_ms = series[-1][0]
                window_ms = rule.min_duration_s * 1000
                # Some reading started an excursion at least min_duration before the raise, every
                # reading for min_duration after it was past the raise threshold, and none since
                # fell back past the clear threshold.
                assert any(
                    start <= raise_ms - window_ms
                    and all(rule.crossed(v) for t, v in series if start <= t <= start + window_ms)
                    and not any(rule.back_to_normal(v) for t, v in series if start <= t <= raise_ms)
                    for start, _ in series
                ), f"{event.alarm} raised without its threshold held for {rule.min_duration_s} s"


@settings(max_examples=200, deadline=None)
@given(histories, st.lists(st.floats(0, 6), min_size=1, max_size=5))
def test_acknowledge_then_clear_returns_to_normal(history: list[Read | Act], calm: list[float]) -> None:
    records = replay(history)
    state = records[-1].after
    status = state.alarms["vibration_zone_d"]
    if status.state is not AlarmState.ACTIVE:
        return
    now = records[-1].now
    ack = OperatorAction(motor_id="motor-001", action="acknowledge", alarm="vibration_zone_d", action_id="ack", ts=now)
    state = step(state, ack, now, CONFIG).state
    assert state.alarms["vibration_zone_d"].state is AlarmState.ACKNOWLEDGED
    seq = 10_000
    for value in [*calm, 1.0]:  # the last reading is surely below the 7.1 clear threshold
        now += timedelta(seconds=10)
        seq += 1
        reading = Telemetry.model_validate(
            reading_payload(seq, at_s=(now - T0).total_seconds(), vibration_mm_s=min(value, 7.0))
        )
        state = step(state, ReadingInput(reading), now, CONFIG).state
    assert state.alarms["vibration_zone_d"].state is AlarmState.NORMAL


@settings(max_examples=300, deadline=None)
@given(histories)
def test_a_latched_alarm_leaves_latched_only_by_an_operator_or_a_new_raise(history: list[Read | Act]) -> None:
    for record in replay(history):
        if record.before is None:
            continue
        for name, status in record.before.alarms.items():
            if status.state is not AlarmState.LATCHED or name not in record.after.alarms:
                continue
            after = record.after.alarms[name].state
            if isinstance(record.item, ReadingInput):
                assert after in (AlarmState.LATCHED, AlarmState.ACTIVE), f"{name} left LATCHED for {after}"


@settings(max_examples=300, deadline=None)
@given(histories)
def test_service_complete_resets_run_hours_and_clears_the_schedule_alarm(history: list[Read | Act]) -> None:
    records = replay(history)
    state, now = records[-1].after, records[-1].now
    before = state.alarms["schedule"].state
    action = OperatorAction(motor_id="motor-001", action="service_complete", action_id="svc", ts=now)

    decision = step(state, action, now, CONFIG)

    assert decision.state.run_hours == 0.0
    after = decision.state.alarms["schedule"].state
    if before in (AlarmState.SNOOZED, AlarmState.DISABLED):
        assert after is before
    else:
        assert after is AlarmState.NORMAL
    assert [e.transition for e in decision.events] == [Transition.SERVICED]


@settings(max_examples=300, deadline=None)
@given(histories)
def test_events_chain_each_alarms_states_without_gaps(history: list[Read | Act]) -> None:
    current = dict.fromkeys(ALARMS, AlarmState.NORMAL)
    for record in replay(history):
        for event in record.events:
            assert event.from_state is current[event.alarm], f"{event.alarm}: {event.from_state} after {current}"
            current[event.alarm] = event.to_state
        assert record.after.alarm_states() == {name: state.value for name, state in current.items()}


@settings(max_examples=300, deadline=None)
@given(histories)
def test_labels_move_no_alarm_and_ride_only_on_the_events_they_belong_to(history: list[Read | Act]) -> None:
    """A failure report announces itself and moves nothing; a verdict is kept only where it applies."""
    for record in replay(history):
        item = record.item
        if not isinstance(item, OperatorAction):
            assert all(e.verdict is None and e.failure_mode is None for e in record.events)
            continue
        own = [e for e in record.events if e.transition is not Transition.SNOOZE_EXPIRED]
        if item.action.value == "report_failure":
            assert record.outcome is Outcome.APPLIED
            [event] = own
            assert (event.alarm, event.transition, event.failure_mode) == (
                "predictive",
                Transition.FAILURE_REPORTED,
                "bearing_wear",
            )
            assert event.from_state is event.to_state
            assert record.after.last_failure is not None
        for event in own:
            assert event.verdict == item.verdict
            assert event.failure_mode == item.failure_mode


@settings(max_examples=200, deadline=None)
@given(histories, st.lists(st.integers(min_value=0), min_size=1, max_size=5), st.floats(302, 10**6))
def test_late_out_of_order_and_future_readings_change_nothing(
    history: list[Read | Act], picks: list[int], ahead_s: float
) -> None:
    records = replay(history)
    final, now = records[-1].after, records[-1].now
    earlier = [r.item for r in records if isinstance(r.item, ReadingInput) and r.outcome is Outcome.APPLIED]
    late_inputs = [earlier[i % len(earlier)] for i in picks] if earlier else []
    future = Telemetry.model_validate(reading_payload(10**6, at_s=(now - T0).total_seconds() + ahead_s))

    for item in [*late_inputs, ReadingInput(future, 0.99)]:
        decision = step(final, item, now + timedelta(seconds=1), CONFIG)
        assert decision.outcome in (Outcome.DUPLICATE, Outcome.STALE, Outcome.FUTURE)
        assert decision.events == ()
        assert decision.state.to_dict() == final.to_dict()


@settings(max_examples=300, deadline=None)
@given(histories)
def test_readings_never_move_a_disabled_alarm_or_one_snoozed_until_later(history: list[Read | Act]) -> None:
    for record in replay(history):
        if record.before is None or not isinstance(record.item, ReadingInput):
            continue
        now_ms = round(record.now.timestamp() * 1000)
        for name, status in record.before.alarms.items():
            after = record.after.alarms[name].state
            if status.state is AlarmState.DISABLED:
                assert after is AlarmState.DISABLED, name
            if status.state is AlarmState.SNOOZED and (status.snoozed_until_ms or 0) > now_ms:
                assert after is AlarmState.SNOOZED, name


@settings(max_examples=200, deadline=None)
@given(histories)
def test_drivers_ride_only_on_predictive_raises_and_change_nothing_else(history: list[Read | Act]) -> None:
    """The same history with and without the model's drivers: the same events (ids included) but the drivers;
    only a predictive raise carries them, and they are those of the prediction the event quotes."""
    plain, explained = replay(history), replay(history, explained=True)

    for without, with_drivers in zip(plain, explained, strict=True):
        assert [e.model_dump(exclude={"drivers"}) for e in without.events] == [
            e.model_dump(exclude={"drivers"}) for e in with_drivers.events
        ]
        for event in with_drivers.events:
            if event.alarm == "predictive" and event.transition is Transition.RAISED:
                assert event.probability_at is not None
                assert event.drivers == drivers_of(round(event.probability_at.timestamp() * 1000))
            else:
                assert event.drivers == ()


@settings(max_examples=200, deadline=None)
@given(histories)
def test_no_step_changes_the_state_it_is_given(history: list[Read | Act]) -> None:
    """A reading copies an alarm's status only when it changes it: the statuses it leaves are still shared."""
    for record in replay(history):
        if record.before is None:
            continue
        before = record.before.to_dict()

        again = step(record.before, record.item, record.now, CONFIG)

        assert record.before.to_dict() == before
        assert again.state.to_dict() == record.after.to_dict()
        assert again.events == record.events
