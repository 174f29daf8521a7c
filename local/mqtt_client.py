"""The local stack's own MQTT5 connections (the rules engine, the IoT data plane): mTLS, QoS 1, bounded waits."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

from device.mqtt import MqttClient
from local.mqtt_connection import PUBLISHER_PROPERTY

log = logging.getLogger("local.mqtt")

TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a subscriber receives it."""

    topic: str
    payload: bytes
    qos: int
    publisher: str | None
    """The publisher's client id, when the broker says it (the built-in broker does, to service identities)."""


class ServiceClient:
    """A connection of the stack itself, with a service identity the broker lets read and write every topic."""

    def __init__(
        self,
        *,
        port: int,
        ca: Path,
        cert: Path,
        key: Path,
        name: str,
        on_message: Callable[[Message], None] | None = None,
        client_id: str | None = None,
        flow_control: bool = False,
    ) -> None:
        """`client_id` defaults to `name` plus a random suffix (services may connect as any client id; a
        device must use its own name). `flow_control` keeps awscrt's AWS IoT Core limits (100 publishes/s
        per client), which the stack's own services, standing in for IoT Core itself, do without."""
        self.name = name
        self._on_message = on_message
        self._connected = threading.Event()
        self._stopped = threading.Event()
        self.last_error: str | None = None
        self.callback_errors = 0
        """Messages whose handler raised (logged each)."""
        self.client: MqttClient = mqtt5_client_builder.mtls_from_path(
            endpoint="127.0.0.1",
            port=port,
            cert_filepath=str(cert),
            pri_key_filepath=str(key),
            ca_filepath=str(ca),
            client_id=client_id or f"{name}-{uuid.uuid4().hex[:8]}",
            extended_validation_and_flow_control_options=(
                mqtt5.ExtendedValidationAndFlowControlOptions.AWS_IOT_CORE_DEFAULTS
                if flow_control
                else mqtt5.ExtendedValidationAndFlowControlOptions.NONE
            ),
            min_reconnect_delay_ms=100,
            max_reconnect_delay_ms=2000,
            ack_timeout_sec=int(TIMEOUT_S),
            # The router must keep up with a fleet: let the broker have many messages in flight to it.
            receive_maximum=1000,
            on_publish_received=self._received,
            on_lifecycle_connection_success=lambda _: self._connected.set(),
            on_lifecycle_connection_failure=self._failed,
            on_lifecycle_disconnection=lambda _: self._connected.clear(),
            on_lifecycle_stopped=lambda _: self._stopped.set(),
        )

    def _failed(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        self.last_error = str(data.exception)

    def _received(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        publisher = next(
            (p.value for p in packet.user_properties or () if p.name == PUBLISHER_PROPERTY),
            None,
        )
        if self._on_message is None:
            return
        qos = int(packet.qos.value) if packet.qos is not None else 0
        try:
            self._on_message(Message(packet.topic, bytes(packet.payload or b""), qos, publisher))
        except Exception:  # awscrt would swallow it ("Exception ignored"): say which message it cost
            self.callback_errors += 1
            log.exception("%s: a message on %s from %s was not handled", self.name, packet.topic, publisher or "n/a")

    def start(self, subscriptions: Sequence[str] = ()) -> None:
        self.client.start()
        if not self._connected.wait(TIMEOUT_S):
            self.client.stop()
            raise RuntimeError(f"{self.name} could not connect to the broker: {self.last_error or 'no answer'}")
        if subscriptions:
            packet = mqtt5.SubscribePacket(
                subscriptions=[mqtt5.Subscription(topic_filter=t, qos=mqtt5.QoS.AT_LEAST_ONCE) for t in subscriptions]
            )
            suback = self.client.subscribe(packet).result(TIMEOUT_S)
            refused = [
                (topic, code.name)
                for topic, code in zip(subscriptions, suback.reason_codes, strict=True)
                if code.value > mqtt5.SubackReasonCode.GRANTED_QOS_2.value
            ]
            if refused:
                raise RuntimeError(f"{self.name}: the broker refused the subscriptions {refused}")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 1); RuntimeError if it refuses."""
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS(qos))
        result = self.client.publish(packet).result(TIMEOUT_S)
        puback = getattr(result, "puback", None)
        if puback is not None and puback.reason_code.value >= 0x80:
            raise RuntimeError(f"the broker refused the publish to {topic}: {puback.reason_code.name}")

    def stop(self) -> None:
        self.client.stop()
        self._stopped.wait(TIMEOUT_S)
