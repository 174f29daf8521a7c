"""The operator console on the local stack: the printed address answers the fleet to the local viewer's token.

Two motors report through the real broker with their own certificates, one with its fluid past 200 C for
six minutes (readings stamped in the past, so the condition's duration is met at once). The console server
the stack starts verifies the tokens it wrote to `.local-stack/console/tokens.json` (here, the test's state
directory) as API Gateway's JWT authorizer would, and ConsoleFunction answers in its own execution
environment: what `make demo` shows.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local.options import StackOptions
from local.stack import LocalStack
from tests.integration.conftest import device_client

HOT, COOL = "motor-201", "motor-202"
STAMPS_MS: list[int] = []
"""The readings' times each motor published (the fixture's), for the history's sampled points."""
RISK = ["ACTIVE", "LATCHED", "ACKNOWLEDGED", "SNOOZED", "DISABLED", "NORMAL"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[LocalStack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("local-console"),
        model=default_model,
        broker="builtin",
        devices=(HOT, COOL),
        retry_delays_s=(0.2, 0.4),
        log=lambda line: print(line, flush=True),
    )
    with LocalStack(options) as running:
        # Minutes 0, 3 and 6 of a 5-minute history interval (the template's default): 0 and 6 are recorded.
        start_ms = (int(time.time() * 1000) - 6 * 60_000) // 300_000 * 300_000
        STAMPS_MS[:] = [start_ms + minutes * 60_000 for minutes in (0, 3, 6)]
        for motor_id, fluid_c in ((HOT, 212.5), (COOL, 84.0)):
            publish(
                running,
                motor_id,
                [(seq, start_ms + minutes * 60_000, fluid_c) for seq, minutes in ((1, 0), (2, 3), (3, 6))],
            )
        yield running


def publish(stack: LocalStack, motor_id: str, readings: list[tuple[int, int, float]]) -> None:
    device = device_client(stack, motor_id)
    device.start()
    try:
        for seq, ts_ms, fluid_c in readings:
            reading = {
                "motor_id": motor_id, "motor_type": "pump-37kw", "ts": ts_ms, "seq": seq, "running": True,
                "speed_rpm": 1480.0, "torque_nm": 230.0, "current_a": 64.0, "winding_temp_c": 78.0,
                "bearing_temp_c": 62.0, "fluid_temp_c": fluid_c, "vibration_mm_s": 2.4, "pressure_bar": 6.1,
                "flow_m3h": 118.0,
            }  # fmt: skip
            device.publish(f"motors/{motor_id}/telemetry", json.dumps(reading).encode())
    finally:
        device.stop()


def tokens(stack: LocalStack) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((stack.state_dir / "console" / "tokens.json").read_text())
    return loaded


def call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    try:
        request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - the console on loopback
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def fleet(stack: LocalStack) -> list[dict[str, Any]]:
    status, body = call(f"{tokens(stack)['console_url']}motors", tokens(stack)["viewer"]["access_token"])
    assert status == 200, body
    motors: list[dict[str, Any]] = body["motors"]
    return motors


def test_the_fleet_answers_the_viewers_token_with_probabilities_and_alarm_states(stack: LocalStack) -> None:
    assert wait_for(lambda: {m["motor_id"] for m in fleet(stack)} == {HOT, COOL} and stack.pipeline.idle(), 120)

    motors = {motor["motor_id"]: motor for motor in fleet(stack)}

    assert motors[HOT]["alarm_states"]["fluid_overtemperature"] == "ACTIVE"
    assert motors[COOL]["alarm_states"]["fluid_overtemperature"] == "NORMAL"
    for motor in motors.values():
        assert 0.0 <= motor["failure_probability"] <= 1.0, "the model scored each running motor"
        assert motor["worst_alarm"] is None or motor["alarm_states"][motor["worst_alarm"]["name"]] != "NORMAL"
    risk = [
        (RISK.index(m["worst_alarm"]["state"] if m["worst_alarm"] else "NORMAL"), -m["failure_probability"])
        for m in fleet(stack)
    ]
    assert risk == sorted(risk), "riskiest first: the worst alarm state, then the higher probability"


def test_the_fleet_without_a_token_is_401(stack: LocalStack) -> None:
    assert call(f"{tokens(stack)['console_url']}motors") == (401, {"message": "Unauthorized"})


def test_the_operator_acknowledges_and_the_viewer_may_not(stack: LocalStack) -> None:
    assert wait_for(lambda: any(m["worst_alarm"] for m in fleet(stack)), 120)
    url = f"{tokens(stack)['console_url']}motors/{HOT}/actions"
    action = {"action": "acknowledge", "alarm": "fluid_overtemperature", "action_id": "console-it-ack-1"}

    assert call(url, tokens(stack)["viewer"]["access_token"], action)[0] == 403
    status, body = call(url, tokens(stack)["operator"]["access_token"], action)

    assert (status, body["status"], body["operator"]) == (200, "applied", "local-operator")
    assert body["alarm_states"]["fluid_overtemperature"] == "ACKNOWLEDGED"
    history = call(
        f"{tokens(stack)['console_url']}motors/{HOT}/history?hours=1", tokens(stack)["viewer"]["access_token"]
    )
    fluid = [t for t in history[1]["transitions"] if t["alarm"] == "fluid_overtemperature"]
    assert [(t["transition"], t["operator"]) for t in fluid] == [
        ("raised", None),
        ("acknowledged", "local-operator"),
    ]
    # Minutes 0 and 6 start an interval; minute 3 is recorded only if it brought a transition (the model's
    # predictive alarm may be raised there, never sampled away).
    minute_3 = datetime.fromtimestamp(STAMPS_MS[1] / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raised_at_3 = any(t["at"] == minute_3 and t["transition"] == "raised" for t in history[1]["transitions"])
    expected = [STAMPS_MS[0], *([STAMPS_MS[1]] if raised_at_3 else []), STAMPS_MS[2]]
    at = [datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for ms in expected]
    assert [point["at"] for point in history[1]["points"]] == at
