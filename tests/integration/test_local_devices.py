"""Devices the project did not write, on the local stack: the original sample's device, and a hostile client.

One stack (built-in broker, legacy topic allowed, no model) for the file. The legacy device speaks
MQTT 3.1.1 at QoS 0 as the original sample's AWS IoT Python SDK did; the fluid rule's 5 minutes are
shortened to 2 s through the detector-config parameter (the legacy rule stamps readings with the
time they arrive, so the test cannot compress time any other way). The hostile client is a separate
process (tests/hostile_client.py) with a certificate of its own; whatever it sends, every message the
rules receive must be processed, rejected with a reason or dead-lettered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt
from awsiot import mqtt_connection_builder

from local.accounting import FATES, lines
from local.observe import Alert
from local.options import StackOptions
from local.processes import port_open
from local.stack import LocalStack
from motor_maintenance.config import DEFAULT_CONDITIONS
from tests.support import ROOT

pytestmark = pytest.mark.integration

LEGACY_MOTOR = "AWS98765"
"""The original sample's motorID; its thing name, certificate common name and MQTT client id."""
HOSTILE = "hostile-001"
FLUID_HOLD_S = 2.0
ORIGINAL_SAMPLE = {"motorID": LEGACY_MOTOR, "motorType": "Pump_GN12345", "TT01": 42.0, "TT02": 64, "TT03": 57}
ORIGINAL_SAMPLE |= {"TT04": 30, "PTO1": 27.3}  # PTO1 and FTO1: the original simulator's spelling


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    fluid, *others = DEFAULT_CONDITIONS
    conditions = [fluid.model_dump(mode="json") | {"min_duration_s": FLUID_HOLD_S}]
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("local-devices"),
        model=None,
        allow_legacy_topic=True,
        detector_config={"conditions": conditions + [rule.model_dump(mode="json") for rule in others]},
        devices=(LEGACY_MOTOR, HOSTILE),
        retry_delays_s=(0.2, 0.4),
        log=lambda line: print(line, flush=True),
    )
    with LocalStack(options) as running:
        yield running


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def alerts(stack: LocalStack, motor_id: str, alarm: str) -> list[Alert]:
    return [a for a in list(stack.observer.alerts) if a.motor_id == motor_id and a.attributes.get("alarm") == alarm]


def test_the_stack_with_the_legacy_topic_runs_on_the_built_in_broker(stack: LocalStack) -> None:
    assert stack.iot.broker_kind.startswith("built-in")


def test_the_original_samples_device_over_mqtt_3_1_1_at_qos_0_raises_the_fluid_alarm(stack: LocalStack) -> None:
    """Given the original sample's device: MQTT 3.1.1, client id = its motorID, QoS 0 on iml_iotevents_data;
    when FTO1 stays above 200 C for longer than the fluid rule's hold, then its fluid alarm is raised."""
    cert, key = stack.device_identity(LEGACY_MOTOR)
    device = mqtt_connection_builder.mtls_from_path(
        endpoint="127.0.0.1", port=stack.iot.broker_port, cert_filepath=str(cert), pri_key_filepath=str(key),
        ca_filepath=str(stack.ca_path), client_id=LEGACY_MOTOR, clean_session=True, keep_alive_secs=30,
    )  # fmt: skip
    device.connect().result(20)
    try:
        started = time.monotonic()
        while not alerts(stack, LEGACY_MOTOR, "fluid_overtemperature") and time.monotonic() - started < 30:
            payload = json.dumps(ORIGINAL_SAMPLE | {"FTO1": 231}).encode()
            device.publish("iml_iotevents_data", payload, mqtt.QoS.AT_MOST_ONCE)
            time.sleep(0.5)
    finally:
        device.disconnect().result(20)

    (raised, *_) = alerts(stack, LEGACY_MOTOR, "fluid_overtemperature")
    assert raised.attributes.get("transition") == "raised"
    assert "AWS98765" in raised.subject
    assert "ALARM" in raised.subject
    assert stack.settle(stall_s=20, limit_s=60)
    row = stack.observer.accounts.snapshot()["LegacyTelemetryRule"]
    assert row["received"] >= 2
    assert row["received"] == row["processed"]  # every reading applied: clientid() named the motor


def run_hostile_client(stack: LocalStack, *options: str) -> dict[str, Any]:
    """tests/hostile_client.py in a process of its own, with its own certificate; what it says it sent."""
    cert, key = stack.device_identity(HOSTILE)
    command = [
        sys.executable, "-m", "tests.hostile_client", "--port", str(stack.iot.broker_port), "--ca", str(stack.ca_path),
        "--cert", str(cert), "--key", str(key), "--client-id", HOSTILE, *options,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
    sent: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return sent


def broker_log(stack: LocalStack) -> str:
    return (stack.log_dir / "broker.log").read_text(errors="replace")


def telemetry_row(stack: LocalStack) -> dict[str, int]:
    empty = dict.fromkeys(("received", *FATES, "lost", "unsettled"), 0)
    return stack.observer.accounts.snapshot().get("TelemetryRule", empty)


def test_deep_nesting_up_to_100000_levels_through_the_real_broker_is_rejected_or_dead_lettered_never_lost(
    stack: LocalStack,
) -> None:
    before = telemetry_row(stack)
    # 9 depths from 10 to 60,000 levels of lists, the same (up to 20,000) of objects, and 100,000 unclosed.
    sent = run_hostile_client(stack, "--only", "deep_nesting", "--hostile", "27", "--valid", "0", "--oversize", "0")

    assert sent["sent"] == {"deep_nesting": 27}
    assert stack.settle(stall_s=30, limit_s=120)
    after = telemetry_row(stack)
    grew = {key: after[key] - before[key] for key in after}
    assert grew["received"] == 27
    assert grew["rejected"] + grew["dead_lettered"] == 27
    assert (after["lost"], after["unsettled"]) == (0, 0)
    assert "Exception ignored" not in broker_log(stack)


def test_2000_hostile_and_200_valid_payloads_from_another_client_are_all_accounted_for(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Must show: received = processed + rejected + dead-lettered, 0 lost, the stack still running."""
    before = telemetry_row(stack)["received"]

    sent = run_hostile_client(stack, "--hostile", "2000", "--valid", "200", "--oversize", "3")
    settling = time.monotonic()

    assert stack.settle(stall_s=30, limit_s=300)
    settled_s = time.monotonic() - settling
    print(f"hostile run: the client took {sent['took_s']} s, the stack settled {settled_s:.1f} s later")
    assert (sent["refused"], sent["no_subscriber"]) == (0, 0)
    row = stack.observer.accounts.snapshot()["TelemetryRule"]
    summary = lines({"TelemetryRule": row}, settled=True)[0]
    print(f"hostile run: sent {sent['sent']}; {summary.strip()}")
    in_limit = sum(count for category, count in sent["sent"].items() if category != "oversize")
    assert in_limit == 2200
    assert row["received"] - before == in_limit
    assert row["processed"] + row["rejected"] + row["dead_lettered"] == row["received"]
    assert row["lost"] == 0
    assert row["unsettled"] == 0
    assert row["processed"] >= 200  # the valid readings, applied
    assert broker_log(stack).count("reason=PAYLOAD_LIMIT_EXCEEDED") == sent["sent"]["oversize"] == 3
    assert "Exception ignored" not in broker_log(stack)
    assert port_open(stack.iot.broker_port)


def test_the_stack_stops_cleanly_after_the_hostile_run(stack: LocalStack) -> None:
    pids = [child.process.pid for child in stack.children if child.process is not None]
    ports = [stack.iot.broker_port]

    stack.stop()

    assert all(not _alive(pid) for pid in pids)
    assert not any(port_open(port) for port in ports)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
