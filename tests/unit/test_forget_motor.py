"""scripts/forget_motor.py: one motor's records leave the archive in S3; every other record stays as it was."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from device.columnar import Table, parquet_bytes, read_parquet_bytes
from scripts import forget_motor

BUCKET = "archive-bucket"
READINGS = "telemetry/dt=2026-11-27/stream-1-2026-11-27-12-00-00-a.parquet"
ALARMS = "alarms/dt=2026-11-27/stream-1-2026-11-27-12-00-00-b.jsonl"
ACTIONS = "actions/dt=2026-11-27/stream-1-2026-11-27-12-00-00-c.jsonl"
ERRORS = "errors/telemetry/format-conversion-failed/dt=2026-11-27/stream-1-2026-11-27-12-00-00-d"


def reading(motor: str | None, seq: int, topic: str | None = None) -> dict[str, Any]:
    return {"motor_id": motor, "ts": "2026-11-27T12:00:00Z", "seq": seq, "running": True, "topic_motor_id": topic}


def jsonl(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def error_record(raw: bytes) -> dict[str, Any]:
    return {
        "attemptsMade": 1,
        "ErrorCode": "DataFormatConversion.ParseError",
        "rawData": base64.b64encode(raw).decode(),
    }


def parquet(rows: list[dict[str, Any]]) -> bytes:
    types = {name: "BIGINT" if name == "seq" else "VARCHAR" for name in rows[0]}
    return parquet_bytes(Table.from_rows(rows, types), types, row_group_rows=1000)


class Archive:
    """A versioned bucket holding one object of each kind, two motors' records mixed in each."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name="eu-west-1")
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        self.put(
            READINGS,
            parquet(
                [
                    reading("motor-001", 1, "motor-001"),
                    reading("motor-002", 1, "motor-002"),
                    reading(None, 2, "motor-001"),  # invalid, but on motor-001's topic
                    reading(None, 3, None),  # nobody's: kept
                    reading("motor-002", 2, "motor-001"),  # motor-002 claimed on motor-001's topic
                ]
            ),
        )
        self.put(ALARMS, jsonl({"event_id": "a", "motor_id": "motor-001"}, {"event_id": "b", "motor_id": "motor-002"}))
        self.put(ACTIONS, jsonl({"action_id": "x", "motor_id": "motor-001", "topic_motor_id": "motor-001"}))
        raw_json = json.dumps({"motor_id": "motor-001", "speed_rpm": "fast"}).encode()
        self.put(
            ERRORS,
            jsonl(
                error_record(raw_json),
                error_record(b'{"motor_id": "motor-002", "speed_rpm": "slow"}'),
                error_record(b'not json "motor-001"'),
                error_record(b"not json at all"),
            ),
        )

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    def body(self, key: str) -> bytes:
        data: bytes = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return data

    def current_keys(self) -> set[str]:
        return {item["Key"] for item in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}

    def versions(self, key: str) -> int:
        listing = self.s3.list_object_versions(Bucket=BUCKET, Prefix=key)
        return len(listing.get("Versions", [])) + len(listing.get("DeleteMarkers", []))

    def holding(self, motor: str) -> set[str]:
        """The keys of which some version, current or previous, holds a record of the motor."""
        found = set()
        for version in self.s3.list_object_versions(Bucket=BUCKET).get("Versions", []):
            key = version["Key"]
            body = self.s3.get_object(Bucket=BUCKET, Key=key, VersionId=version["VersionId"])["Body"].read()
            if key.endswith(".parquet"):
                records = read_parquet_bytes(body).to_pylist()
            else:
                records = [json.loads(line) for line in body.splitlines()]
            raw = b"".join(base64.b64decode(record.get("rawData", "")) for record in records)
            if any(motor in (record.get("motor_id"), record.get("topic_motor_id")) for record in records) or (
                motor.encode() in raw
            ):
                found.add(key)
        return found

    def forget(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        status = forget_motor.main([*args, "--bucket", BUCKET], make_client=self.client, out=out)
        return status, out.getvalue()

    def client(self, service: str, **kwargs: Any) -> Any:
        return boto3.client(service, region_name="eu-west-1", **kwargs)


@pytest.fixture
def archive() -> Iterator[Archive]:
    with mock_aws():
        yield Archive()


def test_the_motors_records_leave_every_kind_of_object_and_the_rest_stay(archive: Archive) -> None:
    status, out = archive.forget("motor-001")

    assert status == 0
    rows = read_parquet_bytes(archive.body(READINGS)).to_pylist()
    assert [(row["motor_id"], row["seq"]) for row in rows] == [("motor-002", 1), (None, 3)]
    assert [json.loads(line)["event_id"] for line in archive.body(ALARMS).splitlines()] == ["b"]
    assert ACTIONS not in archive.current_keys()  # nothing else was in it
    raw = [base64.b64decode(json.loads(line)["rawData"]) for line in archive.body(ERRORS).splitlines()]
    assert raw == [b'{"motor_id": "motor-002", "speed_rpm": "slow"}', b"not json at all"]
    assert "4 objects read, rewrote 3 and deleted 1" in out
    assert "records removed: 1 actions, 1 alarms, 2 errors, 3 telemetry" in out


def test_a_dry_run_says_what_it_would_change_and_changes_nothing(archive: Archive) -> None:
    before = {key: archive.body(key) for key in archive.current_keys()}

    status, out = archive.forget("motor-001", "--dry-run")

    assert status == 0
    assert {key: archive.body(key) for key in archive.current_keys()} == before
    assert f"would rewrite s3://{BUCKET}/{READINGS}: 3 removed" in out
    assert f"would delete s3://{BUCKET}/{ACTIONS}: 1 removed" in out


def test_previous_versions_stay_for_the_lifecycle_unless_purged(archive: Archive) -> None:
    # Given a first run without purging: the previous versions still hold motor-002's records
    archive.forget("motor-002")
    assert archive.versions(ALARMS) == 2
    assert archive.holding("motor-002") == {READINGS, ALARMS, ERRORS}
    # And motor-002's records archived again since
    archive.put(ALARMS, jsonl({"event_id": "c", "motor_id": "motor-002"}, {"event_id": "d", "motor_id": "motor-003"}))
    # When it runs again with --purge-versions
    status, out = archive.forget("motor-002", "--purge-versions")
    # Then no version of any object holds them, and the versions without them are kept
    assert status == 0
    assert archive.holding("motor-002") == set()
    assert [json.loads(line)["event_id"] for line in archive.body(ALARMS).splitlines()] == ["d"]
    assert archive.versions(ALARMS) == 2  # the current one, and the first run's (motor-001's event alone)
    assert "previous versions deleted: 4" in out  # the readings', the errors' and two of the alarms'


def test_a_motor_with_no_records_changes_nothing(archive: Archive) -> None:
    status, out = archive.forget("motor-404")

    assert status == 0
    assert "rewrote 0 and deleted 0; records removed: none" in out
    assert archive.versions(READINGS) == 1


def test_something_that_is_no_motor_id_is_refused(archive: Archive, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        archive.forget("motor 1/..")
    assert "is not a motor id" in capsys.readouterr().err


STATE_TABLE, HISTORY_TABLE = "motor-state", "motor-history"


class Tables:
    """The state table and the console's history table, as the template makes them, with two motors in each."""

    def __init__(self) -> None:
        self.dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        self.dynamodb.create_table(
            TableName=STATE_TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "motor_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "motor_id", "KeyType": "HASH"}],
        )
        self.dynamodb.create_table(
            TableName=HISTORY_TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "motor_id", "AttributeType": "S"},
                {"AttributeName": "at_version", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "motor_id", "KeyType": "HASH"},
                {"AttributeName": "at_version", "KeyType": "RANGE"},
            ],
        )
        for motor, entries in (("motor-001", 60), ("motor-002", 3)):  # 60: more than one BatchWriteItem of 25
            self.dynamodb.put_item(TableName=STATE_TABLE, Item={"motor_id": {"S": motor}, "version": {"N": "7"}})
            for entry in range(entries):
                item = {"motor_id": {"S": motor}, "at_version": {"S": f"{entry:013d}#1"}, "note": {"S": "by Ana"}}
                self.dynamodb.put_item(TableName=HISTORY_TABLE, Item=item)

    def state_motors(self) -> set[str]:
        return {item["motor_id"]["S"] for item in self.dynamodb.scan(TableName=STATE_TABLE)["Items"]}

    def history(self, motor: str) -> int:
        return int(
            self.dynamodb.query(
                TableName=HISTORY_TABLE,
                KeyConditionExpression="motor_id = :motor",
                ExpressionAttributeValues={":motor": {"S": motor}},
                Select="COUNT",
            )["Count"]
        )


def test_tables_deletes_its_state_item_and_its_history_and_nothing_of_another_motor(archive: Archive) -> None:
    tables = Tables()

    status, out = archive.forget(
        "motor-001", "--tables", "--state-table", STATE_TABLE, "--history-table", HISTORY_TABLE
    )

    assert status == 0
    assert tables.state_motors() == {"motor-002"}
    assert (tables.history("motor-001"), tables.history("motor-002")) == (0, 3)
    assert "motor-001: deleted 1 state item(s) and 60 history entries" in out
    assert "records removed: 1 actions" in out  # the archive too


def test_a_dry_run_with_tables_counts_what_it_would_delete_and_deletes_nothing(archive: Archive) -> None:
    tables = Tables()

    status, out = archive.forget(
        "motor-001", "--tables", "--dry-run", "--state-table", STATE_TABLE, "--history-table", HISTORY_TABLE
    )

    assert status == 0
    assert tables.state_motors() == {"motor-001", "motor-002"}
    assert tables.history("motor-001") == 60
    assert "motor-001: would delete 1 state item(s) and 60 history entries" in out


def test_entries_dynamodb_leaves_unprocessed_are_sent_again(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    tables = Tables()
    real = tables.dynamodb.batch_write_item
    calls: list[int] = []

    def throttled(**request: Any) -> dict[str, Any]:
        """The first call of each batch: only its first 5 deletes done, the rest handed back as unprocessed."""
        (requests,) = request["RequestItems"].values()
        calls.append(len(requests))
        if len(calls) % 2:
            real(RequestItems={HISTORY_TABLE: requests[:5]})
            return {"UnprocessedItems": {HISTORY_TABLE: requests[5:]}}
        return dict(real(**request))

    monkeypatch.setattr(tables.dynamodb, "batch_write_item", throttled)
    monkeypatch.setattr("scripts.forget_motor.time.sleep", lambda _: None)

    forget_motor.forget_in_tables(
        tables.dynamodb, STATE_TABLE, HISTORY_TABLE, "motor-001", dry_run=False, out=io.StringIO()
    )

    assert tables.history("motor-001") == 0
    assert calls == [25, 20, 25, 20, 10, 5]


def test_the_stacks_outputs_name_the_bucket_and_the_tables(archive: Archive) -> None:
    tables = Tables()
    outputs = {
        "ArchiveBucketName": BUCKET,
        "StateTableName": STATE_TABLE,
        "HistoryTableName": HISTORY_TABLE,
    }

    class Stacks:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            assert StackName == "plant-a"
            return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]}

    def client(service: str, **kwargs: Any) -> Any:
        return Stacks() if service == "cloudformation" else archive.client(service, **kwargs)

    out = io.StringIO()
    assert forget_motor.main(["motor-002", "--stack", "plant-a", "--tables"], make_client=client, out=out) == 0
    assert tables.state_motors() == {"motor-001"}
    assert tables.history("motor-002") == 0

    del outputs["HistoryTableName"]
    with pytest.raises(SystemExit, match="stack 'plant-a' has no output HistoryTableName"):
        forget_motor.main(["motor-001", "--stack", "plant-a", "--tables"], make_client=client, out=io.StringIO())


def test_tables_beside_a_bucket_need_the_tables_names(archive: Archive, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        archive.forget("motor-001", "--tables")
    assert "--tables with --bucket needs --state-table and --history-table" in capsys.readouterr().err


def test_in_an_error_record_of_several_readings_only_the_motors_readings_are_removed() -> None:
    # A record the batched function packed (several readings, one a line) that Firehose could not convert.
    mine, other = b'{"motor_id": "motor-007", "seq": 1}', b'{"motor_id": "motor-008", "seq": 2}'
    packed = error_record(mine + b"\n" + other + b"\n" + mine.replace(b"1}", b"3}") + b"\n")
    theirs = error_record(other + b"\n" + other.replace(b"2}", b"4}") + b"\n")

    body, removed = forget_motor.without_motor_jsonl(jsonl(packed, theirs), "motor-007", errors=True)

    assert removed == 2
    first, second = (json.loads(line) for line in body.splitlines())
    assert base64.b64decode(first["rawData"]) == other + b"\n"  # motor-008's reading kept, byte for byte
    assert {key: value for key, value in first.items() if key != "rawData"} == {
        key: value for key, value in packed.items() if key != "rawData"
    }
    assert second == theirs
    # Nothing of motor-008's is left to remove, and a record of the motor's alone goes whole.
    assert forget_motor.without_motor_jsonl(body, "motor-008", errors=True)[0] == b""
