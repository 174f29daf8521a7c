"""The model's health: one model_unavailable alert per outage and one recovery, however many environments see it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from motor_adapters.clients import client
from motor_adapters.dynamodb_store import HEALTH_KEY, DynamoHealthStore, DynamoStateStore
from motor_maintenance.alarms import ALL_MOTORS, AlarmEvent, AlarmKind
from motor_maintenance.config import ModelHealthRule
from motor_maintenance.errors import StoreUnavailable, VersionConflict
from motor_maintenance.health import REFRESH_S, ModelHealthMonitor
from motor_maintenance.state import ModelHealth
from motor_maintenance.telemetry import Telemetry
from tests.conftest import FakeAws
from tests.support import T0_MS, LambdaContext, Recorder, load_event, load_handler, reading_payload

T0 = datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
RULE = ModelHealthRule()  # unavailable after 5 failures in a row, recovered after 3 answers in a row
ERROR = "endpoint motor-failure-xgboost: An error occurred (ThrottlingException): Rate exceeded"


@dataclass
class MemoryHealthStore:
    """A HealthStore with DynamoDB's conditional-write semantics; can be made to fail."""

    record: ModelHealth | None = None
    down: bool = False
    writes: int = 0
    reads: int = 0

    def load_health(self) -> ModelHealth | None:
        self.reads += 1
        if self.down:
            raise StoreUnavailable("table unreachable")
        return self.record

    def save_health(self, health: ModelHealth, expected_version: int) -> ModelHealth:
        if self.down:
            raise StoreUnavailable("table unreachable")
        if (self.record.version if self.record else 0) != expected_version:
            raise VersionConflict("changed")
        self.record = replace(health, version=expected_version + 1)
        self.writes += 1
        return self.record


def fail(monitor: ModelHealthMonitor, times: int = 1, at: datetime = T0):
    return [monitor.observe(probability=None, error=ERROR, now=at, rule=RULE) for _ in range(times)]


def answer(monitor: ModelHealthMonitor, times: int = 1, at: datetime = T0):
    return [monitor.observe(probability=0.1, error=None, now=at, rule=RULE) for _ in range(times)]


def transitions(recorder: Recorder) -> list[str]:
    return [event.transition.value for event in recorder.events]


def test_n_failures_in_a_row_raise_one_alert_and_the_model_answering_again_clears_it_once() -> None:
    store, publisher = MemoryHealthStore(), Recorder()
    monitor = ModelHealthMonitor(store, publisher)

    fail(monitor, RULE.unavailable_after - 1)
    assert publisher.events == []
    fail(monitor, 1 + 50)  # the 5th raises; 50 more failures change nothing
    answer(monitor, RULE.recover_after - 1)
    assert transitions(publisher) == ["raised"]
    answer(monitor, 1 + 50)

    raised, cleared = publisher.events
    assert transitions(publisher) == ["raised", "cleared"]
    assert (raised.motor_id, raised.alarm, raised.kind) == (ALL_MOTORS, "model_unavailable", AlarmKind.HEALTH)
    assert raised.note == ERROR
    assert raised.event_id != cleared.event_id
    assert (raised.sequence, cleared.sequence) == (1, 2)
    assert store.record is not None
    assert store.record.available
    assert store.record.outbox == ()


def test_an_error_text_the_alert_could_not_carry_is_escaped_and_cut_not_a_reason_to_fail() -> None:
    store, publisher = MemoryHealthStore(), Recorder()
    monitor = ModelHealthMonitor(store, publisher)
    error = "endpoint answered '\udcff" + "x" * 2000  # a lone surrogate, and far longer than a note holds

    reports = [monitor.observe(probability=None, error=error, now=T0, rule=RULE) for _ in range(RULE.unavailable_after)]

    [raised] = reports[-1].published
    assert raised.note is not None
    assert raised.note.startswith("endpoint answered '\\udcffxxx")
    assert len(raised.note) <= 500
    assert AlarmEvent.model_validate_json(raised.model_dump_json()) == raised  # what the alerts function receives


def test_an_answer_between_failures_restarts_the_count() -> None:
    publisher = Recorder()
    monitor = ModelHealthMonitor(MemoryHealthStore(), publisher)

    for _ in range(3):
        fail(monitor, RULE.unavailable_after - 1)
        answer(monitor)

    assert publisher.events == []


def test_a_throttled_endpoint_that_answers_now_and_then_does_not_flap() -> None:
    publisher = Recorder()
    monitor = ModelHealthMonitor(MemoryHealthStore(), publisher)
    fail(monitor, RULE.unavailable_after)

    for _ in range(5):  # an answer now and then, never recover_after in a row
        answer(monitor, RULE.recover_after - 1)
        fail(monitor)

    assert transitions(publisher) == ["raised"]


def test_each_outage_has_its_own_alert() -> None:
    publisher = Recorder()
    monitor = ModelHealthMonitor(MemoryHealthStore(), publisher)

    for hour in range(2):
        fail(monitor, RULE.unavailable_after, at=T0 + timedelta(hours=hour))
        answer(monitor, RULE.recover_after, at=T0 + timedelta(hours=hour, minutes=30))

    assert transitions(publisher) == ["raised", "cleared", "raised", "cleared"]
    assert len({event.event_id for event in publisher.events}) == 4
    assert [event.sequence for event in publisher.events] == [1, 2, 3, 4]


def test_a_reading_that_did_not_ask_the_model_is_not_counted() -> None:
    store, publisher = MemoryHealthStore(), Recorder()
    monitor = ModelHealthMonitor(store, publisher)

    for _ in range(20):  # stopped motor, no endpoint, duplicate reading: no call, no verdict
        monitor.observe(probability=None, error=None, now=T0, rule=RULE)

    assert (store.reads, publisher.events) == (0, [])


def test_a_health_alert_whose_publish_failed_is_published_by_the_next_prediction_with_the_same_id() -> None:
    store, publisher = MemoryHealthStore(), Recorder()
    monitor = ModelHealthMonitor(store, publisher)
    fail(monitor, RULE.unavailable_after - 1)
    publisher.fail_next = 1

    [report] = fail(monitor)  # the transition is saved with its event in the outbox; the publish fails
    assert report.error is not None
    assert "broker unreachable" in report.error
    assert store.record is not None
    pending = [event.event_id for event in store.record.outbox]
    [report] = fail(monitor)

    assert [event.event_id for event in report.published] == pending
    assert transitions(publisher) == ["raised"]
    assert store.record.outbox == ()


def test_a_health_record_that_cannot_be_kept_never_fails_the_reading_and_is_tried_again() -> None:
    store, publisher = MemoryHealthStore(down=True), Recorder()
    monitor = ModelHealthMonitor(store, publisher)

    reports = fail(monitor, RULE.unavailable_after)  # no exception escapes
    assert all(report.error == "table unreachable" for report in reports)
    store.down = False
    fail(monitor)

    assert transitions(publisher) == ["raised"]


def test_environments_deciding_on_a_stale_copy_raise_nothing_twice() -> None:
    """Three environments read the record while the model was fine; all then see it fail."""
    store, publisher = MemoryHealthStore(), Recorder()
    environments = [ModelHealthMonitor(store, publisher) for _ in range(3)]
    for monitor in environments:
        answer(monitor)  # each reads the record once: "available"

    for _ in range(RULE.unavailable_after):
        for monitor in environments:
            fail(monitor)
    for _ in range(RULE.recover_after):
        for monitor in environments:
            answer(monitor)

    assert transitions(publisher) == ["raised", "cleared"]


def test_an_environment_whose_copy_is_stale_still_raises_a_new_outage_at_its_nth_failure() -> None:
    """Its write conflicts; it reads the record again and decides on the truth there and then."""
    store, publisher = MemoryHealthStore(), Recorder()
    stale, other = ModelHealthMonitor(store, publisher), ModelHealthMonitor(store, publisher)
    answer(stale)  # reads "available", outage 0
    fail(other, RULE.unavailable_after)  # outage 1 ...
    answer(other, RULE.recover_after)  # ... over; the record is "available", outage 1, at a later version

    fail(stale, RULE.unavailable_after)

    assert transitions(publisher) == ["raised", "cleared", "raised"]
    assert store.record is not None
    assert (store.record.available, store.record.outage) == (False, 2)


def test_an_environment_that_missed_the_outage_announces_the_recovery_after_its_next_read() -> None:
    store, publisher = MemoryHealthStore(), Recorder()
    quiet, busy = ModelHealthMonitor(store, publisher), ModelHealthMonitor(store, publisher)
    answer(quiet)  # reads "available", then sees no traffic during the outage
    fail(busy, RULE.unavailable_after)  # raises; then it is not invoked again

    answer(quiet, RULE.recover_after, at=T0 + timedelta(seconds=1))  # its copy still says "available"
    assert transitions(publisher) == ["raised"]
    answer(quiet, at=T0 + timedelta(seconds=REFRESH_S + 1))

    assert transitions(publisher) == ["raised", "cleared"]


def test_the_record_is_written_only_on_transitions_not_per_prediction() -> None:
    store = MemoryHealthStore()
    monitor = ModelHealthMonitor(store, Recorder())

    answer(monitor, 1000)
    fail(monitor, 1000)
    answer(monitor, 1000)

    assert store.writes == 4  # raise + outbox emptied, clear + outbox emptied
    assert store.reads == 1  # and read once: all this happened within REFRESH_S


def test_the_health_record_lives_in_the_state_table_under_a_key_no_motor_can_have(aws: FakeAws) -> None:
    for name in (HEALTH_KEY, ALL_MOTORS):  # the record's key, and the motor_id of its events
        with pytest.raises(ValueError, match="motor_id"):
            Telemetry.model_validate(reading_payload(motor_id=name))
    store = DynamoHealthStore("motor-state", client("dynamodb"))
    saved = store.save_health(ModelHealth(available=False, outage=1, since_ms=T0_MS, last_error=ERROR), 0)

    assert store.load_health() == saved
    assert DynamoStateStore("motor-state", client("dynamodb")).load("motor-001") is None
    with pytest.raises(VersionConflict):
        store.save_health(ModelHealth(), expected_version=0)


def test_ten_environments_on_the_real_table_raise_the_outage_once_and_clear_it_once(aws: FakeAws) -> None:
    """Every environment of a fleet's worth of concurrency sees the endpoint die, then come back."""
    publisher = Recorder()
    environments = [
        ModelHealthMonitor(DynamoHealthStore("motor-state", client("dynamodb")), publisher) for _ in range(10)
    ]
    for monitor in environments:
        answer(monitor)

    for _ in range(RULE.unavailable_after + 2):
        for monitor in environments:
            fail(monitor)
    for _ in range(RULE.recover_after + 2):
        for monitor in environments:
            answer(monitor)

    assert transitions(publisher) == ["raised", "cleared"]
    item = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": HEALTH_KEY}})["Item"]
    assert (item["model_status"]["S"], item["outage"]["N"], item["outbox_size"]["N"]) == ("available", "1", "0")


def test_the_model_unavailable_alert_tells_people_what_still_works_and_what_to_check(
    aws: FakeAws, lambda_context: LambdaContext
) -> None:
    """The sample health event (sam local invoke AlertFunction -e events/alarm-model-unavailable.json)."""
    alerts = load_handler("alerts")

    first = alerts.lambda_handler(load_event("alarm-model-unavailable"), lambda_context)
    again = alerts.lambda_handler(load_event("alarm-model-unavailable"), lambda_context)

    [alert] = aws.alerts()
    assert first["message_id"] == again["message_id"]
    assert alert["Subject"] == "[HIGH] All motors: failure-prediction model unavailable"
    body = alert["Message"]
    assert "The model failed 5 predictions in a row; unavailable since 2026-11-27 12:06:00 UTC." in body
    assert "Last error: endpoint motor-failure-xgboost: An error occurred (ThrottlingException)" in body
    assert "schedule and condition alarms of every motor still" in body
    assert "EndpointMaxConcurrency" in body
    assert "Acknowledge" not in body  # there is nothing for an operator to acknowledge
    attributes = {name: value["Value"] for name, value in alert["MessageAttributes"].items()}
    assert attributes == {
        "severity": "high",
        "motor_id": ALL_MOTORS,
        "alarm_kind": "health",
        "alarm": "model_unavailable",
        "transition": "raised",
        "event_id": load_event("alarm-model-unavailable")["event_id"],
    }
