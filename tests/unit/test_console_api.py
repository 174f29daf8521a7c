"""ConsoleFunction's routes through its handler, with AWS faked by moto and motors fed through InferenceFunction.

The events are those of events/console-*.json (what API Gateway's HTTP API hands the function after its JWT
authorizer), varied per test: another user, other groups, no claims, another body.
"""

from __future__ import annotations

import copy
import json
import time
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.support import LambdaContext, load_event, load_handler, reading_payload

NOW_MS = int(time.time() * 1000)
HISTORY_INTERVAL_MS = 300_000


@pytest.fixture
def console(aws: FakeAws) -> ModuleType:
    return load_handler("console")


def request(
    name: str,
    *,
    path: str | None = None,
    user: str | None = None,
    groups: list[str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    claims: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A sample event, changed where asked (query None: the sample's own; {} : none)."""
    event = copy.deepcopy(load_event(name))
    if path is not None:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    jwt = event["requestContext"]["authorizer"]["jwt"]
    if user is not None:
        jwt["claims"]["username"] = user
    if groups is not None:
        jwt["claims"]["cognito:groups"] = "[" + " ".join(groups) + "]"
    if claims is not None:
        jwt["claims"] = claims
    if query is not None:
        event["queryStringParameters"] = query or None
        event["rawQueryString"] = "&".join(f"{key}={value}" for key, value in query.items())
    if body is not None:
        event["body"] = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    return event


def call(console: ModuleType, event: dict[str, Any], context: LambdaContext) -> tuple[int, dict[str, Any]]:
    response = console.lambda_handler(event, context)
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def feed(inference: ModuleType, context: LambdaContext, payload: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = inference.lambda_handler(payload | {"topic_motor_id": payload["motor_id"]}, context)
    assert answer["status"] == "applied", answer
    return answer


@pytest.fixture
def fleet(inference: ModuleType, lambda_context: LambdaContext) -> None:
    """Three motors a few minutes old: motor-001 with its fluid over 200 C for 6 minutes (alarm ACTIVE),
    motor-002 and motor-003 healthy, motor-003 stopped (not scored). The readings start a 5-minute history
    interval (HISTORY_INTERVAL_S' default): of motor-001's, minutes 0 and 6 are recorded, minute 3 is not."""
    start = (NOW_MS - 10 * 60_000) // HISTORY_INTERVAL_MS * HISTORY_INTERVAL_MS
    for seq, minute in enumerate((0, 3, 6), start=1):
        feed(
            inference,
            lambda_context,
            reading_payload(seq, motor_id="motor-001", fluid_temp_c=212.5) | {"ts": start + minute * 60_000},
        )
    feed(inference, lambda_context, reading_payload(1, motor_id="motor-002") | {"ts": start})
    feed(inference, lambda_context, reading_payload(1, motor_id="motor-003", running=False) | {"ts": start})


# --- GET /motors -------------------------------------------------------------------------------


def test_the_fleet_is_listed_riskiest_first_with_probabilities_and_alarm_states(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    status, body = call(console, request("console-fleet"), lambda_context)

    assert status == 200
    first = body["motors"][0]
    assert first["motor_id"] == "motor-001"
    assert first["worst_alarm"] == {"name": "fluid_overtemperature", "state": "ACTIVE"}
    assert first["alarm_states"]["fluid_overtemperature"] == "ACTIVE"
    assert 0.0 <= first["failure_probability"] <= 1.0
    assert first["last_reading_at"].endswith("Z")
    stopped = next(motor for motor in body["motors"] if motor["motor_id"] == "motor-003")
    assert stopped["running"] is False
    assert stopped["failure_probability"] is None
    assert stopped["worst_alarm"] is None
    # The healthy running motor (scored) comes before the stopped one (not scored).
    assert [motor["motor_id"] for motor in body["motors"]][1:] == ["motor-002", "motor-003"]
    assert body["next_token"] is None
    assert body["count"] == 3


def test_the_fleet_is_paginated_with_an_opaque_token(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    seen, token, pages = [], None, 0
    while True:
        query = {"limit": "2"} | ({"next_token": token} if token else {})
        status, body = call(console, request("console-fleet", query=query), lambda_context)
        assert status == 200
        seen += [motor["motor_id"] for motor in body["motors"]]
        pages += 1
        token = body["next_token"]
        if token is None:
            break

    assert pages == 2
    assert seen == ["motor-001", "motor-002", "motor-003"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 200"),
        ({"limit": "201"}, "limit must be a whole number from 1 to 200"),
        ({"limit": "ten"}, "limit must be a whole number from 1 to 200"),
        ({"next_token": "not-a-token"}, "next_token is not one this API gave"),
    ],
)
def test_a_malformed_page_request_is_answered_400_with_the_reason(
    console: ModuleType, aws: FakeAws, lambda_context: LambdaContext, query: dict[str, str], reason: str
) -> None:
    assert call(console, request("console-fleet", query=query), lambda_context) == (
        400,
        {"error": "bad_request", "message": reason},
    )


# --- GET /motors/{id} --------------------------------------------------------------------------


def test_a_motor_shows_every_alarm_with_its_state_since_when_and_the_actions_that_apply(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    status, body = call(console, request("console-motor"), lambda_context)

    assert status == 200
    assert body["motor_id"] == "motor-001"
    alarms = {alarm["name"]: alarm for alarm in body["alarms"]}
    assert body["alarms"][0]["name"] == "fluid_overtemperature"  # the worst first
    active = alarms["fluid_overtemperature"]
    assert (active["state"], active["kind"], active["severity"]) == ("ACTIVE", "condition", "critical")
    assert active["active_since"] is not None
    assert active["actions"] == ["acknowledge", "snooze", "disable", "reset"]
    assert alarms["schedule"]["actions"] == ["snooze", "disable"]
    assert alarms["schedule"]["active_since"] is None
    assert body["readings"]["fluid_temp_c"] == 212.5
    assert body["motor_actions"] == ["service_complete", "report_failure"]
    assert "bearing_wear" in body["failure_modes"]


@pytest.mark.parametrize("motor_id", ["motor-999", "__health__#model", "no%20such"])
def test_an_unknown_motor_is_404(
    console: ModuleType, fleet: None, lambda_context: LambdaContext, motor_id: str
) -> None:
    status, body = call(console, request("console-motor", path=f"/motors/{motor_id}"), lambda_context)

    assert (status, body["error"]) == (404, "not_found")


# --- GET /motors/{id}/history ------------------------------------------------------------------


def test_the_history_has_a_reading_each_interval_with_its_probability_and_the_alarm_transitions(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    status, body = call(console, request("console-history"), lambda_context)

    assert status == 200
    assert len(body["points"]) == 2, "minutes 0 and 6: minute 3 falls in minute 0's 5-minute interval"
    assert [point["readings"]["fluid_temp_c"] for point in body["points"]] == [212.5] * 2
    assert all(point["failure_probability"] is not None for point in body["points"])
    assert body["points"] == sorted(body["points"], key=lambda point: point["at"])
    assert [(t["alarm"], t["transition"], t["to_state"]) for t in body["transitions"]] == [
        ("fluid_overtemperature", "raised", "ACTIVE")
    ]
    assert body["thinned"] is False


def test_an_acknowledgement_appears_in_the_history_under_the_operators_name(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    assert call(console, request("console-acknowledge"), lambda_context)[0] == 200

    transitions = call(console, request("console-history"), lambda_context)[1]["transitions"]

    assert [(t["transition"], t["operator"]) for t in transitions] == [("raised", None), ("acknowledged", "j.smith")]


def test_a_window_longer_than_the_history_keeps_is_400(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    status, body = call(console, request("console-history", query={"hours": "25"}), lambda_context)

    assert (status, body["message"]) == (400, "hours must be a whole number from 1 to 24")


def test_the_history_of_an_unknown_motor_is_404(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    assert call(console, request("console-history", path="/motors/motor-999/history"), lambda_context)[0] == 404


# --- POST /motors/{id}/actions -----------------------------------------------------------------


def test_an_operator_acknowledges_and_the_alarm_event_names_the_signed_in_user(
    console: ModuleType, aws: FakeAws, fleet: None, lambda_context: LambdaContext
) -> None:
    status, body = call(console, request("console-acknowledge", user="m.chen"), lambda_context)

    assert status == 200
    assert (body["status"], body["operator"]) == ("applied", "m.chen")
    assert body["alarm_states"]["fluid_overtemperature"] == "ACKNOWLEDGED"
    published = [payload for topic, payload in aws.published() if payload["transition"] == "acknowledged"]
    assert [(event["operator"], event["event_id"]) for event in published] == [("m.chen", body["events"][0])]
    motor = call(console, request("console-motor"), lambda_context)[1]
    assert motor["alarms"][0]["state"] == "ACKNOWLEDGED"


def test_an_operator_named_in_the_body_is_refused_the_token_decides(
    console: ModuleType, aws: FakeAws, fleet: None, lambda_context: LambdaContext
) -> None:
    forged = load_event("console-acknowledge")["body"]
    event = request("console-acknowledge", body=json.loads(forged) | {"operator": "someone.else"})

    status, body = call(console, event, lambda_context)

    assert status == 400
    assert body["message"] == "not allowed in an action: operator (the operator is the signed-in user)"
    assert not [payload for _, payload in aws.published() if payload["transition"] == "acknowledged"]


def test_the_same_action_id_twice_is_applied_once(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    first = call(console, request("console-acknowledge"), lambda_context)
    second = call(console, request("console-acknowledge"), lambda_context)

    assert (first[0], first[1]["status"]) == (200, "applied")
    assert (second[0], second[1]["status"], second[1]["events"]) == (200, "duplicate", [])


def test_a_snooze_with_its_duration_is_applied(console: ModuleType, fleet: None, lambda_context: LambdaContext) -> None:
    action = {"action": "snooze", "alarm": "fluid_overtemperature", "snooze_minutes": 60}

    status, body = call(console, request("console-acknowledge", body=action), lambda_context)

    assert (status, body["alarm_states"]["fluid_overtemperature"]) == (200, "SNOOZED")
    alarm = call(console, request("console-motor"), lambda_context)[1]["alarms"]
    snoozed = next(item for item in alarm if item["name"] == "fluid_overtemperature")
    assert snoozed["snoozed_until"] is not None


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"action": "self_destruct", "alarm": "predictive"}, 400, "action: Input should be"),
        ({"action": "snooze", "alarm": "predictive"}, 400, "snooze needs snooze_minutes"),
        ({"action": "acknowledge"}, 400, "action 'acknowledge' needs the name of an alarm"),
        ({"action": "acknowledge", "alarm": "no_such_alarm"}, 400, "motor has no alarm 'no_such_alarm'"),
        ({"action": "acknowledge", "alarm": "schedule"}, 409, "cannot acknowledge 'schedule' in state NORMAL"),
        (
            {"action": "reset", "alarm": "fluid_overtemperature", "motor_id": "motor-002"},
            400,
            "not allowed in an action: motor_id",
        ),
        ([1, 2], 400, "the body is not a JSON object"),
    ],
)
def test_a_malformed_or_inapplicable_action_is_answered_with_the_reason(
    console: ModuleType, fleet: None, lambda_context: LambdaContext, body: Any, status: int, message: str
) -> None:
    answer = call(console, request("console-acknowledge", body=body), lambda_context)

    assert answer[0] == status
    assert message in answer[1]["message"]


def test_a_body_that_is_not_json_is_400(console: ModuleType, fleet: None, lambda_context: LambdaContext) -> None:
    assert call(console, request("console-acknowledge", raw_body="{action: ack"), lambda_context) == (
        400,
        {"error": "bad_request", "message": "the body is not JSON"},
    )


def test_an_oversize_body_is_413(console: ModuleType, fleet: None, lambda_context: LambdaContext) -> None:
    body = {"action": "acknowledge", "alarm": "fluid_overtemperature", "note": "x" * 5000}

    status, answer = call(console, request("console-acknowledge", body=body), lambda_context)

    assert (status, answer["error"]) == (413, "too_large")


def test_an_action_on_an_unknown_motor_is_404(console: ModuleType, fleet: None, lambda_context: LambdaContext) -> None:
    event = request("console-acknowledge", path="/motors/motor-999/actions")

    assert call(console, event, lambda_context)[0] == 404


# --- who may do what ---------------------------------------------------------------------------


def test_a_viewer_reads_but_cannot_act(
    console: ModuleType, aws: FakeAws, fleet: None, lambda_context: LambdaContext
) -> None:
    assert call(console, request("console-motor", groups=["viewers"]), lambda_context)[0] == 200

    status, body = call(console, request("console-acknowledge", groups=["viewers"]), lambda_context)

    assert (status, body) == (403, {"error": "forbidden", "message": "acting on alarms needs the operators group"})
    assert not [payload for _, payload in aws.published() if payload["transition"] == "acknowledged"]


def test_a_user_in_no_console_group_reads_nothing(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    assert call(console, request("console-fleet", groups=[]), lambda_context)[0] == 403
    assert call(console, request("console-fleet", groups=["admins"]), lambda_context)[0] == 403


def test_groups_are_read_from_the_string_api_gateway_makes_of_the_claim_and_from_a_list(
    console: ModuleType, fleet: None, lambda_context: LambdaContext
) -> None:
    two = request("console-acknowledge", groups=["viewers", "operators"])
    assert call(console, two, lambda_context)[0] == 200
    listed = request("console-fleet")
    listed["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] = ["viewers"]
    assert call(console, listed, lambda_context)[0] == 200


def test_no_verified_token_is_401(console: ModuleType, fleet: None, lambda_context: LambdaContext) -> None:
    event = request("console-fleet")
    del event["requestContext"]["authorizer"]

    status, body = call(console, event, lambda_context)

    assert (status, body["error"]) == (401, "unauthorized")


def test_an_unknown_route_is_404(console: ModuleType, aws: FakeAws, lambda_context: LambdaContext) -> None:
    status, body = call(console, request("console-fleet", path="/pumps"), lambda_context)

    assert (status, body["error"]) == (404, "not_found")


def test_a_store_that_cannot_be_read_is_503_with_a_reason_to_retry(
    console: ModuleType, fleet: None, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    aws.dynamodb.delete_table(TableName="motor-state")

    status, body = call(console, request("console-fleet"), lambda_context)

    assert (status, body) == (503, {"error": "unavailable", "message": "the motors' store is unavailable; try again"})
