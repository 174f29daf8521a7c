"""One MQTT5 connection of the device simulator: mTLS, QoS 1, a bounded send queue with honest counts."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, fields, replace
from functools import partial
from itertools import count
from typing import Any, Protocol

from awscrt import mqtt5
from awsiot import mqtt5_client_builder
from pydantic import ValidationError

from motor_maintenance.alarms import OperatorAction
from motor_maintenance.telemetry import describe_validation_error
from motor_maintenance.topics import DEFAULT_NAMESPACE, actions_topic

log = logging.getLogger("device.mqtt")

QOS1 = mqtt5.QoS.AT_LEAST_ONCE
IN_FLIGHT_LIMIT = 100
"""Publishes handed to the client and not yet acknowledged, per connection: AWS IoT Core's limit
of unacknowledged QoS 1 messages per connection. Everything beyond waits in our own queue, where
it is bounded and counted."""
SUBSCRIPTIONS_PER_PACKET = 8
KEEP_ALIVE_S = 60
"""The builder's default (1200 s) would notice a silently dead network only after 20 minutes."""
DELIVERED = frozenset({mqtt5.PubackReasonCode.SUCCESS, mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS})
"""PUBACK codes that mean the broker took the message (mosquitto says 'no matching subscribers'
when nobody listens; AWS IoT Core says success)."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Where and as whom one connection connects."""

    endpoint: str
    port: int
    cert_path: str
    key_path: str
    client_id: str
    ca_path: str | None = None
    ack_timeout_s: int = 30
    topic_namespace: str = DEFAULT_NAMESPACE
    """The stack's first topic level (its TopicNamespace): {namespace}/{motor}/telemetry and /actions."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One reading waiting to be published."""

    topic: str
    payload: bytes


@dataclass(slots=True)
class DeliveryCounts:
    """What happened to the readings given to a connection; `queued` and `in_flight` are current."""

    submitted: int = 0
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    dropped: int = 0
    queued: int = 0
    in_flight: int = 0

    def __add__(self, other: DeliveryCounts) -> DeliveryCounts:
        return DeliveryCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def describe(self) -> str:
        return (
            f"{self.submitted} readings: {self.acknowledged} acknowledged, {self.failed} failed, "
            f"{self.dropped} dropped, {self.queued} queued, {self.in_flight} in flight ({self.sent} sent)"
        )


class SendQueue:
    """Readings waiting for the connection, at most `capacity`; when full the oldest is dropped.

    Dropping the oldest keeps the most recent, contiguous stretch of history: after an outage the
    cloud sees the motor's current condition, and condition durations are computed over readings
    without holes in the middle.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the queue must hold at least one reading")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[Outgoing] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)

    def take(self) -> Outgoing:
        return self._items.popleft()

    def clear(self) -> int:
        """Empty the queue; the readings it held count as dropped. Returns how many."""
        cleared = len(self._items)
        self._items.clear()
        self.dropped += cleared
        return cleared


class MqttClient(Protocol):
    """The part of awscrt.mqtt5.Client a connection uses (a test passes a fake)."""

    def start(self) -> None: ...
    def stop(self, disconnect_packet: Any = None) -> None: ...
    def publish(self, publish_packet: mqtt5.PublishPacket) -> Future[Any]: ...
    def subscribe(self, subscribe_packet: mqtt5.SubscribePacket) -> Future[Any]: ...


ClientFactory = Callable[["DeviceConnection"], MqttClient]


class IdentityUnusable(Exception):
    """The certificate and key of a connection cannot set up TLS (not PEM, or not a pair)."""


def mtls_client(connection: DeviceConnection) -> MqttClient:
    """An MQTT5 client for AWS IoT Core (or any MQTT5 broker) with X.509 mutual TLS."""
    settings = connection.settings
    try:
        client: MqttClient = mqtt5_client_builder.mtls_from_path(
            endpoint=settings.endpoint,
            port=settings.port,
            cert_filepath=settings.cert_path,
            pri_key_filepath=settings.key_path,
            ca_filepath=settings.ca_path,
            client_id=settings.client_id,
            keep_alive_interval_sec=KEEP_ALIVE_S,
            ack_timeout_sec=settings.ack_timeout_s,
            # QoS 1 publishes survive a disconnect inside the client and are sent again after the
            # reconnect; subscriptions do not (the session is clean), so they are renewed on connect.
            offline_queue_behavior=mqtt5.ClientOperationQueueBehaviorType.FAIL_NON_QOS1_PUBLISH_ON_DISCONNECT,
            on_publish_received=connection.on_publish_received,
            on_lifecycle_connection_success=connection.on_connection_success,
            on_lifecycle_connection_failure=connection.on_connection_failure,
            on_lifecycle_disconnection=connection.on_disconnection,
            on_lifecycle_stopped=connection.on_stopped,
        )
    except RuntimeError as exc:  # awscrt: "AWS_IO_TLS_CTX_ERROR: Failed to create tls context"
        # Name the files, never their contents.
        ca = f", CA {settings.ca_path}" if settings.ca_path else ""
        raise IdentityUnusable(
            f"{settings.client_id}: cannot set up TLS with certificate {settings.cert_path}, key "
            f"{settings.key_path}{ca} ({exc}): each must be a PEM file, the key the private key of the certificate"
        ) from exc
    return client


class DeviceConnection:
    """One MQTT5 connection publishing the readings of `motors`, and listening to their actions.

    Readings go into a bounded queue; a sender thread hands them to the client while it is
    connected, at most IN_FLIGHT_LIMIT unacknowledged at a time. While disconnected nothing new is
    handed over, so the queue is where readings wait and where drops are counted; the few already
    in flight stay in the client, which sends them again after the reconnect. Every publish has a
    timeout: the client fails one not acknowledged within `ack_timeout_s` of being sent, and
    close() writes off whatever is still unacknowledged at its deadline.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        motors: Sequence[str],
        *,
        queue_size: int,
        on_action: Callable[[OperatorAction], None] | None = None,
        client_factory: ClientFactory = mtls_client,
    ) -> None:
        self.settings = settings
        self.motors = tuple(motors)
        self._on_action = on_action
        self._queue = SendQueue(queue_size)
        self._lock = threading.Condition()
        self._pending: dict[int, Outgoing] = {}  # handed to the client, by publish number
        self._numbers = count()
        self._counts = DeliveryCounts()
        self._connected = False
        self._sending = True
        self._closed = False
        self._failure_reasons: set[str] = set()
        self._warned_full = False
        self.connections = 0
        self.last_error: str | None = None
        self.ever_connected = threading.Event()
        self.stopped = threading.Event()
        self._client = client_factory(self)
        self._sender = threading.Thread(target=self._send_loop, name=f"mqtt-{settings.client_id}", daemon=True)

    # -- what the simulator calls ------------------------------------------------------------------

    def start(self) -> None:
        self._sender.start()
        self._client.start()

    def submit(self, topic: str, payload: bytes) -> None:
        """Queue one reading for publishing (never blocks; a full queue drops its oldest reading)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("connection is closed")
            self._counts.submitted += 1
            self._queue.put(Outgoing(topic, payload))
            if self._queue.dropped == 1 and not self._warned_full:
                self._warned_full = True
                log.warning(
                    "%s: send queue full (%d readings), dropping the oldest",
                    self.settings.client_id,
                    self._queue.capacity,
                )
            self._lock.notify_all()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def counts(self) -> DeliveryCounts:
        with self._lock:
            return replace(
                self._counts, dropped=self._queue.dropped, queued=len(self._queue), in_flight=len(self._pending)
            )

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        """Stop: deliver what is queued (or not), wait for acknowledgements up to `timeout_s`, disconnect.

        Readings left in the queue count as dropped, publishes still unacknowledged at the deadline
        as failed; the counts returned are final.
        """
        with self._lock:
            self._closed = True
            self._sending = deliver_queued
            self._lock.notify_all()
            self._lock.wait_for(lambda: not self._pending and not (self._sending and self._queue), timeout=timeout_s)
            self._sending = False
            self._lock.notify_all()
            unsent = self._queue.clear()
            unacknowledged = len(self._pending)
            self._counts.failed += unacknowledged
            self._pending.clear()
        if unsent or unacknowledged:
            log.warning(
                "%s: stopping with %d readings never sent (dropped) and %d never acknowledged (failed)",
                self.settings.client_id,
                unsent,
                unacknowledged,
            )
        self._sender.join(timeout=5)
        self._client.stop()
        # A client that never connected may be inside a failing TLS handshake, which s2n (awscrt's
        # TLS on Linux) holds for 10-30 s before it reports the error ("blinding"); nothing to flush.
        self.stopped.wait(timeout=5 if self.ever_connected.is_set() else 1)
        return self.counts()

    # -- the sender thread ---------------------------------------------------------------------------

    def _ready(self) -> bool:
        return not self._sending or (self._connected and bool(self._queue) and len(self._pending) < IN_FLIGHT_LIMIT)

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(self._ready)
                if not self._sending:
                    return
                item = self._queue.take()
                number = next(self._numbers)
                # Pending from here on, so that close() never sees a reading between queue and client.
                self._pending[number] = item
                self._counts.sent += 1
            try:
                future = self._client.publish(mqtt5.PublishPacket(topic=item.topic, payload=item.payload, qos=QOS1))
            except Exception as exc:  # the client refused it outright (e.g. a packet over IoT Core's size limit)
                with self._lock:
                    if self._pending.pop(number, None) is not None:
                        self._counts.failed += 1
                        self._note_failure(f"publish rejected by the client: {exc}")
                    self._lock.notify_all()
                continue
            future.add_done_callback(partial(self._on_publish_done, number))

    def _on_publish_done(self, number: int, future: Future[Any]) -> None:
        reason = None
        try:
            puback = future.result().puback
            code = mqtt5.PubackReasonCode(puback.reason_code)
            if code not in DELIVERED:
                reason = f"broker refused the reading: {code.name}"
        except Exception as exc:  # ack timeout, or the client gave up on it
            reason = f"publish failed: {exc}"
        with self._lock:
            item = self._pending.pop(number, None)
            if item is None:  # already written off by close()
                return
            if reason is None:
                self._counts.acknowledged += 1
            else:
                self._counts.failed += 1
                self._note_failure(f"{reason} (topic {item.topic})")
            self._lock.notify_all()

    def _note_failure(self, reason: str) -> None:
        # Each distinct reason once: a refused topic would otherwise log once per reading.
        if reason not in self._failure_reasons:
            self._failure_reasons.add(reason)
            log.error("%s: %s", self.settings.client_id, reason)

    # -- lifecycle callbacks (called on the client's event-loop thread) -------------------------------

    def on_connection_success(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        with self._lock:
            self._connected = True
            self.connections += 1
            reconnected = self.connections > 1
            self.last_error = None
            self._lock.notify_all()
        if reconnected:
            log.info("%s: reconnected", self.settings.client_id)
        self.ever_connected.set()
        if self._on_action is not None:
            self._subscribe_to_actions()

    def on_connection_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        error = str(data.exception)
        reason_code = getattr(data.connack_packet, "reason_code", None)
        if reason_code is not None:
            error = f"{error} (CONNACK {mqtt5.ConnectReasonCode(reason_code).name})"
        if error != self.last_error:
            log.warning("%s: connection attempt failed: %s", self.settings.client_id, error)
        self.last_error = error

    def on_disconnection(self, data: mqtt5.LifecycleDisconnectData) -> None:
        with self._lock:
            self._connected = False
            closing = self._closed
        if not closing:
            log.warning(
                "%s: disconnected (%s), queueing readings until it is back", self.settings.client_id, data.exception
            )

    def on_stopped(self, data: mqtt5.LifecycleStoppedData) -> None:
        self.stopped.set()

    def on_publish_received(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        parts = packet.topic.split("/")
        if self._on_action is None or len(parts) != 3 or parts[1] not in self.motors:
            return
        if packet.topic != actions_topic(parts[1], self.settings.topic_namespace):
            return
        try:
            action = OperatorAction.model_validate_json(bytes(packet.payload or b""))
        except ValidationError as exc:
            log.warning("ignored an invalid action on %s: %s", packet.topic, describe_validation_error(exc))
            return
        if action.motor_id != parts[1]:
            log.warning("ignored an action for %s published on %s", action.motor_id, packet.topic)
            return
        self._on_action(action)

    def _subscribe_to_actions(self) -> None:
        # Never wait on a future here: this runs on the client's event-loop thread. The IoT Core
        # defaults allow at most 8 subscriptions per SUBSCRIBE.
        for first in range(0, len(self.motors), SUBSCRIPTIONS_PER_PACKET):
            motors = self.motors[first : first + SUBSCRIPTIONS_PER_PACKET]
            subscriptions = [
                mqtt5.Subscription(topic_filter=actions_topic(motor, self.settings.topic_namespace), qos=QOS1)
                for motor in motors
            ]
            future = self._client.subscribe(mqtt5.SubscribePacket(subscriptions=subscriptions))
            future.add_done_callback(partial(self._on_subscribed, motors))

    def _on_subscribed(self, motors: tuple[str, ...], future: Future[Any]) -> None:
        try:
            codes = [mqtt5.SubackReasonCode(code) for code in future.result().reason_codes]
        except Exception as exc:
            log.warning("%s: subscribing to actions failed: %s", self.settings.client_id, exc)
            return
        granted = {mqtt5.SubackReasonCode.GRANTED_QOS_0, mqtt5.SubackReasonCode.GRANTED_QOS_1}
        outcome = dict(zip(motors, codes, strict=False))
        listening = [motor for motor, code in outcome.items() if code in granted]
        refused = [f"{motor} ({code.name})" for motor, code in outcome.items() if code not in granted]
        if listening:
            log.info("%s: listening to the actions of %s", self.settings.client_id, ", ".join(listening))
        if refused:
            log.warning(
                "%s: the broker refused the actions subscription of %s", self.settings.client_id, ", ".join(refused)
            )
