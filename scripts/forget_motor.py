"""Delete one motor's records from the archive in S3: every object that holds them is rewritten without them.

    python scripts/forget_motor.py motor-007 --stack motor-maintenance --dry-run   # what it would change
    python scripts/forget_motor.py motor-007 --stack motor-maintenance             # rewrite the objects
    python scripts/forget_motor.py motor-007 --bucket NAME --purge-versions        # and erase their old versions now
    python scripts/forget_motor.py motor-007 --stack motor-maintenance --tables    # and its state item and history

An archive object holds the records of every motor that reported within one buffer, so a motor's
records cannot be deleted as objects: each object of telemetry/, alarms/, actions/ and errors/ is
read, and one that holds the motor's records is written again, under the same key, without them
(or deleted, if nothing else is left). A record is the motor's when its `motor_id` or the rule's
`topic_motor_id` names it; in errors/, when the raw message does (a raw message that is not JSON:
when it holds the motor id as a JSON string). Everything else is kept as it was, invalid records
included.

The bucket is versioned: a rewritten object's previous version is kept, and expires 30 days later
(the bucket's lifecycle). --purge-versions deletes at once every previous version of an archive
object that holds the motor's records, this run's and those an earlier run left. Stop the motor
first (detach its certificate), and wait ArchiveBufferSeconds: Firehose may still hold its last
records (batched ingestion: and until the stream's readers are current, and the dead-letter queues hold
nothing of the motor's). docs/archive.md, "Privacy and deleting one motor's data", says what else holds its data.

--tables also deletes the motor's item in the state table (its state, alarms and running statistics)
and its entries in the console's history table (readings and alarm transitions of the last day,
operators' names included), which would otherwise expire within a few days of their 25 hours.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

if not __package__:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

MOTOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PREFIXES = ("telemetry/", "alarms/", "actions/", "errors/")
BUCKET_OUTPUT = "ArchiveBucketName"
STATE_TABLE_OUTPUT = "StateTableName"
HISTORY_TABLE_OUTPUT = "HistoryTableName"
BATCH_WRITE_ITEMS = 25
"""DynamoDB's BatchWriteItem takes at most 25 requests."""
UNPROCESSED_ATTEMPTS = 8


@dataclass
class Tally:
    """What a run found and did."""

    objects: int = 0
    rewritten: int = 0
    deleted: int = 0
    records: dict[str, int] = field(default_factory=dict)
    versions_purged: int = 0


def is_motors(record: Any, motor: str) -> bool:
    """Whether a reading, alarm event or action is this motor's."""
    return isinstance(record, dict) and motor in (record.get("motor_id"), record.get("topic_motor_id"))


def without_motor_jsonl(body: bytes, motor: str, *, errors: bool) -> tuple[bytes, int]:
    """JSON lines without the motor's records; in errors/, Firehose's error records judged by their raw data."""
    kept, removed = [], 0
    for line in body.splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            kept.append(line)  # not JSON: not a record of ours to judge
            continue
        if errors:
            rest, gone = _raw_without_motor(record, motor)
            removed += gone
            if rest is record:
                kept.append(line)
            elif rest is not None:
                kept.append(json.dumps(rest).encode() + b"\n")
        elif is_motors(record, motor):
            removed += 1
        else:
            kept.append(line)
    return b"".join(kept), removed


def _raw_without_motor(record: Any, motor: str) -> tuple[Any, int]:
    """A Firehose error record without the motor's documents in its raw data: (the record, the same object if
    nothing changed, None if nothing is left; how many documents were removed)."""
    raw = record.get("rawData") if isinstance(record, dict) else None
    if not isinstance(raw, str):
        return record, 0
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return record, 0
    from device.archive_layout import record_documents  # noqa: PLC0415 - it loads DuckDB, which --help does not need

    try:
        documents = record_documents(data)
    except ValueError:  # not JSON: the motor's when it holds the motor id as a JSON string
        return (None, 1) if json.dumps(motor).encode() in data else (record, 0)
    kept = [text for document, text in documents if not is_motors(document, motor)]
    removed = len(documents) - len(kept)
    if not removed:
        return record, 0
    if not kept:
        return None, removed
    return {**record, "rawData": base64.b64encode(b"".join(text + b"\n" for text in kept)).decode()}, removed


def without_motor_parquet(body: bytes, motor: str) -> tuple[bytes, int, int]:
    """(the object without the motor's rows, rows removed, rows kept); same columns and types, Snappy."""
    from device.columnar import connect, literal, parquet_columns, parquet_source  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="forget-") as folder:
        source, rewritten = Path(folder) / "in.parquet", Path(folder) / "out.parquet"
        source.write_bytes(body)
        db = connect()
        try:
            columns = [name for name in ("motor_id", "topic_motor_id") if name in parquet_columns(db, source)]
            rows = f"FROM {parquet_source([source])}"
            total = int(db.execute(f"SELECT count(*) {rows}").fetchall()[0][0])
            if not columns:
                return body, 0, total
            # a null motor id is nobody's
            mine = " OR ".join(f"coalesce({column} = {literal(motor)}, false)" for column in columns)
            kept = f"SELECT * {rows} WHERE NOT ({mine})"
            removed = total - int(db.execute(f"SELECT count(*) FROM ({kept})").fetchall()[0][0])  # noqa: S608
            if removed == 0:
                return body, 0, total
            db.execute(f"COPY ({kept}) TO {literal(str(rewritten))} (FORMAT parquet, COMPRESSION snappy)")
        finally:
            db.close()
        return rewritten.read_bytes(), removed, total - removed


class Forgetter:
    """Rewrites a bucket's archive objects without one motor's records."""

    def __init__(self, s3: Any, bucket: str, motor: str, *, dry_run: bool, out: TextIO) -> None:
        self.s3, self.bucket, self.motor, self.dry_run, self.out = s3, bucket, motor, dry_run, out
        self.tally = Tally()

    def run(self) -> Tally:
        for key in self._keys():
            self.tally.objects += 1
            self._forget_in(key)
        return self.tally

    def purge_versions(self) -> None:
        """Delete every previous version of an archive object that holds the motor's records.

        Firehose never overwrites an object, so previous versions are those of rewritten or deleted
        objects: this run's, and those of earlier runs not yet expired.
        """
        for prefix in PREFIXES:
            for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
                for version in page.get("Versions", []):
                    if version["IsLatest"]:
                        continue
                    key, version_id = version["Key"], version["VersionId"]
                    body = self.s3.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"].read()
                    if self._without_motor(key, body)[1]:
                        self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
                        self.tally.versions_purged += 1

    def _keys(self) -> Iterator[str]:
        for prefix in PREFIXES:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def _without_motor(self, key: str, body: bytes) -> tuple[bytes, int, int]:
        """(the object's body without the motor's records, how many were removed, how many are left)."""
        if key.endswith(".parquet"):
            return without_motor_parquet(body, self.motor)
        rewritten, removed = without_motor_jsonl(body, self.motor, errors=key.startswith("errors/"))
        return rewritten, removed, len(rewritten.splitlines())

    def _forget_in(self, key: str) -> None:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        rewritten, removed, left = self._without_motor(key, body)
        if not removed:
            return
        kind = key.split("/", 1)[0]
        self.tally.records[kind] = self.tally.records.get(kind, 0) + removed
        action = "rewrite" if left else "delete"
        self.out.write(f"{'would ' if self.dry_run else ''}{action} s3://{self.bucket}/{key}: {removed} removed\n")
        if self.dry_run:
            return
        if left:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=rewritten)
            self.tally.rewritten += 1
        else:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
            self.tally.deleted += 1


@dataclass
class TableTally:
    """What --tables found and deleted."""

    state_items: int = 0
    history_entries: int = 0


def forget_in_tables(
    dynamodb: Any, state_table: str, history_table: str, motor: str, *, dry_run: bool, out: TextIO
) -> TableTally:
    """Delete the motor's state item and every entry of its console history (with dry_run: count them)."""
    tally = TableTally()
    key = {"motor_id": {"S": motor}}
    if dry_run:
        found = dynamodb.get_item(TableName=state_table, Key=key, ProjectionExpression="motor_id").get("Item")
        tally.state_items = int(found is not None)
    else:
        old = dynamodb.delete_item(TableName=state_table, Key=key, ReturnValues="ALL_OLD").get("Attributes")
        tally.state_items = int(old is not None)
    if tally.state_items:
        out.write(f"{'would delete' if dry_run else 'deleted'} {motor}'s item in {state_table}\n")
    pages = dynamodb.get_paginator("query").paginate(
        TableName=history_table,
        KeyConditionExpression="motor_id = :motor",
        ExpressionAttributeValues={":motor": {"S": motor}},
        ProjectionExpression="motor_id, at_version",
    )
    batch: list[dict[str, Any]] = []
    for page in pages:
        for item in page.get("Items", []):
            tally.history_entries += 1
            batch.append({"DeleteRequest": {"Key": item}})
            if len(batch) == BATCH_WRITE_ITEMS and not dry_run:
                _delete_all(dynamodb, history_table, batch)
                batch = []
    if batch and not dry_run:
        _delete_all(dynamodb, history_table, batch)
    if tally.history_entries:
        deleted = "would delete" if dry_run else "deleted"
        out.write(f"{deleted} {tally.history_entries} of {motor}'s entries in {history_table}\n")
    return tally


def _delete_all(dynamodb: Any, table: str, requests: list[dict[str, Any]]) -> None:
    """One BatchWriteItem, and again for what DynamoDB left unprocessed (throttled), waiting longer each time."""
    for attempt in range(UNPROCESSED_ATTEMPTS):
        left = dynamodb.batch_write_item(RequestItems={table: requests}).get("UnprocessedItems", {})
        requests = left.get(table, [])
        if not requests:
            return
        time.sleep(min(0.05 * 2**attempt, 2.0))
    raise SystemExit(
        f"{table}: {len(requests)} entries still unprocessed after {UNPROCESSED_ATTEMPTS} attempts; run again"
    )


def main(argv: list[str] | None = None, make_client: Callable[..., Any] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("motor_id", help="the motor whose records to delete")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", default="motor-maintenance", help="stack whose ArchiveBucketName to use")
    where.add_argument("--bucket", help="the archive bucket itself")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    parser.add_argument("--dry-run", action="store_true", help="say which objects would change; change nothing")
    parser.add_argument(
        "--purge-versions", action="store_true", help="also delete now every previous version that holds its records"
    )
    parser.add_argument(
        "--tables", action="store_true", help="also delete its item in the state table and its console history"
    )
    parser.add_argument("--state-table", help="with --bucket and --tables: the state table (StateTableName)")
    parser.add_argument("--history-table", help="with --bucket and --tables: the history table (HistoryTableName)")
    args = parser.parse_args(argv)
    if args.tables and args.bucket and not (args.state_table and args.history_table):
        parser.error("--tables with --bucket needs --state-table and --history-table (or name the stack with --stack)")
    if not MOTOR_ID.match(args.motor_id):
        parser.error(f"{args.motor_id!r} is not a motor id ([A-Za-z0-9_-], 1 to 64 characters)")
    if make_client is None:
        with setup_needed("scripts/forget_motor.py"):
            import boto3  # noqa: PLC0415 - only the command line needs it

        def make_client(service: str, **kwargs: Any) -> Any:
            make: Any = boto3.client  # its overloads want a literal service name
            return make(service, region_name=args.region, **kwargs)

    outputs = {} if args.bucket else _stack_outputs(args.stack, make_client("cloudformation"))
    bucket = args.bucket or _output(outputs, args.stack, BUCKET_OUTPUT, "with the archive")
    forgetter = Forgetter(make_client("s3"), bucket, args.motor_id, dry_run=args.dry_run, out=out)
    tally = forgetter.run()
    if args.purge_versions and not args.dry_run:
        forgetter.purge_versions()
    removed = ", ".join(f"{count} {kind}" for kind, count in sorted(tally.records.items())) or "none"
    done = "would change" if args.dry_run else f"rewrote {tally.rewritten} and deleted {tally.deleted}"
    later = (
        "" if args.purge_versions or args.dry_run else " (they expire in 30 days; --purge-versions deletes them now)"
    )
    out.write(
        f"{args.motor_id}: {tally.objects} objects read, {done}; records removed: {removed}; "
        f"previous versions deleted: {tally.versions_purged}{later}\n"
    )
    if args.tables:
        state_table = args.state_table or _output(outputs, args.stack, STATE_TABLE_OUTPUT, "")
        history_table = args.history_table or _output(outputs, args.stack, HISTORY_TABLE_OUTPUT, "")
        tables = forget_in_tables(
            make_client("dynamodb"), state_table, history_table, args.motor_id, dry_run=args.dry_run, out=out
        )
        out.write(
            f"{args.motor_id}: {'would delete' if args.dry_run else 'deleted'} {tables.state_items} state item(s) "
            f"and {tables.history_entries} history entries\n"
        )
    return 0


def _stack_outputs(stack: str, cloudformation: Any) -> dict[str, str]:
    [description] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {output["OutputKey"]: output.get("OutputValue", "") for output in description.get("Outputs", [])}


def _output(outputs: dict[str, str], stack: str, name: str, having: str) -> str:
    if not outputs.get(name):
        raise SystemExit(
            f"stack {stack!r} has no output {name}: is it this project's stack{', ' + having if having else ''}?"
        )
    return outputs[name]


if __name__ == "__main__":
    raise SystemExit(main())
