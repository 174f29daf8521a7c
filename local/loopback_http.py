"""An AWS API on loopback: the threaded keep-alive HTTP server, the rest-json handler and the fault switches.

local.sagemaker_endpoint and local.iot_data each answer one AWS API on 127.0.0.1 for the unchanged boto3
clients; what they share lives here. A `LoopbackService` starts and stops the server and holds the fault
switches (`fail_next`, `delay_s`); a `LoopbackHandler` answers one kept-alive connection: HTTP/1.1 with
Nagle's algorithm off, bodies read with a Content-Length up to a limit, JSON answers with the error code in
`x-amzn-ErrorType` (as botocore's rest-json parser reads them), and `GET|POST /_local/fault` for loopback
clients only. `serve_until_signalled` is the `python -m` entries' main loop.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, ClassVar, Generic, Self, TypeVar, cast
from urllib.parse import SplitResult, urlsplit

IDLE_TIMEOUT_S = 60.0
"""A kept-alive connection idle this long is closed, as the real front ends close idle connections."""
FAULT_PATH = "/_local/fault"
FAULT_BODY_LIMIT_BYTES = 64 * 1024
MAX_DELAY_S = 600


class LoopbackService:
    """One AWS API on loopback: start/stop, port/url, and the fault switches tests use to take it down.

    A subclass passes its handler class, names itself (`description`, `thread_name`, `logger`), and
    overrides `_setup` and `_teardown` for what it holds while it listens. `_lock` guards the fault
    switches and may guard the subclass's counters too.
    """

    description: ClassVar[str] = "the loopback service"
    """For messages: "<description> is already started"."""
    thread_name: ClassVar[str] = "loopback-http"
    logger: ClassVar[logging.Logger] = logging.getLogger("local.loopback_http")

    def __init__(self, handler: type[LoopbackHandler[Any]], host: str, port: int) -> None:
        self.host = host
        self._requested_port = port
        self._handler = handler
        self._lock = threading.Lock()
        self._fail_remaining = 0
        self._delay_s = 0.0
        self._httpd: _LoopbackServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen; returns once requests are accepted."""
        if self._httpd is not None:
            raise RuntimeError(f"{self.description} is already started")
        try:
            self._setup()
            self._httpd = _LoopbackServer((self.host, self._requested_port), self._handler, self)
        except BaseException:
            self._teardown()
            raise
        # The socket listens from the constructor on: a request made now waits in the backlog.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, finish the requests in flight, join every thread, release what `_setup` took. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.close_connections()
            httpd.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._teardown()

    def _setup(self) -> None:
        """What the service needs before it listens; `_teardown` runs if this or the listening fails."""

    def _teardown(self) -> None:
        """Release what `_setup` took, whatever part of it ran. Idempotent."""

    def __enter__(self) -> Self:
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

    # -- fault switches ----------------------------------------------------------------------------

    def fail_next(self, count: int) -> None:
        """Answer the next `count` requests with an error, without doing their work."""
        check_fail_count(count)
        with self._lock:
            self._fail_remaining = count

    @property
    def delay_s(self) -> float:
        """Seconds every request waits before it is handled (a slow service, for timeout tests)."""
        with self._lock:
            return self._delay_s

    @delay_s.setter
    def delay_s(self, seconds: float) -> None:
        if not 0 <= seconds <= MAX_DELAY_S:
            raise ValueError(f"delay_s must be between 0 and {MAX_DELAY_S}, not {seconds}")
        with self._lock:
            self._delay_s = float(seconds)

    def faults(self) -> dict[str, Any]:
        """The fault switches now: `{"fail": remaining, "delay_s": ...}`."""
        with self._lock:
            return {"fail": self._fail_remaining, "delay_s": self._delay_s}

    def set_faults(self, switches: Any) -> None:
        """Apply `POST /_local/fault`'s document, `{"fail": n, "delay_s": x}`, every key optional.

        ValueError or TypeError if the document is not that.
        """
        if not isinstance(switches, dict) or set(switches) - {"fail", "delay_s"}:
            raise ValueError('expected an object with "fail" and/or "delay_s"')
        if "delay_s" in switches:
            self.delay_s = float(switches["delay_s"])
        if "fail" in switches:
            self.fail_next(int(switches["fail"]))


def check_fail_count(count: int) -> None:
    """ValueError unless `count` is a number of requests to fail."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")


class _LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server whose stop() ends idle kept-alive connections instead of waiting for them."""

    daemon_threads = False  # server_close() joins the handler threads: stop() leaves none behind
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: LoopbackService) -> None:
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
            self.app.logger.info("%s went away before its answer", client_address[0])
            return
        self.app.logger.exception("error while answering %s", client_address[0])

    def close_connections(self) -> None:
        """Shut the read side of every connection: an idle handler sees end of file, a busy one still answers."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


ServiceT = TypeVar("ServiceT", bound=LoopbackService)


class LoopbackHandler(BaseHTTPRequestHandler, Generic[ServiceT]):
    """One kept-alive connection to a LoopbackService: the fault switch here, the API's routes in a subclass.

    A subclass answers `_post` (a POST anywhere but the fault switch), `_not_found` (every other request),
    shapes its errors in `_error`, and names its error codes and body limits below.
    """

    protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses its pooled connections
    # Headers and body leave in two writes; with Nagle on, the second waits for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_S

    invalid_request: ClassVar[str]
    """The API's error code for a request it cannot read: no Content-Length, a bad one, a bad fault switch."""
    forbidden: ClassVar[str]
    """The API's error code for a fault switch request from another machine (403)."""
    too_large: ClassVar[str]
    """The API's error code for a body over the limit (413)."""
    too_large_message: ClassVar[str]
    """Its message, formatted with `length` and `limit` (bytes)."""
    drain_limit_bytes: ClassVar[int]
    """An oversized body up to this is read and dropped so the 413 reaches the client on a reusable connection."""

    @property
    def app(self) -> ServiceT:
        return cast(ServiceT, cast(_LoopbackServer, self.server).app)

    def log_message(self, format: str, *args: Any) -> None:
        self.app.logger.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path == FAULT_PATH:
            self._faults()
            return
        self._post(url)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == FAULT_PATH:
            if self._loopback_client():
                self._send_json(200, None, self.app.faults())
            return
        self._not_found()

    def _other_method(self) -> None:
        self._not_found()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other_method

    # -- the API's part ----------------------------------------------------------------------------

    def _post(self, url: SplitResult) -> None:
        """Answer a POST to `url` (anywhere but the fault switch)."""
        self._not_found()

    def _not_found(self) -> None:
        """Answer a request for no operation of the API: read its body out, then 404."""
        raise NotImplementedError

    def _error(self, status: int, code: str, message: str) -> None:
        """Answer an error as the API's clients parse it: the code in x-amzn-ErrorType, the message in the body."""
        raise NotImplementedError

    # -- pieces ------------------------------------------------------------------------------------

    def _faults(self) -> None:
        if not self._loopback_client():
            return
        body = self._read_body(FAULT_BODY_LIMIT_BYTES)
        if body is None:
            return
        try:
            self.app.set_faults(json.loads(body or b"{}"))
        except (ValueError, TypeError) as exc:
            self._error(400, self.invalid_request, f"fault switch: {exc}")
            return
        self.app.logger.info("fault switches now %s", self.app.faults())
        self._send_json(200, None, self.app.faults())

    def _loopback_client(self) -> bool:
        """The fault switch is for the tests on this machine; anyone else gets 403."""
        if ipaddress.ip_address(self.client_address[0]).is_loopback:
            return True
        self.close_connection = True  # its body is left unread
        self._error(403, self.forbidden, "the fault switch answers loopback clients only")
        return False

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or None once an error is answered (too large, no length, cut short)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # the body's end is unknown: the connection cannot be reused
            self._error(411, self.invalid_request, "send the body with a Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(400, self.invalid_request, "invalid Content-Length")
            return None
        if length > limit:
            if length <= self.drain_limit_bytes:
                _drain(self.rfile, length)
            else:
                self.close_connection = True
            self._error(413, self.too_large, self.too_large_message.format(length=length, limit=limit))
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-body (or stop() shut the connection)
            self.close_connection = True
            return None
        return body

    def _send_json(self, status: int, error_type: str | None, document: dict[str, Any]) -> None:
        # botocore's rest-json parser takes the error code from this header, the fields from the body.
        headers = {"x-amzn-ErrorType": error_type} if error_type else {}
        self._send(status, json.dumps(document).encode(), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _drain(stream: Any, length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = stream.read(min(remaining, 1024 * 1024))
        if not chunk:
            return
        remaining -= len(chunk)


def serve_until_signalled(service: LoopbackService, startup_errors: tuple[type[Exception], ...] = (OSError,)) -> int:
    """A `python -m` entry's life: start, print "listening on <url>", serve until SIGTERM or SIGINT, stop.

    The exit status: 0 once stopped, 2 (the error on stderr) if starting raised one of `startup_errors`.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        service.logger.info("%s: stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        service.start()
    except startup_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"listening on {service.url}", flush=True)
        # A timed wait: the signal handler runs between waits on every platform.
        while not stopping.wait(0.5):
            pass
    finally:
        service.stop()
    return 0
