"""The MQTT 5.0 and 3.1.1 wire format for the local broker: packets, variable byte integers, strings, properties.

Follows OASIS MQTT Version 5.0 (2019) and, for the clients that speak it (such as the original AWS IoT
Python SDK), MQTT Version 3.1.1 (2014): the same packets without properties or reason codes. Only what a
server reads from clients is decoded, only what it sends is encoded. A violation of the specification
raises PacketError with the reason code the specification names (0x81 Malformed Packet, 0x82 Protocol
Error, ...); the broker answers with it (an MQTT 3.1.1 client: by closing the connection).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class Reason(IntEnum):
    """The reason codes this broker sends (MQTT 5.0 section 2.4)."""

    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    NOT_AUTHORIZED = 0x87
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    QUOTA_EXCEEDED = 0x97
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1


class PacketError(Exception):
    """A packet that breaks the specification; `reason` is the code to answer with."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.name}: {detail}")
        self.reason = reason
        self.detail = detail


def malformed(detail: str) -> PacketError:
    return PacketError(Reason.MALFORMED_PACKET, detail)


class Prop(IntEnum):
    """Property identifiers (MQTT 5.0 section 2.2.2.2)."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


_BYTE = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})
_TWO_BYTES = frozenset({0x13, 0x21, 0x22, 0x23})
_FOUR_BYTES = frozenset({0x02, 0x11, 0x18, 0x27})
_VARIABLE = frozenset({0x0B})
_STRING = frozenset({0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F})
_BINARY = frozenset({0x09, 0x16})

# Which properties each packet a client sends may carry: any other identifier is a Malformed Packet.
CONNECT_PROPS = frozenset({0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16})
WILL_PROPS = frozenset({0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26})
PUBLISH_PROPS = frozenset({0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x0B, 0x03})
ACK_PROPS = frozenset({0x1F, 0x26})
SUBSCRIBE_PROPS = frozenset({0x0B, 0x26})
UNSUBSCRIBE_PROPS = frozenset({0x26})
DISCONNECT_PROPS = frozenset({0x11, 0x1F, 0x26, 0x1C})

MAX_VARIABLE_INTEGER = 268_435_455
MQTT_5 = 5
MQTT_3_1_1 = 4
"""The protocol levels a CONNECT may name."""
PropertyValue = int | str | bytes


@dataclass(slots=True)
class Properties:
    """The properties of one packet: single-valued ones by identifier, user properties in order."""

    values: dict[int, PropertyValue] = field(default_factory=dict)
    user: list[tuple[str, str]] = field(default_factory=list)

    def integer(self, prop: Prop) -> int | None:
        value = self.values.get(prop)
        return value if isinstance(value, int) else None

    def string(self, prop: Prop) -> str | None:
        value = self.values.get(prop)
        return value if isinstance(value, str) else None

    def binary(self, prop: Prop) -> bytes | None:
        value = self.values.get(prop)
        return value if isinstance(value, bytes) else None

    def __contains__(self, prop: Prop) -> bool:
        return prop in self.values


class Reader:
    """Reads the data types of MQTT 5.0 section 1.5 from one packet's body."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise malformed("packet shorter than its fields")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack("!I", self.take(4))[0]
        return value

    def varint(self) -> int:
        value = 0
        for position in range(4):
            digit = self.byte()
            value |= (digit & 0x7F) << (7 * position)
            if not digit & 0x80:
                if position and digit == 0:
                    raise malformed("variable byte integer not in its shortest form")
                return value
        raise malformed("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")  # strict: rejects ill-formed UTF-8 and encoded surrogates
        except UnicodeDecodeError as exc:
            raise malformed("string is not well-formed UTF-8") from exc
        if "\x00" in text:
            raise malformed("string contains U+0000")
        return text

    def rest(self) -> bytes:
        return self.take(self.remaining())

    def properties(self, allowed: frozenset[int]) -> Properties:
        length = self.varint()
        body = Reader(self.take(length))
        props = Properties()
        while body.remaining():
            identifier = body.varint()
            if identifier not in allowed:
                raise malformed(f"property 0x{identifier:02X} not valid in this packet")
            if identifier == Prop.USER_PROPERTY:
                props.user.append((body.string(), body.string()))
                continue
            if identifier in props.values:
                raise PacketError(Reason.PROTOCOL_ERROR, f"property 0x{identifier:02X} given twice")
            props.values[identifier] = body.value_of(identifier)
        return props

    def value_of(self, identifier: int) -> PropertyValue:
        if identifier in _BYTE:
            return self.byte()
        if identifier in _TWO_BYTES:
            return self.u16()
        if identifier in _FOUR_BYTES:
            return self.u32()
        if identifier in _VARIABLE:
            return self.varint()
        if identifier in _STRING:
            return self.string()
        if identifier in _BINARY:
            return self.binary()
        raise malformed(f"unknown property 0x{identifier:02X}")  # pragma: no cover - `allowed` excludes it


# -- encoding ---------------------------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    if not 0 <= value <= MAX_VARIABLE_INTEGER:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        digit, value = value & 0x7F, value >> 7
        out.append(digit | 0x80 if value else digit)
        if not value:
            return bytes(out)


def encode_binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("string or binary data longer than 65535 bytes")
    return struct.pack("!H", len(data)) + data


def encode_string(text: str) -> bytes:
    return encode_binary(text.encode("utf-8"))


def encode_properties(values: Iterable[tuple[Prop, PropertyValue]], user: Iterable[tuple[str, str]] = ()) -> bytes:
    """A property list with its length prefix; integers are sized by the identifier's data type."""
    body = bytearray()
    for prop, value in values:
        body += encode_varint(prop)
        if isinstance(value, str):
            body += encode_string(value)
        elif isinstance(value, bytes):
            body += encode_binary(value)
        elif prop in _BYTE:
            body.append(value)
        elif prop in _TWO_BYTES:
            body += struct.pack("!H", value)
        elif prop in _FOUR_BYTES:
            body += struct.pack("!I", value)
        else:
            body += encode_varint(value)
    for name, value in user:
        body += encode_varint(Prop.USER_PROPERTY) + encode_string(name) + encode_string(value)
    return encode_varint(len(body)) + bytes(body)


def encode_packet(kind: PacketType, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + encode_varint(len(body)) + body


def encode_connack(reason: Reason, properties: bytes) -> bytes:
    # Session Present is always 0: the broker keeps no session beyond a connection.
    return encode_packet(PacketType.CONNACK, 0, bytes([0, reason]) + properties)


class ReturnCode(IntEnum):
    """MQTT 3.1.1's CONNACK return codes (section 3.2.2.3)."""

    ACCEPTED = 0x00
    UNACCEPTABLE_PROTOCOL_VERSION = 0x01
    IDENTIFIER_REJECTED = 0x02
    SERVER_UNAVAILABLE = 0x03
    NOT_AUTHORIZED = 0x05


def return_code(reason: Reason) -> ReturnCode:
    """The MQTT 3.1.1 CONNACK return code closest to an MQTT 5 reason code (else 0x03 Server unavailable)."""
    return {
        Reason.SUCCESS: ReturnCode.ACCEPTED,
        Reason.CLIENT_IDENTIFIER_NOT_VALID: ReturnCode.IDENTIFIER_REJECTED,
        Reason.NOT_AUTHORIZED: ReturnCode.NOT_AUTHORIZED,
    }.get(reason, ReturnCode.SERVER_UNAVAILABLE)


def encode_connack_v4(code: ReturnCode) -> bytes:
    """MQTT 3.1.1 CONNACK: Session Present 0 and the return code, no properties."""
    return encode_packet(PacketType.CONNACK, 0, bytes([0, code]))


def encode_suback_v4(packet_id: int, codes: Sequence[int]) -> bytes:  # the QoS granted per filter, or 0x80
    return encode_packet(PacketType.SUBACK, 0, struct.pack("!H", packet_id) + bytes(codes))


def encode_unsuback_v4(packet_id: int) -> bytes:
    return encode_packet(PacketType.UNSUBACK, 0, struct.pack("!H", packet_id))


def encode_connack_unsupported_version(level: int) -> bytes:
    """A CONNACK any MQTT version parses: 0x84 to a later version than 5, 0x01 to an earlier one (MQTT 3.1)."""
    code = Reason.UNSUPPORTED_PROTOCOL_VERSION if level > MQTT_5 else ReturnCode.UNACCEPTABLE_PROTOCOL_VERSION
    return encode_packet(PacketType.CONNACK, 0, bytes([0, code]))


def encode_publish(topic: bytes, payload: bytes, qos: int, packet_id: int, properties: bytes) -> bytes:
    """PUBLISH with an already encoded topic (encode_string) and property list; never DUP, never RETAIN."""
    head = topic + (struct.pack("!H", packet_id) if qos else b"")
    return encode_packet(PacketType.PUBLISH, qos << 1, head + properties + payload)


def encode_puback(packet_id: int, reason: Reason) -> bytes:
    # Reason Code and Property Length may be left off when they are 0x00 and empty (section 3.4.2.1).
    body = struct.pack("!H", packet_id) + (b"" if reason == Reason.SUCCESS else bytes([reason]))
    return encode_packet(PacketType.PUBACK, 0, body)


def encode_suback(packet_id: int, reasons: Sequence[int]) -> bytes:
    return encode_packet(PacketType.SUBACK, 0, struct.pack("!H", packet_id) + b"\x00" + bytes(reasons))


def encode_unsuback(packet_id: int, reasons: Sequence[int]) -> bytes:
    return encode_packet(PacketType.UNSUBACK, 0, struct.pack("!H", packet_id) + b"\x00" + bytes(reasons))


PINGRESP = encode_packet(PacketType.PINGRESP, 0, b"")


def encode_disconnect(reason: Reason) -> bytes:
    # A Remaining Length of 1 means no properties (section 3.14.2.2).
    return encode_packet(PacketType.DISCONNECT, 0, bytes([reason]))


# -- reading and decoding what clients send ----------------------------------------------------------------


async def read_packet(reader: asyncio.StreamReader, max_size: int) -> tuple[int, int, bytes]:
    """The next packet's type, flags and body; PacketError 0x95 if it exceeds `max_size` bytes in all.

    asyncio.IncompleteReadError when the connection ends, even in the middle of a packet.
    """
    first = (await reader.readexactly(1))[0]
    length = 0
    for position in range(4):
        digit = (await reader.readexactly(1))[0]
        length |= (digit & 0x7F) << (7 * position)
        if not digit & 0x80:
            if position and digit == 0:
                raise malformed("remaining length not in its shortest form")
            header_size = 2 + position
            break
    else:
        raise malformed("remaining length longer than 4 bytes")
    if header_size + length > max_size:
        # The body is never read: the connection is closed right after the DISCONNECT.
        raise PacketError(Reason.PACKET_TOO_LARGE, f"{header_size + length} bytes, the limit is {max_size}")
    return first >> 4, first & 0x0F, await reader.readexactly(length)


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties


@dataclass(frozen=True, slots=True)
class Connect:
    clean_start: bool
    keep_alive_s: int
    client_id: str
    properties: Properties
    will: Will | None
    version: int = MQTT_5


class UnsupportedProtocol(Exception):
    """A CONNECT of another protocol (or MQTT version) than MQTT 5.0 or 3.1.1."""

    def __init__(self, detail: str, level: int) -> None:
        super().__init__(detail)
        self.level = level


def decode_connect(body: bytes) -> Connect:
    reader = Reader(body)
    name = reader.string()
    level = reader.byte()
    if name != "MQTT" or level not in (MQTT_5, MQTT_3_1_1):
        # Raised before anything version-specific is read (MQTT 3.1's 'MQIsdp' is not supported).
        raise UnsupportedProtocol(f"protocol {name!r} level {level}", level)
    flags = reader.byte()
    if flags & 0x01:
        raise malformed("CONNECT reserved flag set")
    will_flag, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 0x03, bool(flags & 0x20)
    if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
        raise malformed("CONNECT will flags inconsistent")
    keep_alive_s = reader.u16()
    if level == MQTT_3_1_1:
        return _connect_v4(reader, flags, keep_alive_s)
    properties = reader.properties(CONNECT_PROPS)
    if properties.integer(Prop.RECEIVE_MAXIMUM) == 0 or properties.integer(Prop.MAXIMUM_PACKET_SIZE) == 0:
        raise PacketError(Reason.PROTOCOL_ERROR, "Receive Maximum or Maximum Packet Size of 0")
    for prop in (Prop.REQUEST_PROBLEM_INFORMATION, Prop.REQUEST_RESPONSE_INFORMATION):
        if properties.integer(prop) not in (None, 0, 1):
            raise PacketError(Reason.PROTOCOL_ERROR, f"{prop.name} not 0 or 1")
    if Prop.AUTHENTICATION_DATA in properties and Prop.AUTHENTICATION_METHOD not in properties:
        raise PacketError(Reason.PROTOCOL_ERROR, "Authentication Data without a method")
    client_id = reader.string()
    will = None
    if will_flag:
        will_properties = reader.properties(WILL_PROPS)
        will_topic = reader.string()
        will = Will(will_topic, reader.binary(), will_qos, will_retain, will_properties)
    if flags & 0x80:
        reader.binary()  # user name: the identity is the client certificate's
    if flags & 0x40:
        reader.binary()  # password: likewise ignored
    if reader.remaining():
        raise malformed("CONNECT longer than its fields")
    return Connect(bool(flags & 0x02), keep_alive_s, client_id, properties, will)


def _connect_v4(reader: Reader, flags: int, keep_alive_s: int) -> Connect:
    """The rest of an MQTT 3.1.1 CONNECT: client id, will topic and message, user name, password."""
    clean_session = bool(flags & 0x02)
    if flags & 0x40 and not flags & 0x80:
        raise malformed("CONNECT password flag without the user name flag")
    client_id = reader.string()
    if not client_id and not clean_session:  # section 3.1.3.1: CONNACK 0x02, then close
        raise PacketError(Reason.CLIENT_IDENTIFIER_NOT_VALID, "empty client id without Clean Session")
    will = None
    if flags & 0x04:
        will_topic = reader.string()
        will = Will(will_topic, reader.binary(), (flags >> 3) & 0x03, bool(flags & 0x20), Properties())
    if flags & 0x80:
        reader.binary()  # user name: the identity is the client certificate's
    if flags & 0x40:
        reader.binary()  # password: likewise ignored
    if reader.remaining():
        raise malformed("CONNECT longer than its fields")
    return Connect(clean_session, keep_alive_s, client_id, Properties(), will, MQTT_3_1_1)


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int
    properties: Properties


def decode_publish(flags: int, body: bytes, version: int = MQTT_5) -> Publish:
    qos, retain, dup = (flags >> 1) & 0x03, bool(flags & 0x01), bool(flags & 0x08)
    if qos == 3:
        raise malformed("PUBLISH with QoS 3")
    if dup and qos == 0:
        raise malformed("PUBLISH QoS 0 with DUP set")
    reader = Reader(body)
    topic = reader.string()
    packet_id = reader.u16() if qos else 0
    if qos and packet_id == 0:
        raise PacketError(Reason.PROTOCOL_ERROR, "PUBLISH packet identifier 0")
    if version == MQTT_3_1_1:
        return Publish(topic, reader.rest(), qos, retain, packet_id, Properties())
    properties = reader.properties(PUBLISH_PROPS)
    if Prop.SUBSCRIPTION_IDENTIFIER in properties:
        raise PacketError(Reason.PROTOCOL_ERROR, "a client may not send a Subscription Identifier in PUBLISH")
    if properties.integer(Prop.PAYLOAD_FORMAT_INDICATOR) not in (None, 0, 1):
        raise PacketError(Reason.PROTOCOL_ERROR, "Payload Format Indicator not 0 or 1")
    return Publish(topic, reader.rest(), qos, retain, packet_id, properties)


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    topic_filter: str
    qos: int
    no_local: bool


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    properties: Properties
    requests: list[SubscriptionRequest]


def decode_subscribe(body: bytes, version: int = MQTT_5) -> Subscribe:
    reader = Reader(body)
    packet_id = reader.u16()
    if packet_id == 0:
        raise PacketError(Reason.PROTOCOL_ERROR, "SUBSCRIBE packet identifier 0")
    if version == MQTT_3_1_1:
        requests = []
        while reader.remaining():
            topic_filter = reader.string()
            options = reader.byte()
            if options & 0xFC or options == 3:
                raise malformed("SUBSCRIBE requested QoS: reserved bits or QoS 3")
            requests.append(SubscriptionRequest(topic_filter, options, False))
        if not requests:
            raise PacketError(Reason.PROTOCOL_ERROR, "SUBSCRIBE without a topic filter")
        return Subscribe(packet_id, Properties(), requests)
    properties = reader.properties(SUBSCRIBE_PROPS)
    if properties.integer(Prop.SUBSCRIPTION_IDENTIFIER) == 0:
        raise PacketError(Reason.PROTOCOL_ERROR, "Subscription Identifier 0")
    requests = []
    while reader.remaining():
        topic_filter = reader.string()
        options = reader.byte()
        if options & 0xC0 or options & 0x03 == 3:
            raise malformed("subscription options: reserved bits or QoS 3")
        if (options >> 4) & 0x03 == 3:
            raise PacketError(Reason.PROTOCOL_ERROR, "Retain Handling 3")
        # Retain As Published and Retain Handling need retained messages, which this broker has none of.
        requests.append(SubscriptionRequest(topic_filter, options & 0x03, bool(options & 0x04)))
    if not requests:
        raise PacketError(Reason.PROTOCOL_ERROR, "SUBSCRIBE without a topic filter")
    return Subscribe(packet_id, properties, requests)


def decode_unsubscribe(body: bytes, version: int = MQTT_5) -> tuple[int, list[str]]:
    reader = Reader(body)
    packet_id = reader.u16()
    if packet_id == 0:
        raise PacketError(Reason.PROTOCOL_ERROR, "UNSUBSCRIBE packet identifier 0")
    if version == MQTT_5:
        reader.properties(UNSUBSCRIBE_PROPS)
    filters = []
    while reader.remaining():
        filters.append(reader.string())
    if not filters:
        raise PacketError(Reason.PROTOCOL_ERROR, "UNSUBSCRIBE without a topic filter")
    return packet_id, filters


def decode_puback(body: bytes) -> int:
    """The packet identifier a subscriber acknowledges (its reason code changes nothing here)."""
    reader = Reader(body)
    packet_id = reader.u16()
    if reader.remaining():
        reader.byte()
        if reader.remaining():
            reader.properties(ACK_PROPS)
    if reader.remaining():
        raise malformed("PUBACK longer than its fields")
    return packet_id


def decode_disconnect(body: bytes, version: int = MQTT_5) -> int:
    """The client's reason code (0 when the packet has none)."""
    if version == MQTT_3_1_1 and body:
        raise malformed("MQTT 3.1.1 DISCONNECT with a body")
    reader = Reader(body)
    if not reader.remaining():
        return 0
    reason = reader.byte()
    if reader.remaining():
        reader.properties(DISCONNECT_PROPS)
    if reader.remaining():
        raise malformed("DISCONNECT longer than its fields")
    return reason
