"""Two topic namespaces on one broker stay apart: a stack runs its own namespace's traffic, and only that.

IoT Core's topics belong to the whole account, so two stacks in one account share one broker and tell
their traffic apart by the first topic level, the template's TopicNamespace. Here the local stack runs
with namespace `plant-a`; another stack's traffic under `plant-b` (its devices' readings, its operators'
actions, its alarm events, for a motor id both plants use) is published on the same broker through a
service connection, as that stack's devices, rules and functions would publish it on IoT Core (this
broker's device policy is plant-a's, which refuses plant-a's certificates anything under plant-b).

Given plant-a's motor raising its schedule alarm (a 0.1 h service interval, readings a minute apart in
the readings' time), the test checks that plant-a's rules received exactly plant-a's messages, its state
table holds only plant-a's readings, plant-b's acknowledge did not touch plant-a's alarm, plant-b's alarm
event sent no alert, plant-a's alarm events went to plant-a's topics only, and that scripts/operate.py
acts on plant-a's namespace, which it reads from the running stack. Seconds of readings, no model.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from local.iot_core import IOT_DATA, find_mosquitto
from local.mqtt_client import Message, ServiceClient
from local.options import StackOptions
from local.stack import LocalStack
from scripts import operate
from tests.integration.conftest import device_client
from tests.support import load_event

A, B = "plant-a", "plant-b"
MOTOR = "motor-001"
"""Both plants have a motor-001: only the namespace tells their traffic apart."""
OTHER = "motor-b02"
"""A motor plant-b alone has."""
READINGS = 10
MINUTE_MS = 60_000


@pytest.fixture(scope="module", params=["builtin", "mosquitto"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack on each broker: both enforce the device policy's topics under the stack's namespace."""
    broker = request.param
    if broker == "mosquitto" and find_mosquitto() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the end-to-end tests with mosquitto, but it is not installed")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("local-namespaces"),
        model=None,
        broker=broker,
        topic_namespace=A,
        detector_config={"schedule": {"service_interval_h": 0.1}, "offline": {"enabled": False}},
        devices=(MOTOR,),
        retry_delays_s=(0.2, 0.4),
        log=lambda line: print(line, flush=True),
    )
    with LocalStack(options) as running:
        yield running


class Spy:
    """A service connection that hears every topic on the broker, and publishes as another stack would."""

    def __init__(self, stack: LocalStack) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.client: ServiceClient = stack.iot.service_client(IOT_DATA, self._heard, name="namespace-spy")
        self.client.start(["#"])

    def _heard(self, message: Message) -> None:
        with self._lock:
            self.messages.append(message)

    def topics(self, prefix: str) -> list[str]:
        with self._lock:
            return [m.topic for m in self.messages if m.topic.startswith(prefix)]


def reading(motor_id: str, seq: int, ts_ms: int) -> bytes:
    return json.dumps(
        {
            "motor_id": motor_id,
            "motor_type": "pump-37kw",
            "ts": ts_ms,
            "seq": seq,
            "running": True,
            "speed_rpm": 1480.0,
            "current_a": 64.0,
            "winding_temp_c": 78.0,
            "bearing_temp_c": 62.0,
            "fluid_temp_c": 84.0,
            "vibration_mm_s": 2.4,
        }
    ).encode()


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def motor_items(stack: LocalStack) -> dict[str, dict[str, object]]:
    return {item["motor_id"]["S"]: item for item in stack.resources.motor_items() if "#" not in item["motor_id"]["S"]}


def schedule_state(stack: LocalStack) -> str | None:
    item = motor_items(stack).get(MOTOR)
    return None if item is None else str(item["alarm_states"]["M"]["schedule"]["S"])  # type: ignore[index]


def test_a_stack_sees_only_its_own_namespace_on_a_shared_broker(stack: LocalStack) -> None:
    spy = Spy(stack)
    device = device_client(stack, MOTOR, flow_control=False)
    device.start()
    start_ms = int(time.time() * 1000) - READINGS * MINUTE_MS
    try:
        # Given plant-a's motor reporting on plant-a's topic, and plant-b's motors (one with the same id)
        # reporting on plant-b's, with later timestamps and sequence numbers that would win if they arrived
        for seq in range(1, READINGS + 1):
            ts_ms = start_ms + seq * MINUTE_MS
            device.publish(f"{A}/{MOTOR}/telemetry", reading(MOTOR, seq, ts_ms - 30_000))
            spy.client.publish(f"{B}/{MOTOR}/telemetry", reading(MOTOR, 1000 + seq, ts_ms))
            spy.client.publish(f"{B}/{OTHER}/telemetry", reading(OTHER, seq, ts_ms))

        # Then plant-a's schedule alarm is raised, and alerted, from plant-a's readings alone
        assert wait_for(lambda: schedule_state(stack) == "ACTIVE", timeout_s=30), motor_items(stack)
        assert wait_for(lambda: len(stack.observer.alerts) == 1, timeout_s=30), "no alert for plant-a's alarm"

        # A plant-a certificate cannot publish into plant-b (the device policy is plant-a's)
        with pytest.raises(RuntimeError, match="refused"):
            device.publish(f"{B}/{MOTOR}/telemetry", reading(MOTOR, READINGS + 1, start_ms))

        # When plant-b acknowledges its motor-001's schedule alarm and publishes an alarm event of its own
        action = {
            "motor_id": MOTOR, "action": "acknowledge", "alarm": "schedule", "action_id": "plant-b-ack-1",
            "ts": start_ms + READINGS * MINUTE_MS, "operator": "plant-b operator",
        }  # fmt: skip
        spy.client.publish(f"{B}/{MOTOR}/actions", json.dumps(action).encode())
        b_event = load_event("alarm-raised") | {"event_id": "b" * 32}
        spy.client.publish(f"{B}/{MOTOR}/alarms", json.dumps(b_event).encode())
        assert stack.settle(stall_s=30)
        time.sleep(1.0)  # anything plant-b's messages set off in plant-a would have shown by now
    finally:
        device.stop()

    # Then plant-a's rules received plant-a's messages only: 10 readings, 1 alarm event, no action
    accounts = stack.observer.accounts.snapshot()
    assert accounts["TelemetryRule"]["received"] == READINGS
    assert accounts["TelemetryRule"]["processed"] == READINGS
    assert accounts["AlarmRule"]["received"] == 1
    assert "ActionRule" not in accounts or accounts["ActionRule"]["received"] == 0
    # plant-a's state is plant-a's motor with plant-a's last reading, and its alarm not acknowledged
    items = motor_items(stack)
    assert set(items) == {MOTOR}
    assert items[MOTOR]["last_reading_ms"] == {"N": str(start_ms + READINGS * MINUTE_MS - 30_000)}
    assert schedule_state(stack) == "ACTIVE"
    # plant-b's alarm event sent no alert; plant-a's alert tells operators plant-a's actions topic
    [alert] = list(stack.observer.alerts)
    assert alert.motor_id == MOTOR
    assert alert.attributes.get("event_id") != b_event["event_id"]
    assert f"{A}/{MOTOR}/actions" in alert.body
    assert f"{B}/" not in alert.body
    # plant-a's alarm event went to plant-a's topic; under plant-b there is only what plant-b published
    assert spy.topics(f"{A}/{MOTOR}/alarms") == [f"{A}/{MOTOR}/alarms"]
    assert sorted(set(spy.topics(f"{B}/"))) == sorted(
        {f"{B}/{MOTOR}/telemetry", f"{B}/{OTHER}/telemetry", f"{B}/{MOTOR}/actions", f"{B}/{MOTOR}/alarms"}
    )
    assert len(spy.topics(f"{B}/")) == 2 * READINGS + 2

    # When plant-a's operator acknowledges through scripts/operate.py (the namespace comes from the stack)
    assert operate.main(["--state-dir", str(stack.state_dir), "acknowledge", MOTOR, "schedule", "--operator", "a"]) == 0

    # Then it reaches plant-a on plant-a's actions topic, and plant-b hears nothing of it
    assert wait_for(lambda: schedule_state(stack) == "ACKNOWLEDGED", timeout_s=30)
    assert wait_for(lambda: len(stack.observer.alerts) == 2, timeout_s=30)
    assert spy.topics(f"{A}/{MOTOR}/actions") == [f"{A}/{MOTOR}/actions"]
    assert len(spy.topics(f"{B}/")) == 2 * READINGS + 2
    spy.client.stop()
    assert stack.resources.queue_depth("RuleErrorQueue") == 0
    assert stack.resources.queue_depth("FunctionFailureQueue") == 0
