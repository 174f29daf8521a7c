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
import contextlib
import ipaddress
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, cast
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

log = logging.getLogger("local.iot_data")

MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
BASIC_INGEST_PREFIX = re.compile(r"^\$aws/rules/[^/]+/")
"""Basic Ingest topics' first three slashes do not count against the limit (IoT Core's quotas say so)."""
MAX_PAYLOAD_BYTES = 128 * 1024
"""IoT Core's message size limit: a PUBLISH payload of 128 KB."""
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
"""An oversized body up to this is read and dropped so the 413 reaches the client on a reusable connection."""
IDLE_TIMEOUT_S = 60.0
FAULT_PATH = "/_local/fault"

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


class IotDataServer:
    """iot-data Publish on loopback: each accepted message goes to `publish(topic, payload, qos)`.

    The callback runs on the server's connection threads, possibly several at once.
    """

    def __init__(self, publish: Publish, host: str = "127.0.0.1", port: int = 0) -> None:
        self._publish = publish
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._published = 0
        self._fail_remaining = 0
        self._delay_s = 0.0
        self._httpd: _LoopbackServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen; returns once requests are accepted."""
        if self._httpd is not None:
            raise RuntimeError("the IoT data plane is already started")
        self._httpd = _LoopbackServer((self.host, self._requested_port), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="iot-data-plane", daemon=True
        )
        self._thread.start()
        log.info("IoT data plane on %s", self.url)

    def stop(self) -> None:
        """Stop listening, finish the publishes in flight, join every thread. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.close_connections()
            httpd.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> IotDataServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            return self._requested_port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def published(self) -> int:
        """Messages the callback accepted."""
        with self._lock:
            return self._published

    def fail_next(self, count: int) -> None:
        """Answer the next `count` publishes with 503 ServiceUnavailableException, without calling the callback."""
        if count < 0:
            raise ValueError(f"count must be 0 or more, not {count}")
        with self._lock:
            self._fail_remaining = count

    @property
    def delay_s(self) -> float:
        """Seconds every publish waits before it is handled (a slow data plane, for timeout tests)."""
        with self._lock:
            return self._delay_s

    @delay_s.setter
    def delay_s(self, seconds: float) -> None:
        if not 0 <= seconds <= 600:
            raise ValueError(f"delay_s must be between 0 and 600, not {seconds}")
        with self._lock:
            self._delay_s = float(seconds)

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return {"fail": self._fail_remaining, "delay_s": self._delay_s}

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


class _LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server whose stop() ends idle kept-alive connections instead of waiting for them."""

    daemon_threads = False  # server_close() joins the handler threads: stop() leaves none behind
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: IotDataServer) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away before its answer (it timed out) is routine; anything else is logged in full."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.info("%s went away before its answer", client_address[0])
            return
        log.exception("error while answering %s", client_address[0])

    def close_connections(self) -> None:
        """Shut the read side of every connection: an idle handler sees end of file, a busy one still answers."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    """One connection: Publish, the fault switch, and 404 for the rest."""

    protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses its pooled connections
    # Headers and body leave in two writes; with Nagle on, the second waits for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_S
    server_version = "LocalIotDataPlane/1.0"

    @property
    def app(self) -> IotDataServer:
        return cast(_LoopbackServer, self.server).app

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path == FAULT_PATH:
            self._faults()
            return
        if not url.path.startswith("/topics/"):
            self._unsupported()
            return
        body = self._read_body(MAX_PAYLOAD_BYTES, "RequestEntityTooLargeException")
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

    def do_GET(self) -> None:
        if urlsplit(self.path).path == FAULT_PATH:
            if self._loopback_client():
                self._send_json(200, None, self.app.faults())
            return
        self._unsupported()

    def _other_method(self) -> None:
        self._unsupported()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other_method

    # -- pieces ------------------------------------------------------------------------------------

    def _unsupported(self) -> None:
        if self._read_body(DRAIN_LIMIT_BYTES, "RequestEntityTooLargeException") is None:
            return
        path = urlsplit(self.path).path
        for method, pattern, operation in UNSUPPORTED:
            if method == self.command and pattern.match(path):
                self._error(404, "UnsupportedOperation", f"{operation} is not supported by the local IoT data plane")
                return
        self._error(404, "UnknownOperationException", f"no IoT data plane operation at {self.command} {path}")

    def _faults(self) -> None:
        if not self._loopback_client():
            return
        body = self._read_body(64 * 1024, "RequestEntityTooLargeException")
        if body is None:
            return
        try:
            switches = json.loads(body or b"{}")
            if not isinstance(switches, dict) or set(switches) - {"fail", "delay_s"}:
                raise ValueError('expected an object with "fail" and/or "delay_s"')
            if "delay_s" in switches:
                self.app.delay_s = float(switches["delay_s"])
            if "fail" in switches:
                self.app.fail_next(int(switches["fail"]))
        except (ValueError, TypeError) as exc:
            self._error(400, "InvalidRequestException", f"fault switch: {exc}")
            return
        log.info("fault switches now %s", self.app.faults())
        self._send_json(200, None, self.app.faults())

    def _loopback_client(self) -> bool:
        """The fault switch is for the tests on this machine; anyone else gets 403."""
        if ipaddress.ip_address(self.client_address[0]).is_loopback:
            return True
        self.close_connection = True  # its body is left unread
        self._error(403, "ForbiddenException", "the fault switch answers loopback clients only")
        return False

    def _read_body(self, limit: int, too_large: str) -> bytes | None:
        """The request body, or None once an error is answered (too large, no length, cut short)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # the body's end is unknown: the connection cannot be reused
            self._error(411, "InvalidRequestException", "send the body with a Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(400, "InvalidRequestException", "invalid Content-Length")
            return None
        if length > limit:
            if length <= DRAIN_LIMIT_BYTES:
                _drain(self.rfile, length)
            else:
                self.close_connection = True
            self._error(413, too_large, f"the payload is {length} bytes; at most {limit}")
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-body (or stop() shut the connection)
            self.close_connection = True
            return None
        return body

    def _error(self, status: int, code: str, message: str) -> None:
        self._send_json(status, code, {"message": message, "traceId": str(uuid.uuid4())})

    def _send_json(self, status: int, error_type: str | None, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:  # botocore's rest-json parser takes the error code from this header
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


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


def _drain(stream: Any, length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = stream.read(min(remaining, 1024 * 1024))
        if not chunk:
            return
        remaining -= len(chunk)


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = IotDataServer(_print_message, port=args.port)
    try:
        server.start()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"listening on {server.url}", flush=True)
        while not stopping.wait(0.5):  # a timed wait: the signal handler runs between waits
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
