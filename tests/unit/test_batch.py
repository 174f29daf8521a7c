"""Batched ingestion's use case: a batch gives exactly what its readings give one at a time, with fewer calls.

`process_batch` is checked against `process_reading`, the direct path, on the same readings: the same
alarm events (id for id), the same stored states, with one model call per batch and one state write
per motor. Failures are per motor and all or nothing, so a redelivery repairs them without duplicates.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motor_maintenance.batch import BatchItem, BatchResult, process_batch
from motor_maintenance.detector import Outcome
from motor_maintenance.errors import StoreUnavailable
from motor_maintenance.service import process_reading
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from tests.support import MemoryStore, Recorder, reading_payload
from tests.unit.test_service import CONFIG, Model

MOTORS = ("motor-001", "motor-002", "motor-003")


def fleet_readings(seed: int, count: int = 60) -> list[Telemetry]:
    """Readings of three motors interleaved, with excursions that raise and clear alarms, some stops and repeats."""
    rng = random.Random(seed)
    readings: list[Telemetry] = []
    seqs = dict.fromkeys(MOTORS, 0)
    for i in range(count):
        motor = rng.choice(MOTORS)
        seqs[motor] += 1
        signals: dict[str, Any] = {
            "vibration_mm_s": rng.choice([2.4, 2.4, 8.0, 12.0]),
            "fluid_temp_c": rng.choice([84.0, 84.0, 212.0]),
            "bearing_temp_c": rng.choice([62.0, 95.0]),
            "running": rng.random() > 0.1,
        }
        payload = reading_payload(seqs[motor], at_s=60.0 * i, motor_id=motor, **signals)
        readings.append(Telemetry.model_validate(payload))
        if rng.random() < 0.1:  # delivered twice, as at-least-once delivery may
            readings.append(readings[-1])
    return readings


def one_at_a_time(readings: Sequence[Telemetry], model: Model) -> tuple[MemoryStore, Recorder]:
    store, publisher = MemoryStore(), Recorder()
    for reading in readings:
        process_reading(
            reading,
            store=store,
            predictor=model,
            publisher=publisher,
            config=CONFIG,
            now=_now(readings),
            received_at_ms=reading.ts_ms + 100,
        )
    return store, publisher


def in_batches(
    readings: Sequence[Telemetry], sizes: Sequence[int], model: Model, store: MemoryStore | None = None
) -> tuple[MemoryStore, Recorder, list[BatchResult]]:
    store, publisher, results = store or MemoryStore(), Recorder(), []
    start = 0
    for size in sizes:
        chunk = readings[start : start + size]
        start += size
        if chunk:
            results.append(run(chunk, store, publisher, model, now=_now(readings)))
    assert start >= len(readings)
    return store, publisher, results


def run(
    readings: Sequence[Telemetry],
    store: Any,
    publisher: Recorder,
    model: Model | None,
    *,
    now: Any = None,
    may_start: Callable[[], bool] = lambda: True,
) -> BatchResult:
    return process_batch(
        [BatchItem(reading, received_at_ms=reading.ts_ms + 100) for reading in readings],
        store=store,
        predictor=model,
        publisher=publisher,
        config=CONFIG,
        now=now or _now(readings),
        may_start=may_start,
    )


def _now(readings: Sequence[Telemetry]) -> Any:
    return max(reading.ts for reading in readings) + timedelta(seconds=1)


def by_motor(publisher: Recorder) -> dict[str, list[Any]]:
    """Each motor's events in the order published: a batch publishes motor by motor, not interleaved."""
    events: dict[str, list[Any]] = {}
    for event in publisher.events:
        events.setdefault(event.motor_id, []).append(event)
    return events


def states(store: MemoryStore) -> dict[str, dict[str, Any]]:
    """The stored states without their version (one write per batch, not per reading)."""
    return {motor: {k: v for k, v in item.items() if k != "version"} for motor, item in store.items.items()}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 25), min_size=1, max_size=8))
def test_a_batch_applies_its_readings_exactly_as_one_at_a_time(seed: int, sizes: list[int]) -> None:
    readings = fleet_readings(seed)
    sizes = [*sizes, len(readings)]  # the rest in one last batch
    direct_store, direct_publisher = one_at_a_time(readings, Model())

    batched_store, batched_publisher, _ = in_batches(readings, sizes, Model())

    assert by_motor(batched_publisher) == by_motor(direct_publisher)
    assert states(batched_store) == states(direct_store)


def test_one_model_call_and_one_write_per_motor_for_a_whole_batch() -> None:
    readings = fleet_readings(7)
    direct_model, batched_model = Model(), Model()
    direct_store, _ = one_at_a_time(readings, direct_model)

    batched_store, _, [result] = in_batches(readings, [len(readings)], batched_model)

    scored = sum(1 for r in result.results if r is not None and r.failure_probability is not None)
    assert result.model_calls == 1
    assert result.rows_scored == scored == len(batched_model.rows) == len(direct_model.rows)
    # one save per motor, plus one to empty the outbox of each motor that had events
    motors_with_events = {r.motor_id for r in result.results if r is not None and r.events}
    assert batched_store.saves == len(MOTORS) + len(motors_with_events)
    assert direct_store.saves > 3 * batched_store.saves


def test_a_batch_reads_its_motors_states_together_once_not_one_by_one() -> None:
    readings = fleet_readings(7)
    store = MemoryStore()
    run(readings[:10], store, Recorder(), Model())
    store.batch_loads.clear()
    loads_before = store.loads

    result = run(readings[10:], store, Recorder(), Model())

    assert not result.failures
    assert store.batch_loads == [list(dict.fromkeys(r.motor_id for r in readings[10:]))]
    assert store.loads == loads_before  # no motor read on its own: no conflict made one reload


def test_a_store_whose_batch_read_raises_fails_every_motor_not_the_batch() -> None:
    class BrokenBatchRead(MemoryStore):
        def load_many(self, motor_ids: Sequence[str]) -> dict[str, MotorState | Exception | None]:
            raise StoreUnavailable("table gone")

    readings = fleet_readings(5, count=10)

    result = run(readings, BrokenBatchRead(), Recorder(), Model())

    assert result.failures == dict.fromkeys({r.motor_id for r in readings}, "StoreUnavailable: table gone")
    assert all(r is None for r in result.results)
    assert result.model_calls == 0


def test_repeats_and_late_readings_in_a_batch_are_refused_as_they_would_be_one_at_a_time() -> None:
    first, second = (Telemetry.model_validate(reading_payload(seq, at_s=60.0 * seq)) for seq in (1, 2))

    result = run([first, second, first, second], MemoryStore(), Recorder(), Model())

    assert [r.outcome for r in result.results if r is not None] == [
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.STALE,
        Outcome.DUPLICATE,
    ]
    assert result.rows_scored == 2


class FailingStore(MemoryStore):
    """A MemoryStore whose loads of some motors fail, as DynamoDB throttling would."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__()
        self.failing = failing

    def read(self, motor_id: str) -> MotorState | None:
        if motor_id in self.failing:
            raise StoreUnavailable(f"throttled reading {motor_id}")
        return super().read(motor_id)


def test_a_motor_that_fails_leaves_all_its_readings_unapplied_and_the_others_done() -> None:
    readings = fleet_readings(11)
    store = FailingStore({"motor-002"})

    result = run(readings, store, Recorder(), Model())

    assert set(result.failures) == {"motor-002"}
    assert "throttled reading motor-002" in result.failures["motor-002"]
    for reading, outcome in zip(readings, result.results, strict=True):
        assert (outcome is None) == (reading.motor_id == "motor-002")
    assert "motor-002" not in store.items

    store.failing.clear()  # redelivered, as Lambda does from the first failed record
    retry_publisher = Recorder()
    run([r for r in readings if r.motor_id == "motor-002"], store, retry_publisher, Model())
    direct_store, direct_publisher = one_at_a_time(readings, Model())
    assert states(store) == states(direct_store)
    assert {e.event_id for e in retry_publisher.events} == {
        e.event_id for e in direct_publisher.events if e.motor_id == "motor-002"
    }


def test_a_failed_publish_fails_the_motor_and_its_redelivery_publishes_each_event_once() -> None:
    readings = [Telemetry.model_validate(reading_payload(seq, at_s=60.0 * seq, vibration_mm_s=12.0)) for seq in (1, 2)]
    store, publisher = MemoryStore(), Recorder(fail_next=1)

    first = run(readings, store, publisher, Model())
    second = run(readings, store, publisher, Model())

    assert set(first.failures) == {"motor-001"}
    assert "broker unreachable" in first.failures["motor-001"]
    assert [r.outcome for r in second.results if r is not None] == [Outcome.STALE, Outcome.DUPLICATE]
    assert second.model_calls == 0
    direct_publisher = one_at_a_time(readings, Model())[1]
    assert publisher.events == direct_publisher.events != []
    saved = store.load("motor-001")
    assert saved is not None
    assert saved.outbox == ()


def test_a_rival_writer_makes_the_motor_reload_and_reapply_without_asking_the_model_again() -> None:
    readings = fleet_readings(3, count=20)
    model = Model()
    store = MemoryStore()
    rival_done: list[str] = []

    def rival(s: MemoryStore) -> None:  # an operator action lands between our load and our save
        motor = next(iter(s.items), None)
        if motor is not None:
            item = dict(s.items[motor])
            item["version"] += 1
            s.items[motor] = item
            rival_done.append(motor)

    run(readings[:5], store, Recorder(), model)
    rows_before = len(model.rows)
    store.before_save = rival
    result = run(readings[5:], store, Recorder(), model)

    assert rival_done
    assert not result.failures
    conflicts = sum(r.conflicts for r in result.results if r is not None and r.motor_id == rival_done[0])
    assert conflicts >= 1
    assert store.loads == conflicts  # the batch was read with one load_many; each reload reads its motor alone
    assert len(store.batch_loads) == 2
    assert result.model_calls == 1
    assert len(model.rows) - rows_before == result.rows_scored


def test_when_the_model_is_down_the_batch_is_applied_without_probabilities() -> None:
    readings = [Telemetry.model_validate(reading_payload(seq, at_s=60.0 * seq, vibration_mm_s=12.0)) for seq in (1, 2)]
    publisher = Recorder()

    result = run(readings, MemoryStore(), publisher, Model(down=True))

    assert result.prediction_error == "endpoint timed out"
    assert result.model_calls == 1
    assert result.probability is None
    assert all(r is not None and r.failure_probability is None for r in result.results)
    assert [e.alarm for e in publisher.events] == ["vibration_zone_d"]


def test_no_motor_is_begun_without_time_left() -> None:
    readings = fleet_readings(5, count=10)
    store = MemoryStore()

    result = run(readings, store, Recorder(), Model(), may_start=lambda: False)

    assert set(result.failures) == {r.motor_id for r in readings}
    assert all(r is None for r in result.results)
    assert result.model_calls == 0
    assert store.items == {}
    assert store.batch_loads == []  # nothing read either


def test_motors_read_in_time_are_not_applied_once_the_time_is_gone() -> None:
    readings = fleet_readings(5, count=10)
    store = MemoryStore()
    checks = iter([True])  # time for the batch's read, then none

    result = run(readings, store, Recorder(), Model(), may_start=lambda: next(checks, False))

    assert len(store.batch_loads) == 1
    assert set(result.failures) == {r.motor_id for r in readings}
    assert "no time left" in next(iter(result.failures.values()))
    assert store.items == {}


@pytest.mark.parametrize("model", [None, Model()], ids=["no model", "model"])
def test_a_batch_of_stopped_motors_or_without_a_model_makes_no_call(model: Model | None) -> None:
    stopped = [Telemetry.model_validate(reading_payload(seq, at_s=60.0 * seq, running=False)) for seq in (1, 2)]

    result = run(stopped, MemoryStore(), Recorder(), model)

    assert result.model_calls == 0
    assert [r.outcome for r in result.results if r is not None] == [Outcome.APPLIED, Outcome.APPLIED]
