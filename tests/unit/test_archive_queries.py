"""The Athena saved queries of template.yaml give the right rows, each record once, run on DuckDB.

Athena (engine 3) speaks Trino's SQL. DuckDB runs the queries as written once the few Trino functions
they call are defined as macros with Trino's meaning; the tables have the Glue tables' columns (read
from the template) and a `dt` column, filled with records as the archive holds them, duplicates
included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from motor_maintenance.alarms import AlarmState
from tests.unit.test_archive_template import glue_table
from tests.unit.test_detector import Motor
from tests.unit.test_labels import raise_predictive
from tests.unit.test_template import TEMPLATE, resources

TRINO_FUNCTIONS = {
    "regexp_like(text, pattern)": "regexp_matches(text, pattern)",  # a match anywhere, as Trino's
    "from_iso8601_timestamp(text)": "CAST(text AS TIMESTAMPTZ)",
    "to_unixtime(moment)": "epoch(moment)",
    "from_unixtime(seconds)": "to_timestamp(seconds)",
}
SCALARS = {"string": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN"}


def duckdb_type(hive: str) -> str:
    """A Glue (Hive) column type in DuckDB's spelling."""
    if hive in SCALARS:
        return SCALARS[hive]
    if match := re.fullmatch(r"map<(\w+),(\w+)>", hive):
        return f"MAP({SCALARS[match[1]]}, {SCALARS[match[2]]})"
    if match := re.fullmatch(r"array<struct<(.+)>>", hive):
        fields = ", ".join(
            f"{name} {SCALARS[kind]}" for name, kind in (field.split(":") for field in match[1].split(","))
        )
        return f"STRUCT({fields})[]"
    raise AssertionError(f"no DuckDB type for {hive}")


def query(name: str) -> str:
    [found] = [
        q["Properties"]["QueryString"]
        for logical, q in resources(TEMPLATE, "AWS::Athena::NamedQuery")
        if logical == name
    ]
    return str(found)


class Archive:
    """DuckDB tables shaped as the Glue tables, filled a record at a time."""

    def __init__(self) -> None:
        self.db = duckdb.connect()
        for signature, body in TRINO_FUNCTIONS.items():
            self.db.execute(f"CREATE MACRO {signature} AS {body}")
        self.columns: dict[str, list[str]] = {}
        for kind in ("telemetry", "alarms", "actions"):
            _, table = glue_table(TEMPLATE, kind)
            columns = [(column["Name"], column["Type"]) for column in table["StorageDescriptor"]["Columns"]]
            columns += [(key["Name"], key["Type"]) for key in table["PartitionKeys"]]
            self.columns[kind] = [name for name, _ in columns]
            declared = ", ".join(f'"{name}" {duckdb_type(hive)}' for name, hive in columns)
            self.db.execute(f"CREATE TABLE {kind} ({declared})")

    def add(self, table: str, dt: str, /, **record: Any) -> None:
        unknown = set(record) - set(self.columns[table])
        assert not unknown, f"{table} has no column {unknown}"
        values = [dt if name == "dt" else record.get(name) for name in self.columns[table]]
        placeholders = ", ".join("?" for _ in values)
        self.db.execute(f"INSERT INTO {table} VALUES ({placeholders})", values)  # noqa: S608 - our own table names

    def run(self, name: str) -> list[dict[str, Any]]:
        relation = self.db.sql(query(name))
        return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


@pytest.fixture
def archive() -> Iterator[Archive]:
    archive = Archive()
    yield archive
    archive.db.close()


def test_one_motors_readings_are_those_taken_in_the_period_each_once_in_order(archive: Archive) -> None:
    # Given motor-001's readings (the query's motor, period 2026-11-01 to 2026-11-08), one delivered twice
    reading = {"motor_id": "motor-001", "running": True, "speed_rpm": 1480.0}
    archive.add("telemetry", "2026-11-02", **reading, ts="2026-11-02T10:00:00Z", seq=7, received_at=1)
    archive.add("telemetry", "2026-11-02", **reading, ts="2026-11-02T10:00:00Z", seq=7, received_at=2)
    # And one from the legacy rule, stamped in epoch milliseconds (2026-11-01T12:00:00Z)
    archive.add("telemetry", "2026-11-01", **reading, ts="1793534400000", seq=1793534400000, received_at=3)
    # And one taken before the period that arrived in it, one on another motor, one whose ts is no time
    archive.add("telemetry", "2026-11-01", **reading, ts="2026-10-31T23:59:00Z", seq=6, received_at=4)
    archive.add("telemetry", "2026-11-03", **{**reading, "motor_id": "motor-002"}, ts="2026-11-03T00:00:00Z", seq=1)
    archive.add("telemetry", "2026-11-03", **reading, ts="yesterday", seq=8, received_at=5)
    # And one claiming to be motor-001 but published on motor-002's topic (refused live)
    archive.add("telemetry", "2026-11-03", **reading, ts="2026-11-03T01:00:00Z", seq=9, topic_motor_id="motor-002")
    # When the saved query runs
    rows = archive.run("MotorReadingsQuery")
    # Then it gives the two readings taken in the period, once each, oldest first
    assert [(str(row["taken_at"]), row["seq"], row["received_at"]) for row in rows] == [
        ("2026-11-01 12:00:00+00:00", 1793534400000, 3),
        ("2026-11-02 10:00:00+00:00", 7, 1),
    ]


def test_the_failure_and_service_log_lists_each_report_and_service_once(archive: Archive) -> None:
    report = {
        "motor_id": "motor-002",
        "action": "report_failure",
        "action_id": "r-1",
        "ts": "2026-11-27T12:20:00Z",
        "failed_at": "2026-11-27T09:45:00Z",
        "failure_mode": "bearing_wear",
        "operator": "j.smith",
        "topic_motor_id": "motor-002",
    }
    archive.add("actions", "2026-11-27", **report)
    archive.add("actions", "2026-11-28", **report)  # delivered again, the next day
    archive.add("actions", "2026-11-28", motor_id="motor-002", action="service_complete", action_id="s-1",
                ts="2026-11-28T08:00:00Z", topic_motor_id="motor-002")  # fmt: skip
    acknowledged = {"action": "acknowledge", "alarm": "predictive", "action_id": "a-1", "verdict": "confirmed"}
    archive.add("actions", "2026-11-28", **acknowledged, motor_id="motor-002", ts="2026-11-28T07:00:00Z")
    # published on another motor's topic: the function refused it
    archive.add("actions", "2026-11-28", **{**report, "action_id": "r-2", "topic_motor_id": "motor-003"})

    rows = archive.run("FailureAndServiceLogQuery")

    assert [(row["action"], row["action_id"], row["failure_mode"]) for row in rows] == [
        ("report_failure", "r-1", "bearing_wear"),
        ("service_complete", "s-1", None),
    ]


def _event(event_id: str, transition: str, at: str, active_since: str, **fields: Any) -> dict[str, Any]:
    base = {
        "event_id": event_id,
        "motor_id": "motor-001",
        "alarm": "predictive",
        "kind": "predictive",
        "transition": transition,
        "from_state": "NORMAL",
        "to_state": "ACTIVE",
        "severity": "high",
        "at": at,
        "active_since": active_since,
    }
    return base | fields


def test_each_alarm_raised_is_listed_once_with_its_latest_verdict(archive: Archive) -> None:
    # Given a predictive alarm raised (delivered twice), acknowledged as confirmed, then reset as a false alarm
    t1, t2, t3 = "2026-11-27T09:00:00Z", "2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z"
    raised = _event("e1", "raised", t1, t1, failure_probability=0.8)
    archive.add("alarms", "2026-11-27", **raised)
    archive.add("alarms", "2026-11-27", **raised)
    archive.add("alarms", "2026-11-27", **_event("e2", "acknowledged", t2, t1, from_state="ACTIVE",
                to_state="ACKNOWLEDGED", verdict="confirmed", operator="j.smith"))  # fmt: skip
    archive.add("alarms", "2026-11-27", **_event("e3", "reset", t3, t1, from_state="ACKNOWLEDGED",
                to_state="NORMAL", verdict="false_alarm", operator="a.jones"))  # fmt: skip
    # And the same episode raised again from LATCHED, a condition alarm nobody judged, and a schedule alarm
    archive.add("alarms", "2026-11-27", **_event("e4", "raised", t2, t1, from_state="LATCHED"))
    archive.add("alarms", "2026-11-27", **_event("e5", "raised", t3, t3, alarm="bearing_hot", kind="condition"))
    archive.add("alarms", "2026-11-27", **_event("e6", "raised", t3, t3, alarm="schedule", kind="schedule"))
    # When the saved query runs
    rows = archive.run("AlarmVerdictsQuery")
    # Then each episode raised is one row, with the verdict given last, or none
    assert [(row["alarm"], row["raised_at"], row["verdict"], row["judged_on"], row["operator"]) for row in rows] == [
        ("predictive", t1, "false_alarm", "reset", "a.jones"),
        ("bearing_hot", t3, None, None, None),
    ]


def test_a_verdict_given_on_acknowledging_a_latched_alarm_joins_its_raise(archive: Archive) -> None:
    """Events as the detector makes them: raised, cleared into LATCHED, acknowledged there with a verdict."""
    motor = Motor()
    raise_predictive(motor)
    motor.read(120, probability=0.1)
    motor.read(180, probability=0.1)
    assert motor.alarm("predictive") is AlarmState.LATCHED
    motor.act("acknowledge", 240, alarm="predictive", verdict="false_alarm")
    assert motor.alarm("predictive") is AlarmState.NORMAL

    for event in motor.events:
        record = event.model_dump(mode="json")
        archive.add(
            "alarms", "2026-11-27", **{name: record[name] for name in archive.columns["alarms"] if name in record}
        )
    rows = archive.run("AlarmVerdictsQuery")

    assert [(row["alarm"], row["verdict"], row["judged_on"]) for row in rows] == [
        ("predictive", "false_alarm", "acknowledged")
    ]
