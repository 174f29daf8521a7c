"""scripts/operate.py: operator actions as OperatorActionFunction parses them, to the local stack or a deployed one."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from motor_maintenance.alarms import OperatorAction
from scripts import operate


class FakeIotData:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> None:
        self.published.append(kwargs)


class FakeDynamoDb:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.scanned: list[str] = []

    def get_paginator(self, name: str) -> Any:
        outer = self

        class Paginator:
            def paginate(self, TableName: str) -> list[dict[str, Any]]:
                outer.scanned.append(TableName)
                return [{"Items": outer.items}]

        return Paginator()


class Clients:
    """A client factory recording what was asked for."""

    def __init__(self, dynamodb_items: list[dict[str, Any]] | None = None) -> None:
        self.iot_data = FakeIotData()
        self.dynamodb = FakeDynamoDb(dynamodb_items or [])
        self.made: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, service: str, **kwargs: Any) -> Any:
        self.made.append((service, kwargs))
        if service == "iot-data":
            return self.iot_data
        if service == "dynamodb":
            return self.dynamodb
        if service == "iot":
            return type(
                "Iot", (), {"describe_endpoint": lambda self, endpointType: {"endpointAddress": "abc-ats.iot"}}
            )()
        if service == "cloudformation":
            outputs = [{"OutputKey": "StateTableName", "OutputValue": "deployed-state"}]
            return type("Cfn", (), {"describe_stacks": lambda self, StackName: {"Stacks": [{"Outputs": outputs}]}})()
        raise AssertionError(service)


@pytest.fixture
def local_stack(tmp_path: Path) -> Path:
    """A stack.json as a running local stack writes it (this process stands in for the stack's)."""
    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "region": "us-east-1",
                "aws_endpoint_url": "http://127.0.0.1:1",
                "iot_data_endpoint_url": "http://127.0.0.1:2",
                "resources": {"StateTable": "local-state"},
            }
        )
    )
    return tmp_path


def test_an_acknowledge_is_published_to_the_motors_actions_topic_as_the_function_parses_it(
    local_stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clients = Clients()

    status = operate.main(
        [
            "--state-dir",
            str(local_stack),
            "acknowledge",
            "motor-002",
            "predictive",
            "--operator",
            "ana",
            "--note",
            "ok",
        ],
        make_client=clients,
    )

    assert status == 0
    [published] = clients.iot_data.published
    assert published["topic"] == "motors/motor-002/actions"
    assert published["qos"] == 1
    action = OperatorAction.model_validate_json(published["payload"])
    assert (action.motor_id, action.action.value, action.alarm, action.operator, action.note) == (
        "motor-002",
        "acknowledge",
        "predictive",
        "ana",
        "ok",
    )
    assert ("iot-data", {"endpoint_url": "http://127.0.0.1:2", **_local_credentials()}) in clients.made
    assert "published to motors/motor-002/actions" in capsys.readouterr().out


def _local_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": "us-east-1"}


def test_each_action_gets_its_own_id_so_a_redelivery_is_applied_once(local_stack: Path) -> None:
    clients = Clients()
    for _ in range(2):
        operate.main(["--state-dir", str(local_stack), "service-complete", "motor-004"], make_client=clients)

    ids = [OperatorAction.model_validate_json(p["payload"]).action_id for p in clients.iot_data.published]
    assert len(set(ids)) == 2
    assert all(OperatorAction.model_validate_json(p["payload"]).alarm is None for p in clients.iot_data.published)


def test_a_snooze_carries_its_minutes(local_stack: Path) -> None:
    clients = Clients()
    operate.main(
        ["--state-dir", str(local_stack), "snooze", "motor-001", "vibration_zone_d", "--minutes", "90"],
        make_client=clients,
    )

    assert OperatorAction.model_validate_json(clients.iot_data.published[0]["payload"]).snooze_minutes == 90


def test_an_invalid_action_is_refused_before_anything_is_published(
    local_stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clients = Clients()
    with pytest.raises(SystemExit) as exit_info:
        operate.main(["--state-dir", str(local_stack), "reset", "motor/../x", "predictive"], make_client=clients)

    assert exit_info.value.code == 2
    assert "motor_id" in capsys.readouterr().err
    assert clients.iot_data.published == []


def test_without_a_running_local_stack_or_a_stack_name_it_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = operate.main(["--state-dir", str(tmp_path), "status"], make_client=Clients())

    assert status == 2
    assert "python device/simulate.py" in capsys.readouterr().err


def test_a_stale_stack_file_of_a_stack_that_is_gone_is_not_used(
    local_stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = json.loads((local_stack / "stack.json").read_text())
    (local_stack / "stack.json").write_text(json.dumps({**info, "pid": 2**22 + 12345}))

    assert operate.main(["--state-dir", str(local_stack), "status"], make_client=Clients()) == 2


def test_a_deployed_stack_is_reached_through_its_iot_data_endpoint_and_state_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clients = Clients(
        [
            {
                "motor_id": {"S": "motor-001"},
                "run_hours": {"N": "812.4"},
                "failure_probability": {"N": "0.62"},
                "alarm_states": {"M": {"predictive": {"S": "ACTIVE"}, "schedule": {"S": "NORMAL"}}},
            },
            {"motor_id": {"S": "__health__#model"}},
        ]
    )

    assert operate.main(["--stack", "motor-maintenance", "--region", "eu-west-1", "status"], make_client=clients) == 0

    assert ("iot-data", {"region_name": "eu-west-1", "endpoint_url": "https://abc-ats.iot"}) in clients.made
    assert clients.dynamodb.scanned == ["deployed-state"]
    out = capsys.readouterr().out
    assert "motor-001" in out
    assert "812.4 h" in out
    assert "62.0%" in out
    assert "predictive ACTIVE" in out
    assert "__health__" not in out


def _published(clients: Clients) -> OperatorAction:
    [published] = clients.iot_data.published
    return OperatorAction.model_validate_json(published["payload"])


def test_a_failure_report_carries_its_mode_time_and_note(local_stack: Path) -> None:
    clients = Clients()

    status = operate.main(
        [
            "--state-dir",
            str(local_stack),
            "report-failure",
            "motor-002",
            "--mode",
            "bearing_wear",
            "--at",
            "2026-11-27T09:45:00Z",
            "--note",
            "bearing seized",
        ],
        make_client=clients,
    )

    assert status == 0
    action = _published(clients)
    assert (action.action.value, action.motor_id, action.alarm, action.failure_mode, action.note) == (
        "report_failure",
        "motor-002",
        None,
        "bearing_wear",
        "bearing seized",
    )
    assert action.failed_at == datetime(2026, 11, 27, 9, 45, tzinfo=UTC)


def test_a_service_is_logged_at_the_time_it_was_completed(local_stack: Path) -> None:
    clients = Clients()

    status = operate.main(
        ["--state-dir", str(local_stack), "service-complete", "motor-004", "--at", "2026-11-27T16:30:00Z"],
        make_client=clients,
    )

    assert status == 0
    action = _published(clients)
    assert (action.action.value, action.motor_id) == ("service_complete", "motor-004")
    assert action.ts == datetime(2026, 11, 27, 16, 30, tzinfo=UTC)


def test_a_service_without_a_time_is_logged_now(local_stack: Path) -> None:
    clients = Clients()
    before = datetime.now(UTC).replace(microsecond=0)

    assert operate.main(["--state-dir", str(local_stack), "service-complete", "motor-004"], make_client=clients) == 0

    assert before <= _published(clients).ts <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("when", "ago"),
    [("now", timedelta(0)), ("45m", timedelta(minutes=45)), ("2h", timedelta(hours=2)), ("3d", timedelta(days=3))],
)
def test_when_a_motor_failed_may_be_said_as_a_time_ago(when: str, ago: timedelta) -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    assert operate.parse_when(when, now) == now - ago


def test_a_time_without_an_offset_is_local_time() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    assert operate.parse_when("2026-11-27T09:45:00", now) == datetime(2026, 11, 27, 9, 45).astimezone(UTC)


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--mode", "bearing_wear", "--at", "yesterday-ish"], "expected now, a time ago (45m, 2h, 3d) or an ISO-8601"),
        (["--mode", "bearing_wear", "--at", "31d"], "more than 30 days before"),
        (["--mode", "bearing_wear", "--at", "2099-01-01T00:00:00Z"], "failed_at is after the report's ts"),
        (["--mode", "Bearing Wear", "--at", "1h"], "failure_mode: String should match pattern"),
        (["--at", "1h"], "--mode"),
    ],
)
def test_a_bad_failure_report_is_refused_before_anything_is_published(
    local_stack: Path, capsys: pytest.CaptureFixture[str], argv: list[str], why: str
) -> None:
    clients = Clients()

    with pytest.raises(SystemExit) as exit_info:
        operate.main(["--state-dir", str(local_stack), "report-failure", "motor-002", *argv], make_client=clients)

    assert exit_info.value.code == 2
    assert why in capsys.readouterr().err
    assert clients.iot_data.published == []


@pytest.mark.parametrize("command", ["acknowledge", "reset"])
def test_acknowledge_and_reset_take_a_verdict(local_stack: Path, command: str) -> None:
    clients = Clients()

    operate.main(
        ["--state-dir", str(local_stack), command, "motor-001", "predictive", "--verdict", "false_alarm"],
        make_client=clients,
    )

    assert _published(clients).verdict == "false_alarm"


def test_a_verdict_is_only_offered_where_it_applies(local_stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        operate.main(
            [
                "--state-dir",
                str(local_stack),
                "snooze",
                "motor-001",
                "predictive",
                "--minutes",
                "5",
                "--verdict",
                "unsure",
            ],
            make_client=Clients(),
        )

    assert "unrecognized arguments: --verdict" in capsys.readouterr().err


def test_an_action_without_a_verdict_publishes_none(local_stack: Path) -> None:
    clients = Clients()

    operate.main(["--state-dir", str(local_stack), "acknowledge", "motor-001", "predictive"], make_client=clients)

    assert "verdict" not in json.loads(clients.iot_data.published[0]["payload"])


def test_stats_shows_each_rules_accounting_of_the_running_local_stack(local_stack: Path) -> None:
    row = {"received": 7, "processed": 3, "rejected": 2, "dead_lettered": 1, "filtered": 0, "lost": 0, "unsettled": 1}
    (local_stack / "stats.json").write_text(json.dumps({"written_at": 0, "rules": {"TelemetryRule": row}}))
    out = io.StringIO()

    assert operate.main(["--state-dir", str(local_stack), "stats"], out=out) == 0

    assert out.getvalue().splitlines() == [
        "messages each IoT rule received, from every client:",
        "  TelemetryRule: received 7 = processed 3 + rejected 2 + dead-lettered 1, lost 0, in flight 1",
    ]


def test_stats_without_a_running_local_stack_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert operate.main(["--state-dir", str(tmp_path), "stats"]) == 2
    assert "needs a running local stack" in capsys.readouterr().err
