"""The built-in broker serves MQTT 3.1.1 devices (the original sample's), the legacy topic and IoT Core's payload limit.

The MQTT 3.1.1 client is awscrt's (awsiot.mqtt_connection_builder), the same protocol as the original
sample's AWS IoT Python SDK; the rules engine's side is an MQTT 5 client, as the stack's is.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from awscrt import mqtt, mqtt5
from awsiot import mqtt_connection_builder

from local.mqtt_broker import LEGACY_TOPIC, DevicePolicy, MqttBroker
from local.mqtt_connection import PAYLOAD_LIMIT, PUBLISHER_PROPERTY
from local.pki import LocalPki
from tests.integration.broker import TIMEOUT_S, wait_until
from tests.integration.test_local_broker import (
    SERVICES,
    Authorities,
    RawClient,
    _packet,
    _string,
    authorities,  # noqa: F401 - the module's fixture
    broker,  # noqa: F401 - the module's fixture
    connected,
    logged,
)

pytestmark = pytest.mark.integration


class Device311:
    """An MQTT 3.1.1 connection with a device certificate: what it receives and whether it was cut off."""

    def __init__(self, port: int, pki: LocalPki, identity: str, *, client_id: str | None = None) -> None:
        self.received: list[tuple[str, bytes, int]] = []
        self.interrupted = threading.Event()
        self._lock = threading.Lock()
        self.connection = mqtt_connection_builder.mtls_from_path(
            endpoint="127.0.0.1",
            port=port,
            cert_filepath=str(pki.cert_path(identity)),
            pri_key_filepath=str(pki.key_path(identity)),
            ca_filepath=str(pki.ca_path),
            client_id=identity if client_id is None else client_id,
            clean_session=True,
            keep_alive_secs=30,
            on_connection_interrupted=lambda connection, error, **kwargs: self.interrupted.set(),
        )

    def __enter__(self) -> Device311:
        self.connection.connect().result(TIMEOUT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        # Already cut off by the broker: nothing to say goodbye to.
        with contextlib.suppress(Exception):
            self.connection.disconnect().result(TIMEOUT_S)

    def publish(self, topic: str, payload: bytes, qos: mqtt.QoS) -> Any:
        future, _ = self.connection.publish(topic, payload, qos)
        return future.result(TIMEOUT_S)

    def subscribe(self, topic_filter: str) -> Any:
        future, _ = self.connection.subscribe(topic_filter, mqtt.QoS.AT_LEAST_ONCE, self._on_message)
        return future.result(TIMEOUT_S)

    def _on_message(self, topic: str, payload: bytes, qos: int, **kwargs: Any) -> None:
        with self._lock:
            self.received.append((topic, bytes(payload), int(qos)))


@pytest.fixture
def legacy_broker(authorities: Authorities, caplog: pytest.LogCaptureFixture) -> Iterator[MqttBroker]:  # noqa: F811
    """The broker as the stack starts it with --allow-legacy-topic."""
    pki = authorities.pki
    legacy = MqttBroker(
        cafile=pki.ca_path,
        certfile=pki.server_cert_path,
        keyfile=pki.server_key_path,
        policy=DevicePolicy(SERVICES, allow_legacy_topic=True),
        reveal_publisher_to=SERVICES,
    )
    legacy.start()
    yield legacy
    legacy.stop()


def rules_engine(port: int, pki: LocalPki, *topic_filters: str) -> Any:
    return connected(port, pki, "local-rules-engine", *topic_filters, client_id="local-rules-engine-test")


def publishers(client: Any) -> list[tuple[str, bytes, str | None]]:
    return [
        (
            packet.topic,
            bytes(packet.payload or b""),
            next((p.value for p in packet.user_properties or () if p.name == PUBLISHER_PROPERTY), None),
        )
        for packet in client.packets()
    ]


def test_an_mqtt_3_1_1_device_publishes_at_qos_0_and_1_and_the_rules_engine_learns_its_client_id(
    authorities: Authorities,  # noqa: F811
    broker: MqttBroker,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = "motors/motor-001/telemetry"
    with (
        rules_engine(broker.port, authorities.pki, topic) as engine,
        Device311(broker.port, authorities.pki, "motor-001") as device,
    ):
        device.publish(topic, b'{"seq": 1}', mqtt.QoS.AT_MOST_ONCE)
        device.publish(topic, b'{"seq": 2}', mqtt.QoS.AT_LEAST_ONCE)  # returns once the PUBACK came

        assert wait_until(lambda: len(engine.packets()) == 2)
        assert publishers(engine) == [(topic, b'{"seq": 1}', "motor-001"), (topic, b'{"seq": 2}', "motor-001")]
    assert logged(caplog, "client_id=motor-001 peer=")
    assert logged(caplog, "protocol=MQTT 3.1.1")


def test_an_mqtt_3_1_1_device_receives_its_actions_without_properties(
    authorities: Authorities,  # noqa: F811
    broker: MqttBroker,  # noqa: F811
) -> None:
    with (
        Device311(broker.port, authorities.pki, "motor-001") as device,
        rules_engine(broker.port, authorities.pki) as engine,
    ):
        device.subscribe("motors/motor-001/actions")
        assert engine.publish("motors/motor-001/actions", b'{"action": "acknowledge"}') in (
            mqtt5.PubackReasonCode.SUCCESS,
        )

        assert wait_until(lambda: len(device.received) == 1)
        assert device.received == [("motors/motor-001/actions", b'{"action": "acknowledge"}', 1)]


def test_an_mqtt_3_1_1_device_publishing_outside_its_policy_is_logged_with_the_reason_and_cut_off(
    authorities: Authorities,  # noqa: F811
    broker: MqttBroker,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Device311(broker.port, authorities.pki, "motor-001") as device:
        device.connection.publish("motors/motor-002/telemetry", b"{}", mqtt.QoS.AT_MOST_ONCE)

        assert device.interrupted.wait(TIMEOUT_S)
    assert logged(
        caplog,
        "refused publish: identity=motor-001 client_id=motor-001 topic=motors/motor-002/telemetry qos=0 "
        "reason=NOT_AUTHORIZED",
    )
    assert broker.counts.refused == 1


def test_an_mqtt_3_1_1_device_cannot_connect_as_another_client_id(
    authorities: Authorities,  # noqa: F811
    broker: MqttBroker,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = Device311(broker.port, authorities.pki, "motor-001", client_id="motor-002")
    with pytest.raises(Exception, match="MQTT"):
        device.connection.connect().result(TIMEOUT_S)
    with RawClient(broker.port, authorities.pki, "motor-001") as raw:  # what awscrt was answered
        raw.send(_packet(0x10, _string("MQTT") + bytes([4, 0x02]) + b"\x00\x3c" + _string("motor-002")))

        assert raw.packet() == (0x20, b"\x00\x05")  # 0x05 Not authorized
        assert raw.packet() is None
    assert logged(caplog, "refused connect: identity=motor-001 client_id=motor-002 reason=NOT_AUTHORIZED")


def test_the_legacy_topic_is_granted_only_when_allowed(
    authorities: Authorities,  # noqa: F811
    broker: MqttBroker,  # noqa: F811
    legacy_broker: MqttBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    original = b'{"motorID": "motor-001", "TT01": 42.0, "FTO1": 231}'
    with (
        rules_engine(legacy_broker.port, authorities.pki, LEGACY_TOPIC) as engine,
        Device311(legacy_broker.port, authorities.pki, "motor-001") as device,
    ):
        device.publish(LEGACY_TOPIC, original, mqtt.QoS.AT_MOST_ONCE)
        assert wait_until(lambda: len(engine.packets()) == 1)
        assert publishers(engine) == [(LEGACY_TOPIC, original, "motor-001")]

    with Device311(broker.port, authorities.pki, "motor-001") as device:
        device.connection.publish(LEGACY_TOPIC, original, mqtt.QoS.AT_MOST_ONCE)
        assert device.interrupted.wait(TIMEOUT_S)
    assert logged(caplog, f"topic={LEGACY_TOPIC} qos=0 reason=NOT_AUTHORIZED")


def test_a_payload_over_iot_cores_128_kb_is_refused_logged_counted_and_its_client_disconnected(
    authorities: Authorities,  # noqa: F811
    broker: MqttBroker,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = "motors/motor-001/telemetry"
    with rules_engine(broker.port, authorities.pki, topic) as engine:
        with connected(broker.port, authorities.pki, "motor-001") as device:
            assert device.publish(topic, b"x" * PAYLOAD_LIMIT) == mqtt5.PubackReasonCode.SUCCESS
            device.client.publish(mqtt5.PublishPacket(topic=topic, payload=b"x" * (PAYLOAD_LIMIT + 1), qos=1))
            assert wait_until(lambda: mqtt5.DisconnectReasonCode.PACKET_TOO_LARGE in device.disconnect_reasons())

        assert wait_until(lambda: len(engine.packets()) >= 1)
        assert [len(payload) for _, payload, _ in publishers(engine)] == [PAYLOAD_LIMIT]
    assert logged(caplog, f"reason=PAYLOAD_LIMIT_EXCEEDED ({PAYLOAD_LIMIT + 1} bytes, the limit is {PAYLOAD_LIMIT})")
    assert (broker.counts.too_large, broker.counts.refused) == (1, 1)


def test_an_mqtt_3_1_1_connect_without_a_client_id_nor_clean_session_is_rejected_with_0x02(
    authorities: Authorities,  # noqa: F811
    broker: MqttBroker,  # noqa: F811
) -> None:
    with RawClient(broker.port, authorities.pki, "motor-001") as raw:
        raw.send(_packet(0x10, _string("MQTT") + bytes([4, 0x00]) + b"\x00\x3c" + _string("")))

        assert raw.packet() == (0x20, b"\x00\x02")
        assert raw.packet() is None
