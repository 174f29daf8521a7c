"""OfflineCheckFunction against moto: readings stored by the inference handler, a tick, the offline alarm, its alert."""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any

import pytest

from motor_lambda.timers import TimerChecksFailed
from motor_maintenance.telemetry import to_epoch_ms
from tests.conftest import FakeAws
from tests.support import LambdaContext, load_event, load_handler


@pytest.fixture
def handlers(aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    monkeypatch.setenv("ENDPOINT_NAME", "")  # no model: the timer's business is silence, not predictions
    return {name: load_handler(name) for name in ("inference", "offline", "alerts", "actions")}


def reading(motor_id: str, seq: int, ago_s: float, *, running: bool = True) -> dict[str, Any]:
    """A reading sent and received `ago_s` seconds before now."""
    event = load_event("telemetry-normal")
    at_ms = int(time.time() * 1000 - ago_s * 1000)
    event.update(motor_id=motor_id, topic_motor_id=motor_id, seq=seq, ts=at_ms, received_at=at_ms, running=running)
    if not running:
        event.update(speed_rpm=0.0, torque_nm=0.0, current_a=0.0, flow_m3h=0.0, pressure_bar=0.0)
    return event


def test_a_tick_raises_offline_for_the_silent_running_motor_only_and_the_alert_goes_out(
    handlers: dict[str, ModuleType], aws: FakeAws
) -> None:
    """Given three motors: one running and silent for 20 minutes, one running and reporting, one stopped and silent,
    when the timer ticks,
    then only the first raises `offline`, its event is published on its alarms topic and alerted once.
    """
    context = LambdaContext()
    for seq, ago in enumerate((1260, 1230, 1200), start=1):
        handlers["inference"].lambda_handler(reading("motor-silent", seq, ago), context)
        handlers["inference"].lambda_handler(reading("motor-stopped", seq, ago, running=seq < 3), context)
    for seq, ago in enumerate((20, 10, 1), start=1):
        handlers["inference"].lambda_handler(reading("motor-live", seq, ago), context)

    tick = handlers["offline"].lambda_handler(load_event("schedule-tick"), context)

    assert tick["status"] == "ok"
    assert tick["checked"] == 1  # the only motor due: the live one is not due, the stopped one not watched
    alarms = [(topic, payload) for topic, payload in aws.published() if topic.endswith("/alarms")]
    assert [(topic, p["alarm"], p["transition"], p["to_state"]) for topic, p in alarms] == [
        ("motors/motor-silent/alarms", "offline", "raised", "ACTIVE")
    ]
    assert tick["events"] == [alarms[0][1]["event_id"]]
    assert alarms[0][1]["value"] >= 1200

    handlers["alerts"].lambda_handler(alarms[0][1], context)
    handlers["alerts"].lambda_handler(alarms[0][1], context)  # redelivered: alerted once
    (alert,) = aws.alerts()
    assert alert["Subject"] == "[HIGH] motor-silent: Motor offline - ALARM"

    # The next tick has nothing to do: the alarm is up and the motor is out of the index.
    again = handlers["offline"].lambda_handler(load_event("schedule-tick"), context)
    assert (again["checked"], again["events"]) == (0, [])

    # It speaks again: the alarm clears (latched until acknowledged), and the motor is watched again.
    back = handlers["inference"].lambda_handler(reading("motor-silent", 4, 0), context)
    assert back["alarm_states"]["offline"] == "LATCHED"
    item = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": "motor-silent"}})["Item"]
    assert int(item["check_due_ms"]["N"]) > to_epoch_ms_now()


def test_a_tick_with_nothing_due_reads_no_motor(handlers: dict[str, ModuleType]) -> None:
    context = LambdaContext()
    for seq, ago in enumerate((20, 10, 1), start=1):
        handlers["inference"].lambda_handler(reading("motor-live", seq, ago), context)
    tick = handlers["offline"].lambda_handler(load_event("schedule-tick"), context)
    assert (tick["checked"], tick["events"]) == (0, [])


def test_a_motor_that_cannot_be_checked_fails_the_tick_after_the_others(
    handlers: dict[str, ModuleType], aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = LambdaContext()
    for motor in ("motor-a", "motor-b"):
        for seq, ago in enumerate((1260, 1230, 1200), start=1):
            handlers["inference"].lambda_handler(reading(motor, seq, ago), context)
    store = handlers["offline"].ports().store
    real_load = store.load

    def load(motor_id: str) -> Any:
        if motor_id == "motor-a":
            from motor_maintenance.errors import StoreUnavailable

            raise StoreUnavailable("throttled")
        return real_load(motor_id)

    monkeypatch.setattr(store, "load", load)
    with pytest.raises(TimerChecksFailed, match="motor-a"):
        handlers["offline"].lambda_handler(load_event("schedule-tick"), context)
    raised = [p["motor_id"] for topic, p in aws.published() if topic.endswith("/alarms")]
    assert raised == ["motor-b"]  # the other motor was still checked


def to_epoch_ms_now() -> int:
    from datetime import UTC, datetime

    return to_epoch_ms(datetime.now(UTC))


def test_the_sample_tick_event_is_an_eventbridge_scheduled_event() -> None:
    event = load_event("schedule-tick")
    assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event")
    json.dumps(event)
