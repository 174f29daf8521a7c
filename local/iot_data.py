"""The IoT data plane on one machine: iot-data Publish on loopback, handed to a callback (the local broker's client).

The functions publish alarm events with the unchanged boto3 `iot-data` client; AWS_ENDPOINT_URL_IOT_DATA_PLANE
points it here. botocore's service model (iot-data 2015-05-28, rest-json) sends Publish as
`POST /topics/{topic}?qos=N[&retain=true|false]`, the topic percent-encoded into one path segment and the
payload as the body; the answer is 200 with a small JSON document (the operation has no output shape).
`IotDataServer` checks what IoT Core checks before a message reaches the broker, and answers errors as
botocore's rest-json parser reads them (the code in `x-amzn-ErrorType`, `{"message": ...}` in the body):

- a topic that is empty, not UTF-8, holds a wildcard (+ #) or U+0000, is over 256 bytes, or has more than
  7 forward slashes (Basic Ingest's `$aws/rules/<rule>/` prefix not counted) -> 400 InvalidRequestException;
- qos other than 0 or 1, retain other than true/false -> 400 InvalidRequestException;
- a payload over 128 KB -> 413 RequestEntityTooLargeException;
- the callback raising (the broker refused or is gone) -> 503 ServiceUnavailableException, which botocore's
  standard retry mode retries, as it would retry IoT Core;
- the other data-plane operations (thing shadows, retained messages, connections) -> 404 UnsupportedOperation
  naming the operation, and any other route -> 404 UnknownOperationException.

Not emulated: SigV4 and IoT policies (any credentials may publish anywhere), retained messages (`retain` is
checked, not kept), the MQTT 5 properties (userProperties, contentType, responseTopic, messageExpiry...), which
are accepted and dropped. For reliability tests, `fail_next(n)` (or `POST /_local/fault` with JSON
`{"fail": n, "delay_s": x}`, loopback clients only) answers the next n publishes with 503 without calling the
callback, and `delay_s` slows every publish.

    python -m local.iot_data --port 8443     # prints each publish as a JSON line, for a look at what is sent
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from urllib.parse import SplitResult, parse_qs, unquote_to_bytes, urlsplit

from local.loopback_http import FAULT_PATH, IDLE_TIMEOUT_S, LoopbackHandler, LoopbackService, serve_until_signalled

__all__ = [
    "BASIC_INGEST_PREFIX",
    "DRAIN_LIMIT_BYTES",
    "FAULT_PATH",
    "IDLE_TIMEOUT_S",
    "MAX_PAYLOAD_BYTES",
    "MAX_TOPIC_BYTES",
    "MAX_TOPIC_SLASHES",
    "UNSUPPORTED",
    "InvalidRequest",
    "IotDataServer",
    "Publish",
    "check_topic",
    "main",
]

log = logging.getLogger("local.iot_data")

MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
BASIC_INGEST_PREFIX = re.compile(r"^\$aws/rules/[^/]+/")
"""Basic Ingest topics' first three slashes do not count against the limit (IoT Core's quotas say so)."""
MAX_PAYLOAD_BYTES = 128 * 1024
"""IoT Core's message size limit: a PUBLISH payload of 128 KB."""
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
"""An oversized body up to this is read and dropped so the 413 reaches the client on a reusable connection."""

UNSUPPORTED: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), operation)
    for method, pattern, operation in (
        ("GET", r"^/things/[^/]+/shadow$", "GetThingShadow"),
        ("POST", r"^/things/[^/]+/shadow$", "UpdateThingShadow"),
        ("DELETE", r"^/things/[^/]+/shadow$", "DeleteThingShadow"),
        ("GET", r"^/api/things/shadow/ListNamedShadowsForThing/[^/]+$", "ListNamedShadowsForThing"),
        ("GET", r"^/retainedMessage$", "ListRetainedMessages"),
        ("GET", r"^/retainedMessage/[^/]+$", "GetRetainedMessage"),
        ("GET", r"^/connections/[^/]+$", "GetConnection"),
        ("DELETE", r"^/connections/[^/]+$", "DeleteConnection"),
        ("GET", r"^/connections/[^/]+/subscriptions$", "ListSubscriptions"),
        ("POST", r"^/connections/[^/]+/messages$", "SendDirectMessage"),
    )
)
"""The iot-data operations other than Publish, by their requestUri in botocore's service model."""

Publish = Callable[[str, bytes, int], None]


class InvalidRequest(ValueError):
    """A publish IoT Core refuses: its topic, its qos or its retain flag."""


def check_topic(topic: str) -> None:
    """Raise InvalidRequest if IoT Core would refuse to publish to `topic`."""
    if not topic:
        raise InvalidRequest("the topic is empty")
    if "+" in topic or "#" in topic:
        raise InvalidRequest(f"topic {topic!r}: wildcards (+ #) are for subscriptions, not for publishing")
    if "\x00" in topic:
        raise InvalidRequest("the topic holds U+0000, which MQTT forbids")
    size = len(topic.encode())
    if size > MAX_TOPIC_BYTES:
        raise InvalidRequest(f"the topic is {size} bytes long; at most {MAX_TOPIC_BYTES}")
    counted = BASIC_INGEST_PREFIX.sub("", topic, count=1)
    slashes = counted.count("/")
    if slashes > MAX_TOPIC_SLASHES:
        raise InvalidRequest(f"topic {topic!r} has {slashes} forward slashes; at most {MAX_TOPIC_SLASHES}")


class IotDataServer(LoopbackService):
    """iot-data Publish on loopback: each accepted message goes to `publish(topic, payload, qos)`.

    The callback runs on the server's connection threads, possibly several at once. `delay_s` is how long
    every publish waits before it is handled (a slow data plane, for timeout tests).
    """

    description = "the IoT data plane"
    thread_name = "iot-data-plane"
    logger = log

    def __init__(self, publish: Publish, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_Handler, host, port)
        self._publish = publish
        self._published = 0

    def start(self) -> None:
        """Listen; returns once requests are accepted."""
        super().start()
        log.info("IoT data plane on %s", self.url)

    @property
    def published(self) -> int:
        """Messages the callback accepted."""
        with self._lock:
            return self._published

    def fail_next(self, count: int) -> None:
        """Answer the next `count` publishes with 503 ServiceUnavailableException, without calling the callback."""
        super().fail_next(count)

    def deliver(self, topic: str, payload: bytes, qos: int) -> str | None:
        """Hand one message to the callback; the reason it was not delivered, or None."""
        with self._lock:
            fault = self._fail_remaining > 0
            self._fail_remaining -= int(fault)
            delay_s = self._delay_s
        if delay_s:
            time.sleep(delay_s)
        if fault:
            return "local fault injection"
        try:
            self._publish(topic, payload, qos)
        except Exception as exc:
            log.warning("publish to %s failed: %s", topic, exc, exc_info=True)
            return f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._published += 1
        return None


class _Handler(LoopbackHandler[IotDataServer]):
    """One connection: Publish, the fault switch, and 404 for the rest."""

    server_version = "LocalIotDataPlane/1.0"
    invalid_request = "InvalidRequestException"
    forbidden = "ForbiddenException"
    too_large = "RequestEntityTooLargeException"
    too_large_message = "the payload is {length} bytes; at most {limit}"
    drain_limit_bytes = DRAIN_LIMIT_BYTES

    def _post(self, url: SplitResult) -> None:
        if not url.path.startswith("/topics/"):
            self._not_found()
            return
        body = self._read_body(MAX_PAYLOAD_BYTES)
        if body is None:
            return
        try:
            topic, qos = _publish_request(url.path, url.query)
        except InvalidRequest as exc:
            self._error(400, "InvalidRequestException", str(exc))
            return
        failure = self.app.deliver(topic, body, qos)
        if failure is not None:
            self._error(503, "ServiceUnavailableException", f"cannot publish to {topic}: {failure}")
            return
        self._send_json(200, None, {"message": "OK", "traceId": str(uuid.uuid4())})

    def _not_found(self) -> None:
        # Read the body out first: the connection is kept alive and its next request starts after it.
        if self._read_body(DRAIN_LIMIT_BYTES) is None:
            return
        path = urlsplit(self.path).path
        for method, pattern, operation in UNSUPPORTED:
            if method == self.command and pattern.match(path):
                self._error(404, "UnsupportedOperation", f"{operation} is not supported by the local IoT data plane")
                return
        self._error(404, "UnknownOperationException", f"no IoT data plane operation at {self.command} {path}")

    def _error(self, status: int, code: str, message: str) -> None:
        self._send_json(status, code, {"message": message, "traceId": str(uuid.uuid4())})


def _publish_request(path: str, query: str) -> tuple[str, int]:
    """(topic, qos) of `POST /topics/{topic}?qos=N&retain=B`; InvalidRequest for what IoT Core refuses."""
    try:
        # The raw segment, decoded once: botocore encodes the topic's "/" as %2F, and %2B is a literal "+".
        topic = unquote_to_bytes(path.removeprefix("/topics/")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the topic is not UTF-8") from None
    check_topic(topic)
    params = parse_qs(query, keep_blank_values=True)
    qos_values = params.get("qos", ["0"])  # the model's default
    if len(qos_values) != 1 or qos_values[0] not in ("0", "1"):
        raise InvalidRequest(f"qos must be 0 or 1, not {','.join(qos_values)}")
    retain = params.get("retain", ["false"])
    if len(retain) != 1 or retain[0].lower() not in ("true", "false"):
        raise InvalidRequest(f"retain must be true or false, not {','.join(retain)}")
    return topic, int(qos_values[0])


def _print_message(topic: str, payload: bytes, qos: int) -> None:
    """Write a publish as one JSON line: the payload as text when it is UTF-8, else base64."""
    try:
        shown: dict[str, str] = {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError:
        shown = {"payload_base64": base64.b64encode(payload).decode()}
    print(json.dumps({"topic": topic, "qos": qos, **shown}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.iot_data",
        description="Answer iot-data Publish on loopback and print each message as a JSON line.",
    )
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one, printed when ready)")
    args = parser.parse_args(argv)
    return serve_until_signalled(IotDataServer(_print_message, port=args.port))


if __name__ == "__main__":
    sys.exit(main())
