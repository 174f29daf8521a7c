"""moto's server as the local stack runs it: moto's own application behind a keep-alive HTTP/1.1 server.

`python -m moto.server` serves moto's application (`DomainDispatcherApplication`) with Werkzeug's
development server, which closes the connection after every answer, logs every request, and looks
the Host header up among moto's ~200 service folders on disk each time. AWS's endpoints keep
connections alive and boto3 reuses its pooled ones; here too: each connection is a thread that answers
request after request (HTTP/1.1, Nagle's algorithm off, every answer with its Content-Length), the
service lookup by host is remembered (it depends on the host alone), and only errors are logged: a
reading through the local stack costs moto's process about a third less CPU than through
`python -m moto.server`, and the whole stack about half the kernel time (no connection set up and torn
down per call).
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, cast
from urllib.parse import unquote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

log = logging.getLogger("local.moto_server")

IDLE_TIMEOUT_S = 60.0
"""A kept-alive connection idle this long is closed, as the real front ends close idle connections."""


class Application(DomainDispatcherApplication):
    """moto's dispatcher, with the service each Host header names remembered."""

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one application per process, alive as long as the process
    def get_backend_for_host(self, host: str | None) -> Any:
        return super().get_backend_for_host(host)


def application() -> Application:
    """moto's whole application: every service it emulates, each chosen by the request's host or signature."""
    return Application(create_backend_app)


class WsgiHandler(BaseHTTPRequestHandler):
    """One kept-alive connection: each request's body read whole, handed to the WSGI application, answered whole."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave in two writes: no 40 ms wait for a delayed ACK
    timeout = IDLE_TIMEOUT_S
    app: Any = None

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("%s " + format, self.address_string(), *args)

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._chunked_body()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _chunked_body(self) -> bytes:
        body = bytearray()
        while size := int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16):
            body += self.rfile.read(size)
            self.rfile.readline()  # the CRLF after the chunk
        while self.rfile.readline().strip():  # trailers, up to the blank line
            pass
        return bytes(body)

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = cast(tuple[str, int], self.server.server_address)[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "QUERY_STRING": query,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if content_type := self.headers.get("Content-Type"):
            environ["CONTENT_TYPE"] = content_type
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _answer(self) -> None:
        body = self._body()
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return chunks.append

        result: Iterable[bytes] = self.app(self._environ(body), start_response)
        try:
            chunks.extend(result)
        finally:
            if close := getattr(result, "close", None):
                close()
        status, headers = started
        code, _, reason = status.partition(" ")
        payload = b"".join(chunks)
        length = str(len(payload))
        if self.command == "HEAD":  # the length of what a GET would answer (S3's HeadObject), and no body
            length = next((value for name, value in headers if name.lower() == "content-length"), "0")
            payload = b""
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self) -> None:
        try:
            self._answer()
        except Exception:
            log.exception("error answering %s %s", self.command, self.path)
            self.close_connection = True
            self.send_error(500)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a kept-alive connection's thread ends with the process


def _exit_now(signum: int, frame: FrameType | None) -> None:
    """Exit at once: moto's state lives in this process only, and tearing its module graph down took a second."""
    logging.shutdown()
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _exit_now)
    WsgiHandler.app = application()
    with Server((args.host, args.port), WsgiHandler) as server:
        server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
