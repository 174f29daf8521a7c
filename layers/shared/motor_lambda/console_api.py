"""ConsoleFunction's routes (docs/console.md): the fleet, a motor, its history, and an operator's action.

API Gateway's JWT authorizer has verified the token before the function runs; what is left here is who the
caller is (the token's user and groups, from the claims it passes on) and what that caller may do.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ValidationError

from motor_lambda.reports import report_action
from motor_lambda.responses import ActionResponse
from motor_lambda.wiring import ConsolePorts, current_config
from motor_maintenance.alarms import OperatorAction
from motor_maintenance.detector import Outcome
from motor_maintenance.errors import ConflictPersisted, PublishFailed, StoreUnavailable
from motor_maintenance.fleet import HistoryView, MotorDetail, fleet_page
from motor_maintenance.history import HISTORY_HOURS_MAX
from motor_maintenance.service import process_action
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import MOTOR_ID_PATTERN, describe_validation_error

OPERATORS, VIEWERS = "operators", "viewers"
BODY_MAX_BYTES = 4096
PAGE_DEFAULT, PAGE_MAX = 50, 200
HOURS_DEFAULT = 6
ACTION_FIELDS = frozenset(
    {"action", "alarm", "action_id", "snooze_minutes", "note", "verdict", "failed_at", "failure_mode"}
)
"""What a console action may say: the motor is the path's, the time the server's, the operator the token's."""
_MOTOR_ID = re.compile(MOTOR_ID_PATTERN)


class ApiError(Exception):
    """An answer other than 200, with its reason: {"error": code, "message": message}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Caller:
    """The signed-in user, from the verified token's claims."""

    username: str
    groups: frozenset[str]

    @classmethod
    def of(cls, claims: dict[str, Any]) -> Caller:
        username = claims.get("username") or claims.get("cognito:username") or claims.get("sub")
        if not username:
            raise ApiError(401, "unauthorized", "no verified token")
        return cls(str(username), frozenset(group_names(claims.get("cognito:groups"))))


def group_names(claim: Any) -> list[str]:
    """The groups of a `cognito:groups` claim: a list, or the one string API Gateway makes of it ("[a b]")."""
    if claim is None:
        return []
    if isinstance(claim, list):
        return [str(group) for group in claim]
    text = str(claim).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return text[1:-1].split()
        return [str(group) for group in parsed] if isinstance(parsed, list) else []
    return text.split()


def console_api(ports: Callable[[], ConsolePorts], logger: Logger, metrics: Metrics) -> APIGatewayHttpResolver:
    """The resolver with the console's routes; `ports` gives the adapters (built on the first request)."""
    app = APIGatewayHttpResolver()
    access = _Access(app, ports, logger, metrics)

    @app.get("/motors")
    def motors() -> Response[str]:
        access.caller()
        query = app.current_event.query_string_parameters or {}
        limit = _integer(query, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
        offset = _offset(query.get("next_token"))
        page, following = fleet_page(ports().fleet.motors(), offset, limit, datetime.now(UTC))
        return _json(page.model_copy(update={"next_token": _token(following)}))

    @app.get("/motors/<motor_id>")
    def motor(motor_id: str) -> Response[str]:
        access.caller()
        state = access.known_motor(motor_id)
        return _json(MotorDetail.of_state(state, current_config(ports().source, logger, metrics)))

    @app.get("/motors/<motor_id>/history")
    def history(motor_id: str) -> Response[str]:
        access.caller()
        hours = _integer(app.current_event.query_string_parameters or {}, "hours", HOURS_DEFAULT, 1, HISTORY_HOURS_MAX)
        access.known_motor(motor_id)
        now = datetime.now(UTC)
        to_ms = int(now.timestamp() * 1000)
        from_ms = int((now - timedelta(hours=hours)).timestamp() * 1000)
        return _json(HistoryView.of(motor_id, ports().history.entries(motor_id, from_ms, to_ms), from_ms, to_ms))

    @app.post("/motors/<motor_id>/actions")
    def act(motor_id: str) -> Response[str]:
        who = access.caller(acting=True)
        action = access.action(motor_id, _action_body(app.current_event.decoded_body), who)
        adapters = ports()
        config = current_config(adapters.source, logger, metrics)
        now = datetime.now(UTC)
        result = process_action(action, store=adapters.store, publisher=adapters.publisher, config=config, now=now)
        report_action(action, result, logger, metrics)
        if result.outcome is Outcome.IGNORED:
            raise ApiError(409, "not_applicable", result.reason)
        if result.outcome not in (Outcome.APPLIED, Outcome.DUPLICATE):
            raise ApiError(400, "bad_request", result.reason)
        return _json(ActionResponse.of(result), operator=who.username)

    def refused(exc: ApiError) -> Response[str]:
        logger.info("console request refused", status=exc.status, reason=exc.message)
        return _error(exc.status, exc.code, exc.message)

    def unavailable(exc: Exception) -> Response[str]:
        logger.warning("console request failed", reason=str(exc))
        return _error(503, "unavailable", "the motors' store is unavailable; try again")

    # Registered by call: Powertools' exception_handler is an untyped decorator.
    app.exception_handler(ApiError)(refused)
    app.exception_handler([StoreUnavailable, PublishFailed, ConflictPersisted])(unavailable)

    @app.not_found
    def unknown_route(_: Exception) -> Response[str]:
        return _error(404, "not_found", f"no route {app.current_event.http_method} {app.current_event.path}")

    return app


class _Access:
    """Who calls, whether they may, and on which motor: what every route asks first."""

    def __init__(
        self, app: APIGatewayHttpResolver, ports: Callable[[], ConsolePorts], logger: Logger, metrics: Metrics
    ) -> None:
        self.app, self.ports, self.logger, self.metrics = app, ports, logger, metrics

    def caller(self, *, acting: bool = False) -> Caller:
        self.metrics.add_metric(name="ConsoleRequests", unit=MetricUnit.Count, value=1)
        who = Caller.of(self.app.current_event.request_context.authorizer.jwt_claim)
        allowed = {OPERATORS} if acting else {OPERATORS, VIEWERS}
        if not who.groups & allowed:
            need = "acting on alarms needs the operators group" if acting else "reading needs operators or viewers"
            raise ApiError(403, "forbidden", need)
        self.logger.append_keys(user=who.username)
        return who

    def known_motor(self, motor_id: str) -> MotorState:
        state = self.ports().fleet.motor(motor_id) if _MOTOR_ID.fullmatch(motor_id) else None
        if state is None:
            raise ApiError(404, "not_found", f"no motor {motor_id!r}")
        return state

    def action(self, motor_id: str, body: dict[str, Any], who: Caller) -> OperatorAction:
        """The body as an action on the path's motor, now, by the signed-in user; 400 or 404 if it cannot be."""
        if not _MOTOR_ID.fullmatch(motor_id):
            raise ApiError(404, "not_found", f"no motor {motor_id!r}")
        try:
            action = OperatorAction.model_validate(
                {"action_id": str(uuid.uuid4()), **body, "motor_id": motor_id, "ts": datetime.now(UTC)}
                | {"operator": who.username}
            )
        except ValidationError as exc:
            self.metrics.add_metric(name="ConsoleActionsRejected", unit=MetricUnit.Count, value=1)
            raise ApiError(400, "bad_request", describe_validation_error(exc)) from exc
        self.known_motor(motor_id)
        return action


def _action_body(raw: str | None) -> dict[str, Any]:
    if raw is not None and len(raw.encode()) > BODY_MAX_BYTES:
        raise ApiError(413, "too_large", f"the body is over {BODY_MAX_BYTES} bytes")
    try:
        body = json.loads(raw or "")
    except ValueError as exc:
        raise ApiError(400, "bad_request", "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body is not a JSON object")
    unknown = sorted(set(body) - ACTION_FIELDS)
    if unknown:
        raise ApiError(
            400, "bad_request", f"not allowed in an action: {', '.join(unknown)} (the operator is the signed-in user)"
        )
    return body


def _integer(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "bad_request", f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _offset(token: str | None) -> int:
    if token is None:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ApiError(400, "bad_request", "next_token is not one this API gave") from exc
    if not isinstance(offset, int) or offset < 0:
        raise ApiError(400, "bad_request", "next_token is not one this API gave")
    return offset


def _token(offset: int | None) -> str | None:
    if offset is None:
        return None
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _json(model: BaseModel, **extra: Any) -> Response[str]:
    body = model.model_dump(mode="json") | extra
    return Response(200, "application/json", json.dumps(body, separators=(",", ":")))


def _error(status: int, code: str, message: str) -> Response[str]:
    return Response(status, "application/json", json.dumps({"error": code, "message": message}))
