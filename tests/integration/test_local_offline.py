"""The offline alarm end to end in the local stack: the template's schedule drives OfflineCheckFunction.

Two devices on the real broker with their own certificates: one goes silent while running, one keeps
reporting. The silence limit is 3 s and the schedule runs every 0.5 s here (the template says every
minute; `StackOptions.schedule_period_s` shortens it), so the test takes seconds, not minutes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local.observe import Alert
from local.options import StackOptions
from local.stack import LocalStack
from scripts import operate
from tests.integration.conftest import device_client

SILENT, CHATTY = "motor-101", "motor-102"
AFTER_S = 3.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("local-offline"),
        model=None,
        broker="builtin",
        detector_config={"offline": {"after_s": AFTER_S}},
        devices=(SILENT, CHATTY),
        retry_delays_s=(0.2, 0.4),
        schedule_period_s=0.5,
        log=lambda line: print(line, flush=True),
    )
    with LocalStack(options) as running:
        yield running


class Device:
    """A motor's MQTT client with its own certificate, publishing readings stamped now."""

    def __init__(self, stack: LocalStack, motor_id: str) -> None:
        self.motor_id = motor_id
        self.seq = 0
        self.client = device_client(stack, motor_id)
        self.client.start()

    def send(self, running: bool = True) -> None:
        self.seq += 1
        reading = {
            "motor_id": self.motor_id, "motor_type": "pump-37kw", "ts": int(time.time() * 1000), "seq": self.seq,
            "running": running, "speed_rpm": 1480.0 if running else 0.0, "current_a": 64.0 if running else 0.0,
            "winding_temp_c": 78.0, "bearing_temp_c": 62.0, "fluid_temp_c": 84.0, "vibration_mm_s": 2.4,
        }  # fmt: skip
        self.client.publish(f"motors/{self.motor_id}/telemetry", json.dumps(reading).encode())

    def stop(self) -> None:
        self.client.stop()


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def offline_alerts(stack: LocalStack, motor_id: str) -> list[Alert]:
    return [a for a in list(stack.observer.alerts) if a.motor_id == motor_id and a.attributes.get("alarm") == "offline"]


def alarm_state(stack: LocalStack, motor_id: str, alarm: str) -> str | None:
    for item in stack.resources.motor_items():
        if item["motor_id"]["S"] == motor_id:
            return str(item["alarm_states"]["M"][alarm]["S"])
    return None


def test_a_silent_running_motor_raises_offline_a_reporting_one_does_not_and_a_reading_clears_it(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    silent, chatty = Device(stack, SILENT), Device(stack, CHATTY)
    stop = threading.Event()

    def keep_reporting() -> None:
        while not stop.wait(0.5):
            chatty.send()

    reporter = threading.Thread(target=keep_reporting, daemon=True)
    try:
        # Given two running motors, one of which stops reporting after three readings
        for _ in range(3):
            silent.send()
            chatty.send()
        reporter.start()
        sent_at = time.monotonic()

        # Then the silent one is raised offline after the limit, by the schedule alone
        assert wait_for(lambda: offline_alerts(stack, SILENT), timeout_s=AFTER_S + 15), "no offline alert came"
        assert time.monotonic() - sent_at >= AFTER_S - 0.5
        [raised] = offline_alerts(stack, SILENT)
        assert raised.attributes["transition"] == "raised"
        assert "Motor offline" in raised.subject
        assert alarm_state(stack, SILENT, "offline") == "ACTIVE"
        time.sleep(2 * 0.5)  # a few more ticks: still one alert, none for the motor that keeps reporting
        assert len(offline_alerts(stack, SILENT)) == 1
        assert offline_alerts(stack, CHATTY) == []
        assert alarm_state(stack, CHATTY, "offline") == "NORMAL"

        # When it reports again, the alarm clears (latched: nobody acknowledged it)
        silent.send()
        assert wait_for(lambda: len(offline_alerts(stack, SILENT)) == 2, timeout_s=15)
        assert offline_alerts(stack, SILENT)[1].attributes["transition"] == "cleared"
        assert wait_for(lambda: alarm_state(stack, SILENT, "offline") == "LATCHED", timeout_s=5)

        # And an operator's acknowledge from the command line closes it
        status = operate.main(
            ["--state-dir", str(stack.state_dir), "acknowledge", SILENT, "offline", "--operator", "t"]
        )
        assert status == 0
        assert wait_for(lambda: alarm_state(stack, SILENT, "offline") == "NORMAL", timeout_s=15)
    finally:
        stop.set()
        if reporter.is_alive():
            reporter.join(timeout=5)
        silent.stop()
        chatty.stop()

    # A motor that stops (running false) and then goes silent is not offline: it was not running.
    stopping = Device(stack, SILENT)
    try:
        stopping.send(running=False)
        time.sleep(AFTER_S + 2)
    finally:
        stopping.stop()
    assert len(offline_alerts(stack, SILENT)) == 3  # raised, cleared, acknowledged: nothing new
    assert stack.resources.queue_depth("RuleErrorQueue") == 0
    assert stack.resources.queue_depth("FunctionFailureQueue") == 0
    assert stack.observer.outcomes["schedule.OfflineCheckFunctionTick"] > 5
    assert stack.observer.outcomes["OfflineCheckFunction.failed"] == 0


def test_the_stack_file_and_log_name_the_timer(stack: LocalStack) -> None:
    log = Path(stack.log_dir)
    assert any("OfflineCheckFunction" in path.name for path in log.iterdir())
