"""The operator console on one machine: the page, its API through ConsoleFunction, and a local sign-in.

One HTTP server on loopback (http://127.0.0.1:PORT, printed when the stack starts) plays three parts:

- API Gateway's HTTP API: the template's four console routes; a route's request is authorized as the JWT
  authorizer does (local.console_auth.JwtVerifier), turned into the payload 2.0 event with the verified
  claims, and run by the function's own handler in the local stack's Lambda environment (`invoke`);
- CloudFront and the site bucket: the files of the repository's `web/` folder at `/`, with the
  security headers of the template's response headers policy (its CSP, with the API on the same origin);
- the user pool's sign-in: `/oauth2/authorize` (a page with a button for each local user),
  `/oauth2/token` (authorization code with PKCE S256), `/logout`, and the issuer's JWKS.

It also writes `tokens.json` (an access and an ID token for the local operator and the local viewer) to
`.local-stack/console/`, readable by its owner only (docs/console.md, "The console on one machine").
"""

from __future__ import annotations

import html
import json
import logging
import mimetypes
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from local.console_auth import (
    OPERATOR,
    VIEWER,
    JwtVerifier,
    LocalIssuer,
    LocalUser,
    Unauthorized,
    claims_context,
    pkce_matches,
)

log = logging.getLogger("local.console")

REPO = Path(__file__).resolve().parent.parent
STATIC_DIR = REPO / "web"
DEFAULT_PORT = 8765
"""Tried first, so the address is the same from one run to the next; a free port if it is taken."""
CLIENT_ID = "local-console"
TOKEN_LIFETIME_S = 12 * 3600
"""Local tokens last a long demo; the stack's own last 60 minutes (template.yaml, ConsoleUserPoolClient)."""
CODE_LIFETIME_S = 300
BODY_MAX_BYTES = 10 * 1024 * 1024
"""An HTTP API's payload limit; the function refuses far less (4 KB) itself."""
ROUTES = (
    ("GET", re.compile(r"^/motors$"), "GET /motors"),
    ("GET", re.compile(r"^/motors/(?P<id>[^/]+)$"), "GET /motors/{id}"),
    ("GET", re.compile(r"^/motors/(?P<id>[^/]+)/history$"), "GET /motors/{id}/history"),
    ("POST", re.compile(r"^/motors/(?P<id>[^/]+)/actions$"), "POST /motors/{id}/actions"),
)
"""The HttpApi events of ConsoleFunction in template.yaml."""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; manifest-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
"""template.yaml's ConsoleHeadersPolicy, with the API and the sign-in on the page's own origin (no HSTS: HTTP)."""

Invoke = Callable[[dict[str, Any]], tuple[Any, dict[str, Any] | None]]
"""Run the function with an event and wait: (result, None) or (None, error), as local.lambdas.LocalFunction.invoke."""


class ConsoleServer:
    """Start with `start()`; `url`, `tokens_path` once started; `stop()` to end."""

    def __init__(self, invoke: Invoke, state_dir: Path, *, static_dir: Path = STATIC_DIR, port: int = DEFAULT_PORT):
        self.invoke = invoke
        self.static_dir = static_dir
        self.tokens_path = state_dir / "console" / "tokens.json"
        self._server = _bind(port)
        self._server.console = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = LocalIssuer(f"{self.url}/local-issuer", CLIENT_ID)
        self.verifier = JwtVerifier(self.issuer.issuer, [CLIENT_ID], self.issuer.jwks())
        self.users = {"operator": OPERATOR, "viewer": VIEWER}
        self._codes: dict[str, tuple[LocalUser, str, str, float]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, name="console", daemon=True)

    def start(self) -> None:
        self._write_tokens()
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def config(self) -> dict[str, Any]:
        """The page's config.json (docs/console.md, "Page settings")."""
        return {
            "api_url": self.url,
            "auth": {
                "authorize_url": f"{self.url}/oauth2/authorize",
                "token_url": f"{self.url}/oauth2/token",
                "logout_url": f"{self.url}/logout",
                "client_id": CLIENT_ID,
                "scopes": "openid email profile",
            },
            "refresh_seconds": 5,
        }

    def _write_tokens(self) -> None:
        self.tokens_path.parent.mkdir(parents=True, exist_ok=True)
        self.tokens_path.parent.chmod(0o700)
        expires = datetime.fromtimestamp(time.time() + TOKEN_LIFETIME_S, tz=UTC).isoformat(timespec="seconds")
        users = {
            role: {"username": user.username, "groups": list(user.groups), "expires_at": expires}
            | self.issuer.tokens(user, TOKEN_LIFETIME_S)
            for role, user in self.users.items()
        }
        document = {"console_url": f"{self.url}/", "issuer": self.issuer.issuer, "client_id": CLIENT_ID, **users}
        self.tokens_path.touch(mode=0o600)
        self.tokens_path.chmod(0o600)
        self.tokens_path.write_text(json.dumps(document, indent=2) + "\n")

    # -- the sign-in

    def new_code(self, user: LocalUser, challenge: str, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = (user, challenge, redirect_uri, time.monotonic() + CODE_LIFETIME_S)
        return code

    def redeem(self, form: dict[str, str]) -> dict[str, Any]:
        """The token endpoint: an authorization code, its PKCE verifier, the same client and redirect URI."""
        if form.get("grant_type") != "authorization_code":
            raise ValueError("unsupported_grant_type")
        with self._lock:
            found = self._codes.pop(form.get("code", ""), None)  # a code is good once
        if found is None or found[3] < time.monotonic():
            raise ValueError("invalid_grant")
        user, challenge, redirect_uri, _ = found
        if form.get("client_id") != CLIENT_ID or form.get("redirect_uri") != redirect_uri:
            raise ValueError("invalid_grant")
        if not pkce_matches(form.get("code_verifier", ""), challenge):
            raise ValueError("invalid_grant")
        return self.issuer.tokens(user, 3600)

    def own_page(self, uri: str) -> bool:
        return uri == self.url or uri.startswith(f"{self.url}/")


def _bind(port: int) -> ThreadingHTTPServer:
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    except OSError:
        return ThreadingHTTPServer(("127.0.0.1", 0), _Handler)


def api_event(
    method: str, route_key: str, *, path: str, query: str, headers: dict[str, str], body: str, claims: dict[str, Any]
) -> dict[str, Any]:
    """The payload 2.0 event an HTTP API sends its integration, with the verified claims as strings."""
    now = time.time()
    parsed = parse_qs(query, keep_blank_values=True)
    match = next(pattern.match(path) for verb, pattern, key in ROUTES if key == route_key)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "authorizer": {"jwt": {"claims": claims_context(claims), "scopes": None}},
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": datetime.fromtimestamp(now, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if parsed:
        event["queryStringParameters"] = {name: ",".join(values) for name, values in parsed.items()}
    if match and match.groupdict():
        event["pathParameters"] = match.groupdict()
    if body:
        event["body"] = body
    return event


class _Handler(BaseHTTPRequestHandler):
    server_version = "local-console"
    protocol_version = "HTTP/1.1"

    @property
    def console(self) -> ConsoleServer:
        return self.server.console  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > BODY_MAX_BYTES:
            self._json(413, {"message": "Request Entity Too Large"})
            return
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        for verb, pattern, route_key in ROUTES:
            if pattern.match(url.path):
                if verb == method:
                    self._api(method, route_key, url.path, url.query, body)
                else:
                    self._json(404, {"message": "Not Found"})
                return
        if url.path.startswith("/motors"):
            self._json(404, {"message": "Not Found"})  # no such route: API Gateway answers, the function never runs
            return
        pages = {
            ("GET", "/config.json"): lambda: self._json(200, self.console.config()),
            ("GET", "/.well-known/jwks.json"): lambda: self._json(200, self.console.issuer.jwks()),
            ("GET", "/local-issuer/.well-known/jwks.json"): lambda: self._json(200, self.console.issuer.jwks()),
            ("GET", "/oauth2/authorize"): lambda: self._authorize_page(parse_qs(url.query)),
            ("POST", "/oauth2/authorize"): lambda: self._authorize(parse_qs(body)),
            ("POST", "/oauth2/token"): lambda: self._token(parse_qs(body)),
            ("GET", "/logout"): lambda: self._logout(parse_qs(url.query)),
        }
        page = pages.get((method, url.path))
        if page is not None:
            page()
        elif method == "GET":
            self._static(url.path)
        else:
            self._json(405, {"message": "Method Not Allowed"})

    # -- the API, as API Gateway runs it

    def _api(self, method: str, route_key: str, path: str, query: str, body: str) -> None:
        try:
            claims = self.console.verifier.verify(self.headers.get("Authorization"))
        except Unauthorized as exc:
            challenge = f'Bearer scope="" error="invalid_token" error_description="{exc}"'
            self._json(401, {"message": "Unauthorized"}, {"www-authenticate": challenge})
            return
        event = api_event(
            method, route_key, path=path, query=query, headers=dict(self.headers.items()), body=body, claims=claims
        )
        result, error = self.console.invoke(event)
        if error is not None or not isinstance(result, dict) or "statusCode" not in result:
            log.warning("ConsoleFunction failed: %s", error)
            self._json(500, {"message": "Internal Server Error"})
            return
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        self._send(int(result["statusCode"]), str(result.get("body") or "").encode(), headers)

    # -- the sign-in, as the user pool's pages run it

    def _authorize_page(self, query: dict[str, list[str]]) -> None:
        params = {name: values[0] for name, values in query.items()}
        problem = self._bad_request(params)
        if problem:
            self._send(400, problem.encode(), {"Content-Type": "text/plain; charset=utf-8"})
            return
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in params.items()
        )
        buttons = "".join(
            f'<p><button name="user" value="{role}">Sign in as {html.escape(user.username)} '
            f"({', '.join(user.groups)})</button></p>"
            for role, user in self.console.users.items()
        )
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Local sign-in</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
            "<h1>Local sign-in</h1><p>The local stack's users (no password: this server listens on loopback only).</p>"
            f'<form method="post" action="/oauth2/authorize">{hidden}{buttons}</form></body></html>'
        )
        self._send(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _authorize(self, form: dict[str, list[str]]) -> None:
        params = {name: values[0] for name, values in form.items()}
        user = self.console.users.get(params.pop("user", ""))
        problem = self._bad_request(params) or ("" if user is not None else "unknown user")
        if problem or user is None:
            self._send(400, problem.encode(), {"Content-Type": "text/plain; charset=utf-8"})
            return
        code = self.console.new_code(user, params["code_challenge"], params["redirect_uri"])
        answer = {"code": code} | ({"state": params["state"]} if "state" in params else {})
        self._send(302, b"", {"Location": f"{params['redirect_uri']}?{urlencode(answer)}"})

    def _bad_request(self, params: dict[str, str]) -> str:
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("client_id") != CLIENT_ID:
            return f"unknown client_id; this server's is {CLIENT_ID}"
        if not self.console.own_page(params.get("redirect_uri", "")):
            return f"redirect_uri must be on {self.console.url}"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE is required: code_challenge with code_challenge_method S256"
        return ""

    def _token(self, form: dict[str, list[str]]) -> None:
        try:
            tokens = self.console.redeem({name: values[0] for name, values in form.items()})
        except ValueError as exc:
            self._json(400, {"error": str(exc)})
            return
        self._json(200, tokens, {"Cache-Control": "no-store"})

    def _logout(self, query: dict[str, list[str]]) -> None:
        target = (query.get("logout_uri") or [f"{self.console.url}/"])[0]
        self._send(302, b"", {"Location": target if self.console.own_page(target) else f"{self.console.url}/"})

    # -- the page's files

    def _static(self, path: str) -> None:
        root = self.console.static_dir.resolve()
        wanted = (root / path.lstrip("/")).resolve()
        if wanted.is_dir():
            wanted = wanted / "index.html"
        if not wanted.is_relative_to(root) or not wanted.is_file():
            if path == "/":
                note = (
                    "<!doctype html><title>Operator console</title><h1>Operator console</h1>"
                    f"<p>No page in {html.escape(str(root))} yet. The API answers on this address "
                    "(docs/console.md).</p>"
                )
                self._send(200, note.encode(), {"Content-Type": "text/html; charset=utf-8"})
            else:
                self._send(404, b"Not Found", {"Content-Type": "text/plain; charset=utf-8"})
            return
        kind = mimetypes.guess_type(wanted.name)[0] or "application/octet-stream"
        self._send(200, wanted.read_bytes(), {"Content-Type": kind, "Cache-Control": "no-cache"})

    # -- answers

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json"} | (headers or {}))

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        for name, value in (SECURITY_HEADERS | headers).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


FUNCTION = "ConsoleFunction"


def start_console(
    functions: Mapping[str, Any], state_dir: Path, say: Callable[[str], None], port: int = DEFAULT_PORT
) -> ConsoleServer | None:
    """The console server over the stack's ConsoleFunction, started, saying where it is and where the tokens
    are; None if the template has no ConsoleFunction."""
    function = functions.get(FUNCTION)
    if function is None:
        return None
    server = ConsoleServer(function.invoke, state_dir, port=port)
    server.start()
    say(f"operator console: {server.url}/ (API: {server.url}/motors; local tokens: {server.tokens_path})")
    return server
