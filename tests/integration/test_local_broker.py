"""The local stack's own MQTT 5 broker (local.mqtt_broker) against the real awscrt client and raw TLS sockets.

Every client here is what runs against AWS IoT Core: awscrt's MQTT5 client built by
mqtt5_client_builder.mtls_from_path, as device/mqtt.py builds it, with certificates of
local.pki.LocalPki. What a well-behaved client never sends (QoS 2, retain, garbage) is written
byte by byte on a TLS socket.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt5
from awsiot import mqtt5_client_builder
from cryptography import x509

from device.mqtt import ConnectionSettings, DeviceConnection
from local.mqtt_broker import DevicePolicy, MqttBroker
from local.mqtt_connection import PUBLISHER_PROPERTY, QUEUE_LIMIT
from local.pki import LocalPki
from motor_maintenance.alarms import OperatorAction
from tests.integration.broker import TIMEOUT_S, free_port, wait_until
from tests.support import ROOT
from tests.unit.test_template import DEVICE_GRANTS, NAMESPACE, THING

pytestmark = pytest.mark.integration

RULES_ENGINE, IOT_DATA = SERVICES = ("local-rules-engine", "local-iot-data")
DEVICES = ("motor-001", "motor-002")
QOS1 = mqtt5.QoS.AT_LEAST_ONCE
BROKER_THREAD = "local-mqtt-broker"


@dataclass(frozen=True)
class Authorities:
    pki: LocalPki
    """The stack's CA: the broker's certificate, the devices' and the services'."""
    rogue: LocalPki
    """Another CA issuing the same device names; the broker does not trust it."""


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> Authorities:
    pki = LocalPki(tmp_path_factory.mktemp("local-pki") / "pki")
    pki.ensure([*DEVICES, *SERVICES])
    rogue = LocalPki(tmp_path_factory.mktemp("rogue-pki") / "pki")
    rogue.ensure(DEVICES)
    return Authorities(pki, rogue)


def new_broker(pki: LocalPki, port: int = 0) -> MqttBroker:
    return MqttBroker(
        port=port,
        cafile=pki.ca_path,
        certfile=pki.server_cert_path,
        keyfile=pki.server_key_path,
        policy=DevicePolicy(SERVICES),
        reveal_publisher_to=SERVICES,
    )


@pytest.fixture
def broker(authorities: Authorities, caplog: pytest.LogCaptureFixture) -> Iterator[MqttBroker]:
    caplog.set_level(logging.INFO, logger="local.broker")
    broker = new_broker(authorities.pki)
    broker.start()
    yield broker
    broker.stop()
    # Whatever a test sent, the broker never failed on it (nor did its event loop).
    failures = [r for r in caplog.records if r.name in ("local.broker", "asyncio") and r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]


class Client:
    """An awscrt MQTT5 client of the test: records what it receives and what happens to its connection."""

    def __init__(
        self,
        port: int,
        pki: LocalPki,
        identity: str,
        *,
        client_id: str | None = None,
        ca: Path | None = None,
        **options: Any,
    ) -> None:
        self.identity = identity
        self._lock = threading.Lock()
        self.received: list[mqtt5.PublishPacket] = []
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.connacks: list[mqtt5.ConnackPacket] = []
        self.failures: list[mqtt5.LifecycleConnectFailureData] = []
        self.disconnections: list[mqtt5.LifecycleDisconnectData] = []
        options.setdefault("min_reconnect_delay_ms", 200)
        options.setdefault("max_reconnect_delay_ms", 1000)
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="127.0.0.1",
            port=port,
            cert_filepath=str(pki.cert_path(identity)),
            pri_key_filepath=str(pki.key_path(identity)),
            ca_filepath=str(ca or pki.ca_path),
            client_id=identity if client_id is None else client_id,
            ack_timeout_sec=int(TIMEOUT_S),
            on_publish_received=self._on_publish,
            on_lifecycle_connection_success=self._on_success,
            on_lifecycle_connection_failure=self._on_failure,
            on_lifecycle_disconnection=self._on_disconnection,
            on_lifecycle_stopped=lambda _: self.stopped.set(),
            **options,
        )

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        with self._lock:
            self.received.append(data.publish_packet)

    def _on_success(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        with self._lock:
            self.connacks.append(data.connack_packet)
        self.connected.set()

    def _on_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        with self._lock:
            self.failures.append(data)

    def _on_disconnection(self, data: mqtt5.LifecycleDisconnectData) -> None:
        self.connected.clear()
        with self._lock:
            self.disconnections.append(data)

    def __enter__(self) -> Client:
        self.client.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()
        self.stopped.wait(TIMEOUT_S)

    def wait_connected(self) -> Client:
        assert self.connected.wait(TIMEOUT_S), f"{self.identity} did not connect: {self.failure_reasons()}"
        return self

    def failure_reasons(self) -> list[mqtt5.ConnectReasonCode | str]:
        with self._lock:
            return [
                mqtt5.ConnectReasonCode(f.connack_packet.reason_code) if f.connack_packet else str(f.exception)
                for f in self.failures
            ]

    def disconnect_reasons(self) -> list[mqtt5.DisconnectReasonCode]:
        with self._lock:
            return [
                mqtt5.DisconnectReasonCode(d.disconnect_packet.reason_code)
                for d in self.disconnections
                if d.disconnect_packet is not None
            ]

    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(p.topic, bytes(p.payload or b"")) for p in self.received]

    def packets(self) -> list[mqtt5.PublishPacket]:
        with self._lock:
            return list(self.received)

    def subscribe(self, *topic_filters: str, qos: mqtt5.QoS = QOS1) -> list[mqtt5.SubackReasonCode]:
        subscriptions = [mqtt5.Subscription(topic_filter=f, qos=qos) for f in topic_filters]
        suback = self.client.subscribe(mqtt5.SubscribePacket(subscriptions=subscriptions)).result(TIMEOUT_S)
        return [mqtt5.SubackReasonCode(code) for code in suback.reason_codes]

    def publish(self, topic: str, payload: bytes) -> mqtt5.PubackReasonCode:
        result = self.client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=QOS1)).result(TIMEOUT_S)
        return mqtt5.PubackReasonCode(result.puback.reason_code)


def connected(port: int, pki: LocalPki, identity: str, *topic_filters: str, **options: Any) -> Client:
    """A client of `identity`, connected and subscribed (call `with` on it so that it stops)."""
    client = Client(port, pki, identity, **options)
    client.__enter__()
    try:
        client.wait_connected()
        if topic_filters:
            assert set(client.subscribe(*topic_filters)) == {mqtt5.SubackReasonCode.GRANTED_QOS_1}
    except BaseException:
        client.__exit__()
        raise
    return client


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "local.broker" and text in r.getMessage()]


# -- connecting and publishing -------------------------------------------------------------------------------


def test_a_device_connects_and_its_qos1_readings_are_acknowledged(authorities: Authorities, broker: MqttBroker) -> None:
    with connected(broker.port, authorities.pki, "motor-001") as device:
        nobody_listening = device.publish("motors/motor-001/telemetry", b'{"seq": 1}')
        with connected(broker.port, authorities.pki, RULES_ENGINE, "motors/+/telemetry", client_id="rules"):
            heard = device.publish("motors/motor-001/telemetry", b'{"seq": 2}')

    assert nobody_listening is mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS
    assert heard is mqtt5.PubackReasonCode.SUCCESS


def test_the_connack_says_what_the_broker_supports(authorities: Authorities, broker: MqttBroker) -> None:
    with connected(broker.port, authorities.pki, IOT_DATA, session_expiry_interval_sec=3600) as service:
        (connack,) = service.connacks

    assert connack.maximum_qos == mqtt5.QoS.AT_LEAST_ONCE
    assert connack.retain_available is False
    assert connack.wildcard_subscriptions_available is True
    assert connack.shared_subscription_available is False
    assert connack.subscription_identifiers_available is False
    assert connack.topic_alias_maximum in (0, None)
    assert connack.receive_maximum == 100
    assert connack.session_present is False
    assert connack.session_expiry_interval_sec == 0  # no session outlives the connection


def test_a_client_without_a_client_id_is_assigned_one(authorities: Authorities, broker: MqttBroker) -> None:
    # awscrt makes up a client id of its own when given none: this one is written by hand.
    with RawClient(broker.port, authorities.pki, IOT_DATA) as raw:
        assigned = connack_properties(raw.connect(""))[0x12]  # Assigned Client Identifier

        assert isinstance(assigned, str)
        assert assigned
        assert assigned in broker.connected_clients()


def test_a_subscriber_receives_every_message_in_order(authorities: Authorities, broker: MqttBroker) -> None:
    """Given a device publishing 2000 QoS 1 readings back to back, up to 100 unacknowledged,
    then the subscriber gets all of them, once each, in the order they were published.

    The client's IoT Core flow control (100 publishes/s) is off, so that the broker is under pressure.
    """
    count = 2000
    unthrottled = mqtt5.ExtendedValidationAndFlowControlOptions.NONE
    with (
        connected(broker.port, authorities.pki, RULES_ENGINE, "motors/+/telemetry", client_id="rules") as rules,
        connected(
            broker.port, authorities.pki, "motor-001", extended_validation_and_flow_control_options=unthrottled
        ) as device,
    ):
        client = device.client
        packets = [
            mqtt5.PublishPacket(topic="motors/motor-001/telemetry", payload=b"%d" % seq, qos=QOS1)
            for seq in range(count)
        ]
        futures = [client.publish(packet) for packet in packets]
        codes = {mqtt5.PubackReasonCode(f.result(TIMEOUT_S).puback.reason_code) for f in futures}
        assert wait_until(lambda: len(rules.messages()) >= count), len(rules.messages())

    assert codes == {mqtt5.PubackReasonCode.SUCCESS}
    assert [int(payload) for _, payload in rules.messages()] == list(range(count))
    assert {p.qos for p in rules.packets()} == {QOS1}


def test_wildcards_match_as_the_specification_says(authorities: Authorities, broker: MqttBroker) -> None:
    """'+' one level, '#' any levels and the parent, neither a '$' topic in the first level;
    overlapping subscriptions deliver a message once, at the highest QoS granted."""
    pki = authorities.pki
    with (
        connected(broker.port, pki, RULES_ENGINE, "motors/+/telemetry", client_id="plus") as plus,
        connected(broker.port, pki, RULES_ENGINE, "motors/#", client_id="hash") as hash_,
        connected(broker.port, pki, RULES_ENGINE, "#", client_id="everything") as everything,
        connected(broker.port, pki, RULES_ENGINE, "$local/#", client_id="dollar") as dollar,
        connected(broker.port, pki, RULES_ENGINE, client_id="overlap") as overlap,
        connected(broker.port, pki, IOT_DATA) as publisher,
    ):
        assert overlap.subscribe("motors/#", qos=mqtt5.QoS.AT_MOST_ONCE) == [mqtt5.SubackReasonCode.GRANTED_QOS_0]
        assert overlap.subscribe("motors/+/telemetry") == [mqtt5.SubackReasonCode.GRANTED_QOS_1]
        for topic in ("motors/motor-001/telemetry", "motors", "motors/motor-001/telemetry/extra", "$local/status"):
            publisher.publish(topic, topic.encode())
        publisher.publish("done", b"")
        assert wait_until(lambda: ("done", b"") in everything.messages())
        assert wait_until(lambda: len(plus.messages()) >= 1)
        assert wait_until(lambda: len(dollar.messages()) >= 1)
        assert wait_until(lambda: len(overlap.messages()) >= 3)
        assert wait_until(lambda: len(hash_.messages()) >= 3)

    assert [t for t, _ in plus.messages()] == ["motors/motor-001/telemetry"]
    assert [t for t, _ in hash_.messages()] == [
        "motors/motor-001/telemetry",
        "motors",
        "motors/motor-001/telemetry/extra",
    ]
    assert "$local/status" not in [t for t, _ in everything.messages()]
    assert [t for t, _ in dollar.messages()] == ["$local/status"]
    assert [(p.topic, p.qos) for p in overlap.packets()] == [
        ("motors/motor-001/telemetry", QOS1),
        ("motors", mqtt5.QoS.AT_MOST_ONCE),
        ("motors/motor-001/telemetry/extra", mqtt5.QoS.AT_MOST_ONCE),
    ]


# -- the device policy ---------------------------------------------------------------------------------------


def test_a_device_cannot_connect_as_another_client_id(
    authorities: Authorities, broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    with Client(broker.port, authorities.pki, "motor-001", client_id="motor-002") as impostor:
        assert wait_until(lambda: len(impostor.failures) >= 1)
        assert not impostor.connected.is_set()

    assert mqtt5.ConnectReasonCode.NOT_AUTHORIZED in impostor.failure_reasons()
    assert logged(caplog, "refused connect: identity=motor-001 client_id=motor-002 reason=NOT_AUTHORIZED")
    assert "motor-002" not in broker.connected_clients()


def test_a_device_cannot_publish_to_another_motors_telemetry(
    authorities: Authorities, broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        connected(broker.port, authorities.pki, RULES_ENGINE, "motors/#", client_id="rules") as rules,
        connected(broker.port, authorities.pki, "motor-001") as device,
    ):
        forged = device.publish("motors/motor-002/telemetry", b'{"forged": true}')
        own = device.publish("motors/motor-001/telemetry", b'{"marker": true}')
        # One connection's messages are handled in order: once the marker is through, the forged one would be too.
        assert wait_until(lambda: len(rules.messages()) >= 1)

    assert forged is mqtt5.PubackReasonCode.NOT_AUTHORIZED
    assert own is mqtt5.PubackReasonCode.SUCCESS
    assert rules.messages() == [("motors/motor-001/telemetry", b'{"marker": true}')]
    assert logged(caplog, "refused publish: identity=motor-001 client_id=motor-001 topic=motors/motor-002/telemetry")
    assert not logged(caplog, "forged")  # payloads are never logged


def test_a_device_cannot_subscribe_to_another_motors_actions(
    authorities: Authorities, broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    denied = mqtt5.SubackReasonCode.NOT_AUTHORIZED
    with (
        connected(broker.port, authorities.pki, "motor-001") as device,
        connected(broker.port, authorities.pki, IOT_DATA) as cloud,
    ):
        codes = device.subscribe(
            "motors/motor-001/actions", "motors/motor-001/alarms", "motors/motor-002/actions", "motors/+/actions"
        )
        cloud.publish("motors/motor-002/actions", b'{"for": "motor-002"}')
        cloud.publish("motors/motor-001/actions", b'{"for": "motor-001"}')
        assert wait_until(lambda: len(device.messages()) >= 1)

    assert codes == [mqtt5.SubackReasonCode.GRANTED_QOS_1, mqtt5.SubackReasonCode.GRANTED_QOS_1, denied, denied]
    assert device.messages() == [("motors/motor-001/actions", b'{"for": "motor-001"}')]
    assert logged(caplog, "refused subscribe: identity=motor-001 client_id=motor-001 topic_filter=motors/+/actions")


def test_a_certificate_from_another_ca_is_refused(
    authorities: Authorities, broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # The impostor trusts the broker; the broker does not trust the impostor's CA.
    with Client(broker.port, authorities.rogue, "motor-001", ca=authorities.pki.ca_path) as impostor:
        assert wait_until(lambda: bool(logged(caplog, "refused TLS connection")))
        assert not impostor.connected.wait(1.0)

    assert "certificate verify failed" in logged(caplog, "refused TLS connection")[0]
    assert broker.connected_clients() == ()


def test_a_second_connection_with_the_same_client_id_takes_the_session_over(
    authorities: Authorities, broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """As in AWS IoT Core: the first connection gets DISCONNECT 0x8E and the second one works."""
    slow_to_return = {
        "min_reconnect_delay_ms": int(TIMEOUT_S * 3000),
        "max_reconnect_delay_ms": int(TIMEOUT_S * 3000),
        "retry_jitter_mode": mqtt5.ExponentialBackoffJitterMode.NONE,
    }
    with (
        connected(broker.port, authorities.pki, "motor-001", **slow_to_return) as first,
        connected(broker.port, authorities.pki, "motor-001", "motors/motor-001/actions") as second,
        connected(broker.port, authorities.pki, IOT_DATA) as cloud,
    ):
        assert wait_until(lambda: mqtt5.DisconnectReasonCode.SESSION_TAKEN_OVER in first.disconnect_reasons())
        cloud.publish("motors/motor-001/actions", b"{}")
        assert wait_until(lambda: len(second.messages()) >= 1)
        assert second.connected.is_set()
        assert broker.connected_clients().count("motor-001") == 1

    assert first.messages() == []
    assert logged(caplog, "session taken over: client_id=motor-001")


def test_services_may_use_any_client_id_topic_and_filter(authorities: Authorities, broker: MqttBroker) -> None:
    """The rules engine and the IoT data plane stand in for IoT Core itself; subscribers that are
    services also learn who published each message (IoT rules' clientid())."""
    with (
        connected(broker.port, authorities.pki, RULES_ENGINE, "#", "motors/+/actions", client_id="anything") as rules,
        connected(broker.port, authorities.pki, "motor-001", "motors/motor-001/actions") as device,
        connected(broker.port, authorities.pki, IOT_DATA, client_id="data-plane-7") as cloud,
    ):
        assert device.publish("motors/motor-001/telemetry", b"{}") is mqtt5.PubackReasonCode.SUCCESS
        assert cloud.publish("motors/motor-001/actions", b'{"a": 1}') is mqtt5.PubackReasonCode.SUCCESS
        assert cloud.publish("anything/at/all", b"x") is mqtt5.PubackReasonCode.SUCCESS
        assert wait_until(lambda: len(rules.messages()) >= 3)
        assert wait_until(lambda: len(device.messages()) >= 1)

    publishers = {
        p.topic: {u.name: u.value for u in p.user_properties or ()}.get(PUBLISHER_PROPERTY) for p in rules.packets()
    }
    assert publishers == {
        "motors/motor-001/telemetry": "motor-001",
        "motors/motor-001/actions": "data-plane-7",
        "anything/at/all": "data-plane-7",
    }
    assert len(rules.messages()) == 3  # '#' and 'motors/+/actions' overlap: one copy
    # Devices are not told who published (IoT Core does not tell them either).
    assert not device.packets()[0].user_properties


def test_a_publisher_cannot_pass_for_another(authorities: Authorities, broker: MqttBroker) -> None:
    with (
        connected(broker.port, authorities.pki, RULES_ENGINE, "motors/+/telemetry", client_id="rules") as rules,
        connected(broker.port, authorities.pki, "motor-001") as device,
    ):
        forged = mqtt5.UserProperty(name=PUBLISHER_PROPERTY, value="motor-002")
        packet = mqtt5.PublishPacket(
            topic="motors/motor-001/telemetry", payload=b"{}", qos=QOS1, user_properties=[forged]
        )
        device.client.publish(packet).result(TIMEOUT_S)
        assert wait_until(lambda: len(rules.packets()) >= 1)

    properties = [(u.name, u.value) for u in rules.packets()[0].user_properties or ()]
    assert properties == [(PUBLISHER_PROPERTY, "motor-001")]


def test_a_message_keeps_the_properties_its_publisher_gave_it(authorities: Authorities, broker: MqttBroker) -> None:
    with (
        connected(broker.port, authorities.pki, RULES_ENGINE, "requests/#", client_id="rules") as rules,
        connected(broker.port, authorities.pki, IOT_DATA) as publisher,
    ):
        packet = mqtt5.PublishPacket(
            topic="requests/1",
            payload=b'{"q": 1}',
            qos=QOS1,
            payload_format_indicator=mqtt5.PayloadFormatIndicator.AWS_MQTT5_PFI_UTF8,
            content_type="application/json",
            response_topic="responses/1",
            correlation_data=b"\x01\x02",
            message_expiry_interval_sec=3600,
            user_properties=[mqtt5.UserProperty(name="trace", value="abc")],
        )
        publisher.client.publish(packet).result(TIMEOUT_S)
        assert wait_until(lambda: len(rules.packets()) >= 1)

    (received,) = rules.packets()
    assert received.payload_format_indicator == mqtt5.PayloadFormatIndicator.AWS_MQTT5_PFI_UTF8
    assert received.content_type == "application/json"
    assert received.response_topic == "responses/1"
    assert received.correlation_data_bytes == b"\x01\x02"
    assert 3590 <= (received.message_expiry_interval_sec or 0) <= 3600  # what is left of it
    assert ("trace", "abc") in [(u.name, u.value) for u in received.user_properties or ()]


# -- the device simulator's own connection ----------------------------------------------------------------------


def test_the_simulators_connection_delivers_readings_and_hears_actions(
    authorities: Authorities, broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device.mqtt")
    pki = authorities.pki
    settings = ConnectionSettings(
        endpoint="127.0.0.1",
        port=broker.port,
        cert_path=str(pki.cert_path("motor-001")),
        key_path=str(pki.key_path("motor-001")),
        client_id="motor-001",
        ca_path=str(pki.ca_path),
    )
    actions: list[OperatorAction] = []
    action = {
        "motor_id": "motor-001",
        "action": "service_complete",
        "action_id": "service-1",
        "ts": datetime.now(UTC).isoformat(),
        "operator": "fitter",
    }
    with (
        connected(broker.port, pki, RULES_ENGINE, "motors/+/telemetry", client_id="rules") as rules,
        connected(broker.port, pki, IOT_DATA) as cloud,
    ):
        connection = DeviceConnection(settings, ["motor-001"], queue_size=100, on_action=actions.append)
        connection.start()
        try:
            assert connection.ever_connected.wait(TIMEOUT_S), connection.last_error
            for seq in range(1, 21):
                connection.submit("motors/motor-001/telemetry", json.dumps({"seq": seq}).encode())
            listening = "motor-001: listening to the actions of motor-001"
            assert wait_until(lambda: listening in caplog.text), caplog.text
            cloud.publish("motors/motor-001/actions", json.dumps(action).encode())
            assert wait_until(lambda: len(actions) >= 1)
        finally:
            counts = connection.close(timeout_s=TIMEOUT_S, deliver_queued=True)
        assert wait_until(lambda: len(rules.messages()) >= 20)

    assert (counts.acknowledged, counts.failed, counts.dropped) == (20, 0, 0)
    assert [json.loads(payload)["seq"] for _, payload in rules.messages()] == list(range(1, 21))
    assert [(a.motor_id, a.action_id) for a in actions] == [("motor-001", "service-1")]


def test_the_simulator_publishes_through_the_broker_with_a_cert_dir(
    authorities: Authorities, broker: MqttBroker, tmp_path: Path
) -> None:
    """device/simulate.py as a user runs it against the local stack's broker and certificates."""
    pki = authorities.pki
    with connected(broker.port, pki, RULES_ENGINE, "motors/+/telemetry", client_id="rules") as rules:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])}
        command = [
            sys.executable, "device/simulate.py", "--endpoint", "127.0.0.1", "--port", str(broker.port),
            "--ca", str(pki.ca_path), "--cert-dir", str(pki.directory),
            "--motors", "2", "--count", "5", "--interval", "0.05",
        ]  # fmt: skip
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        assert run.returncode == 0, run.stderr[-3000:]
        assert wait_until(lambda: len(rules.messages()) >= 10)

    assert "10 readings: 10 acknowledged, 0 failed, 0 dropped" in run.stderr
    assert sorted({topic for topic, _ in rules.messages()}) == [
        "motors/motor-001/telemetry",
        "motors/motor-002/telemetry",
    ]


# -- flow control and limits (raw MQTT on a TLS socket) ---------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = value >> 7, value & 0x7F
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _varint(len(body)) + body


def connect_packet(
    client_id: str, *, keep_alive_s: int = 60, level: int = 5, properties: bytes = b"", will: bytes = b""
) -> bytes:
    flags = 0x02 | (0x04 if will else 0)  # clean start, will flag
    variable = _string("MQTT") + bytes([level, flags]) + struct.pack("!H", keep_alive_s)
    if level == 5:
        variable += _varint(len(properties)) + properties
    return _packet(0x10, variable + _string(client_id) + will)


def publish_packet(topic: str | bytes, payload: bytes, *, qos: int = 0, retain: bool = False) -> bytes:
    packet_id = struct.pack("!H", 1) if qos else b""
    return _packet(0x30 | qos << 1 | int(retain), _string(topic) + packet_id + b"\x00" + payload)


class RawClient:
    """MQTT written and read byte by byte on a mutual TLS connection."""

    def __init__(self, port: int, pki: LocalPki, identity: str) -> None:
        context = ssl.create_default_context(cafile=str(pki.ca_path))
        context.load_cert_chain(str(pki.cert_path(identity)), str(pki.key_path(identity)))
        plain = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self.sock = context.wrap_socket(plain, server_hostname="localhost")

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def packet(self) -> tuple[int, bytes] | None:
        """The next packet's first byte and body; None once the broker has closed the connection."""
        try:
            first = self._exactly(1)
        except (ConnectionResetError, ssl.SSLError):
            return None
        if first is None:
            return None
        length, shift = 0, 0
        while True:
            digit = self._exactly(1)
            assert digit is not None
            length |= (digit[0] & 0x7F) << shift
            shift += 7
            if not digit[0] & 0x80:
                break
        body = self._exactly(length)
        assert body is not None
        return first[0], body

    def connect(self, client_id: str, **options: Any) -> bytes:
        """CONNECT, and the CONNACK's body (which must say success)."""
        self.send(connect_packet(client_id, **options))
        connack = self.packet()
        assert connack is not None
        assert connack[0] == 0x20
        assert connack[1][1] == 0x00, f"CONNACK reason {connack[1][1]:#x}"
        return connack[1]

    def publishes(self, count: int) -> list[tuple[int, bytes]]:
        """The packet id and payload of the next `count` PUBLISH packets (without properties' content)."""
        found: list[tuple[int, bytes]] = []
        while len(found) < count:
            packet = self.packet()
            assert packet is not None, "the broker closed the connection"
            first, body = packet
            if first >> 4 != 3:
                continue
            topic_length = struct.unpack("!H", body[:2])[0]
            position = 2 + topic_length
            packet_id = 0
            if (first >> 1) & 0x03:
                packet_id = struct.unpack("!H", body[position : position + 2])[0]
                position += 2
            properties_length = body[position]  # small in these tests: one byte
            found.append((packet_id, body[position + 1 + properties_length :]))
        return found


def connack_properties(connack: bytes) -> dict[int, int | str]:
    """The properties of a CONNACK body (flags, reason code, properties), by identifier."""
    strings, one_byte, two_bytes = {0x12, 0x1A, 0x1C, 0x1F}, {0x24, 0x25, 0x28, 0x29, 0x2A}, {0x13, 0x21, 0x22}
    length, position = connack[2], 3  # a property length below 128: one byte
    properties: dict[int, int | str] = {}
    end = position + length
    while position < end:
        identifier = connack[position]
        position += 1
        if identifier in strings:
            size = struct.unpack("!H", connack[position : position + 2])[0]
            properties[identifier] = connack[position + 2 : position + 2 + size].decode()
            position += 2 + size
        elif identifier in one_byte:
            properties[identifier], position = connack[position], position + 1
        elif identifier in two_bytes:
            properties[identifier], position = struct.unpack("!H", connack[position : position + 2])[0], position + 2
        else:  # four-byte integers: Maximum Packet Size, Session Expiry Interval
            properties[identifier], position = struct.unpack("!I", connack[position : position + 4])[0], position + 4
    return properties


REFUSED_PACKETS = {
    "QoS 2 publish": (publish_packet("a/b", b"x", qos=2), 0x9B),
    "retained publish": (publish_packet("a/b", b"x", retain=True), 0x9A),
    "wildcard in a topic name": (publish_packet("a/+", b"x"), 0x90),
    "AUTH": (_packet(0xF0, b""), 0x8C),
    "truncated string": (_packet(0x30, b"\x00\x10ab"), 0x81),
    "topic not UTF-8": (publish_packet(b"a/\xff\xfe", b"x"), 0x81),
    "unknown property": (_packet(0x30, _string("a/b") + b"\x02\x7f\x00"), 0x81),
    "reserved packet type": (_packet(0x00, b""), 0x81),
    "SUBSCRIBE with wrong flags": (_packet(0x80, b"\x00\x01\x00" + _string("a/b") + b"\x01"), 0x81),
    "a second CONNECT": (connect_packet("again"), 0x82),
}


@pytest.mark.parametrize("what", REFUSED_PACKETS)
def test_a_packet_the_broker_does_not_accept_ends_the_connection_with_its_reason(
    authorities: Authorities, broker: MqttBroker, what: str
) -> None:
    packet, reason = REFUSED_PACKETS[what]
    with RawClient(broker.port, authorities.pki, RULES_ENGINE) as raw:
        raw.connect("raw")
        raw.send(packet)

        assert raw.packet() == (0xE0, bytes([reason])), what
        assert raw.packet() is None  # then the broker closes the connection
    with connected(broker.port, authorities.pki, RULES_ENGINE, client_id="after") as after:
        assert after.publish("still/serving", b"") is mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS


def test_subscribe_unsubscribe_and_ping_are_answered_per_the_specification(
    authorities: Authorities, broker: MqttBroker
) -> None:
    with RawClient(broker.port, authorities.pki, RULES_ENGINE) as raw:
        raw.connect("raw")
        requests = [("ok/+", 1), ("bad/#/x", 1), ("$share/group/a", 1), ("asked/qos2", 2), ("", 0)]
        raw.send(_packet(0x82, b"\x00\x07\x00" + b"".join(_string(f) + bytes([qos]) for f, qos in requests)))
        # Granted QoS 1, Topic Filter invalid, Shared Subscriptions not supported, QoS 1 (the maximum), invalid.
        assert raw.packet() == (0x90, b"\x00\x07\x00" + bytes([0x01, 0x8F, 0x9E, 0x01, 0x8F]))

        with_identifier = b"\x02\x0b\x05"  # Subscription Identifier 5
        raw.send(_packet(0x82, b"\x00\x08" + with_identifier + _string("ids/a") + b"\x01"))
        assert raw.packet() == (0x90, b"\x00\x08\x00\xa1")  # Subscription Identifiers not supported

        raw.send(_packet(0xA2, b"\x00\x09\x00" + _string("ok/+") + _string("never/subscribed")))
        assert raw.packet() == (0xB0, b"\x00\x09\x00\x00\x11")  # Success, No subscription existed

        raw.send(b"\xc0\x00")  # PINGREQ
        assert raw.packet() == (0xD0, b"")


@pytest.mark.parametrize("namespace", ["motors", "plant-a"])
def test_the_device_policy_allows_what_template_yaml_grants_and_nothing_else(namespace: str) -> None:
    """DevicePolicy mirrors template.yaml's DevicePolicy for motor-001 under the stack's TopicNamespace, the
    client id included (the legacy topic is granted only under LegacyTopicAllowed, off in the local stack)."""
    policy = DevicePolicy(SERVICES, namespace=namespace)
    asks = {
        "iot:Connect": ("client/", policy.can_connect),
        "iot:Publish": ("topic/", policy.can_publish),
        "iot:Subscribe": ("topicfilter/", policy.can_subscribe),
        "iot:Receive": ("topic/", policy.can_receive),
    }
    things = ("motor-001", "motor-002", "+", "#")
    spaces = ("motors", "plant-a", "plant-b", "+")
    candidates = {
        (action, resource.replace(THING, thing).replace(NAMESPACE, space))
        for action, resource, _ in DEVICE_GRANTS
        for thing in things
        for space in spaces
    }
    granted = {
        (action, resource.replace(THING, "motor-001").replace(NAMESPACE, namespace))
        for action, resource, when in DEVICE_GRANTS
        if not when
    }

    allowed = {
        (action, resource)
        for action, resource in candidates
        if asks[action][1]("motor-001", resource.removeprefix(asks[action][0]))
    }

    assert allowed == granted
    assert all(asks[action][1](RULES_ENGINE, resource.split("/", 1)[1]) for action, resource in candidates)


def test_an_mqtt_3_1_client_is_told_the_protocol_version_is_unsupported(
    authorities: Authorities, broker: MqttBroker
) -> None:
    """MQTT 3.1 ('MQIsdp', level 3) predates 3.1.1, which the broker (and AWS IoT Core) speak."""
    with RawClient(broker.port, authorities.pki, "motor-001") as raw:
        raw.send(_packet(0x10, _string("MQIsdp") + bytes([3, 0x02]) + struct.pack("!H", 60) + _string("motor-001")))

        assert raw.packet() == (0x20, b"\x00\x01")  # 0x01 Unacceptable protocol version
        assert raw.packet() is None


def test_a_client_of_a_later_mqtt_version_is_told_0x84(authorities: Authorities, broker: MqttBroker) -> None:
    with RawClient(broker.port, authorities.pki, "motor-001") as raw:
        raw.send(connect_packet("motor-001", level=6))

        assert raw.packet() == (0x20, b"\x00\x84")
        assert raw.packet() is None


def test_a_silent_client_is_disconnected_after_one_and_a_half_keep_alive_intervals(
    authorities: Authorities, broker: MqttBroker
) -> None:
    with RawClient(broker.port, authorities.pki, "motor-001") as raw:
        sent = time.monotonic()  # the broker can only have read the CONNECT after this
        raw.connect("motor-001", keep_alive_s=1)

        assert raw.packet() == (0xE0, b"\x8d")  # Keep Alive timeout
        assert time.monotonic() - sent >= 1.5
        assert raw.packet() is None


def test_a_will_is_published_when_a_device_vanishes_not_when_it_says_goodbye(
    authorities: Authorities, broker: MqttBroker
) -> None:
    will = b"\x00" + _string("motors/motor-001/telemetry") + _string(b'{"gone": true}')
    with connected(broker.port, authorities.pki, RULES_ENGINE, "motors/+/telemetry", client_id="rules") as rules:
        with RawClient(broker.port, authorities.pki, "motor-001") as polite:
            polite.connect("motor-001", will=will)
            polite.send(_packet(0xE0, b"\x00"))  # DISCONNECT, Normal disconnection
            assert polite.packet() is None
        with RawClient(broker.port, authorities.pki, "motor-001") as vanishing:
            vanishing.connect("motor-001", will=will)
        assert wait_until(lambda: len(rules.messages()) >= 1)

    assert rules.messages() == [("motors/motor-001/telemetry", b'{"gone": true}')]


def test_a_subscriber_gets_no_more_unacknowledged_messages_than_its_receive_maximum_and_the_oldest_queued_are_dropped(
    authorities: Authorities, broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Given a subscriber with Receive Maximum 1 that holds back its first acknowledgement,
    when QUEUE_LIMIT + 50 more messages arrive for it,
    then the 50 oldest queued are dropped and counted (one warning), and after the acknowledgement
    the newest QUEUE_LIMIT follow in order."""
    extra = 50
    receive_maximum_1 = b"\x21\x00\x01"
    with (
        RawClient(broker.port, authorities.pki, RULES_ENGINE) as subscriber,
        connected(
            broker.port,
            authorities.pki,
            IOT_DATA,
            extended_validation_and_flow_control_options=mqtt5.ExtendedValidationAndFlowControlOptions.NONE,
        ) as publisher,
    ):
        subscriber.connect("slow", properties=receive_maximum_1)
        subscriber.send(_packet(0x82, b"\x00\x01\x00" + _string("load/#") + b"\x01"))
        assert subscriber.packet() == (0x90, b"\x00\x01\x00\x01")  # SUBACK: QoS 1 granted

        publisher.publish("load/x", b"0")
        [(first_id, first)] = subscriber.publishes(1)  # in flight, not acknowledged
        client = publisher.client
        for seq in range(1, QUEUE_LIMIT + extra + 1):
            client.publish(mqtt5.PublishPacket(topic="load/x", payload=b"%d" % seq, qos=QOS1))
        assert wait_until(lambda: broker.counts.received >= QUEUE_LIMIT + extra + 1)
        dropped = broker.counts.dropped

        subscriber.send(_packet(0x40, struct.pack("!H", first_id)))  # PUBACK
        rest = []
        for _ in range(QUEUE_LIMIT):
            [(packet_id, payload)] = subscriber.publishes(1)
            subscriber.send(_packet(0x40, struct.pack("!H", packet_id)))
            rest.append(int(payload))

    assert first == b"0"
    assert dropped == extra
    assert rest == list(range(extra + 1, QUEUE_LIMIT + extra + 1))
    assert len(logged(caplog, "queue full")) == 1


def test_a_message_that_expires_while_queued_is_never_sent(authorities: Authorities, broker: MqttBroker) -> None:
    receive_maximum_1 = b"\x21\x00\x01"
    with (
        RawClient(broker.port, authorities.pki, RULES_ENGINE) as subscriber,
        connected(broker.port, authorities.pki, IOT_DATA) as publisher,
    ):
        subscriber.connect("slow", properties=receive_maximum_1)
        subscriber.send(_packet(0x82, b"\x00\x01\x00" + _string("expiry/#") + b"\x01"))
        assert subscriber.packet() == (0x90, b"\x00\x01\x00\x01")
        publisher.publish("expiry/x", b"first")
        [(first_id, _)] = subscriber.publishes(1)  # held unacknowledged: the next ones wait in the queue

        expiring = mqtt5.PublishPacket(topic="expiry/x", payload=b"stale", qos=QOS1, message_expiry_interval_sec=1)
        publisher.client.publish(expiring).result(TIMEOUT_S)
        publisher.publish("expiry/x", b"fresh")
        time.sleep(1.5)
        subscriber.send(_packet(0x40, struct.pack("!H", first_id)))

        [(_, after)] = subscriber.publishes(1)
    assert after == b"fresh"
    assert broker.counts.dropped == 1


def test_a_message_larger_than_the_subscriber_accepts_is_not_sent_to_it(
    authorities: Authorities, broker: MqttBroker
) -> None:
    maximum_packet_size_64 = b"\x27" + struct.pack("!I", 64)
    with (
        RawClient(broker.port, authorities.pki, RULES_ENGINE) as subscriber,
        connected(broker.port, authorities.pki, IOT_DATA) as publisher,
    ):
        subscriber.connect("small", properties=maximum_packet_size_64)
        subscriber.send(_packet(0x82, b"\x00\x01\x00" + _string("big/#") + b"\x00"))
        assert subscriber.packet() == (0x90, b"\x00\x01\x00\x00")

        publisher.publish("big/x", b"x" * 200)
        publisher.publish("big/x", b"small")

        assert subscriber.publishes(1) == [(0, b"small")]
    assert broker.counts.dropped == 1


# -- starting and stopping ----------------------------------------------------------------------------------------


def listenable(port: int) -> bool:
    """Whether a new server could listen on the port, as a restarted broker would (SO_REUSEADDR:
    the connections the broker closed may linger in TIME_WAIT, which holds no listener back)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def test_stop_disconnects_every_client_ends_the_thread_and_frees_the_port(authorities: Authorities) -> None:
    broker = new_broker(authorities.pki)
    broker.start()
    port = broker.port
    with connected(broker.port, authorities.pki, "motor-001") as device:
        broker.stop()

        assert wait_until(lambda: mqtt5.DisconnectReasonCode.SERVER_SHUTTING_DOWN in device.disconnect_reasons())
        assert BROKER_THREAD not in [thread.name for thread in threading.enumerate()]
        assert listenable(port)
        broker.stop()  # again: nothing to do


def test_a_port_in_use_fails_start_and_the_module_with_a_message(authorities: Authorities, tmp_path: Path) -> None:
    pki = authorities.pki
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"could not listen on 127.0.0.1:{port}"):
            new_broker(pki, port).start()
        command = [
            sys.executable, "-m", "local.mqtt_broker", "--port", str(port), "--cafile", str(pki.ca_path),
            "--certfile", str(pki.server_cert_path), "--keyfile", str(pki.server_key_path),
        ]  # fmt: skip
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603

    assert run.returncode == 1
    assert f"could not listen on 127.0.0.1:{port}" in run.stderr
    assert "address already in use" in run.stderr
    assert BROKER_THREAD not in [thread.name for thread in threading.enumerate()]


def test_the_module_runs_the_broker_until_sigterm(authorities: Authorities, tmp_path: Path) -> None:
    pki = authorities.pki
    port = free_port()
    stdout, stderr = tmp_path / "broker.out", tmp_path / "broker.err"
    command = [
        sys.executable, "-m", "local.mqtt_broker", "--port", str(port), "--cafile", str(pki.ca_path),
        "--certfile", str(pki.server_cert_path), "--keyfile", str(pki.server_key_path),
        *(arg for name in SERVICES for arg in ("--service", name)),
    ]  # fmt: skip
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)  # noqa: S603
    try:
        assert wait_until(lambda: "listening on" in stdout.read_text() or process.poll() is not None)
        assert stdout.read_text() == f"listening on 127.0.0.1:{port}\n", stderr.read_text()
        with connected(port, pki, RULES_ENGINE, "motors/+/telemetry", client_id="rules") as rules:
            with connected(port, pki, "motor-001") as device:
                assert device.publish("motors/motor-001/telemetry", b"{}") is mqtt5.PubackReasonCode.SUCCESS
            assert wait_until(lambda: len(rules.messages()) >= 1)

            process.send_signal(signal.SIGTERM)

            assert process.wait(TIMEOUT_S) == 0
            assert wait_until(lambda: mqtt5.DisconnectReasonCode.SERVER_SHUTTING_DOWN in rules.disconnect_reasons())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT_S)
    log = stderr.read_text()
    assert "SIGTERM: stopping" in log
    assert "connected: identity=motor-001 client_id=motor-001" in log
    assert listenable(port)


# -- the certificate authority ------------------------------------------------------------------------------------


def test_the_pki_keeps_keys_private_and_reuses_what_is_still_valid(tmp_path: Path) -> None:
    pki = LocalPki(tmp_path / "pki")
    pki.ensure(["motor-001"])
    ca, device = pki.ca_path.read_bytes(), pki.cert_path("motor-001").read_bytes()
    pki.key_path("motor-001").chmod(0o644)  # as if copied in carelessly
    pki.key_path("motor-001").write_text("not a key")

    pki.ensure(["motor-001", "motor-002"])

    assert pki.ca_path.read_bytes() == ca  # still valid: kept, so devices keep trusting the broker
    assert pki.cert_path("motor-001").read_bytes() != device  # its key was broken: issued again
    subject = x509.load_pem_x509_certificate(pki.cert_path("motor-002").read_bytes()).subject
    assert subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "motor-002"
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    keys = sorted(path.name for path in pki.directory.iterdir() if path.name.endswith((".key", ".private.key")))
    assert keys == ["ca.key", "motor-001.private.key", "motor-002.private.key", "server.private.key"]
    assert {stat.S_IMODE((pki.directory / key).stat().st_mode) for key in keys} == {0o600}
    with pytest.raises(ValueError, match="cannot name a device certificate"):
        pki.ensure(["../escape"])
