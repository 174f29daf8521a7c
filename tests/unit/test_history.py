"""The console's history: what a saved state adds, the window a chart asks for, and the store that feeds it."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from motor_adapters.dynamodb_store import DynamoStateStore
from motor_adapters.history_store import DynamoHistoryReader, DynamoHistoryWriter, RecordingStateStore
from motor_adapters.written_states import WrittenStates
from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.config import DetectorConfig
from motor_maintenance.errors import StoreUnavailable
from motor_maintenance.history import POINTS_MAX, Entry, Point, Seen, entry_for, thin, window
from motor_maintenance.service import process_reading
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from tests.conftest import FakeAws
from tests.support import MemoryStore, Recorder, load_event, reading_payload
from tests.unit.test_state_item import CountingClient

T0 = 1_795_780_800_000


def state(ts_ms: int | None = T0, seq: int = 1, **changes: Any) -> MotorState:
    base = MotorState(
        motor_id="motor-001",
        version=3,
        last_ts_ms=ts_ms,
        last_seq=seq,
        last_running=True,
        failure_probability=0.4,
        probability_ts_ms=ts_ms,
        last_readings={"fluid_temp_c": 84.0},
    )
    return replace(base, **changes)


def event(**changes: Any) -> AlarmEvent:
    return AlarmEvent.model_validate(load_event("alarm-raised") | changes)


def test_a_new_reading_adds_a_point_with_the_probability_the_model_gave_it() -> None:
    entry = entry_for(state(T0 + 60_000, 2), Seen((T0 - 60_000, 1), frozenset()))  # the previous 5 minutes

    assert entry is not None
    assert entry.point == Point(T0 + 60_000, True, 0.4, {"fluid_temp_c": 84.0})
    assert entry.transitions == ()


def test_a_reading_the_model_did_not_score_has_no_probability() -> None:
    entry = entry_for(state(T0 + 60_000, 2, probability_ts_ms=T0), Seen((T0 - 60_000, 1), frozenset()))

    assert entry is not None
    assert entry.point is not None
    assert entry.point.failure_probability is None


def test_readings_are_sampled_once_per_interval_of_reading_time() -> None:
    """T0 starts a 5-minute bucket: the reading of minute 4 adds nothing, the first one past minute 5 a point."""
    five_min = 300_000

    assert entry_for(state(T0 + 240_000, 5), Seen((T0 + 180_000, 4), frozenset()), five_min) is None
    later = entry_for(state(T0 + 300_000, 6), Seen((T0 + 240_000, 5), frozenset()), five_min)
    assert later is not None
    assert later.point is not None
    assert later.point.at_ms == T0 + 300_000
    assert entry_for(state(T0 + 240_000, 5), Seen((T0 + 180_000, 4), frozenset()), 0) is not None, "0: every one"
    assert entry_for(state(T0 + 240_000, 5), Seen((None, None), frozenset()), five_min) is not None, "the first"


def test_alarm_transitions_are_never_sampled_away_and_carry_their_reading() -> None:
    raised = event()

    entry = entry_for(state(T0 + 240_000, 5, outbox=(raised,)), Seen((T0 + 180_000, 4), frozenset()), 300_000)

    assert entry is not None
    assert entry.transitions == (raised,)
    assert entry.point is not None
    assert entry.point.at_ms == T0 + 240_000


def test_the_save_that_only_empties_the_outbox_adds_nothing() -> None:
    raised = event()
    saved_with_event = state(outbox=(raised,))
    first = entry_for(saved_with_event, Seen((None, None), frozenset()))
    assert first is not None
    assert first.transitions == (raised,)

    assert entry_for(state(outbox=()), Seen.of(saved_with_event)) is None


def test_an_action_adds_its_transitions_only_at_their_time() -> None:
    acknowledged = event(
        transition="acknowledged", from_state="ACTIVE", to_state="ACKNOWLEDGED", at="2026-11-27T12:10:00Z"
    )

    entry = entry_for(state(outbox=(acknowledged,)), Seen((T0, 1), frozenset()))

    assert entry is not None
    assert entry.point is None
    assert entry.at_ms == T0 + 10 * 60_000


def test_the_window_keeps_each_point_and_event_once_in_time_order() -> None:
    raised = event()
    entries = [
        Entry("motor-001", T0 + 60_000, 5, Point(T0 + 60_000, True, 0.5, {}), (raised,)),
        Entry("motor-001", T0, 4, Point(T0, True, 0.4, {}), ()),
        Entry("motor-001", T0 + 60_000, 6, Point(T0 + 60_000, True, 0.5, {}), (raised,)),  # recorded twice
        Entry("motor-001", T0 - 3_600_000, 1, Point(T0 - 3_600_000, True, 0.1, {}), ()),  # before the window
    ]

    points, events, thinned = window(entries, T0 - 60_000, T0 + 600_000)

    assert [point.at_ms for point in points] == [T0, T0 + 60_000]
    assert events == [raised]
    assert thinned is False


def test_a_long_window_is_thinned_evenly_and_keeps_the_newest_point() -> None:
    points = [Point(T0 + i, True, None, {}) for i in range(2_500)]

    kept = thin(points, POINTS_MAX)

    assert len(kept) == POINTS_MAX
    assert kept[-1] == points[-1]
    assert kept == sorted(kept, key=lambda point: point.at_ms)
    gaps = {b.at_ms - a.at_ms for a, b in itertools.pairwise(kept)}
    assert gaps <= {2, 3}


def test_the_recording_store_writes_each_reading_once_and_the_reader_gets_it_back(aws: FakeAws) -> None:
    from motor_adapters.clients import client

    writer = DynamoHistoryWriter("motor-history", client("dynamodb"))
    reader = DynamoHistoryReader("motor-history", client("dynamodb"))
    errors: list[Exception] = []
    store = RecordingStateStore(MemoryStore(), writer, errors.append, interval_s=60)
    raised = event()

    assert store.load("motor-001") is None
    saved = store.save(state(outbox=(raised,)), expected_version=0)
    store.save(replace(saved, outbox=()), expected_version=saved.version)  # the outbox emptied: nothing new
    store.save(state(T0 + 60_000, 2, version=saved.version + 1), expected_version=saved.version + 1)

    entries = reader.entries("motor-001", T0 - 1, T0 + 60_000)
    assert [(entry.at_ms, entry.point is not None, len(entry.transitions)) for entry in entries] == [
        (T0, True, 1),
        (T0 + 60_000, True, 0),
    ]
    assert entries[0].transitions == (raised,)
    assert errors == []


def test_a_history_that_cannot_be_written_never_fails_the_save(aws: FakeAws) -> None:
    class Down:
        def record(self, entry: Entry) -> None:
            raise StoreUnavailable("history table throttled")

    errors: list[Exception] = []
    inner = MemoryStore()
    store = RecordingStateStore(inner, Down(), errors.append)

    stored = store.save(state(), expected_version=0)

    assert inner.read("motor-001") == stored
    assert [str(error) for error in errors] == ["history table throttled"]


def test_entries_expire_an_hour_after_the_longest_window(aws: FakeAws) -> None:
    from motor_adapters.clients import client

    DynamoHistoryWriter("motor-history", client("dynamodb")).record(
        Entry("motor-001", T0, 1, Point(T0, True, None, {}), ())
    )
    item = aws.dynamodb.scan(TableName="motor-history")["Items"][0]

    assert int(item["expires_at"]["N"]) == T0 // 1000 + 25 * 3600


def recording_environment(dynamodb: Any, errors: list[Exception] | None = None) -> RecordingStateStore:
    """One ingestion execution environment: its copies of the states it wrote, a 5-minute history."""
    return RecordingStateStore(
        DynamoStateStore("motor-state", dynamodb, written=WrittenStates()),
        DynamoHistoryWriter("motor-history", dynamodb),
        (errors if errors is not None else []).append,
        interval_s=300,
    )


def feed(store: RecordingStateStore, seq: int, at_s: float, **signals: Any) -> None:
    telemetry = Telemetry.model_validate(reading_payload(seq, at_s=at_s, **signals))
    now = datetime.fromtimestamp(telemetry.ts_ms / 1000 + 1, UTC)
    process_reading(telemetry, store=store, predictor=None, publisher=Recorder(), config=DetectorConfig(), now=now)


def test_with_history_on_four_readings_of_five_at_one_a_minute_make_one_dynamodb_call(aws: FakeAws) -> None:
    """Given the ingestion store with its copies, recording a 5-minute history, when a motor reports once a
    minute for 10 minutes, then only the first reading of each 5 minutes adds a history PutItem."""
    from motor_adapters.clients import client

    dynamodb = CountingClient(client("dynamodb"))
    errors: list[Exception] = []
    store = recording_environment(dynamodb, errors)
    calls = []
    for seq in range(1, 11):
        feed(store, seq, 60.0 * (seq - 1))
        calls.append(sum(dynamodb.calls.values()))
        dynamodb.calls.clear()

    assert calls == [3, 1, 1, 1, 1, 2, 1, 1, 1, 1]  # the first: a read, the state, the history
    points = DynamoHistoryReader("motor-history", client("dynamodb")).entries("motor-001", T0, T0 + 600_000)
    assert [entry.at_ms for entry in points] == [T0, T0 + 300_000]
    assert errors == []


def test_an_alarm_raised_between_samples_is_recorded_with_its_reading(aws: FakeAws) -> None:
    """Fluid over 200 C from minute 1: the alarm is raised at minute 6 (between samples), and recorded."""
    from motor_adapters.clients import client

    store = recording_environment(client("dynamodb"))
    for seq in range(1, 9):
        feed(store, seq, 60.0 * seq, fluid_temp_c=212.5)

    entries = DynamoHistoryReader("motor-history", client("dynamodb")).entries("motor-001", T0, T0 + 600_000)
    raised = [entry for entry in entries if entry.transitions]
    assert [(e.transitions[0].transition, e.point is not None) for e in raised] == [("raised", True)]
    assert [entry.at_ms for entry in entries] == [T0 + 60_000, T0 + 300_000, raised[0].at_ms]
    assert raised[0].at_ms == T0 + 360_000, "between the samples"


def test_a_stale_copy_in_another_environment_is_sampled_from_the_rivals_state(aws: FakeAws) -> None:
    """Given environment A wrote a reading of the previous 5 minutes and B then the first of these, when A's
    next reading conflicts on its stale copy, then A samples from B's state (returned with the conflict), not
    from its copy: no second point for these 5 minutes."""
    from motor_adapters.clients import client

    first = recording_environment(CountingClient(client("dynamodb")))
    second = recording_environment(CountingClient(client("dynamodb")))

    feed(first, 1, -60.0)
    feed(second, 2, 0.0)
    feed(first, 3, 60.0)  # a conflict on A's copy (version 1), retried from B's state (version 2)

    entries = DynamoHistoryReader("motor-history", client("dynamodb")).entries("motor-001", T0 - 60_000, T0 + 60_000)
    assert [entry.at_ms for entry in entries] == [T0 - 60_000, T0]
    stored = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": "motor-001"}})["Item"]
    assert stored["version"]["N"] == "3"
