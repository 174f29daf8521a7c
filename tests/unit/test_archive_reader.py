"""model/archive.py: the one reader - validation counted by reason, deduplication, partition pruning, s3://.

Archives are written here as the local stack's Firehose writes them (Parquet with the telemetry
columns, JSON lines), straight into the layout, so each test says exactly what is stored.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from pydantic import ValidationError

from device.archive_layout import TELEMETRY_TYPES, object_name, partition_dir
from device.columnar import Table, write_parquet
from model.archive import Archive, ArchiveError
from model.archive_checks import clearly_valid
from motor_maintenance.telemetry import TelemetryEvent
from tests.support import load_event

BASE = dict(load_event("telemetry-normal").items())


def row(seq: int, **changes: Any) -> dict[str, Any]:
    return {**BASE, "seq": seq, **changes}


def write_readings(root: Path, dt: str, rows: list[dict[str, Any]]) -> Path:
    folder = partition_dir(root, "telemetry", dt)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / object_name("test", 1_796_637_600_000, ".parquet")
    write_parquet(path, Table.from_rows(rows, TELEMETRY_TYPES), TELEMETRY_TYPES, row_group_rows=1000)
    return path


def write_lines(root: Path, kind: str, dt: str, records: list[Any]) -> None:
    folder = partition_dir(root, kind, dt)
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    (folder / object_name("test", 1_796_637_600_000, ".jsonl")).write_text(text)


# ---------------------------------------------------------------- readings


def test_invalid_readings_are_counted_by_reason_never_silently_dropped(tmp_path: Path) -> None:
    write_readings(
        tmp_path,
        "2026-11-27",
        [
            row(1),
            row(2, speed_rpm=-5.0),
            row(3, speed_rpm=-7.0),
            row(4, topic_motor_id="motor-009"),
            row(5, ts="yesterday"),
            row(6, fault="bearing_failure"),  # a faulted motor reporting running=true
        ],
    )
    read = Archive.open(tmp_path).readings()
    assert read.counts.read == 6
    assert read.counts.kept == 1
    assert read.counts.invalid["speed_rpm: greater_than_equal"] == 2
    assert sum(read.counts.invalid.values()) == 5
    assert any("topic" in reason for reason in read.counts.invalid)
    assert any(reason.startswith("ts:") for reason in read.counts.invalid)
    assert any("running=false" in reason for reason in read.counts.invalid)


def test_readings_are_deduplicated_on_motor_ts_as_epoch_ms_and_seq(tmp_path: Path) -> None:
    # The same reading delivered twice (once with ts as the legacy rule's epoch ms), and one with another seq
    write_readings(tmp_path, "2026-11-27", [row(1), row(2)])
    write_readings(tmp_path, "2026-11-28", [row(1, ts="1795780800000", received_at=1795780900000), row(3)])
    read = Archive.open(tmp_path).readings()
    assert read.counts.duplicates == 1
    assert read.table.values("seq") == [1, 2, 3]
    assert read.table.values("received_at")[0] == BASE["received_at"]  # the first one stored is kept
    assert set(read.table.values("ts_ms")) == {1795780800000}


def test_only_partitions_that_can_hold_the_period_are_read(tmp_path: Path) -> None:
    # A broken object in a partition two days before the earliest `since` would fail any read that opened it
    old = partition_dir(tmp_path, "telemetry", "2026-11-24")
    old.mkdir(parents=True)
    (old / "broken.parquet").write_bytes(b"not parquet")
    write_readings(tmp_path, "2026-11-26", [row(1, ts="2026-11-26T23:59:00Z")])  # the day before: read
    write_readings(tmp_path, "2026-11-27", [row(2)])
    archive = Archive.open(tmp_path)
    since = datetime(2026, 11, 27, tzinfo=UTC)
    assert archive.readings(since=since).table.values("seq") == [2]
    assert archive.readings(since=since).counts.read == 2  # the day before is read, for late clocks
    until = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert archive.readings(since=datetime(2026, 11, 26, 12, tzinfo=UTC), until=until).table.values("seq") == [1]
    with pytest.raises(duckdb.Error):
        archive.readings()


def test_one_motors_readings(tmp_path: Path) -> None:
    write_readings(tmp_path, "2026-11-27", [row(1), row(2, motor_id="motor-002", topic_motor_id="motor-002")])
    read = Archive.open(tmp_path).readings(motor_id="motor-002")
    assert read.table.values("motor_id") == ["motor-002"]
    assert read.counts.read == 1


ODD_ROWS = [
    row(1),
    row(2, ts="2026-11-27T12:00:00.123+02:00"),
    row(3, ts="2026-11-27T12:00:00.123456Z"),  # between milliseconds: the model decides
    {**row(18), "ts": "2026-11-27T12:00:00.514000Z"},  # as the simulator stamps: a whole millisecond
    row(4, ts="2026-11-27 12:00:00+00:00"),
    row(5, ts="2026-11-27T12:00:00"),  # no offset
    row(6, ts="2026-13-27T12:00:00Z"),
    row(7, ts="1795780800000"),
    row(8, ts="0000000000001"),
    row(9, speed_rpm=float("nan")),
    row(10, speed_rpm=20_000.0),
    row(11, speed_rpm=20_000.5),
    row(12, motor_id="bad id!", topic_motor_id=None),
    row(13, fault="overheating", running=False),
    row(14, running=None),
    row(15, received_at=-1),
    row(16, topic_motor_id=None, received_at=None),
    {**row(17), "seq": 2**53},
]


def test_the_column_checks_never_pass_a_reading_the_model_refuses() -> None:
    batch = Table.from_rows(ODD_ROWS, TELEMETRY_TYPES)
    passed, ts_ms = clearly_valid(batch)
    for index, values in enumerate(ODD_ROWS):
        fields = {k: v for k, v in values.items() if v is not None}
        if isinstance(fields["ts"], str) and fields["ts"].isdigit():
            fields["ts"] = int(fields["ts"])
        try:
            model_ts_ms = TelemetryEvent.model_validate(fields).ts_ms
        except ValidationError:
            assert not passed[index], values
            continue
        if passed[index]:
            assert ts_ms[index] == model_ts_ms, values
    assert passed.sum() >= 5  # the plain ones do take the fast path


def test_the_reader_keeps_what_the_model_keeps(tmp_path: Path) -> None:
    write_readings(tmp_path, "2026-11-27", ODD_ROWS)
    kept = Archive.open(tmp_path).readings()
    expected = []
    for values in ODD_ROWS:
        fields = {k: v for k, v in values.items() if v is not None}
        if isinstance(fields["ts"], str) and fields["ts"].isdigit():
            fields["ts"] = int(fields["ts"])
        try:
            TelemetryEvent.model_validate(fields)
        except ValidationError:
            continue
        expected.append(values["seq"])
    assert sorted(kept.table.values("seq")) == sorted(expected)
    assert kept.counts.invalid_total == len(ODD_ROWS) - len(expected)


# ---------------------------------------------------------------- events, actions, errors, SQL


def test_events_and_actions_are_deduplicated_on_their_ids_and_bad_lines_counted(tmp_path: Path) -> None:
    alarm = load_event("alarm-raised")
    action = load_event("action-acknowledge")
    write_lines(tmp_path, "alarms", "2026-11-27", [alarm, alarm, "{not json"])
    write_lines(tmp_path, "actions", "2026-11-27", [action, {**action, "ts": "2026-11-27T13:00:00Z"}])
    archive = Archive.open(tmp_path)
    alarms = archive.events("alarms")
    assert (alarms.counts.read, alarms.counts.kept, alarms.counts.duplicates) == (3, 1, 1)
    assert alarms.counts.invalid == {"not JSON": 1}
    actions = archive.events("actions")
    assert (actions.counts.kept, actions.counts.duplicates) == (1, 1)


def test_actions_and_events_the_functions_would_refuse_are_counted_invalid_not_returned(tmp_path: Path) -> None:
    # Given a failure report as sent, one published on another motor's topic, one failing after it was
    # reported, and an alarm event with an unknown transition
    report = load_event("action-report-failure")
    forged = {**report, "action_id": "forged-1", "topic_motor_id": "motor-999"}
    impossible = {**report, "action_id": "late-1", "failed_at": "2099-01-01T00:00:00Z"}
    write_lines(tmp_path, "actions", "2026-11-27", [report, forged, impossible])
    write_lines(tmp_path, "alarms", "2026-11-27", [{**load_event("alarm-raised"), "transition": "exploded"}])
    archive = Archive.open(tmp_path)

    actions = archive.events("actions")
    alarms = archive.events("alarms")

    # Then only the valid report is a label, and each refusal is counted with its reason
    assert [a["action_id"] for a in actions.records] == [report["action_id"]]
    assert sum(actions.counts.invalid.values()) == 2
    assert any("topic" in reason for reason in actions.counts.invalid), actions.counts.invalid
    assert (alarms.records, sum(alarms.counts.invalid.values())) == ([], 1)


def test_duckdb_sees_the_deduplicated_readings_alarms_and_actions(tmp_path: Path) -> None:
    write_readings(tmp_path, "2026-11-27", [row(1), row(1), row(2)])
    write_lines(tmp_path, "alarms", "2026-11-27", [load_event("alarm-raised")])
    write_lines(tmp_path, "actions", "2026-11-27", [load_event("action-acknowledge"), load_event("action-reset")])
    with Archive.open(tmp_path).connect() as db:
        assert db.execute("SELECT count(*) FROM telemetry").fetchall() == [(2,)]
        assert db.execute("SELECT count(*) FROM alarms").fetchall() == [(1,)]
        assert sorted(db.execute("SELECT action FROM actions").fetchall()) == [("acknowledge",), ("reset",)]


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="no archive folder"):
        Archive.open(tmp_path / "nothing")


# ---------------------------------------------------------------- s3://


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)  # noqa: S310
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    try:
        yield endpoint
    finally:
        server.stop()


def test_an_s3_archive_reads_as_a_folder_does(tmp_path: Path, s3_endpoint: str) -> None:
    write_readings(tmp_path, "2026-11-26", [row(1, ts="2026-11-26T12:00:00Z")])
    write_readings(tmp_path, "2026-11-27", [row(2), row(2), row(3, speed_rpm=-1.0)])
    write_lines(tmp_path, "actions", "2026-11-27", [load_event("action-acknowledge")])
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="archive")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "archive", f"fleet/{path.relative_to(tmp_path).as_posix()}")
    archive = Archive.open("s3://archive/fleet")
    read = archive.readings(since=datetime(2026, 11, 27, tzinfo=UTC))
    assert read.table.values("seq") == [2]
    assert (read.counts.duplicates, read.counts.invalid_total) == (1, 1)
    assert archive.days("telemetry") == ["2026-11-26", "2026-11-27"]
    assert archive.events("actions").counts.kept == 1
