"""The offline alarm and the timer: a running motor gone silent is raised by time alone, and cleared by a reading.

The timer (`check_timers`, called by OfflineCheckFunction for the motors whose `next_check_ms` has
passed) is a pure function of the stored state and the time, like the rest of the detector.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motor_lambda.timers import STOP_WITH_S_LEFT
from motor_maintenance.alarms import AlarmEvent, AlarmKind, AlarmState, OperatorAction, Transition
from motor_maintenance.alerts import format_alert
from motor_maintenance.config import OFFLINE_ALARM, DetectorConfig
from motor_maintenance.detector import Decision, Outcome, ReadingInput, check_timers, step
from motor_maintenance.service import process_reading, process_timers
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from tests.support import T0_MS, MemoryStore, Recorder, load_event, reading_payload

T0 = datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
CONFIG = DetectorConfig()  # offline after 600 s
AFTER_S = CONFIG.offline.after_s


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def read(
    state: MotorState | None,
    seq: int,
    at_s: float,
    *,
    running: bool = True,
    received_s: float | None = None,
    config: DetectorConfig = CONFIG,
) -> Decision:
    """A reading stamped and received at `at_s` (or received at `received_s`), processed then."""
    signals = (
        {}
        if running
        else {
            "running": False,
            "speed_rpm": 0.0,
            "torque_nm": 0.0,
            "current_a": 0.0,
            "flow_m3h": 0.0,
            "pressure_bar": 0.0,
        }
    )
    reading = Telemetry.model_validate(reading_payload(seq, at_s=at_s, **signals))
    received = at_s if received_s is None else received_s
    now = max(at_s, received)
    return step(state, ReadingInput(reading, received_ms=T0_MS + round(received * 1000)), at(now), config)


def running_motor(config: DetectorConfig = CONFIG) -> MotorState:
    state = None
    for seq in range(1, 4):
        state = read(state, seq, seq * 10.0, config=config).state
    assert state is not None
    return state


def test_a_running_motor_silent_past_the_limit_raises_offline_and_a_reading_clears_it() -> None:
    state = running_motor()  # last heard at 30 s
    assert check_timers(state, at(30 + AFTER_S - 1), CONFIG).events == ()

    raised = check_timers(state, at(30 + AFTER_S + 20), CONFIG)
    assert [(e.alarm, e.kind, e.transition, e.to_state) for e in raised.events] == [
        (OFFLINE_ALARM, AlarmKind.OFFLINE, Transition.RAISED, AlarmState.ACTIVE)
    ]
    event = raised.events[0]
    assert event.cause == "timer"
    assert event.value == pytest.approx(AFTER_S + 20)  # how long it has been silent
    assert event.at == at(30 + AFTER_S)  # when the silence reached the limit
    assert raised.state.next_check_ms is None  # raised: nothing more to wait for

    back = read(raised.state, 4, 30 + AFTER_S + 100)
    assert [(e.alarm, e.transition, e.to_state) for e in back.events] == [
        (OFFLINE_ALARM, Transition.CLEARED, AlarmState.LATCHED)  # unacknowledged: latched, like the others
    ]
    assert back.events[0].value == pytest.approx(AFTER_S + 100)  # the silence it ended
    assert back.state.next_check_ms is not None  # watched again


def test_a_stopped_motor_may_go_silent() -> None:
    state = running_motor()
    stopped = read(state, 4, 40.0, running=False).state
    assert stopped.next_check_ms is None
    assert check_timers(stopped, at(40 + 10 * AFTER_S), CONFIG).events == ()


def test_silence_is_measured_from_arrival_not_from_the_devices_clock() -> None:
    # A gateway that buffered readings for an hour sends them now: stamped long ago, heard now.
    state = None
    for seq in range(1, 4):
        state = read(state, seq, seq * 10.0, received_s=3600.0 + seq).state
    assert state is not None
    assert check_timers(state, at(3603 + AFTER_S - 5), CONFIG).events == ()
    assert len(check_timers(state, at(3603 + AFTER_S + 5), CONFIG).events) == 1


def test_a_retried_timer_check_makes_the_same_event() -> None:
    state = running_motor()
    first = check_timers(state, at(30 + AFTER_S + 5), CONFIG)
    again = check_timers(state, at(30 + AFTER_S + 50), CONFIG)  # the same stored state, a later tick
    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]
    # Once saved, the next tick has nothing to do.
    assert check_timers(first.state, at(30 + AFTER_S + 60), CONFIG).outcome is Outcome.IGNORED


def test_a_snoozed_offline_alarm_is_raised_again_when_the_snooze_runs_out_and_the_motor_is_still_silent() -> None:
    state = running_motor()
    raised = check_timers(state, at(30 + AFTER_S + 5), CONFIG).state
    snooze = OperatorAction(
        motor_id="motor-001", action="snooze", alarm=OFFLINE_ALARM, action_id="a-1", ts=at(700), snooze_minutes=30
    )
    snoozed = step(raised, snooze, at(700), CONFIG).state
    assert snoozed.alarms[OFFLINE_ALARM].state is AlarmState.SNOOZED
    assert snoozed.next_check_ms == T0_MS + (700 + 1800) * 1000  # the timer comes back when the snooze ends

    assert check_timers(snoozed, at(700 + 1799), CONFIG).events == ()
    later = check_timers(snoozed, at(700 + 1801), CONFIG)
    assert [(e.transition, e.to_state) for e in later.events] == [
        (Transition.SNOOZE_EXPIRED, AlarmState.NORMAL),
        (Transition.RAISED, AlarmState.ACTIVE),
    ]
    first_raise = check_timers(state, at(30 + AFTER_S + 5), CONFIG).events[0]
    assert later.events[1].event_id != first_raise.event_id  # a new raise, alerted again


def test_the_timer_ends_a_snooze_on_time_without_a_reading() -> None:
    state = running_motor()
    snooze = OperatorAction(
        motor_id="motor-001", action="snooze", alarm="vibration_zone_d", action_id="a-1", ts=at(40), snooze_minutes=5
    )
    snoozed = step(state, snooze, at(40), CONFIG).state
    assert snoozed.next_check_ms == T0_MS + 340 * 1000  # before the offline limit (30 s + 600 s)
    ended = check_timers(snoozed, at(341), CONFIG)
    assert [(e.alarm, e.transition) for e in ended.events] == [("vibration_zone_d", Transition.SNOOZE_EXPIRED)]


def test_a_steady_stream_of_readings_moves_the_check_time_once_per_three_quarters_of_the_window() -> None:
    state = None
    stored: list[int | None] = []
    for seq in range(1, 121):  # one reading every 10 s for 20 minutes
        state = read(state, seq, seq * 10.0).state
        stored.append(state.next_check_ms)
    changes = sum(1 for before, after in itertools.pairwise(stored) if before != after)
    assert changes <= 20 * 60 / (AFTER_S * 3 / 4) + 1
    # Never later than the real deadline, never nearer than the margin (a quarter of the window).
    assert state is not None
    assert state.last_heard_ms is not None
    assert state.next_check_ms is not None
    assert state.last_heard_ms + AFTER_S * 250 < state.next_check_ms <= state.last_heard_ms + AFTER_S * 1000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=60.0), min_size=60, max_size=60))
def test_at_the_defaults_the_timer_never_finds_a_live_motor_due_even_with_batches_a_window_late(
    delays_s: list[float],
) -> None:
    """Given a motor reading once a minute (the template's default rate), each reading processed up to one batch
    window (BatchWindowSeconds, 60 s) after it arrived, in order, when the timer ticks every minute, then no tick
    while the motor reports finds it due: the stored check time is always later than the tick."""
    state: MotorState | None = None
    processed_s = 0.0
    moves = 0
    for n, delay_s in enumerate(delays_s, start=1):
        heard_s = 60.0 * n
        before = processed_s
        processed_s = max(processed_s, heard_s + delay_s)  # a shard's batches are applied in order
        if state is not None:
            assert state.next_check_ms is not None
            for tick in range(math.ceil(before / 60), math.floor(processed_s / 60) + 1):  # ticks before this one
                assert state.next_check_ms > T0_MS + tick * 60_000, f"tick at {tick} min found the live motor due"
        reading = Telemetry.model_validate(reading_payload(n, at_s=heard_s))
        decision = step(
            state, ReadingInput(reading, received_ms=T0_MS + round(heard_s * 1000)), at(processed_s), CONFIG
        )
        moves += state is None or decision.state.next_check_ms != state.next_check_ms
        state = decision.state
    assert moves <= 60 * 60 / (AFTER_S * 3 / 4) + 1


def test_the_timer_visiting_a_live_motor_only_moves_its_check_time_on() -> None:
    state = None
    for seq in range(1, 40):
        state = read(state, seq, seq * 10.0).state
    assert state is not None
    assert state.next_check_ms is not None
    visit = check_timers(state, datetime.fromtimestamp(state.next_check_ms / 1000, UTC), CONFIG)
    assert visit.events == ()
    assert visit.outcome is Outcome.APPLIED  # saved: the index entry moves on
    assert visit.state.next_check_ms == state.last_heard_ms + AFTER_S * 1000


def test_offline_can_be_switched_off() -> None:
    config = DetectorConfig.with_overrides({"offline": {"enabled": False}})
    assert OFFLINE_ALARM not in config.alarm_names()
    state = running_motor(config)
    assert state.next_check_ms is None
    assert check_timers(state, at(10 * AFTER_S), config).events == ()


def test_the_silence_limit_is_configurable() -> None:
    config = DetectorConfig.with_overrides({"offline": {"after_s": 60}})
    state = running_motor(config)
    assert len(check_timers(state, at(30 + 61), config).events) == 1
    with pytest.raises(ValueError, match="after_s"):
        DetectorConfig.with_overrides({"offline": {"after_s": 0}})


def test_the_alert_says_how_long_the_motor_has_been_silent() -> None:
    state = running_motor()
    event = check_timers(state, at(30 + 25 * 60), CONFIG).events[0]
    alert = format_alert(event)
    assert "Motor offline" in alert.subject
    assert "No reading for 25 min (raises after 10 min without a reading while running)" in alert.body
    cleared = read(check_timers(state, at(30 + 25 * 60), CONFIG).state, 4, 30 + 26 * 60).events[0]
    assert "Readings arrive again after 26 min of silence" in format_alert(cleared).body


# --- the use case -----------------------------------------------------------------------------


def test_process_timers_saves_and_publishes_once_and_a_retry_publishes_nothing_new() -> None:
    store, publisher = MemoryStore(), Recorder()
    for seq in range(1, 4):
        reading = Telemetry.model_validate(reading_payload(seq, at_s=seq * 10.0))
        process_reading(reading, store=store, predictor=None, publisher=publisher, config=CONFIG, now=at(seq * 10.0))
    result = process_timers("motor-001", store=store, publisher=publisher, config=CONFIG, now=at(30 + AFTER_S + 1))
    assert [e.transition for e in result.events] == [Transition.RAISED]
    assert [e.alarm for e in publisher.events] == [OFFLINE_ALARM]
    again = process_timers("motor-001", store=store, publisher=publisher, config=CONFIG, now=at(30 + AFTER_S + 61))
    assert again.outcome is Outcome.IGNORED
    assert len(publisher.events) == 1
    assert store.load("motor-001").alarms[OFFLINE_ALARM].state is AlarmState.ACTIVE  # type: ignore[union-attr]


def test_process_timers_delivers_events_an_earlier_invocation_saved_but_could_not_publish() -> None:
    store, publisher = MemoryStore(), Recorder()
    for seq in range(1, 4):
        reading = Telemetry.model_validate(reading_payload(seq, at_s=seq * 10.0))
        process_reading(reading, store=store, predictor=None, publisher=publisher, config=CONFIG, now=at(seq * 10.0))
    publisher.fail_next = 1
    with pytest.raises(Exception, match="broker unreachable"):
        process_timers("motor-001", store=store, publisher=publisher, config=CONFIG, now=at(30 + AFTER_S + 1))
    assert publisher.events == []
    delivered = process_timers("motor-001", store=store, publisher=publisher, config=CONFIG, now=at(30 + AFTER_S + 61))
    assert [e.alarm for e in delivered.published] == [OFFLINE_ALARM]
    assert [e.alarm for e in publisher.events] == [OFFLINE_ALARM]


def test_process_timers_for_a_motor_with_no_state_does_nothing() -> None:
    result = process_timers("ghost", store=MemoryStore(), publisher=Recorder(), config=CONFIG, now=T0)
    assert result.outcome is Outcome.IGNORED


# --- the template and the adapter agree -----------------------------------------------------------


def test_the_state_table_has_the_sparse_index_the_timer_queries() -> None:
    from motor_adapters.dynamodb_store import DUE_INDEX
    from tests.unit.test_template import TEMPLATE

    table = TEMPLATE["Resources"]["StateTable"]["Properties"]
    (index,) = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == DUE_INDEX]
    assert index["KeySchema"] == [
        {"AttributeName": "check_shard", "KeyType": "HASH"},
        {"AttributeName": "check_due_ms", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    types = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
    assert (types["check_shard"], types["check_due_ms"]) == ("S", "N")


def test_the_timer_may_query_the_index_and_nothing_else_of_the_table() -> None:
    from motor_adapters.dynamodb_store import DUE_INDEX
    from tests.unit.test_template import TEMPLATE

    statements = [
        statement
        for policy in TEMPLATE["Resources"]["OfflineCheckRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    (query,) = [s for s in statements if "dynamodb:Query" in str(s["Action"])]
    assert query["Action"] == "dynamodb:Query"
    assert query["Resource"] == {"Fn::Sub": f"${{StateTable.Arn}}/index/{DUE_INDEX}"}
    others = [
        s
        for _, role in _roles(TEMPLATE)
        for s in role
        if "dynamodb:Query" in str(s.get("Action")) and "StateTable" in str(s.get("Resource"))
    ]
    assert others == [query]  # (ConsoleFunction queries HistoryTable, a table of its own)


def test_the_timer_runs_every_minute_and_does_not_retry_a_failed_tick() -> None:
    from tests.unit.test_template import TEMPLATE

    function = TEMPLATE["Resources"]["OfflineCheckFunction"]["Properties"]
    assert function["Events"]["Tick"] == {
        "Type": "Schedule",
        "Properties": {
            "Schedule": "rate(1 minute)",
            "Description": function["Events"]["Tick"]["Properties"]["Description"],
        },
    }
    assert function["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    # Work stops 25 s before the timeout (motor_lambda.timers): the timeout must leave room for work.
    assert function["Timeout"] >= 2 * STOP_WITH_S_LEFT


def _roles(template: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [
        (
            name,
            [s for policy in resource["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]],
        )
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    ]


def test_an_item_is_in_the_index_only_while_something_is_due() -> None:
    from motor_adapters.dynamodb_store import DynamoStateStore, due_shard

    class Client:
        def __init__(self) -> None:
            self.items: list[dict[str, Any]] = []

        def put_item(self, **kwargs: Any) -> None:
            self.items.append(kwargs["Item"])

    client = Client()
    store = DynamoStateStore("t", client)
    state = running_motor()
    store.save(state, expected_version=0)
    assert client.items[-1]["check_due_ms"] == {"N": str(state.next_check_ms)}
    assert client.items[-1]["check_shard"] == {"S": due_shard("motor-001")}

    stopped = read(state, 4, 40.0, running=False).state
    store.save(stopped, expected_version=1)
    assert "check_due_ms" not in client.items[-1]
    assert "check_shard" not in client.items[-1]

    # An event saved but not yet published makes the motor due at once: the timer delivers it.
    store.save(replace(stopped, outbox=(AlarmEvent.model_validate(load_event("alarm-raised")),)), expected_version=2)
    assert client.items[-1]["check_due_ms"] == {"N": "0"}


def test_shards_are_stable_and_spread() -> None:
    from motor_adapters.dynamodb_store import DUE_SHARDS, due_shard

    assert due_shard("motor-001") == due_shard("motor-001")
    shards = {due_shard(f"motor-{i:05d}") for i in range(1000)}
    assert shards == {str(n) for n in range(DUE_SHARDS)}
