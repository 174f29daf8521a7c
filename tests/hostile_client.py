"""A third-party device that sends hostile payloads through a real broker: a separate process, as a stranger would.

    python -m tests.hostile_client --port 8883 --ca ca.pem --cert dev.cert.pem --key dev.private.key \
        --client-id hostile-001 --hostile 2000 --valid 200 --oversize 3

Publishes `--hostile` payloads no pipeline should trust (JSON nested up to 100,000 levels, payloads up to
IoT Core's 128 KB limit, bad encodings, wrong types, not objects, numbers beyond a double, another
motor's id) interleaved with `--valid` readings of its own motor, all at QoS 1 on one connection
(up to IN_FLIGHT unacknowledged), then `--oversize` payloads beyond the limit at QoS 0, each on a
connection of its own, which the broker is expected to close. Prints one JSON line: what it sent, per
category. Deterministic: the same arguments send the same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

PAYLOAD_LIMIT = 128 * 1024
"""AWS IoT Core's limit on one message's payload (local.mqtt_connection.PAYLOAD_LIMIT)."""
TIMEOUT_S = 20.0
IN_FLIGHT = 50
"""QoS 1 publishes awaiting their PUBACK at once (the broker's Receive Maximum is 100)."""
DEPTHS = (10, 500, 999, 1_000, 1_001, 2_000, 10_000, 30_000, 60_000)
"""Closed nestings: up to 60,000 levels of '[]' fit in 128 KB."""
UNCLOSED_DEPTH = 100_000
"""An unterminated nesting of 100,000 '[' (100 KB): a parser recurses before it sees the end is missing."""


def reading(motor_id: str, seq: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "motor_id": motor_id, "motor_type": "pump-37kw", "ts": int(time.time() * 1000), "seq": seq,
        "running": True, "speed_rpm": 1480.0, "current_a": 64.0, "winding_temp_c": 78.0,
        "bearing_temp_c": 62.0, "fluid_temp_c": 84.0, "vibration_mm_s": 2.4,
    }  # fmt: skip
    return base | fields


def hostile_kinds(motor_id: str, rng: random.Random) -> list[tuple[str, Callable[[int], bytes]]]:
    """(category, payload of the n-th draw) for every kind of hostile payload."""

    def as_json(value: object) -> bytes:
        return json.dumps(value).encode()

    def nested_list(depth: int) -> bytes:
        prefix = f'{{"motor_id": "{motor_id}", "seq": 1, "x": '.encode()
        return prefix + b"[" * depth + b"]" * depth + b"}"

    def nested_dict(depth: int) -> bytes:
        return b'{"a":' * depth + b"1" + b"}" * depth

    kinds: list[tuple[str, Callable[[int], bytes]]] = [
        ("deep_nesting", lambda n: nested_list(DEPTHS[n % len(DEPTHS)])),
        ("deep_nesting", lambda n: nested_dict(min(DEPTHS[n % len(DEPTHS)], 20_000))),
        ("deep_nesting", lambda n: b"[" * UNCLOSED_DEPTH if n % 2 else b'{"a":' * (UNCLOSED_DEPTH // 5)),
        ("near_limit", lambda n: as_json(reading(motor_id, n, note="x" * (PAYLOAD_LIMIT - 400 - n % 100)))),
        ("near_limit", lambda n: (b'{"pad": "' + b"y" * PAYLOAD_LIMIT)[: PAYLOAD_LIMIT - 2] + b'"}'),
        ("bad_encoding", lambda n: bytes(rng.randrange(256) for _ in range(1 + n % 64))),
        ("bad_encoding", lambda n: json.dumps(reading(motor_id, n, motor_type="pompe-é")).encode("latin-1")),
        ("bad_encoding", lambda n: json.dumps(reading(motor_id, n)).encode("utf-16")),
        ("bad_encoding", lambda n: b"\xef\xbb\xbf" + as_json(reading(motor_id, n))),
        ("bad_encoding", lambda n: b'{"motor_id": "\xc0\xaf", "seq": 1}'),
        ("bad_encoding", lambda n: as_json(reading(motor_id, n)).replace(b'"pump-37kw"', b'"\\ud800"')),
        ("bad_encoding", lambda n: as_json(reading(motor_id, n)).replace(b"pump", b"pu\x00mp")),
        ("not_an_object", lambda n: [b"[]", b"1", b'"reading"', b"null", b"true", b"", b"   ", b"[1, {}]"][n % 8]),
        (
            "nan_infinity",
            lambda n: [b"NaN", b"Infinity", b"-Infinity"][n % 3].join(
                [b'{"motor_id": "' + motor_id.encode() + b'", "seq": 1, "speed_rpm": ', b"}"]
            ),
        ),
        ("huge_number", lambda n: as_json(reading(motor_id, n, speed_rpm=1e308)).replace(b"1e+308", b"1e400")),
        ("huge_number", lambda n: b'{"seq": ' + b"9" * (5000 + n % 100) + b"}"),
        ("wrong_type", lambda n: as_json(reading(motor_id, n, running="yes", speed_rpm=[1480]) | {"seq": "one"})),
        ("wrong_type", lambda n: as_json(reading(motor_id, n, ts="yesterday"))),
        ("missing_field", lambda n: as_json({k: v for k, v in reading(motor_id, n).items() if k != "ts"})),
        ("out_of_range", lambda n: as_json(reading(motor_id, n, speed_rpm=-5.0, winding_temp_c=5000.0))),
        ("topic_mismatch", lambda n: as_json(reading("motor-001", n))),
        ("duplicate_keys", lambda n: b'{"motor_id": "a", "motor_id": "' + motor_id.encode() + b'", "seq": 1}'),
    ]
    return kinds


def payloads(
    motor_id: str, hostile: int, valid: int, seed: int, only: str | None = None
) -> Iterator[tuple[str, bytes]]:
    """`hostile` hostile payloads, every kind (of category `only`) in turn, with `valid` readings spread
    evenly among them."""
    rng = random.Random(seed)
    kinds = [kind for kind in hostile_kinds(motor_id, rng) if only is None or kind[0] == only]
    every = max(hostile // max(valid, 1), 1)
    sent_valid = 0
    for n in range(hostile):
        category, make = kinds[n % len(kinds)]
        payload = make(n // len(kinds))
        assert len(payload) <= PAYLOAD_LIMIT, (category, len(payload))
        yield category, payload
        if sent_valid < valid and n % every == every - 1:
            sent_valid += 1
            yield "valid", json.dumps(reading(motor_id, sent_valid)).encode()
    while sent_valid < valid:
        sent_valid += 1
        yield "valid", json.dumps(reading(motor_id, sent_valid)).encode()


class Connection:
    """One MQTT 5 connection with the device's certificate; `closed` is set when the broker cuts it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.connected, self.closed, self.stopped = threading.Event(), threading.Event(), threading.Event()
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="127.0.0.1",
            port=args.port,
            cert_filepath=str(args.cert),
            pri_key_filepath=str(args.key),
            ca_filepath=str(args.ca),
            client_id=args.client_id,
            ack_timeout_sec=int(TIMEOUT_S),
            # Without IoT Core's own throttle (512 KB/s per connection), which would make a test of minutes.
            extended_validation_and_flow_control_options=mqtt5.ExtendedValidationAndFlowControlOptions.NONE,
            on_lifecycle_connection_success=lambda _: self.connected.set(),
            on_lifecycle_disconnection=lambda _: self.closed.set(),
            on_lifecycle_stopped=lambda _: self.stopped.set(),
        )

    def __enter__(self) -> Connection:
        self.client.start()
        if not self.connected.wait(TIMEOUT_S):
            raise SystemExit("hostile_client: could not connect to the broker")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()
        self.stopped.wait(TIMEOUT_S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--client-id", required=True, help="the certificate's common name (its motor id)")
    parser.add_argument("--hostile", type=int, default=2000)
    parser.add_argument("--valid", type=int, default=200)
    parser.add_argument("--oversize", type=int, default=3, help="payloads beyond 128 KB, a connection each")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--only", metavar="CATEGORY", help="hostile payloads of this category only, e.g. deep_nesting")
    args = parser.parse_args(argv)
    topic = f"motors/{args.client_id}/telemetry"
    sent: Counter[str] = Counter()
    refused = unheard = 0
    started = time.monotonic()
    with Connection(args) as connection:
        in_flight: deque[tuple[str, Future[Any]]] = deque()
        for category, payload in payloads(args.client_id, args.hostile, args.valid, args.seed, args.only):
            packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
            in_flight.append((category, connection.client.publish(packet)))
            while in_flight and (len(in_flight) >= IN_FLIGHT or in_flight[0][1].done()):
                acknowledged, future = in_flight.popleft()
                puback = future.result(TIMEOUT_S).puback
                refused += puback.reason_code.value >= 0x80
                unheard += puback.reason_code == mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS
                sent[acknowledged] += 1
        for acknowledged, future in in_flight:
            puback = future.result(TIMEOUT_S).puback
            refused += puback.reason_code.value >= 0x80
            unheard += puback.reason_code == mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS
            sent[acknowledged] += 1
    for n in range(args.oversize):
        size = PAYLOAD_LIMIT + 1 + n * 60_000
        with Connection(args) as connection:
            connection.client.publish(mqtt5.PublishPacket(topic=topic, payload=b"z" * size, qos=mqtt5.QoS.AT_MOST_ONCE))
            if not connection.closed.wait(TIMEOUT_S):
                print(f"hostile_client: the broker kept the connection after {size} bytes", file=sys.stderr)
                return 1
        sent["oversize"] += 1
    took_s = round(time.monotonic() - started, 1)
    print(json.dumps({"sent": dict(sent), "refused": refused, "no_subscriber": unheard, "took_s": took_s}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
