"""Use cases with in-memory ports: retries, races and partial failures lose nothing and alert once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from motor_maintenance.alarms import OperatorAction
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import Outcome
from motor_maintenance.errors import ConflictPersisted, PredictionUnavailable, PublishFailed, VersionConflict
from motor_maintenance.features import FEATURE_NAMES
from motor_maintenance.prediction import Driver, Prediction
from motor_maintenance.service import process_action, process_reading
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from tests.support import T0_MS, MemoryStore, Recorder, reading_payload, wear_drivers, wear_probability

T0 = datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
CONFIG = DetectorConfig()


@dataclass
class Model:
    """A Predictor computing from the rows it gets, with its drivers; can be switched off."""

    down: bool = False
    rows: list[Sequence[float]] = field(default_factory=list)

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        if self.down:
            raise PredictionUnavailable("endpoint timed out")
        self.rows.extend(rows)
        return [
            Prediction(
                probability=wear_probability(list(row)),
                drivers=tuple(Driver.model_validate(d) for d in wear_drivers(list(row))),
            )
            for row in rows
        ]


def reading(seq: int, at_s: float, **signals: float) -> Telemetry:
    return Telemetry.model_validate(reading_payload(seq, at_s=at_s, **signals))


def send(store: MemoryStore, publisher: Recorder, item: Telemetry, model: Model | None = None):
    return process_reading(
        item,
        store=store,
        predictor=model or Model(),
        publisher=publisher,
        config=CONFIG,
        now=item.ts + timedelta(seconds=1),
    )


def test_a_reading_is_predicted_detected_saved_and_its_events_published() -> None:
    store, publisher, model = MemoryStore(), Recorder(), Model()

    send(store, publisher, reading(1, 0, vibration_mm_s=12.0), model)
    result = send(store, publisher, reading(2, 60, vibration_mm_s=12.0), model)

    assert result.outcome is Outcome.APPLIED
    assert "vibration_zone_d" in [e.alarm for e in result.events]
    assert publisher.events == list(result.events)
    assert len(model.rows[-1]) == len(FEATURE_NAMES)
    assert result.failure_probability == pytest.approx(wear_probability(list(model.rows[-1])))
    saved = store.load("motor-001")
    assert saved is not None
    assert saved.alarms["vibration_zone_d"].state.value == "ACTIVE"
    assert saved.outbox == ()
    assert saved.stats.last_ts_ms == T0_MS + 60_000


def test_a_stopped_motor_is_not_sent_to_the_model() -> None:
    store, publisher, model = MemoryStore(), Recorder(), Model()

    result = send(store, publisher, reading(1, 0, running=False), model)

    assert model.rows == []
    assert result.failure_probability is None


def test_when_the_model_is_down_conditions_still_alarm_and_the_reading_is_kept() -> None:
    store, publisher, model = MemoryStore(), Recorder(), Model(down=True)

    send(store, publisher, reading(1, 0, vibration_mm_s=12.0), model)
    result = send(store, publisher, reading(2, 60, vibration_mm_s=12.0), model)

    assert result.prediction_error == "endpoint timed out"
    assert [e.alarm for e in publisher.events] == ["vibration_zone_d"]
    saved = store.load("motor-001")
    assert saved is not None
    assert saved.last_seq == 2


def test_a_racing_writer_makes_us_reload_and_reapply_without_losing_its_transition() -> None:
    store, publisher = MemoryStore(), Recorder()
    send(store, publisher, reading(1, 0, vibration_mm_s=12.0))

    def rival_acknowledges(s: MemoryStore) -> None:
        # Between our load and our save, an operator action lands on the same motor.
        s.before_save = None
        send(s, publisher, reading(2, 60, vibration_mm_s=12.0))  # raises the alarm
        ack = OperatorAction(
            motor_id="motor-001", action="acknowledge", alarm="vibration_zone_d", action_id="ack-1", ts=T0
        )
        process_action(ack, store=s, publisher=publisher, config=CONFIG, now=T0 + timedelta(seconds=61))

    store.before_save = rival_acknowledges
    result = send(store, publisher, reading(3, 120, vibration_mm_s=3.0))

    assert result.conflicts == 1
    vibration = [e for e in publisher.events if e.alarm == "vibration_zone_d"]
    assert [(e.alarm, e.transition.value, e.to_state.value) for e in vibration] == [
        ("vibration_zone_d", "raised", "ACTIVE"),
        ("vibration_zone_d", "acknowledged", "ACKNOWLEDGED"),
        ("vibration_zone_d", "cleared", "NORMAL"),  # applied on top of the rival's acknowledge
    ]


def test_a_state_that_keeps_changing_fails_the_invocation_for_a_retry() -> None:
    class AlwaysConflicts(MemoryStore):
        def save(self, state: MotorState, expected_version: int) -> MotorState:
            raise VersionConflict("lost again")

    with pytest.raises(ConflictPersisted):
        send(AlwaysConflicts(), Recorder(), reading(1, 0))


def test_a_retry_after_publish_failed_delivers_the_saved_events_exactly_once() -> None:
    store, publisher = MemoryStore(), Recorder()
    send(store, publisher, reading(1, 0, vibration_mm_s=12.0))
    publisher.fail_next = 1
    raising = reading(2, 60, vibration_mm_s=12.0)

    with pytest.raises(PublishFailed):
        send(store, publisher, raising)  # state saved with the event in its outbox; publish failed
    pending = store.load("motor-001")
    assert pending is not None
    pending_ids = [event.event_id for event in pending.outbox]
    assert len(pending_ids) >= 1
    retry = send(store, publisher, raising)  # Lambda's retry of the same event

    assert retry.outcome is Outcome.DUPLICATE
    assert [e.event_id for e in publisher.events] == pending_ids  # each delivered once, in order
    assert "vibration_zone_d" in [e.alarm for e in publisher.events]
    assert [e.event_id for e in retry.published] == pending_ids
    flushed = store.load("motor-001")
    assert flushed is not None
    assert flushed.outbox == ()
    assert send(store, publisher, raising).published == ()  # a third delivery publishes nothing


def test_a_duplicate_reading_with_nothing_pending_publishes_nothing() -> None:
    store, publisher = MemoryStore(), Recorder()
    first = reading(1, 0)
    send(store, publisher, first)
    saves = store.saves

    result = send(store, publisher, first)

    assert result.outcome is Outcome.DUPLICATE
    assert store.saves == saves
    assert publisher.events == []


def test_an_ignored_action_is_remembered_so_its_redelivery_is_a_duplicate() -> None:
    store, publisher = MemoryStore(), Recorder()
    send(store, publisher, reading(1, 0))
    ack = OperatorAction(motor_id="motor-001", action="acknowledge", alarm="schedule", action_id="a-1", ts=T0)

    first = process_action(ack, store=store, publisher=publisher, config=CONFIG, now=T0)
    second = process_action(ack, store=store, publisher=publisher, config=CONFIG, now=T0)

    assert (first.outcome, second.outcome) == (Outcome.IGNORED, Outcome.DUPLICATE)


def test_service_complete_on_a_motor_never_seen_creates_its_record() -> None:
    store, publisher = MemoryStore(), Recorder()
    done = OperatorAction(motor_id="motor-009", action="service_complete", action_id="svc-1", ts=T0)

    result = process_action(done, store=store, publisher=publisher, config=CONFIG, now=T0)

    assert result.outcome is Outcome.APPLIED
    assert [e.transition.value for e in publisher.events] == ["serviced"]
    saved = store.load("motor-009")
    assert saved is not None
    assert saved.last_service_ms == T0_MS


def test_a_reading_from_the_future_is_refused_before_the_model_is_asked() -> None:
    store, publisher, model = MemoryStore(), Recorder(), Model()
    future = reading(1, 3600)

    result = process_reading(future, store=store, predictor=model, publisher=publisher, config=CONFIG, now=T0)

    assert result.outcome is Outcome.FUTURE
    assert model.rows == []
    assert store.items == {}


def test_a_snooze_ending_during_an_ignored_action_is_saved_and_announced() -> None:
    store, publisher = MemoryStore(), Recorder()
    send(store, publisher, reading(1, 0))
    snooze = OperatorAction(
        motor_id="motor-001", action="snooze", alarm="vibration_zone_d", action_id="s-1", ts=T0, snooze_minutes=1
    )
    process_action(snooze, store=store, publisher=publisher, config=CONFIG, now=T0)
    ack = OperatorAction(motor_id="motor-001", action="acknowledge", alarm="schedule", action_id="a-1", ts=T0)

    result = process_action(ack, store=store, publisher=publisher, config=CONFIG, now=T0 + timedelta(minutes=5))

    assert result.outcome is Outcome.IGNORED
    assert [e.transition.value for e in publisher.events] == ["snoozed", "snooze_expired"]
    saved = store.load("motor-001")
    assert saved is not None
    assert saved.alarms["vibration_zone_d"].state.value == "NORMAL"


def test_a_conflict_retry_does_not_ask_the_model_again_when_nothing_it_used_changed() -> None:
    store, publisher, model = MemoryStore(), Recorder(), Model()
    send(store, publisher, reading(1, 0, flow_m3h=None), model)  # NaN features must not defeat reuse

    def rival_touches_only_the_outbox(s: MemoryStore) -> None:
        item = s.items["motor-001"]
        s.items["motor-001"] = item | {"version": item["version"] + 1}

    store.before_save = rival_touches_only_the_outbox
    calls_before = len(model.rows)
    result = send(store, publisher, reading(2, 60, flow_m3h=None), model)

    assert result.conflicts == 1
    assert len(model.rows) == calls_before + 1


def test_alarm_events_carry_a_per_motor_sequence_for_consumers_to_order_them() -> None:
    store, publisher = MemoryStore(), Recorder()
    send(store, publisher, reading(1, 0, vibration_mm_s=12.0))
    send(store, publisher, reading(2, 60, vibration_mm_s=12.0))
    send(store, publisher, reading(3, 120, vibration_mm_s=1.0))

    sequences = [e.sequence for e in publisher.events]
    assert sequences == list(range(1, len(sequences) + 1))
    assert len(sequences) >= 2


def test_a_conflict_retry_never_asks_the_model_twice_even_when_a_rival_reading_moved_the_statistics() -> None:
    """One model call per invocation bounds the endpoint's share of the invocation's time."""
    store, publisher, model = MemoryStore(), Recorder(), Model()
    send(store, publisher, reading(1, 0), model)
    rival = reading(2, 30)

    def rival_reading_lands_first(s: MemoryStore) -> None:
        send(s, publisher, rival, Model())  # another invocation, its own model call

    store.before_save = rival_reading_lands_first
    calls_before = len(model.rows)
    result = send(store, publisher, reading(3, 60), model)

    assert result.conflicts == 1
    assert len(model.rows) == calls_before + 1
    assert result.failure_probability is not None
    saved = store.load("motor-001")
    assert saved is not None
    assert (saved.last_seq, saved.stats.last_ts_ms) == (3, T0_MS + 60_000)


# --- what drove the prediction --------------------------------------------------------------


def test_the_models_drivers_reach_the_predictive_alarm_event_and_the_result() -> None:
    """Given a bearing running hot and vibrating (not enough for a condition alarm),
    when two readings in a row are predicted to fail,
    then the predictive raise says which features drove it, as the model ranked them.
    """
    store, publisher, model = MemoryStore(), Recorder(), Model()
    worn = {"vibration_mm_s": 8.0, "bearing_temp_c": 100.0}

    send(store, publisher, reading(1, 0, **worn), model)
    result = send(store, publisher, reading(2, 60, **worn), model)

    (raised,) = [e for e in publisher.events if e.alarm == "predictive"]
    assert raised.transition.value == "raised"
    assert [d.feature for d in raised.drivers] == ["vibration_mm_s_ewm_1h", "bearing_temp_c"]
    assert raised.drivers == result.drivers
    assert raised.failure_probability == result.failure_probability
    assert [e.alarm for e in publisher.events] == ["predictive"]  # no condition alarm: only the model saw it
    saved = store.load("motor-001")
    assert saved is not None
    assert saved.probability_drivers == result.drivers


def test_a_model_without_drivers_still_raises_the_predictive_alarm() -> None:
    class PlainModel(Model):
        def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
            return [Prediction(probability=p.probability) for p in super().predict(rows)]

    store, publisher, model = MemoryStore(), Recorder(), PlainModel()

    send(store, publisher, reading(1, 0, vibration_mm_s=8.0), model)
    result = send(store, publisher, reading(2, 60, vibration_mm_s=8.0), model)

    assert [(e.alarm, e.transition.value, e.drivers) for e in publisher.events] == [("predictive", "raised", ())]
    assert (result.drivers, result.drivers_dropped) == ((), None)


def test_drivers_the_adapter_dropped_are_reported_and_the_probability_is_used() -> None:
    class Unexplained(Model):
        def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
            return [Prediction(probability=0.9, drivers_dropped="drivers is not a list of objects") for _ in rows]

    store, publisher = MemoryStore(), Recorder()

    send(store, publisher, reading(1, 0), Unexplained())
    result = send(store, publisher, reading(2, 60), Unexplained())

    assert (result.failure_probability, result.drivers_dropped) == (0.9, "drivers is not a list of objects")
    assert [(e.alarm, e.drivers) for e in publisher.events] == [("predictive", ())]
