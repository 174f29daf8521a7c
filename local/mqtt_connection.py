"""One client connection of the local MQTT broker: its CONNECT, the packets it sends, the messages it is sent.

Runs on the broker's event loop (local.mqtt_broker); the wire format is local.mqtt_codec's. Each
connection starts clean and ends with its subscriptions and queued messages: the broker keeps no
session beyond a connection. A connection speaks the protocol its CONNECT names, MQTT 5.0 or 3.1.1;
an MQTT 3.1.1 client has no reason codes to be told a refusal with, so, as AWS IoT Core does, the broker
closes its connection when it breaks the rules (a publish the policy refuses, a payload over the limit).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from local.mqtt_codec import (
    MAX_VARIABLE_INTEGER,
    MQTT_3_1_1,
    MQTT_5,
    PINGRESP,
    Connect,
    PacketError,
    PacketType,
    Prop,
    Publish,
    Reason,
    UnsupportedProtocol,
    Will,
    decode_connect,
    decode_disconnect,
    decode_puback,
    decode_publish,
    decode_subscribe,
    decode_unsubscribe,
    encode_connack,
    encode_connack_unsupported_version,
    encode_connack_v4,
    encode_disconnect,
    encode_properties,
    encode_puback,
    encode_publish,
    encode_string,
    encode_suback,
    encode_suback_v4,
    encode_unsuback,
    encode_unsuback_v4,
    malformed,
    read_packet,
    return_code,
)
from local.mqtt_topics import topic_matches, valid_topic_filter, valid_topic_name

log = logging.getLogger("local.broker")

RECEIVE_MAXIMUM = 100
"""Unacknowledged QoS 1 publishes a client may have in flight to the broker (AWS IoT Core's limit too)."""
MAXIMUM_PACKET_SIZE = 256 * 1024
"""Larger packets are not even read (DISCONNECT 0x95); the payload limit below is checked on the rest."""
PAYLOAD_LIMIT = 128 * 1024
"""AWS IoT Core's limit on a PUBLISH payload: it refuses a larger one (PAYLOAD_LIMIT_EXCEEDED) and disconnects."""
QUEUE_LIMIT = 10_000
"""Messages waiting for one connection; beyond it the oldest is dropped."""
SUBSCRIPTION_LIMIT = 1000
"""Topic filters per connection; SUBACK 0x97 Quota exceeded beyond it."""
CONNECT_TIMEOUT_S = 10.0
"""A client must send CONNECT this soon after the TLS handshake."""
CLOSE_GRACE_S = 2.0
"""How long a closed connection may take for the TLS goodbye before it is cut."""
KEEP_ALIVE_FACTOR = 1.5
PUBLISHER_PROPERTY = "x-local-publisher"
"""User property that tells the identities in the broker's `reveal_publisher_to` who published a message."""
_WRITE_HIGH_WATER = 256 * 1024
_BATCH = 512
"""PUBLISH packets written to a subscriber at once: one TLS record and one syscall for many messages."""


_FORWARDED = (
    Prop.PAYLOAD_FORMAT_INDICATOR,
    Prop.CONTENT_TYPE,
    Prop.RESPONSE_TOPIC,
    Prop.CORRELATION_DATA,
)


class Message:
    """One accepted PUBLISH on its way to subscribers; each connection encodes its own packet."""

    __slots__ = ("_cache", "_forwarded", "_user", "expires_at", "payload", "publisher", "qos", "topic", "topic_bytes")

    def __init__(self, publish: Publish, publisher: str, now: float) -> None:
        self.topic = publish.topic
        self.topic_bytes = encode_string(publish.topic)
        self.payload = publish.payload
        self.qos = publish.qos
        self.publisher = publisher
        props = publish.properties
        self._forwarded = [(prop, props.values[prop]) for prop in _FORWARDED if prop in props]
        # A publisher must not pass for another: only the broker sets PUBLISHER_PROPERTY.
        self._user = [(name, value) for name, value in props.user if name != PUBLISHER_PROPERTY]
        expiry = props.integer(Prop.MESSAGE_EXPIRY_INTERVAL)
        self.expires_at = None if expiry is None else now + expiry
        self._cache: dict[bool, bytes] = {}

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def properties(self, reveal_publisher: bool, now: float) -> bytes | None:
        """The PUBLISH properties for one subscriber; None once the message has expired."""
        values = list(self._forwarded)
        if self.expires_at is not None:
            left_s = self.expires_at - now
            if left_s <= 0:
                return None
            values.append((Prop.MESSAGE_EXPIRY_INTERVAL, math.ceil(left_s)))
        elif reveal_publisher in self._cache:
            return self._cache[reveal_publisher]
        user = [*self._user, (PUBLISHER_PROPERTY, self.publisher)] if reveal_publisher else self._user
        encoded = encode_properties(values, user)
        if self.expires_at is None:
            self._cache[reveal_publisher] = encoded
        return encoded


class Policy(Protocol):
    """What an identity (a client certificate's common name) may do, as an AWS IoT policy says it."""

    def can_connect(self, identity: str, client_id: str) -> bool: ...
    def can_publish(self, identity: str, topic: str) -> bool: ...
    def can_subscribe(self, identity: str, topic_filter: str) -> bool: ...
    def can_receive(self, identity: str, topic: str) -> bool: ...


@dataclass(slots=True)
class BrokerCounts:
    """Messages since the start: `received` PUBLISH packets (refused ones too), `refused` by the policy
    or for a payload over PAYLOAD_LIMIT (`too_large`, counted in `refused` too), `delivered` PUBLISH
    packets written to subscribers, `dropped` ones never written (queue full, too large for the
    subscriber, expired, or queued when its connection ended)."""

    received: int = 0
    refused: int = 0
    too_large: int = 0
    delivered: int = 0
    dropped: int = 0


class Broker(Protocol):
    """What a connection asks of its broker (local.mqtt_broker.MqttBroker), on the broker's event loop."""

    policy: Policy
    counts: BrokerCounts
    reveal_publisher_to: frozenset[str]

    def register(self, connection: Connection) -> None: ...
    def unregister(self, connection: Connection) -> None: ...
    def route(self, publisher: Connection, message: Message) -> int: ...
    def publish_will(self, connection: Connection, will: Will) -> None: ...


@dataclass(frozen=True, slots=True)
class _Subscription:
    levels: tuple[str, ...]
    qos: int
    no_local: bool


class _Closed(Exception):
    """The client said DISCONNECT: stop reading."""


class Connection:
    """One client connection, from its CONNECT to its end; runs on the broker's event loop."""

    def __init__(
        self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, identity: str, peer: str
    ) -> None:
        self.broker = broker
        self.identity = identity
        self.peer = peer
        self.client_id = ""
        self.version = MQTT_5
        """The protocol level of the client's CONNECT: MQTT_5 or MQTT_3_1_1."""
        self.subscriptions: dict[str, _Subscription] = {}
        self.reveal_publisher = identity in broker.reveal_publisher_to
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._receive_maximum = 65_535
        self._max_packet_size = MAX_VARIABLE_INTEGER + 5
        self._keep_alive_s = 0
        self._last_seen = self._loop.time()
        self._watchdog: asyncio.TimerHandle | None = None
        self._queue: deque[tuple[Message, int]] = deque()
        self._in_flight: set[int] = set()
        self._next_packet_id = 0
        self._wakeup = asyncio.Event()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._warned_full = False
        self._will: Will | None = None
        self._will_wanted = True
        self.connected = False
        self.closing = False

    # -- lifecycle --------------------------------------------------------------------------------------

    async def run(self) -> None:
        sender = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                kind, flags, body = await read_packet(self._reader, MAXIMUM_PACKET_SIZE)
            if kind != PacketType.CONNECT or flags:
                log.info("closed: identity=%s peer=%s reason=first packet is not CONNECT", self.identity, self.peer)
                return
            if not self._connect(body):
                return
            sender = asyncio.create_task(self._send_loop())
            while not self.closing:
                kind, flags, body = await read_packet(self._reader, MAXIMUM_PACKET_SIZE)
                self._last_seen = self._loop.time()
                self._dispatch(kind, flags, body)
                # A client that does not read its acknowledgements is not read either. (A closed TLS
                # transport cannot tell its buffer size: the packets still buffered are handled regardless.)
                if not self._writer.is_closing() and self._writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
                    await self._writer.drain()
        except _Closed:
            pass
        except PacketError as exc:
            log.warning(
                "protocol violation: identity=%s client_id=%s reason=%s", self.identity, self.client_id or "-", exc
            )
            if self.connected:
                self.close(exc.reason)
            elif self.version == MQTT_5:
                self._out.append(encode_connack(exc.reason, encode_properties(())))
            elif exc.reason is Reason.CLIENT_IDENTIFIER_NOT_VALID:  # the one CONNECT error 3.1.1 answers
                self._out.append(encode_connack_v4(return_code(exc.reason)))
        except TimeoutError:
            log.info("closed: identity=%s peer=%s reason=no CONNECT in time", self.identity, self.peer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client went away (or the broker closed the connection)
        except Exception:  # a bug here must end this connection, never the broker
            log.exception("connection failed: identity=%s client_id=%s", self.identity, self.client_id or "-")
            self.close(Reason.UNSPECIFIED_ERROR)
        finally:
            if sender is not None:
                sender.cancel()
            self._end()

    def close(self, reason: Reason | None) -> None:
        """End the connection now, with a DISCONNECT when a reason is given (only after a CONNACK)."""
        if self.closing:
            return
        if reason is not None and self.connected and self.version == MQTT_5:  # 3.1.1 has no server DISCONNECT
            self._out.append(encode_disconnect(reason))
        self._flush()
        self.closing = True
        if reason is Reason.SERVER_SHUTTING_DOWN:
            self._will_wanted = False  # the broker is going away: nobody would hear the will
        self.broker.unregister(self)
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._writer.close()
        # The TLS goodbye waits for the client; one that never answers is cut off.
        self._loop.call_later(CLOSE_GRACE_S, self._writer.transport.abort)

    def _end(self) -> None:
        was_connected = self.connected
        self.close(None)
        self.connected = False
        if self._queue:
            self.broker.counts.dropped += len(self._queue)
            self._queue.clear()
        if was_connected:
            log.info("disconnected: identity=%s client_id=%s", self.identity, self.client_id)
            if self._will is not None and self._will_wanted:
                self.broker.publish_will(self, self._will)

    # -- CONNECT ----------------------------------------------------------------------------------------

    def _connect(self, body: bytes) -> bool:
        if body[:7] == b"\x00\x04MQTT\x04":  # known before the rest is decoded: errors are answered in kind
            self.version = MQTT_3_1_1
        try:
            connect = decode_connect(body)
        except UnsupportedProtocol as exc:
            log.warning(
                "refused connect: identity=%s peer=%s reason=unsupported protocol (%s)", self.identity, self.peer, exc
            )
            self._out.append(encode_connack_unsupported_version(exc.level))
            return False
        self.client_id = connect.client_id or f"local-{uuid.uuid4().hex}"
        refusal = self._refusal(connect)
        if refusal is not None:
            reason, why = refusal
            log.warning(
                "refused connect: identity=%s client_id=%s reason=%s (%s)",
                self.identity,
                self.client_id,
                reason.name,
                why,
            )
            self._out.append(
                encode_connack(reason, encode_properties(()))
                if self.version == MQTT_5
                else encode_connack_v4(return_code(reason))
            )
            return False
        props = connect.properties
        self._receive_maximum = props.integer(Prop.RECEIVE_MAXIMUM) or 65_535
        self._max_packet_size = props.integer(Prop.MAXIMUM_PACKET_SIZE) or self._max_packet_size
        self._keep_alive_s = connect.keep_alive_s
        self._last_seen = self._loop.time()
        self._will = connect.will
        answer: list[tuple[Prop, int | str]] = [
            (Prop.RECEIVE_MAXIMUM, RECEIVE_MAXIMUM),
            (Prop.MAXIMUM_QOS, 1),
            (Prop.RETAIN_AVAILABLE, 0),
            (Prop.MAXIMUM_PACKET_SIZE, MAXIMUM_PACKET_SIZE),
            (Prop.TOPIC_ALIAS_MAXIMUM, 0),
            (Prop.WILDCARD_SUBSCRIPTION_AVAILABLE, 1),
            (Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE, 0),
            (Prop.SHARED_SUBSCRIPTION_AVAILABLE, 0),
        ]
        if not connect.client_id:
            answer.append((Prop.ASSIGNED_CLIENT_IDENTIFIER, self.client_id))
        if props.integer(Prop.SESSION_EXPIRY_INTERVAL):
            answer.append((Prop.SESSION_EXPIRY_INTERVAL, 0))  # no session outlives the connection
        self.broker.register(self)
        self.connected = True
        if self.version == MQTT_5:
            self._send(encode_connack(Reason.SUCCESS, encode_properties(answer)))
        else:
            self._send(encode_connack_v4(return_code(Reason.SUCCESS)))
        if self._keep_alive_s:
            self._watchdog = self._loop.call_later(self._keep_alive_s * KEEP_ALIVE_FACTOR, self._check_keep_alive)
        log.info(
            "connected: identity=%s client_id=%s peer=%s protocol=%s",
            self.identity,
            self.client_id,
            self.peer,
            "MQTT 5.0" if self.version == MQTT_5 else "MQTT 3.1.1",
        )
        return True

    def _refusal(self, connect: Connect) -> tuple[Reason, str] | None:
        if Prop.AUTHENTICATION_METHOD in connect.properties:
            return Reason.BAD_AUTHENTICATION_METHOD, "enhanced authentication is not supported"
        will = connect.will
        if will is not None:
            if will.qos > 1:
                return Reason.QOS_NOT_SUPPORTED, "will at QoS 2"
            if will.retain:
                return Reason.RETAIN_NOT_SUPPORTED, "retained will"
            if not valid_topic_name(will.topic):
                return Reason.TOPIC_NAME_INVALID, "will topic"
        if not self.broker.policy.can_connect(self.identity, self.client_id):
            return Reason.NOT_AUTHORIZED, "policy"
        return None

    def _check_keep_alive(self) -> None:
        limit_s = self._keep_alive_s * KEEP_ALIVE_FACTOR
        idle_s = self._loop.time() - self._last_seen
        if idle_s >= limit_s:
            log.info("keep alive timeout: identity=%s client_id=%s", self.identity, self.client_id)
            self.close(Reason.KEEP_ALIVE_TIMEOUT)
        else:
            self._watchdog = self._loop.call_later(limit_s - idle_s, self._check_keep_alive)

    # -- packets from the client ----------------------------------------------------------------------------

    def _dispatch(self, kind: int, flags: int, body: bytes) -> None:
        if kind == PacketType.PUBLISH:
            self._publish(decode_publish(flags, body, self.version))
            return
        if flags != (2 if kind in (PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE, PacketType.PUBREL) else 0):
            raise malformed(f"fixed header flags {flags:#x} for packet type {kind}")
        if kind == PacketType.PUBACK:
            self._acknowledged(decode_puback(body))
        elif kind == PacketType.SUBSCRIBE:
            self._subscribe(body)
        elif kind == PacketType.UNSUBSCRIBE:
            packet_id, filters = decode_unsubscribe(body, self.version)
            reasons = [self._unsubscribe(topic_filter) for topic_filter in filters]
            self._send(encode_unsuback(packet_id, reasons) if self.version == MQTT_5 else encode_unsuback_v4(packet_id))
        elif kind == PacketType.PINGREQ:
            if body:
                raise malformed("PINGREQ with a body")
            self._send(PINGRESP)
        elif kind == PacketType.DISCONNECT:
            # Only 0x00 Normal disconnection discards the will (section 3.1.2.5); 0x04 asks for it.
            self._will_wanted = decode_disconnect(body, self.version) != Reason.SUCCESS
            self.close(None)
            raise _Closed
        elif kind == PacketType.AUTH:
            raise PacketError(Reason.BAD_AUTHENTICATION_METHOD, "AUTH: enhanced authentication is not supported")
        elif kind == 0:
            raise malformed("reserved packet type 0")
        else:  # a second CONNECT, QoS 2 flow packets (never started here), or packets only a server sends
            raise PacketError(Reason.PROTOCOL_ERROR, f"unexpected {PacketType(kind).name}")

    def _publish(self, publish: Publish) -> None:
        if publish.qos == 2:
            raise PacketError(Reason.QOS_NOT_SUPPORTED, "PUBLISH at QoS 2 (Maximum QoS is 1)")
        if publish.retain:
            raise PacketError(Reason.RETAIN_NOT_SUPPORTED, "PUBLISH with RETAIN (Retain Available is 0)")
        if Prop.TOPIC_ALIAS in publish.properties:
            raise PacketError(Reason.TOPIC_ALIAS_INVALID, "topic alias (Topic Alias Maximum is 0)")
        if not publish.topic:
            raise PacketError(Reason.PROTOCOL_ERROR, "PUBLISH with an empty topic and no topic alias")
        if not valid_topic_name(publish.topic):
            raise PacketError(Reason.TOPIC_NAME_INVALID, "wildcard in a topic name")
        response_topic = publish.properties.string(Prop.RESPONSE_TOPIC)
        if response_topic is not None and not valid_topic_name(response_topic):
            raise PacketError(Reason.PROTOCOL_ERROR, "Response Topic is not a topic name")
        broker = self.broker
        broker.counts.received += 1
        if len(publish.payload) > PAYLOAD_LIMIT:
            broker.counts.refused += 1
            broker.counts.too_large += 1
            size = len(publish.payload)
            self._refused(publish, f"PAYLOAD_LIMIT_EXCEEDED ({size} bytes, the limit is {PAYLOAD_LIMIT})")
            self.close(Reason.PACKET_TOO_LARGE)  # as IoT Core: the client is disconnected
            raise _Closed
        if not broker.policy.can_publish(self.identity, publish.topic):
            broker.counts.refused += 1
            self._refused(publish, "NOT_AUTHORIZED (the device policy allows no iot:Publish on this topic)")
            if self.version == MQTT_3_1_1:  # no PUBACK reason code to say it with
                self.close(None)
                raise _Closed
            if publish.qos:
                self._send(encode_puback(publish.packet_id, Reason.NOT_AUTHORIZED))
            return
        receivers = broker.route(self, Message(publish, self.client_id, self._loop.time()))
        if publish.qos:
            reason = Reason.SUCCESS if receivers else Reason.NO_MATCHING_SUBSCRIBERS
            self._send(encode_puback(publish.packet_id, reason))

    def _refused(self, publish: Publish, reason: str) -> None:
        log.warning(
            "refused publish: identity=%s client_id=%s topic=%s qos=%d reason=%s",
            self.identity,
            self.client_id,
            publish.topic,
            publish.qos,
            reason,
        )

    def _subscribe(self, body: bytes) -> None:
        subscribe = decode_subscribe(body, self.version)
        with_identifier = Prop.SUBSCRIPTION_IDENTIFIER in subscribe.properties
        reasons = []
        for request in subscribe.requests:
            topic_filter = request.topic_filter
            if topic_filter.startswith("$share/"):
                reason = Reason.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
            elif with_identifier:
                reason = Reason.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED
            elif not valid_topic_filter(topic_filter):
                reason = Reason.TOPIC_FILTER_INVALID
            elif not self.broker.policy.can_subscribe(self.identity, topic_filter):
                reason = Reason.NOT_AUTHORIZED
            elif topic_filter not in self.subscriptions and len(self.subscriptions) >= SUBSCRIPTION_LIMIT:
                reason = Reason.QUOTA_EXCEEDED
            else:
                qos = min(request.qos, 1)  # QoS 2 asked for: 1 granted, the Maximum QoS
                levels = tuple(topic_filter.split("/"))
                self.subscriptions[topic_filter] = _Subscription(levels, qos, request.no_local)
                reasons.append(qos)
                continue
            log.warning(
                "refused subscribe: identity=%s client_id=%s topic_filter=%s reason=%s",
                self.identity,
                self.client_id,
                topic_filter,
                reason.name,
            )
            reasons.append(reason)
        if self.version == MQTT_5:
            self._send(encode_suback(subscribe.packet_id, reasons))
        else:  # 3.1.1 has a single failure code
            self._send(encode_suback_v4(subscribe.packet_id, [min(reason, 0x80) for reason in reasons]))

    def _unsubscribe(self, topic_filter: str) -> Reason:
        if not valid_topic_filter(topic_filter):
            return Reason.TOPIC_FILTER_INVALID
        if self.subscriptions.pop(topic_filter, None) is None:
            return Reason.NO_SUBSCRIPTION_EXISTED
        return Reason.SUCCESS

    def _acknowledged(self, packet_id: int) -> None:
        # An unknown packet id (already acknowledged, or never sent) changes nothing.
        if packet_id in self._in_flight:
            self._in_flight.discard(packet_id)
            self._wakeup.set()

    # -- messages to the client -----------------------------------------------------------------------------

    def matching_qos(self, topic_levels: Sequence[str], own: bool) -> int | None:
        """The highest QoS among this client's subscriptions matching the topic; None if none does."""
        best = None
        for subscription in self.subscriptions.values():
            if (own and subscription.no_local) or (best is not None and subscription.qos <= best):
                continue
            if topic_matches(subscription.levels, topic_levels):
                best = subscription.qos
        return best

    def deliver(self, message: Message, qos: int) -> None:
        if len(self._queue) >= QUEUE_LIMIT:
            self._queue.popleft()
            self.broker.counts.dropped += 1
            if not self._warned_full:
                self._warned_full = True
                log.warning(
                    "queue full, dropping the oldest messages: identity=%s client_id=%s limit=%d",
                    self.identity,
                    self.client_id,
                    QUEUE_LIMIT,
                )
        self._queue.append((message, qos))
        self._wakeup.set()

    async def _send_loop(self) -> None:
        """Writes queued messages in order, at most Receive Maximum QoS 1 ones unacknowledged."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while batch := self._take_batch():
                    self.broker.counts.delivered += len(batch)
                    self._out.extend(batch)
                    self._flush()
                    await self._writer.drain()
        except ConnectionError:
            pass  # the reader sees the same and ends the connection

    def _take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        now = self._loop.time()
        while self._queue and len(batch) < _BATCH and not self.closing:
            message, qos = self._queue[0]
            if qos and len(self._in_flight) >= self._receive_maximum:
                break  # head of line: a later QoS 0 message must not overtake it either
            self._queue.popleft()
            if self.version == MQTT_5:
                properties = message.properties(self.reveal_publisher, now)
            else:  # no properties in 3.1.1: expired or not is all that matters
                properties = None if message.expired(now) else b""
            packet_id = self._packet_id() if qos else 0
            packet = None
            if properties is not None:
                packet = encode_publish(message.topic_bytes, message.payload, qos, packet_id, properties)
            # Expired, or more than the client accepts: discarded as if sent (section 3.1.2.24).
            if packet is None or len(packet) > self._max_packet_size:
                self.broker.counts.dropped += 1
                continue
            if qos:
                self._in_flight.add(packet_id)
            batch.append(packet)
        return batch

    def _packet_id(self) -> int:
        while True:
            self._next_packet_id = self._next_packet_id % 65_535 + 1
            if self._next_packet_id not in self._in_flight:
                return self._next_packet_id

    def _send(self, packet: bytes) -> None:
        """Queue a packet; everything queued in one pass of the event loop is written at once."""
        if self.closing:
            return
        self._out.append(packet)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self._writer.is_closing():
            self._writer.write(b"".join(self._out))
        self._out.clear()
