"""The local rules engine accounts for every message a rule receives, whatever its payload, whoever sent it."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest

from local.accounting import Accounts, lines
from local.lambdas import Invocation, InvokeRefused, Outcome
from local.mqtt_client import Message
from local.options import REPO
from local.router import Router
from local.template import load

TEMPLATE = load(REPO / "template.yaml")
TELEMETRY = "motors/motor-001/telemetry"


class Function:
    """Stands in for a LocalFunction: records what it is given, refuses when told."""

    def __init__(self, refuse: bool = False) -> None:
        self.events: list[tuple[Any, str | None]] = []
        self.refuse = refuse

    def invoke_async(self, event: Any, source: str | None = None) -> str:
        if self.refuse:
            raise InvokeRefused("InferenceFunction: 1000 events queued (throttled, 429)")
        self.events.append((event, source))
        return "request-id"


def telemetry_router(function: Function, parked: list[dict[str, Any]]) -> Router:
    rule = next(rule for rule in TEMPLATE.rules if rule.name == "TelemetryRule")
    direct = replace(rule.for_conditions(lambda name: name != "Batched"), firehose=())
    return Router(
        [direct],
        {"InferenceFunction": function},  # type: ignore[dict-item]
        park=lambda queue, record: parked.append(record),
    )


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("depth", [999, 1_000, 5_000, 100_000])
def test_a_payload_nested_beyond_the_parsers_limit_is_dead_lettered_with_a_reason_not_lost(depth: int) -> None:
    function, parked = Function(), list[dict[str, Any]]()
    router = telemetry_router(function, parked)

    router.handle(Message(TELEMETRY, nested(depth), 1, "motor-001"))

    table = router.accounts.snapshot()["TelemetryRule"]
    assert table["received"] == 1
    if function.events:  # shallow enough to parse: the function decides (and is told which rule sent it)
        assert function.events[0][1] == "TelemetryRule"
        assert table["unsettled"] == 1
    else:
        assert table["dead_lettered"] == 1
        (record,) = parked
        assert "nested too deeply" in record["failures"][0]["errorMessage"]
        assert record["clientId"] == "motor-001"


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe not utf-8", b"[1, 2]", b"NaN", b"", '{"motor_id": "\ud800"}'.encode("utf-8", "surrogatepass")],
)
def test_payloads_that_are_not_a_json_object_are_dead_lettered_with_the_reason(payload: bytes) -> None:
    function, parked = Function(), list[dict[str, Any]]()
    router = telemetry_router(function, parked)

    router.handle(Message(TELEMETRY, payload, 0, "motor-001"))

    assert router.accounts.snapshot()["TelemetryRule"] == {
        "received": 1,
        "processed": 0,
        "rejected": 0,
        "dead_lettered": 1,
        "filtered": 0,
        "lost": 0,
        "unsettled": 0,
    }
    assert parked[0]["failures"][0]["failedAction"] == "SqlEvaluation"


def test_an_exception_the_router_did_not_foresee_is_logged_and_the_message_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Function):
        def invoke_async(self, event: Any, source: str | None = None) -> str:
            raise KeyError("a bug")

    parked: list[dict[str, Any]] = []
    router = telemetry_router(Broken(), parked)

    router.handle(Message(TELEMETRY, b'{"motor_id": "motor-001"}', 1, "motor-001"))

    assert router.accounts.snapshot()["TelemetryRule"]["dead_lettered"] == 1
    assert parked[0]["failures"][0]["failedAction"] == "RulesEngine"
    assert "the rules engine failed" in caplog.text


def test_a_refused_invocation_without_an_error_queue_shows_as_lost() -> None:
    function = Function(refuse=True)
    rule = next(rule for rule in TEMPLATE.rules if rule.name == "TelemetryRule")
    direct = replace(rule.for_conditions(lambda name: name != "Batched"), firehose=(), error_action=None)
    router = Router([direct], {"InferenceFunction": function}, park=lambda q, r: None)  # type: ignore[dict-item]

    router.handle(Message(TELEMETRY, b'{"motor_id": "motor-001"}', 1, "motor-001"))

    table = router.accounts.snapshot()
    assert table["TelemetryRule"]["lost"] == 1
    assert "lost 1  (LOST" in lines(table, settled=True)[0]


def outcome(source: str, result: Any = None, error: dict[str, Any] | None = None, parked: bool = False) -> Outcome:
    invocation = Invocation(event={}, received_s=time.monotonic(), source=source)
    return Outcome("InferenceFunction", invocation, result=result, error=error, dead_lettered=parked)


def test_the_functions_answers_settle_the_rules_messages_and_the_difference_is_lost_once_settled() -> None:
    accounts = Accounts()
    for _ in range(5):
        accounts.received("TelemetryRule")
    accounts.on_outcome(outcome("TelemetryRule", {"status": "applied"}))
    accounts.on_outcome(outcome("TelemetryRule", {"status": "stale"}))
    accounts.on_outcome(outcome("TelemetryRule", {"status": "rejected", "reason": "schema"}))
    accounts.on_outcome(outcome("TelemetryRule", error={"errorType": "Boom"}, parked=True))

    row = accounts.snapshot()["TelemetryRule"]
    assert (row["processed"], row["rejected"], row["dead_lettered"], row["unsettled"]) == (2, 1, 1, 1)
    assert lines(accounts.snapshot(), settled=False) == [
        "  TelemetryRule: received 5 = processed 2 + rejected 1 + dead-lettered 1, lost 0, in flight 1"
    ]
    assert lines(accounts.snapshot(), settled=True) == [
        "  TelemetryRule: received 5 = processed 2 + rejected 1 + dead-lettered 1, lost 1  "
        "(LOST: the stack's log says why)"
    ]


def test_messages_from_any_client_count_for_the_rule_that_received_them() -> None:
    function, parked = Function(), list[dict[str, Any]]()
    router = telemetry_router(function, parked)
    for publisher in ("motor-001", "third-party", None):
        router.handle(Message(TELEMETRY, json.dumps({"motor_id": "motor-001"}).encode(), 1, publisher))

    assert router.accounts.snapshot()["TelemetryRule"]["received"] == 3
    assert [source for _, source in function.events] == ["TelemetryRule"] * 3
