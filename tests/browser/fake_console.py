"""A small fake of the console server's contract (docs/console.md), for the browser tests.

It serves web/ at `/` under the strict content security policy CloudFront sends, `config.json`, the
local sign-in (authorization code with PKCE: an authorize page with a button per user, a token endpoint
that checks the verifier) and the four API routes over an in-memory fleet of three motors. Tokens are
HS256 JWTs it signs and verifies itself; everything the page relies on (401 without a token, 403 for a
viewer's action, 409 for an action that does not apply, the operator taken from the token) is as the
contract says.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

WEB = Path(__file__).resolve().parents[2] / "web"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
CLIENT_ID = "local-console"
USERS = {"operator": ("local-operator", ["operators"]), "viewer": ("local-viewer", ["viewers"])}
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
         ".svg": "image/svg+xml"}  # fmt: skip
APPLIES = {
    "acknowledge": {"ACTIVE": "ACKNOWLEDGED", "LATCHED": "NORMAL"},
    "reset": {"ACTIVE": "NORMAL", "ACKNOWLEDGED": "NORMAL", "LATCHED": "NORMAL"},
    "enable": {"DISABLED": "NORMAL"},
}
ACTIONS_BY_STATE = {
    "ACTIVE": ["acknowledge", "snooze", "disable", "reset"],
    "LATCHED": ["acknowledge", "snooze", "disable", "reset"],
    "ACKNOWLEDGED": ["snooze", "disable", "reset"],
    "SNOOZED": ["snooze", "disable"],
    "NORMAL": ["snooze", "disable"],
    "DISABLED": ["enable"],
}
"""The contract's `actions` of an alarm in each state, in the order the API lists them."""
RANK = {"ACTIVE": 5, "LATCHED": 4, "ACKNOWLEDGED": 3, "SNOOZED": 2, "DISABLED": 1, "NORMAL": 0}
BODY_MAX = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _alarm(name: str, kind: str, state: str, since: datetime | None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "severity": "high", "state": state, "snoozed_until": None, "value": None,
            "active_since": _iso(since) if since and state not in ("NORMAL", "DISABLED") else None}  # fmt: skip


def _fleet(now: datetime) -> dict[str, dict[str, Any]]:
    """Three motors: one with an ACTIVE predictive alarm, one LATCHED condition alarm, one healthy."""
    names = (("schedule", "schedule"), ("fluid_overtemperature", "condition"), ("predictive", "predictive"))
    states = {
        "motor-002": {"predictive": "ACTIVE"},
        "motor-004": {"fluid_overtemperature": "LATCHED"},
        "motor-001": {},
    }
    probabilities = {"motor-002": 0.83, "motor-004": 0.41, "motor-001": 0.04}
    raised_at = now - timedelta(minutes=20)
    fleet = {}
    for motor_id, raised in states.items():
        fleet[motor_id] = {
            "motor_id": motor_id, "motor_type": "pump-37kw", "running": True,
            "last_reading_at": _iso(now), "last_heard_at": _iso(now), "run_hours": 512.5, "last_service_at": None,
            "failure_probability": probabilities[motor_id], "probability_at": _iso(now),
            "drivers": [{"feature": "bearing_temp_c_trend", "label": "bearing temperature trend (1 h vs 24 h)",
                         "contribution": 1.7}] if motor_id == "motor-002" else [],
            "readings": {"speed_rpm": 1480.0, "bearing_temp_c": 71.2, "vibration_mm_s": 3.1, "fluid_temp_c": 84.0},
            "alarms": [_alarm(name, kind, raised.get(name, "NORMAL"), raised_at) for name, kind in names],
            "transitions": [{"at": _iso(raised_at), "alarm": name, "transition": "raised",
                             "from_state": "NORMAL", "to_state": "ACTIVE", "operator": None,
                             "event_id": secrets.token_hex(16)} for name in raised],
            "motor_actions": ["service_complete", "report_failure"],
            "failure_modes": ["bearing_wear", "winding_insulation", "cooling_loss", "impeller_wear", "other"],
        }  # fmt: skip
    return fleet


class FakeConsole:
    """The fake console server on 127.0.0.1, in a thread: `with FakeConsole() as console: console.url`."""

    def __init__(self) -> None:
        self.secret = secrets.token_bytes(32)
        self.codes: dict[str, dict[str, str]] = {}
        self.actions: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.started = datetime.now(UTC)
        self.fleet = _fleet(self.started)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeConsole:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(self, user: str) -> str:
        username, groups = USERS[user]
        now = int(time.time())
        claims = {"iss": self.url + "local-issuer", "client_id": CLIENT_ID, "token_use": "access", "username": username,
                  "cognito:groups": groups, "iat": now, "exp": now + 3600, "sub": username}  # fmt: skip
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims).encode())
        signature = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(signature)}"

    def verify(self, authorization: str | None) -> dict[str, Any] | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        try:
            head, body, signature = authorization.removeprefix("Bearer ").split(".")
            expected = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_b64(expected), signature):
                return None
            claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        return claims if claims.get("exp", 0) > time.time() else None

    def summary(self, motor: dict[str, Any]) -> dict[str, Any]:
        states = {alarm["name"]: alarm["state"] for alarm in motor["alarms"]}
        worst = max(motor["alarms"], key=lambda alarm: RANK[alarm["state"]])
        keep = ("motor_id", "motor_type", "running", "last_reading_at", "run_hours", "failure_probability",
                "probability_at", "drivers")  # fmt: skip
        summary = {key: motor[key] for key in keep}
        summary["alarm_states"] = states
        summary["worst_alarm"] = {"name": worst["name"], "state": worst["state"]} if RANK[worst["state"]] else None
        return summary

    def ranked(self) -> list[dict[str, Any]]:
        """The fleet's summaries, worst alarm state first, then the higher probability (the contract's order)."""

        def risk(summary: dict[str, Any]) -> tuple[int, float, str]:
            worst = summary["worst_alarm"]
            rank = RANK[worst["state"]] if worst else 0
            return (-rank, -(summary["failure_probability"] or 0.0), summary["motor_id"])

        return sorted((self.summary(motor) for motor in self.fleet.values()), key=risk)

    def detail(self, motor: dict[str, Any]) -> dict[str, Any]:
        alarms = sorted(copy.deepcopy(motor["alarms"]), key=lambda alarm: -RANK[alarm["state"]])
        for alarm in alarms:
            alarm["actions"] = ACTIONS_BY_STATE[alarm["state"]]
        shown = {key: value for key, value in motor.items() if key != "transitions"}
        return {**shown, **self.summary(motor), "alarms": alarms}

    def history(self, motor: dict[str, Any], hours: int) -> dict[str, Any]:
        now = datetime.now(UTC)
        start = now - timedelta(hours=hours)
        steps = 120
        risky = motor["failure_probability"]
        points = []
        for step in range(steps + 1):
            at = start + (now - start) * step / steps
            share = step / steps
            points.append({"at": _iso(at), "running": True, "failure_probability": round(risky * share**2, 4),
                           "readings": {"vibration_mm_s": round(2.0 + 2.5 * share**3, 3),
                                        "bearing_temp_c": round(60 + 12 * share**2, 2),
                                        "fluid_temp_c": round(80 + 4 * share, 2)}})  # fmt: skip
        transitions = [t for t in motor["transitions"] if t["at"] >= _iso(start)]
        return {"motor_id": motor["motor_id"], "from": _iso(start), "to": _iso(now), "points": points,
                "transitions": transitions, "thinned": False}  # fmt: skip

    def act(self, motor: dict[str, Any], body: dict[str, Any], username: str) -> tuple[int, dict[str, Any]]:
        allowed = {"action", "alarm", "action_id", "snooze_minutes", "note", "verdict", "failed_at", "failure_mode"}
        unknown = set(body) - allowed
        if unknown:
            return 400, {"error": "bad_request", "message": f"unknown field {sorted(unknown)[0]!r}"}
        action = body.get("action")
        now = datetime.now(UTC)
        states = {alarm["name"]: alarm for alarm in motor["alarms"]}
        if action in ("service_complete", "report_failure"):
            self.actions.append({**body, "operator": username})
            return 200, self._applied(motor, username)
        alarm = states.get(body.get("alarm", ""))
        if alarm is None:
            return 400, {"error": "bad_request", "message": f"no alarm {body.get('alarm')!r}"}
        before = alarm["state"]
        if action == "snooze" and before != "DISABLED":
            after = "SNOOZED"
            alarm["snoozed_until"] = _iso(now + timedelta(minutes=float(body.get("snooze_minutes", 0))))
        elif action == "disable" and before != "DISABLED":
            after = "DISABLED"
        elif before in APPLIES.get(action or "", {}):
            after = APPLIES[str(action)][before]
        else:
            return 409, {"error": "not_applicable", "message": f"{action} does not apply to a {before} alarm"}
        alarm["state"] = after
        motor["transitions"].append({"at": _iso(now), "alarm": alarm["name"], "transition": f"{action}",
                                     "from_state": before, "to_state": after, "operator": username,
                                     "event_id": secrets.token_hex(16)})  # fmt: skip
        self.actions.append({**body, "operator": username})
        return 200, self._applied(motor, username)

    def _applied(self, motor: dict[str, Any], username: str) -> dict[str, Any]:
        states = {alarm["name"]: alarm["state"] for alarm in motor["alarms"]}
        return {"status": "applied", "motor_id": motor["motor_id"], "reason": "", "operator": username,
                "alarm_states": states, "events": []}  # fmt: skip


def _handler(console: FakeConsole) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read the browser, not the server's log."""

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            if url.path == "/config.json":
                self._json(200, self._config())
            elif url.path == "/oauth2/authorize":
                self._authorize_page(query)
            elif url.path == "/logout":
                self._redirect(query.get("logout_uri", console.url))
            elif url.path.startswith("/motors"):
                self._api("GET", url.path, query)
            else:
                self._static(url.path)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > BODY_MAX:
                self._json(413, {"error": "too_large", "message": "the body is over 4 KB"})
                return
            raw = self.rfile.read(length)
            if url.path == "/oauth2/authorize":
                self._authorized({key: values[0] for key, values in parse_qs(raw.decode()).items()})
            elif url.path == "/oauth2/token":
                self._token({key: values[0] for key, values in parse_qs(raw.decode()).items()})
            elif url.path.startswith("/motors"):
                self._api("POST", url.path, raw)
            else:
                self._json(404, {"error": "not_found", "message": "no such route"})

        def _config(self) -> dict[str, Any]:
            base = console.url
            return {"api_url": base.rstrip("/"), "refresh_seconds": 2,
                    "auth": {"authorize_url": base + "oauth2/authorize", "token_url": base + "oauth2/token",
                             "logout_url": base + "logout", "client_id": CLIENT_ID, "scopes": "openid"}}  # fmt: skip

        def _authorize_page(self, query: dict[str, str]) -> None:
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(key)}" value="{html.escape(value)}">'
                for key, value in query.items()
            )
            buttons = "".join(
                f'<button type="submit" name="user" value="{user}">Sign in as {name}</button>'
                for user, (name, _) in USERS.items()
            )
            head = '<!doctype html><title>Local sign-in</title><link rel="icon" href="/favicon.svg">'
            page = f'{head}<form method="post">{hidden}{buttons}</form>'
            self._send(200, page.encode(), "text/html")

        def _authorized(self, form: dict[str, str]) -> None:
            if form.get("redirect_uri") != console.url or form.get("user") not in USERS:
                self._json(400, {"error": "bad_request", "message": "unknown redirect_uri or user"})
                return
            code = secrets.token_urlsafe(16)
            console.codes[code] = form
            self._redirect(f"{form['redirect_uri']}?{urlencode({'code': code, 'state': form.get('state', '')})}")

        def _token(self, form: dict[str, str]) -> None:
            request = console.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = _b64(hashlib.sha256(verifier.encode()).digest())
            if request is None or request.get("code_challenge") != challenge:
                self._json(400, {"error": "invalid_grant"})
                return
            token = console.token(request["user"])
            self._json(200, {"access_token": token, "id_token": token, "expires_in": 3600, "token_type": "Bearer"})

        def _api(self, method: str, path: str, query_or_body: Any) -> None:
            claims = console.verify(self.headers.get("Authorization"))
            if claims is None:
                self._json(401, {"message": "Unauthorized"})
                return
            parts = path.strip("/").split("/")
            with console.lock:
                if parts == ["motors"] and method == "GET":
                    motors = console.ranked()
                    self._json(200, {"motors": motors, "next_token": None,
                                     "count": len(motors), "generated_at": _iso(datetime.now(UTC))})  # fmt: skip
                    return
                motor = console.fleet.get(parts[1]) if len(parts) > 1 else None
                if motor is None:
                    named = parts[1] if len(parts) > 1 else ""  # as the API names it, detail and history alike
                    self._json(404, {"error": "not_found", "message": f"no motor {named!r}"})
                elif len(parts) == 2 and method == "GET":
                    self._json(200, console.detail(motor))
                elif parts[2:] == ["history"] and method == "GET":
                    self._json(200, console.history(motor, int(query_or_body.get("hours", 6))))
                elif parts[2:] == ["actions"] and method == "POST":
                    if "operators" not in claims["cognito:groups"]:
                        self._json(403, {"error": "forbidden", "message": "acting on alarms needs the operators group"})
                        return
                    self._json(*console.act(motor, json.loads(query_or_body), claims["username"]))
                else:
                    self._json(404, {"error": "not_found", "message": "no such route"})

        def _static(self, path: str) -> None:
            target = (WEB / (path.lstrip("/") or "index.html")).resolve()
            if not target.is_relative_to(WEB) or not target.is_file():
                self._json(404, {"error": "not_found", "message": "no such file"})
                return
            self._send(200, target.read_bytes(), TYPES.get(target.suffix, "application/octet-stream"))

        def _redirect(self, location: str) -> None:
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", location)
            self.end_headers()

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler
