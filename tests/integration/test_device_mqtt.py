"""The device simulator against a real MQTT broker: mutual TLS, the device policy, QoS 1 across a broker restart."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from awscrt import mqtt5

from motor_maintenance.telemetry import Telemetry
from tests.integration.broker import ACL, TIMEOUT_S, Mosquitto, Peer, wait_until
from tests.integration.conftest import Pki
from tests.support import ROOT
from tests.unit.test_template import DEVICE_GRANTS, NAMESPACE, THING

pytestmark = pytest.mark.integration

ALL_TELEMETRY = "motors/+/telemetry"
SUMMARY = re.compile(r"summary: (\d+) readings: (\d+) acknowledged, (\d+) failed, (\d+) dropped")


class Simulation:
    """`python device/simulate.py` as a user runs it, against the test broker."""

    def __init__(self, broker: Mosquitto, directory: Path, *args: str) -> None:
        directory.mkdir()
        self._out = directory / "simulate.out"
        self._err = directory / "simulate.err"
        env = dict(os.environ)
        # The layer's packages, as the venv's .pth file provides them (the runtime venv has none).
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "shared"), env.get("PYTHONPATH", "")])
        command = [
            sys.executable, "device/simulate.py",
            "--endpoint", "127.0.0.1", "--port", str(broker.port), "--ca", str(broker.ca),
            "--progress-every", "0.25", *args,
        ]  # fmt: skip
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)  # noqa: S603

    def stderr(self) -> str:
        return self._err.read_text()

    def printed(self) -> str:
        return self._out.read_text() + self._err.read_text()

    def wait(self, timeout_s: float = 60.0) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"simulate.py did not finish in {timeout_s} s:\n{self.stderr()[-3000:]}")

    def summary(self) -> dict[str, int]:
        match = SUMMARY.search(self.stderr())
        assert match, f"no summary line:\n{self.stderr()[-3000:]}"
        return dict(zip(("readings", "acknowledged", "failed", "dropped"), map(int, match.groups()), strict=True))


Simulate = Callable[..., Simulation]


@pytest.fixture
def simulate(broker: Mosquitto, pki: Pki, tmp_path: Path) -> Iterator[Simulate]:
    """Start simulate.py with these arguments; whatever still runs at the end of the test is killed.

    Afterwards, whatever the test did, no run may have printed a line of any private key it could read.
    """
    runs: list[Simulation] = []

    def start(*args: str) -> Simulation:
        run = Simulation(broker, tmp_path / f"run-{len(runs)}", *args)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
    key_lines = [line for identity in pki.identities() for line in identity.key_material()]
    leaks = [index for index, run in enumerate(runs) if any(line in run.printed() for line in key_lines)]
    assert not leaks, f"simulate.py run(s) {leaks} printed private key material"


def readings(messages: list[tuple[str, bytes]]) -> list[Telemetry]:
    """Each message as a reading, checked against the schema and against its topic."""
    parsed = []
    for topic, payload in messages:
        reading = Telemetry.model_validate_json(payload)
        assert topic == f"motors/{reading.motor_id}/telemetry"
        parsed.append(reading)
    return parsed


def test_every_reading_is_acknowledged_and_arrives_intact_and_in_order(
    broker: Mosquitto, pki: Pki, simulate: Simulate
) -> None:
    with Peer(broker, pki.observer, [ALL_TELEMETRY]) as observer:
        run = simulate("--cert-dir", str(pki.devices), "--motors", "3", "--count", "10", "--interval", "0.05")

        assert run.wait() == 0, run.stderr()
        assert run.summary() == {"readings": 30, "acknowledged": 30, "failed": 0, "dropped": 0}
        assert wait_until(lambda: len(observer.messages()) >= 30), len(observer.messages())

    arrived = readings(observer.messages())
    assert len(arrived) == 30
    seqs = defaultdict(list)
    for reading in arrived:
        seqs[reading.motor_id].append(reading.seq)
    assert seqs == {motor: list(range(1, 11)) for motor in ("motor-001", "motor-002", "motor-003")}


def test_no_reading_is_stamped_in_the_future_when_time_is_compressed(
    broker: Mosquitto, pki: Pki, simulate: Simulate
) -> None:
    with Peer(broker, pki.observer, [ALL_TELEMETRY]) as observer:
        # An hour of simulated time per reading, a reading every 0.1 s.
        run = simulate(
            "--cert-dir", str(pki.devices), "--motors", "2", "--count", "5", "--interval", "0.1", "--speedup", "36000"
        )  # fmt: skip
        assert run.wait() == 0, run.stderr()
        assert wait_until(lambda: len(observer.messages()) >= 10)
        stamps = {(r.motor_id, r.seq): r.ts for r in readings(observer.messages())}

    now = datetime.now(UTC)
    assert max(stamps.values()) <= now
    # The simulated clock started four hours back so that the last reading is stamped about now.
    assert (stamps["motor-002", 5] - stamps["motor-002", 1]).total_seconds() == pytest.approx(4 * 3600)
    assert (now - stamps["motor-002", 5]).total_seconds() < TIMEOUT_S


@pytest.mark.parametrize("who", ["device certificate from another CA", "broker certificate from another CA"])
def test_a_connection_without_mutual_trust_is_refused(
    broker: Mosquitto, pki: Pki, simulate: Simulate, who: str
) -> None:
    if who.startswith("device"):
        identity = ("--cert-dir", str(pki.rogue.directory))
    else:  # the device trusts only the rogue CA, so it must refuse the real broker
        identity = ("--cert-dir", str(pki.devices), "--ca", str(pki.rogue.cert))
    log_before = len(broker.log.read_text())
    with Peer(broker, pki.observer, [ALL_TELEMETRY]) as observer:
        run = simulate(*identity, "--motors", "1", "--count", "3", "--interval", "0.05", "--connect-timeout", "3")

        assert run.wait() == 1
        assert "could not connect within 3 s: motor-001" in run.stderr()
    assert observer.messages() == []
    if who.startswith("device"):
        assert "certificate verify failed" in broker.log.read_text()[log_before:]


def test_a_device_cannot_publish_to_another_motors_topic(broker: Mosquitto, pki: Pki) -> None:
    with (
        Peer(broker, pki.observer, [ALL_TELEMETRY]) as observer,
        Peer(broker, pki.device("motor-001")) as device,
    ):
        forged = device.publish("motors/motor-002/telemetry", b'{"forged": true}')
        own = device.publish("motors/motor-001/telemetry", b'{"marker": true}')

        assert forged is mqtt5.PubackReasonCode.NOT_AUTHORIZED
        assert own is mqtt5.PubackReasonCode.SUCCESS
        # The broker handles one connection's messages in order: once the marker is through, the
        # forged message would have been too.
        assert wait_until(lambda: ("motors/motor-001/telemetry", b'{"marker": true}') in observer.messages())
    assert [topic for topic, _ in observer.messages()] == ["motors/motor-001/telemetry"]


def test_a_device_hears_its_own_actions_and_alarms_and_never_another_motors(broker: Mosquitto, pki: Pki) -> None:
    """Given motor-002 subscribed to motor-001's actions and alarms, by name and by wildcard,
    when an operator and the cloud publish to motor-001, then an operator to motor-002,
    then motor-001 gets both of its messages and motor-002 only its own.

    mosquitto 2.0 grants a subscription its ACL forbids (the SUBACK says success) and then never
    delivers on it, as AWS IoT Core delivers nothing a policy does not let a device Receive; so the
    test asserts what arrives, not the SUBACK. The broker handles the cloud's messages in order:
    once motor-002 has its own action, motor-001's would have reached it before.
    """
    prying = ["motors/motor-001/actions", "motors/motor-001/alarms", "motors/+/actions", "motors/+/alarms", "motors/#"]
    with (
        Peer(broker, pki.device("motor-001"), ["motors/motor-001/actions", "motors/motor-001/alarms"]) as owner,
        Peer(broker, pki.device("motor-002"), prying) as other,
        Peer(broker, pki.observer) as cloud,
    ):
        cloud.publish("motors/motor-001/actions", b'{"action": "acknowledge"}')
        cloud.publish("motors/motor-001/alarms", b'{"transition": "raised"}')
        cloud.publish("motors/motor-002/actions", b'{"action": "reset"}')

        assert wait_until(lambda: len(owner.messages()) >= 2), owner.messages()
        assert wait_until(lambda: len(other.messages()) >= 1), other.messages()
    assert sorted(owner.messages()) == [
        ("motors/motor-001/actions", b'{"action": "acknowledge"}'),
        ("motors/motor-001/alarms", b'{"transition": "raised"}'),
    ]
    # Overlapping subscriptions may deliver its own action more than once; nothing else may arrive.
    assert set(other.messages()) == {("motors/motor-002/actions", b'{"action": "reset"}')}


@pytest.mark.parametrize("inbox", ["actions", "alarms"])
def test_a_device_cannot_speak_as_an_operator_or_as_the_cloud_even_for_its_own_motor(
    broker: Mosquitto, pki: Pki, inbox: str
) -> None:
    with (
        Peer(broker, pki.device("motor-001"), [f"motors/motor-001/{inbox}"]) as device,
        Peer(broker, pki.device("motor-001")) as forger,
    ):
        refused = forger.publish(f"motors/motor-001/{inbox}", b'{"forged": true}')

        assert refused is mqtt5.PubackReasonCode.NOT_AUTHORIZED
    assert device.messages() == []


def test_the_broker_acl_mirrors_the_device_policy() -> None:
    """The test broker enforces what DevicePolicy grants, no more, no less, except what mosquitto cannot.

    Not mirrored: iot:Connect's client id (mosquitto binds permissions to the certificate, %u, but
    cannot bind the client id without a plugin), and the legacy topic (closed by default).
    """
    mirrored = set()
    for line in ACL.splitlines():
        if not line.startswith("pattern "):
            continue
        _, access, topic = line.split()
        topic = topic.replace("%u", THING)
        if access in {"write", "readwrite"}:
            mirrored.add(("iot:Publish", f"topic/{topic}", ()))
        if access in {"read", "readwrite"}:
            mirrored |= {("iot:Subscribe", f"topicfilter/{topic}", ()), ("iot:Receive", f"topic/{topic}", ())}

    # The ACL is the policy of a stack with the default TopicNamespace.
    policy = {
        (action, resource.replace(NAMESPACE, "motors"), when)
        for action, resource, when in DEVICE_GRANTS
        if action != "iot:Connect" and not when
    }
    assert mirrored == policy


def test_one_device_certificate_publishes_for_its_own_motor_only(
    broker: Mosquitto, pki: Pki, simulate: Simulate
) -> None:
    device = pki.device("motor-001")
    with Peer(broker, pki.observer, [ALL_TELEMETRY]) as observer:
        run = simulate(
            "--cert", str(device.cert), "--key", str(device.key), "--thing-name", "motor-001",
            "--motors", "2", "--count", "3", "--interval", "0.05",
        )  # fmt: skip

        assert run.wait() == 1
        assert run.summary() == {"readings": 6, "acknowledged": 3, "failed": 3, "dropped": 0}
        assert "broker refused the reading: NOT_AUTHORIZED (topic motors/motor-002/telemetry)" in run.stderr()
        assert wait_until(lambda: len(observer.messages()) >= 3)
    assert {reading.motor_id for reading in readings(observer.messages())} == {"motor-001"}


def test_a_gateway_identity_publishes_for_every_motor_on_one_connection(
    broker: Mosquitto, pki: Pki, simulate: Simulate
) -> None:
    gateway = pki.gateway
    with Peer(broker, pki.observer, [ALL_TELEMETRY]) as observer:
        run = simulate(
            "--cert", str(gateway.cert), "--key", str(gateway.key), "--client-id", "gateway",
            "--motors", "3", "--count", "4", "--interval", "0.05",
        )  # fmt: skip

        assert run.wait() == 0, run.stderr()
        assert run.summary() == {"readings": 12, "acknowledged": 12, "failed": 0, "dropped": 0}
        assert "1 connections, 0 reconnects" in run.stderr()
        assert wait_until(lambda: len(observer.messages()) >= 12)
    assert sorted((r.motor_id, r.seq) for r in readings(observer.messages())) == [
        (motor, seq) for motor in ("motor-001", "motor-002", "motor-003") for seq in range(1, 5)
    ]


def test_a_broker_restart_loses_no_reading(broker: Mosquitto, pki: Pki, simulate: Simulate) -> None:
    """Given a run of 2 motors x 60 readings and an observer with a persistent session,
    when the broker stops mid-run for a second and comes back,
    then the run reports every reading acknowledged and the observer gets every one of them.

    QoS 1 may deliver a reading twice (a publish whose acknowledgement was lost is sent again), so
    readings are counted once per (motor_id, seq), as the cloud deduplicates them.
    """
    expected = {(motor, seq) for motor in ("motor-001", "motor-002") for seq in range(1, 61)}
    with Peer(broker, pki.observer, [ALL_TELEMETRY], persistent_session=True) as observer:
        run = simulate(
            "--cert-dir", str(pki.devices), "--motors", "2", "--count", "60", "--interval", "0.05",
            "--drain-timeout", "30",
        )  # fmt: skip
        assert wait_until(lambda: len(observer.messages()) >= 20)

        broker.stop()
        assert wait_until(lambda: run.stderr().count("disconnected") >= 2)

        def queued_while_down() -> bool:
            during_outage = run.stderr().partition("disconnected")[2]
            return re.search(r" [1-9]\d* queued", during_outage) is not None

        assert wait_until(queued_while_down), run.stderr()
        broker.start()

        assert run.wait() == 0, run.stderr()[-3000:]
        assert run.summary() == {"readings": 120, "acknowledged": 120, "failed": 0, "dropped": 0}
        assert "reconnected" in run.stderr()

        def arrived() -> set[tuple[str, int]]:
            return {(r.motor_id, r.seq) for r in readings(observer.messages())}

        assert wait_until(lambda: arrived() >= expected, TIMEOUT_S), sorted(expected - arrived())
    assert arrived() == expected


def test_ctrl_c_stops_cleanly_with_every_reading_delivered(broker: Mosquitto, pki: Pki, simulate: Simulate) -> None:
    with Peer(broker, pki.observer, [ALL_TELEMETRY]) as observer:
        run = simulate("--cert-dir", str(pki.devices), "--motors", "1", "--interval", "0.05")
        assert wait_until(lambda: len(observer.messages()) >= 5)

        run.process.send_signal(signal.SIGINT)

        assert run.wait() == 0, run.stderr()
        summary = run.summary()
        assert summary["acknowledged"] == summary["readings"] >= 5
        assert wait_until(lambda: len(observer.messages()) >= summary["readings"])
    assert [r.seq for r in readings(observer.messages())] == list(range(1, summary["readings"] + 1))


def test_a_service_complete_action_services_the_simulated_motor_once(
    broker: Mosquitto, pki: Pki, simulate: Simulate
) -> None:
    run = simulate("--cert-dir", str(pki.devices), "--motors", "1", "--interval", "0.05", "--listen-actions")
    assert wait_until(lambda: "listening to the actions of motor-001" in run.stderr()), run.stderr()

    action = {
        "motor_id": "motor-001",
        "action": "service_complete",
        "action_id": "service-1",
        "ts": datetime.now(UTC).isoformat(),
        "operator": "fitter",
    }
    with Peer(broker, pki.observer) as operator:
        operator.publish("motors/motor-001/actions", b"not json")
        operator.publish("motors/motor-001/actions", json.dumps(action).encode())
        operator.publish("motors/motor-001/actions", json.dumps(action).encode())  # redelivered
        operator.publish("motors/motor-001/actions", json.dumps({**action, "motor_id": "motor-002"}).encode())
        assert wait_until(lambda: "action for motor-002" in run.stderr()), run.stderr()
    # Both copies of service-1 were received before the motor-002 message; the run applies them
    # between two readings.
    assert wait_until(lambda: "service complete" in run.stderr()), run.stderr()

    run.process.send_signal(signal.SIGTERM)
    assert run.wait() == 0, run.stderr()
    stderr = run.stderr()
    assert stderr.count("motor-001: service complete (action service-1 by fitter)") == 1
    assert "ignored an invalid action on motors/motor-001/actions" in stderr
