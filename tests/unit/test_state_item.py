"""The state item (format 3) and the ingestion store's copies of what it wrote, against moto.

One item per motor, under one write unit; items of formats 1 and 2 still read and rewritten; a copy kept per
execution environment so a motor's next reading makes one DynamoDB call, and stays correct when another
environment wrote meanwhile.
"""

from __future__ import annotations

import base64
import json
import struct
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from motor_adapters.clients import client
from motor_adapters.dynamodb_store import DynamoBatchStateStore, DynamoStateStore
from motor_adapters.state_item import FORMAT, LEGACY_STATE_ATTRIBUTE, STATE_ATTRIBUTE, decode, encode, state_of
from motor_adapters.written_states import WrittenStates
from motor_maintenance.batch import BatchItem, process_batch
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import Outcome
from motor_maintenance.features import RunningStats, compute_features
from motor_maintenance.service import process_reading
from motor_maintenance.state import AlarmStatus, FailureRecord, MotorState
from motor_maintenance.telemetry import Telemetry
from scripts.costs_sizes import dynamodb_item_bytes
from tests.conftest import FakeAws
from tests.support import ROOT, Recorder, reading_payload
from tests.unit.test_features_recorded import _stream as recorded_stream

TABLE = "motor-state"
OLD_ITEM = ROOT / "tests" / "fixtures" / "state-item-v1.json"
"""A state item as the store wrote it before format 2 (captured from that code), every alarm in use."""
FORMAT_2_ITEM = ROOT / "tests" / "fixtures" / "state-item-v2.json"
"""A state item as the store wrote it in format 2 (captured from that code; `s` in base64, as DynamoDB JSON spells
binary): scripts/costs_sizes.py's measured state with an event in the outbox, an action id that is no UUID, the last
service's time and a baseline mean not started yet."""
FORMAT_2_STATE = ROOT / "tests" / "fixtures" / "state-item-v2-state.json"
"""`MotorState.to_dict()` of the state that item was written from, taken when it was written."""


class CountingClient:
    """The DynamoDB client, counting the calls each store makes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def counted(**kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(**kwargs)

        return counted


def environment(written: WrittenStates | None = None) -> tuple[DynamoStateStore, CountingClient]:
    """One execution environment's store (its own client and copies) on the shared moto table."""
    dynamodb = CountingClient(client("dynamodb"))
    return DynamoStateStore(TABLE, dynamodb, written=written or WrittenStates()), dynamodb


def reading(seq: int, **signals: Any) -> Telemetry:
    return Telemetry.model_validate(reading_payload(seq, at_s=60.0 * seq, **signals))


def apply(store: DynamoStateStore, telemetry: Telemetry) -> Any:
    now = datetime.fromtimestamp(telemetry.ts_ms / 1000 + 1, UTC)
    return process_reading(
        telemetry, store=store, predictor=None, publisher=Recorder(), config=DetectorConfig(), now=now
    )


def stored_item(aws: FakeAws, motor_id: str = "motor-001") -> dict[str, Any]:
    item: dict[str, Any] = aws.dynamodb.get_item(TableName=TABLE, Key={"motor_id": {"S": motor_id}})["Item"]
    return item


def test_an_old_format_item_is_read_and_rewritten_in_the_new_format(aws: FakeAws) -> None:
    """Given an item written before format 2, when it is loaded and saved, then nothing of the state is lost
    and the item is in the current format, one write unit."""
    old = json.loads(OLD_ITEM.read_text())
    aws.dynamodb.put_item(TableName=TABLE, Item=old)
    store, _ = environment()

    loaded = store.load("motor-001")
    assert loaded is not None
    written = json.loads(old[LEGACY_STATE_ATTRIBUTE]["S"])
    # Statistics stored before the reporting interval was learnt read back without one (learnt again).
    written["stats"] |= {"interval_s": None, "last_running": True}
    assert loaded.to_dict() == written
    store.save(loaded, expected_version=loaded.version)

    item = stored_item(aws)
    assert STATE_ATTRIBUTE in item
    assert LEGACY_STATE_ATTRIBUTE not in item
    assert state_of(item).to_dict() == {**loaded.to_dict(), "version": loaded.version + 1}
    assert dynamodb_item_bytes(item) <= 1024


def format_2_item() -> dict[str, Any]:
    item: dict[str, Any] = json.loads(FORMAT_2_ITEM.read_text())
    item[STATE_ATTRIBUTE] = {"B": base64.b64decode(item[STATE_ATTRIBUTE]["B"])}
    return item


def test_a_format_2_item_is_read_and_rewritten_in_the_current_format(aws: FakeAws) -> None:
    """Given an item written in format 2, when it is loaded and saved, then nothing of the state is lost and the
    item is in the current format."""
    aws.dynamodb.put_item(TableName=TABLE, Item=format_2_item())
    written = json.loads(FORMAT_2_STATE.read_text())
    store, _ = environment()

    loaded = store.load("motor-001")
    assert loaded is not None
    assert loaded.to_dict() == written
    store.save(loaded, expected_version=loaded.version)

    item = stored_item(aws)
    assert item[STATE_ATTRIBUTE]["B"][0] == FORMAT
    assert state_of(item).to_dict() == {**written, "version": loaded.version + 1}


def test_the_encoding_keeps_every_field_exactly() -> None:
    old = state_of(json.loads(OLD_ITEM.read_text()))
    odd = MotorState.from_dict(
        {**old.to_dict(), "motor_type": "", "recent_action_ids": ["A-1", "0f0e0d0c-0b0a-4908-8706-050403020100"]}
    )
    served = MotorState.from_dict(
        {
            **old.to_dict(),
            "probability_model_version": "m-0123456789ab",
            "stats": old.stats.to_dict() | {"interval_s": 61.25, "last_running": False},
        }
    )

    # A model version of another shape and a failure mode outside the default ones are kept as text.
    other = replace(
        served,
        probability_model_version="m-0123456789AB",
        last_failure=FailureRecord(old.last_ts_ms or 0, "seal_leak", "0f0e0d0c-0b0a-4908-8706-050403020100"),
    )

    for state in (old, odd, served, other, replace(other, probability_model_version="v7"), MotorState("motor-new")):
        back = decode(state.motor_id, encode(state), state.version)
        assert back == state
        assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(state.to_dict(), sort_keys=True)


def bits(value: float | None) -> bytes | None:
    return None if value is None else struct.pack("<d", value)


NUMBERS = st.one_of(
    st.floats(),  # any double: nan, infinities, -0.0, subnormals, 17 significant digits
    st.integers(-(10**12), 10**12).map(lambda n: n / 1000),  # readings as sensors send them
    st.integers(-(10**9), 10**9).map(lambda n: n / 10**7),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(NUMBERS, min_size=1, max_size=10), interval_s=st.one_of(st.none(), NUMBERS))
@example(values=[-0.0, float("nan"), float("-inf"), 5e-324, 1e16, 0.1 + 0.2, 1294.2, -7.31, 0.0], interval_s=-0.0)
def test_every_number_reads_back_as_the_very_same_double(values: list[float], interval_s: float | None) -> None:
    """The readings, the alarms' last values and the statistics' times are stored as short decimals where they
    can be: whatever the double, it reads back to the bit."""
    state = MotorState("motor-1", last_readings={f"signal_{i}": value for i, value in enumerate(values)})
    state.alarms = {f"alarm_{i}": AlarmStatus(last_value=value) for i, value in enumerate(values)}
    state.stats = RunningStats(1, operating_s=values[0], interval_s=interval_s)

    back = decode(state.motor_id, encode(state), state.version)

    assert [bits(value) for value in back.last_readings.values()] == [bits(value) for value in values]
    assert [bits(status.last_value) for status in back.alarms.values()] == [bits(value) for value in values]
    assert (bits(back.stats.operating_s), bits(back.stats.interval_s)) == (bits(values[0]), bits(interval_s))


def test_features_from_statistics_stored_and_read_back_are_bit_identical() -> None:
    """Given the recorded stream of test_features_recorded (three motors, a stop, signals missing), when each
    reading's statistics are stored in the state item and read back before the next reading, then every
    feature vector is the one computed without storing them, to the bit."""
    kept: dict[str, RunningStats | None] = {}
    stored: dict[str, RunningStats | None] = {}
    vectors = 0
    for reading in recorded_stream():
        expected, kept[reading.motor_id] = compute_features(reading, kept.get(reading.motor_id))
        vector, stats = compute_features(reading, stored.get(reading.motor_id))
        item = encode(MotorState(reading.motor_id, stats=stats))
        stored[reading.motor_id] = decode(reading.motor_id, item, 1).stats

        assert [struct.pack("<d", value) for value in vector] == [struct.pack("<d", value) for value in expected]
        vectors += 1
    assert vectors > 2000


def test_a_reading_as_sensors_send_it_takes_3_bytes_and_a_model_version_7() -> None:
    """A signal's value with few decimals is three bytes (a double is eight, and a byte to say so); a model
    version as model/artifact.py makes them, its six bytes and one to say so."""
    long_value = MotorState("motor-1", last_readings={"speed_rpm": 0.1 + 0.2})
    short_value = MotorState("motor-1", last_readings={"speed_rpm": 1294.2})
    versioned = replace(short_value, probability_model_version="m-352388ea33c1")

    assert len(encode(long_value)) - len(encode(short_value)) == 9 - 3
    assert len(encode(versioned)) - len(encode(short_value)) == 7 - 1


def test_a_state_of_a_format_this_code_does_not_read_is_refused() -> None:
    data = encode(MotorState("motor-1"))

    with pytest.raises(ValueError, match="format 4"):
        decode("motor-1", bytes([4]) + data[1:], 1)


def test_a_truncated_item_is_refused_not_misread() -> None:
    state = state_of(json.loads(OLD_ITEM.read_text()))
    data = encode(state)

    with pytest.raises(ValueError, match="ends early"):
        decode(state.motor_id, data[:-20], state.version)
    with pytest.raises(ValueError, match="after the end"):
        decode(state.motor_id, data + b"\x00", state.version)


def test_a_motors_next_reading_in_the_same_environment_makes_one_call(aws: FakeAws) -> None:
    store, dynamodb = environment()
    apply(store, reading(1))
    dynamodb.calls.clear()

    for seq in range(2, 7):
        assert apply(store, reading(seq)).outcome is Outcome.APPLIED

    assert dynamodb.calls == Counter(put_item=5)
    stored = state_of(stored_item(aws))
    assert (stored.last_seq, stored.version) == (6, 6)


def test_a_stale_copy_in_one_environment_costs_a_conflict_and_loses_nothing(aws: FakeAws) -> None:
    """Given two environments that both wrote motor-001, when the one whose copy is now stale applies the
    next reading, then its conditional write fails, it goes on from the item the failure returned (no read),
    and the stored state holds every reading in order."""
    first, first_calls = environment()
    second, _ = environment()
    apply(first, reading(1))
    apply(first, reading(2))
    apply(second, reading(3))  # second reads (no copy), writes version 3: first's copy (version 2) is stale
    first_calls.calls.clear()

    result = apply(first, reading(4))

    assert (result.outcome, result.conflicts) == (Outcome.APPLIED, 1)
    assert first_calls.calls == Counter(put_item=2)
    stored = state_of(stored_item(aws))
    assert (stored.last_seq, stored.version) == (4, 4)
    assert first.remembered("motor-001") == stored


def test_a_stale_copy_never_refuses_a_reading_the_stored_state_would_take(aws: FakeAws) -> None:
    """Given an environment whose copy is stale, when a reading is redelivered to it, then the refusal its copy
    gives is taken again on a read of the item (no write would check it), and nothing is written."""
    first, first_calls = environment()
    second, _ = environment()
    apply(first, reading(1))
    apply(second, reading(2))
    first_calls.calls.clear()

    result = apply(first, reading(1))  # redelivered to the environment whose copy is stale

    assert result.outcome is Outcome.STALE  # its copy would call it a duplicate; the item read says stale
    assert first_calls.calls == Counter(get_item=1)
    assert state_of(stored_item(aws)).last_seq == 2


def test_a_redelivered_reading_with_a_fresh_copy_is_a_duplicate_and_changes_nothing(aws: FakeAws) -> None:
    store, dynamodb = environment()
    apply(store, reading(1, fluid_temp_c=250.0))
    before = stored_item(aws)
    dynamodb.calls.clear()

    again = apply(store, reading(1, fluid_temp_c=250.0))

    assert again.outcome is Outcome.DUPLICATE
    assert again.events == ()
    assert dynamodb.calls == Counter(get_item=1)  # a decision to write nothing is confirmed on a read
    assert stored_item(aws) == before


def test_the_copy_is_not_the_object_the_domain_changes(aws: FakeAws) -> None:
    store, _ = environment()
    saved = store.save(MotorState("motor-001", run_hours=1.0), expected_version=0)
    saved.run_hours = 99.0
    saved.last_readings["speed_rpm"] = 1.0

    first = store.remembered("motor-001")
    assert first is not None
    first.run_hours = 55.0
    second = store.remembered("motor-001")

    assert second is not None
    assert (second.run_hours, second.last_readings) == (1.0, {})


def test_the_copies_are_bounded_least_recently_written_first() -> None:
    written = WrittenStates(max_motors=3)
    for n in range(5):
        written.written(f"motor-{n}", n, n + 1, bytes([n]))
    written.written("motor-2", 3, 4, b"again")  # written again: the most recent
    written.written("motor-5", 0, 1, b"new")

    assert len(written) == 3
    assert [f"motor-{n}" in written for n in range(6)] == [False, False, True, False, True, True]


def test_copies_mostly_stale_are_set_aside_for_reads_and_taken_up_again_when_current(aws: FakeAws) -> None:
    """Given two environments taking a motor's readings in turn (each one's copy always stale), when they go
    on, then each soon reads instead of failing a write from its copy; and when one environment takes every
    reading again, its copies are found current on its reads and it goes back to one call a reading."""
    first, first_calls = environment()
    second, second_calls = environment()
    for seq in range(1, 31):
        apply(first if seq % 2 else second, reading(seq))
    first_calls.calls.clear()
    second_calls.calls.clear()

    for seq in range(31, 41):
        apply(first if seq % 2 else second, reading(seq))

    assert first_calls.calls == second_calls.calls == Counter(get_item=5, put_item=5)  # no failed write
    for seq in range(41, 81):
        apply(first, reading(seq))
    first_calls.calls.clear()
    apply(first, reading(81))
    assert first_calls.calls == Counter(put_item=1)
    assert state_of(stored_item(aws)).last_seq == 81


def test_without_copies_every_unit_of_work_reads(aws: FakeAws) -> None:
    dynamodb = CountingClient(client("dynamodb"))
    store = DynamoStateStore(TABLE, dynamodb)
    apply(store, reading(1))
    apply(store, reading(2))

    assert dynamodb.calls == Counter(get_item=2, put_item=2)
    assert store.remembered("motor-001") is None


def test_the_fixture_is_the_old_format(tmp_path: Path) -> None:
    """Guards the old-format test: the fixture must stay format 1 (JSON text in `state`)."""
    item = json.loads(OLD_ITEM.read_text())
    assert set(item[LEGACY_STATE_ATTRIBUTE]) == {"S"}
    assert STATE_ATTRIBUTE not in item


def test_the_format_2_fixture_is_format_2() -> None:
    """Guards the format-2 test: the fixture must stay as format 2 wrote it."""
    assert format_2_item()[STATE_ATTRIBUTE]["B"][0] == 2


def test_a_batch_reads_only_the_motors_whose_state_the_environment_did_not_write(aws: FakeAws) -> None:
    """Given a batch of three motors applied by one environment, when the next batch brings them again with a
    fourth, then only the fourth is read (one BatchGetItem of one key), and each motor is written once."""
    dynamodb = CountingClient(client("dynamodb"))
    store = DynamoBatchStateStore(TABLE, dynamodb, written=WrittenStates())

    def batch(seq: int, motors: list[str]) -> Any:
        readings = [Telemetry.model_validate(reading_payload(seq, at_s=60.0 * seq, motor_id=m)) for m in motors]
        now = datetime.fromtimestamp(readings[0].ts_ms / 1000 + 1, UTC)
        items = [BatchItem(r, received_at_ms=r.ts_ms) for r in readings]
        return process_batch(items, store=store, predictor=None, publisher=Recorder(), config=DetectorConfig(), now=now)

    batch(1, ["motor-a", "motor-b", "motor-c"])
    dynamodb.calls.clear()

    result = batch(2, ["motor-a", "motor-b", "motor-c", "motor-d"])

    assert not result.failures
    assert dynamodb.calls == Counter(batch_get_item=1, put_item=4)
    assert [state_of(stored_item(aws, m)).last_seq for m in ("motor-a", "motor-d")] == [2, 2]


def test_format_2_is_written_byte_for_byte_as_format_2_code_wrote_it() -> None:
    """Given the state format-2 code wrote (read back in the order it wrote its readings, alarms and statistics),
    when it is encoded in format 2 (a stack being upgraded from code that reads format 2 only), then the bytes
    are the ones that code wrote."""
    item = format_2_item()
    state = state_of(item)

    assert encode(state, 2) == item[STATE_ATTRIBUTE]["B"]
    assert encode(state) != item[STATE_ATTRIBUTE]["B"]


def test_names_format_2_did_not_know_are_written_as_text_in_format_2_and_read_back() -> None:
    """Given a state with the hydraulic feature's statistics and a failure mode added after format 2, when it is
    encoded in format 2, then no name has a code format 2 lacks, and it reads back as it was."""
    state = MotorState.from_dict(json.loads(FORMAT_2_STATE.read_text()))
    state.last_readings["hydraulic_kw_per_a"] = 0.8125
    state.last_failure = FailureRecord(state.last_ts_ms or 0, "impeller_wear", "not-a-uuid")

    data = encode(state, 2)

    assert data[0] == 2
    assert b"hydraulic_kw_per_a" in data
    assert b"impeller_wear" in data
    assert decode(state.motor_id, data, state.version).to_dict() == state.to_dict()
    assert b"hydraulic_kw_per_a" not in encode(state)
    assert b"impeller_wear" not in encode(state)


def test_a_store_told_to_write_format_2_writes_it_and_reads_both(aws: FakeAws) -> None:
    """Given a store told to write format 2 (StateItemFormat 2), when it saves a state it loaded from a format-3
    item, then the item is format 2 and holds the same state."""
    current, _ = environment()
    state = MotorState.from_dict(json.loads(FORMAT_2_STATE.read_text()))
    current.save(state, expected_version=0)
    assert stored_item(aws)[STATE_ATTRIBUTE]["B"][0] == FORMAT

    upgrading = DynamoStateStore(TABLE, client("dynamodb"), state_format=2)
    loaded = upgrading.load(state.motor_id)
    assert loaded is not None
    upgrading.save(loaded, expected_version=loaded.version)

    item = stored_item(aws)
    assert item[STATE_ATTRIBUTE]["B"][0] == 2
    assert state_of(item).to_dict() == {**loaded.to_dict(), "version": loaded.version + 1}


def test_a_format_no_code_reads_is_not_written() -> None:
    state = MotorState.from_dict(json.loads(FORMAT_2_STATE.read_text()))
    with pytest.raises(ValueError, match="format 4"):
        encode(state, 4)
