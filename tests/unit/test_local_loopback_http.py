"""The loopback HTTP machinery the local AWS APIs share: keep-alive, body limits, the fault switch, a clean stop.

local.sagemaker_endpoint and local.iot_data are tested through boto3 in test_local_endpoints; here a tiny echo
service built on the same base classes is driven with raw HTTP, for what boto3 never sends: chunked or
malformed bodies, a client from another address, a client that hangs up, a stop with connections still open.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import SplitResult

import pytest

from local.loopback_http import LoopbackHandler, LoopbackService
from tests.support import ROOT

BODY_LIMIT_BYTES = 1024
DRAIN_LIMIT_BYTES = 4096


class Echo(LoopbackService):
    """Answers `POST /echo` with its body, after `delay_s`; counts its setups and teardowns."""

    description = "the echo service"
    thread_name = "echo"
    logger = logging.getLogger("tests.echo")

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, setup_fails: bool = False) -> None:
        super().__init__(_EchoHandler, host, port)
        self.setup_fails = setup_fails
        self.setups = 0
        self.teardowns = 0

    def _setup(self) -> None:
        self.setups += 1
        if self.setup_fails:
            raise ValueError("nothing to serve")

    def _teardown(self) -> None:
        self.teardowns += 1


class _EchoHandler(LoopbackHandler[Echo]):
    invalid_request = "InvalidInput"
    forbidden = "Forbidden"
    too_large = "TooLarge"
    too_large_message = "{length} bytes over {limit}"
    drain_limit_bytes = DRAIN_LIMIT_BYTES

    def _post(self, url: SplitResult) -> None:
        if url.path != "/echo":
            self._not_found()
            return
        body = self._read_body(BODY_LIMIT_BYTES)
        if body is None:
            return
        time.sleep(self.app.delay_s)
        self._send(200, body, "application/octet-stream", {})

    def _not_found(self) -> None:
        if self._read_body(self.drain_limit_bytes) is None:
            return
        self._error(404, "NotFound", f"nothing at {self.command} {self.path}")

    def _error(self, status: int, code: str, message: str) -> None:
        self._send_json(status, code, {"message": message})


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo() as running:
        yield running


def _connection(service: Echo) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)


def _raw(service: Echo, request: bytes) -> bytes:
    """Send `request` as it is; everything the server writes until it closes the connection."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _error_of(response: http.client.HTTPResponse) -> tuple[int, str | None, dict[str, Any]]:
    return response.status, response.getheader("x-amzn-ErrorType"), json.loads(response.read())


# -- connections and bodies ----------------------------------------------------------------------------


def test_one_kept_alive_connection_carries_request_after_request(echo: Echo) -> None:
    connection = _connection(echo)
    connection.request("POST", "/echo", body=b"first")
    answers = [connection.getresponse().read()]
    first_socket = connection.sock
    for body in (b"second", b""):
        connection.request("POST", "/echo", body=body)
        answers.append(connection.getresponse().read())

    assert answers == [b"first", b"second", b""]
    assert connection.sock is first_socket, "the server closed a connection it should have kept"
    connection.close()


def test_every_answer_carries_a_request_id_and_its_length(echo: Echo) -> None:
    connection = _connection(echo)
    connection.request("POST", "/echo", body=b"hello")
    response = connection.getresponse()

    assert response.read() == b"hello"
    assert response.getheader("Content-Length") == "5"
    assert len(response.getheader("x-amzn-RequestId") or "") == 36
    connection.close()


def test_a_body_over_the_limit_is_refused_and_the_connection_stays_in_step(echo: Echo) -> None:
    connection = _connection(echo)

    connection.request("POST", "/echo", body=b"x" * (BODY_LIMIT_BYTES + 1))
    status, code, document = _error_of(connection.getresponse())
    connection.request("POST", "/echo", body=b"after")

    assert (status, code) == (413, "TooLarge")
    assert document == {"message": f"{BODY_LIMIT_BYTES + 1} bytes over {BODY_LIMIT_BYTES}"}
    assert connection.getresponse().read() == b"after"
    connection.close()


def test_a_body_too_large_to_drain_is_refused_before_it_is_sent_and_the_connection_closed(echo: Echo) -> None:
    answer = _raw(echo, f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {DRAIN_LIMIT_BYTES + 1}\r\n\r\n".encode())

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"x-amzn-ErrorType: TooLarge\r\n" in answer


@pytest.mark.parametrize(
    ("headers", "status"),
    [("Transfer-Encoding: chunked", 411), ("Content-Length: many", 400), ("Content-Length: -5", 400)],
)
def test_a_body_of_unknown_length_is_refused_and_the_connection_closed(echo: Echo, headers: str, status: int) -> None:
    # _raw reads until the server closes: it returns only because the connection cannot be reused.
    answer = _raw(echo, f"POST /echo HTTP/1.1\r\nHost: x\r\n{headers}\r\n\r\n".encode())

    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"x-amzn-ErrorType: InvalidInput\r\n" in answer


def test_other_paths_and_methods_go_to_the_services_not_found(echo: Echo) -> None:
    connection = _connection(echo)
    for method, path in (("POST", "/elsewhere"), ("GET", "/echo"), ("PUT", "/echo"), ("DELETE", "/")):
        connection.request(method, path, body=b"ignored")
        status, code, document = _error_of(connection.getresponse())
        assert (status, code) == (404, "NotFound"), (method, path)
        assert document["message"] == f"nothing at {method} {path}"
    connection.close()


def test_a_head_request_is_answered_without_a_body(echo: Echo) -> None:
    connection = _connection(echo)

    connection.request("HEAD", "/echo")
    head = connection.getresponse()
    connection.request("POST", "/echo", body=b"next")

    assert (head.status, head.getheader("x-amzn-ErrorType"), head.read()) == (404, "NotFound", b"")
    assert connection.getresponse().read() == b"next"
    connection.close()


# -- the fault switch ----------------------------------------------------------------------------------


def test_the_fault_switch_sets_and_shows_the_switches(echo: Echo) -> None:
    connection = _connection(echo)

    connection.request("POST", "/_local/fault", body=json.dumps({"fail": 2, "delay_s": 0.05}))
    set_response = connection.getresponse()
    set_to = json.loads(set_response.read())
    connection.request("GET", "/_local/fault")
    shown = json.loads(connection.getresponse().read())

    assert set_response.status == 200
    assert set_to == shown == {"fail": 2, "delay_s": 0.05}
    assert echo.faults() == shown
    assert echo.delay_s == 0.05
    connection.close()


@pytest.mark.parametrize("body", [b'{"fail": -1}', b'{"delay_s": 601}', b'{"bogus": 1}', b"[1]", b"not json"])
def test_a_wrong_fault_switch_is_refused_and_changes_nothing(echo: Echo, body: bytes) -> None:
    connection = _connection(echo)

    connection.request("POST", "/_local/fault", body=body)
    status, code, document = _error_of(connection.getresponse())

    assert (status, code) == (400, "InvalidInput")
    assert document["message"].startswith("fault switch: ")
    assert echo.faults() == {"fail": 0, "delay_s": 0.0}
    connection.close()


def _non_loopback_address() -> str:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet leaves: this only picks the outgoing interface
            address = str(probe.getsockname()[0])
    except OSError:
        pytest.skip("this machine has no route off loopback")
    if address.startswith("127."):
        pytest.skip("this machine has no address off loopback")
    return address


def test_the_fault_switch_answers_loopback_clients_only() -> None:
    address = _non_loopback_address()
    with Echo(host="0.0.0.0") as exposed:  # noqa: S104 - to be reached from an address that is not loopback
        connection = http.client.HTTPConnection(address, exposed.port, timeout=10)
        connection.request("POST", "/_local/fault", body=json.dumps({"fail": 5}))
        status, code, document = _error_of(connection.getresponse())
        connection.close()

        assert (status, code) == (403, "Forbidden")
        assert "loopback clients only" in document["message"]
        assert exposed.faults()["fail"] == 0


def test_fault_switches_in_process_refuse_values_out_of_range(echo: Echo) -> None:
    with pytest.raises(ValueError, match="0 or more"):
        echo.fail_next(-1)
    with pytest.raises(ValueError, match="between 0 and 600"):
        echo.delay_s = 600.5

    echo.fail_next(3)
    echo.delay_s = 1

    assert echo.faults() == {"fail": 3, "delay_s": 1.0}


# -- lifecycle -----------------------------------------------------------------------------------------


def test_stop_ends_idle_kept_alive_connections_at_once_and_leaves_no_thread(echo: Echo) -> None:
    before = set(threading.enumerate())
    connection = _connection(echo)
    connection.request("POST", "/echo", body=b"hello")
    connection.getresponse().read()  # the connection now idles, kept alive
    assert connection.sock is not None
    started = time.monotonic()

    echo.stop()

    assert time.monotonic() - started < 5, "stop() waited for the idle connection to time out"
    assert connection.sock.recv(1) == b"", "the idle connection is still open"
    assert not set(threading.enumerate()) - before, "a connection's thread outlived stop()"
    assert not [t for t in threading.enumerate() if t.name == Echo.thread_name], "the serving thread outlived stop()"
    connection.close()


def test_a_request_in_flight_when_stop_is_called_is_still_answered(echo: Echo) -> None:
    echo.delay_s = 0.5
    answers: list[bytes] = []

    def call() -> None:
        connection = _connection(echo)
        connection.request("POST", "/echo", body=b"slow")
        answers.append(connection.getresponse().read())
        connection.close()

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)  # the request is being handled
    echo.stop()
    caller.join(timeout=10)

    assert answers == [b"slow"]


def test_a_client_that_hangs_up_before_its_answer_is_logged_as_routine(
    echo: Echo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tests.echo")
    echo.delay_s = 0.3
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        time.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset

    echo.stop()  # joins the handler thread: whatever it logged is logged

    records = [r for r in caplog.records if r.name == "tests.echo"]
    assert [r.getMessage() for r in records] == ["127.0.0.1 went away before its answer"]
    assert all(r.levelno == logging.INFO for r in records)


def test_start_twice_is_an_error_and_stop_is_idempotent() -> None:
    echo = Echo()
    assert echo.port == 0  # the requested port, until it listens
    echo.start()
    try:
        assert echo.port != 0
        assert echo.url == f"http://127.0.0.1:{echo.port}"
        with pytest.raises(RuntimeError, match="the echo service is already started"):
            echo.start()
        assert echo.setups == 1
    finally:
        echo.stop()
    echo.stop()

    assert echo.teardowns == 2


def test_what_setup_took_is_released_when_setup_or_listening_fails() -> None:
    broken = Echo(setup_fails=True)
    with pytest.raises(ValueError, match="nothing to serve"):
        broken.start()
    assert (broken.setups, broken.teardowns) == (1, 1)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = Echo(port=taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            busy.start()
    assert (busy.setups, busy.teardowns) == (1, 1)


def test_an_entry_that_cannot_listen_exits_2_with_the_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        finished = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "local.iot_data", "--port", str(taken.getsockname()[1])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.splitlines()[-1].startswith("error: ")
