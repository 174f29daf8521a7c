"""The archive's one reader: readings, alarm events and operator actions, validated and deduplicated.

    archive = Archive.open(".local-stack/archive")        # or "s3://bucket/prefix"
    readings = archive.readings(motor_id="motor-002", since=datetime(...))
    with archive.connect(since=...) as db:                 # DuckDB views telemetry, alarms, actions
        db.sql("SELECT motor_id, count(*) FROM telemetry GROUP BY 1").show()

The archive is the raw record (docs/archive.md): readings are validated here, with the telemetry model
the functions use (whole columns at a time in DuckDB, model.archive_checks, and row by row where that is
in doubt), and each invalid one is counted by reason, never silently dropped; every kind is
deduplicated on its key, because Firehose delivers at least once. Only the partitions that can hold the
period asked for are read (`dt >= day(since) - 1`). Readings stream through DuckDB's Parquet reader a
few row groups at a time; an `s3://` location is listed and its objects downloaded one at a time with
boto3 (credentials, region and `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` as the AWS SDK finds them).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from device.archive_layout import (
    ACTIONS,
    ALARMS,
    ERRORS,
    EVENT_KINDS,
    TELEMETRY,
    TELEMETRY_TYPES,
    first_partition,
)
from device.columnar import (
    NUMPY_TYPES,
    Table,
    connect,
    fetch,
    literal,
    parquet_columns,
    parquet_source,
    quoted,
    read_parquet,
    register,
    row_group_ranges,
    typed_select,
)
from model.archive_checks import checked
from motor_maintenance.alarms import AlarmEvent, OperatorAction
from motor_maintenance.telemetry import TelemetryEvent, parse_timestamp, to_epoch_ms

READING_KEY = ("motor_id", "ts_ms", "seq")
EVENT_KEYS = {ALARMS: "event_id", ACTIONS: "action_id"}
"""The deduplication key of each kind (docs/archive.md)."""
EVENT_TIMES = {ALARMS: "at", ACTIONS: "ts"}
EVENT_MODELS: dict[str, type[AlarmEvent] | type[OperatorAction]] = {ALARMS: AlarmEvent, ACTIONS: OperatorAction}
"""The field that says when an event or action happened."""
BATCH_ROWS = 65_536
"""Rows read at a time (whole row groups: a batch may hold more)."""
READINGS_TYPES = {**TELEMETRY_TYPES, "ts_ms": "BIGINT"}
"""The readings' columns as read: the telemetry table's and the reading time in epoch ms."""
_QUOTED = re.compile(r"'[^']*'")


class ArchiveError(Exception):
    """An archive that cannot be opened or read (a missing folder, an unreachable bucket)."""


@dataclass
class ReadCounts:
    """What a read found: records read, kept, duplicates left out and invalid ones by reason."""

    read: int = 0
    kept: int = 0
    duplicates: int = 0
    invalid: Counter[str] = field(default_factory=Counter)

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())


@dataclass
class Readings:
    """Valid readings, deduplicated, sorted by (motor_id, ts_ms, seq): the telemetry columns plus `ts_ms`."""

    table: Table
    counts: ReadCounts


@dataclass
class Events:
    """Alarm events or operator actions, deduplicated, in time order (each as published)."""

    kind: str
    records: list[dict[str, Any]]
    counts: ReadCounts


class LocalStore:
    """An archive folder: keys are paths under it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def keys(self, prefix: str, start_after: str = "") -> list[str]:
        """Every file's key under `prefix` (a folder, ending in /), in order, after `start_after`."""
        base = self.root / prefix
        if not base.is_dir():
            return []
        found = (path.relative_to(self.root).as_posix() for path in base.rglob("*") if path.is_file())
        return sorted(key for key in found if key > start_after)

    @contextmanager
    def local(self, key: str) -> Iterator[Path]:
        yield self.root / key

    def read_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


class S3Store:
    """An S3 prefix, through boto3: listed, and each object downloaded to a temporary file while it is read."""

    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3  # noqa: PLC0415 - only an s3:// archive needs the SDK

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client("s3")

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def keys(self, prefix: str, start_after: str = "") -> list[str]:
        options = {"Bucket": self.bucket, "Prefix": self._full(prefix)}
        if start_after:
            options["StartAfter"] = self._full(start_after)
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(**options):
            found += [item["Key"] for item in page.get("Contents", [])]
        skip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(key[skip:] for key in found if not key.endswith("/"))

    def check(self) -> None:
        self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._full(""), MaxKeys=1)

    @contextmanager
    def local(self, key: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="archive-") as folder:
            path = Path(folder) / key.rsplit("/", 1)[-1]
            self.client.download_file(self.bucket, self._full(key), str(path))
            yield path

    def read_bytes(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        return bytes(body.read())


class Archive:
    """An archive folder or S3 prefix; `open` it, then read each kind (every read goes back to the storage)."""

    def __init__(self, store: LocalStore | S3Store, location: str) -> None:
        self.store, self.location = store, location

    @classmethod
    def open(cls, location: str | Path) -> Archive:
        """A local folder or `s3://bucket/prefix`; ArchiveError if there is nothing there to read."""
        text = str(location)
        if not text.startswith("s3://"):
            folder = Path(text).expanduser().resolve()
            if not folder.is_dir():
                raise ArchiveError(f"{text}: no archive folder there (the local stack writes one when it runs)")
            return cls(LocalStore(folder), text)
        parsed = urlparse(text)
        if not parsed.netloc:
            raise ArchiveError(f"{text}: an s3:// location names a bucket (s3://bucket/prefix)")
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            store = S3Store(parsed.netloc, parsed.path)
            store.check()
        except (BotoCoreError, ClientError) as exc:
            raise ArchiveError(f"{text}: cannot be read ({exc})") from exc
        return cls(store, text)

    # -- what is there

    def days(self, kind: str) -> list[str]:
        """The `dt` partitions of one kind, in order."""
        return sorted({dt for dt, _ in self._keys(kind)})

    def _keys(self, kind: str, since: datetime | None = None) -> list[tuple[str, str]]:
        """(dt, key) of the records of one kind in the partitions that can hold records taken at or after `since`."""
        first = first_partition(since) if since is not None else ""
        found = []
        for key in self.store.keys(f"{kind}/", f"{kind}/dt={first}" if first else ""):
            parts = key.split("/")
            if len(parts) >= 3 and parts[1].startswith("dt=") and parts[1][3:] >= first:
                found.append((parts[1][3:], key))
        return found

    def _files(self, kind: str, since: datetime | None = None) -> list[str]:
        return [key for _, key in sorted(self._keys(kind, since)) if not _hidden(key.rsplit("/", 1)[-1])]

    def errors(self) -> Counter[str]:
        """Records Firehose could not convert or deliver, by `<stream>/<error-type>` (one per line of its objects)."""
        found: Counter[str] = Counter()
        for key in self.store.keys(f"{ERRORS}/"):
            parts = key[len(ERRORS) + 1 :].split("/")
            where = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
            found[where] += sum(1 for line in self._read_text(key).splitlines() if line.strip())
        return found

    # -- readings

    def readings(
        self, *, motor_id: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> Readings:
        """Valid readings taken in [since, until), deduplicated on (motor_id, ts as epoch ms, seq)."""
        counts = ReadCounts()
        kept = list(self._valid_batches(counts, motor_id=motor_id, since=since, until=until))
        return unique_readings(Table.concat(kept) if kept else _no_readings(), counts)

    def shard_by_motor(
        self,
        directory: Path,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[dict[str, Path], ReadCounts]:
        """Valid readings split into one Parquet file per motor under `directory`, in one pass over the archive.

        The pass gathers the readings in a DuckDB database file under `directory` (on disk, so memory holds a
        batch at a time whatever the archive's size), then writes each motor's; `read_shard` gives one
        motor's readings, deduplicated and sorted, as `readings(motor_id=...)` would (without reading the
        archive again). `progress(readings_read)` is called after each batch.
        """
        directory.mkdir(parents=True, exist_ok=True)
        counts = ReadCounts()
        scratch = directory / "readings.duckdb"
        scratch.unlink(missing_ok=True)
        db = duckdb.connect(str(scratch))
        columns = ", ".join(f"{quoted(name)} {kind}" for name, kind in READINGS_TYPES.items())
        db.execute(f"CREATE TABLE readings ({columns}, _row BIGINT)")
        paths: dict[str, Path] = {}
        try:
            for batch in self._valid_batches(counts, since=since, until=until):
                register(db, "batch", Table({**batch.columns, "_row": np.arange(batch.num_rows) + counts.read}))
                db.execute(
                    f"INSERT INTO readings SELECT {typed_select(READINGS_TYPES, batch.column_names)}, _row FROM batch"  # noqa: S608 - our own names; texts quoted
                )
                if progress is not None:
                    progress(counts.read)
            motors = [str(row[0]) for row in db.execute("SELECT DISTINCT motor_id FROM readings ORDER BY 1").fetchall()]
            db.execute("CREATE TABLE by_motor AS SELECT * FROM readings ORDER BY motor_id, _row")
            db.execute("DROP TABLE readings")
            for motor_id in motors:
                paths[motor_id] = directory / f"{len(paths):06d}.parquet"
                db.execute(
                    f"COPY (SELECT * EXCLUDE (_row) FROM by_motor WHERE motor_id = {literal(motor_id)} ORDER BY _row) "  # noqa: S608 - our own names; texts quoted
                    f"TO {literal(str(paths[motor_id]))} (FORMAT parquet, COMPRESSION lz4_raw)"
                )
        finally:
            db.close()
            scratch.unlink(missing_ok=True)
            Path(f"{scratch}.wal").unlink(missing_ok=True)
        counts.kept = counts.read - counts.invalid_total  # before deduplication, which read_shard does
        return paths, counts

    def _valid_batches(
        self,
        counts: ReadCounts,
        *,
        motor_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Table]:
        """The valid readings taken in [since, until) batch by batch, with `ts_ms`; what is read counted in `counts`."""
        since_ms = to_epoch_ms(since) if since is not None else -(2**62)
        until_ms = to_epoch_ms(until) if until is not None else 2**62
        db = connect()
        try:
            for key in self._files(TELEMETRY, since):
                with self.store.local(key) as path:
                    yield from self._file_batches(
                        db, path, counts, motor_id=motor_id, since_ms=since_ms, until_ms=until_ms
                    )
        finally:
            db.close()

    @staticmethod
    def _file_batches(
        db: duckdb.DuckDBPyConnection,
        path: Path,
        counts: ReadCounts,
        *,
        motor_id: str | None,
        since_ms: int,
        until_ms: int,
    ) -> Iterator[Table]:
        """One Parquet object's valid readings in [since_ms, until_ms), a few row groups at a time."""
        present = parquet_columns(db, path)
        if motor_id is not None and "motor_id" not in present:
            return
        where = "" if motor_id is None else f" AND motor_id = {literal(motor_id)}"
        rows = (
            f"SELECT {typed_select(TELEMETRY_TYPES, present)} "  # noqa: S608 - our own names; texts quoted
            f"FROM {parquet_source([path], row_numbers=True)} "
            f"WHERE file_row_number >= $first AND file_row_number < $end{where}"
        )
        query = checked(rows, TELEMETRY_TYPES)
        for first, end in row_group_ranges(db, path, BATCH_ROWS):
            stored = fetch(db.execute(query, {"first": first, "end": end}))
            if stored.num_rows == 0:
                continue
            counts.read += stored.num_rows
            valid = np.asarray(stored.columns.pop("_ok"), dtype=bool)
            stamps = np.asarray(stored.columns.pop("_ts_ms"), dtype=np.int64)
            _validate(stored, valid, stamps, counts.invalid)
            in_period = valid & (stamps >= since_ms) & (stamps < until_ms)
            if not in_period.any():
                continue
            batch = stored.take(in_period)
            batch.columns["ts_ms"] = stamps[in_period]
            yield batch

    # -- alarm events and operator actions

    def events(self, kind: str, *, since: datetime | None = None, until: datetime | None = None) -> Events:
        """Alarm events (`alarms`) or operator actions (`actions`) in [since, until), deduplicated on their id."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"kind {kind!r} is not one of {EVENT_KINDS}")
        key, when = EVENT_KEYS[kind], EVENT_TIMES[kind]
        counts = ReadCounts()
        seen: dict[str, tuple[int, dict[str, Any]]] = {}
        for path in self._files(kind, since):
            for line in self._read_text(path).splitlines():
                if not line.strip():
                    continue
                counts.read += 1
                try:
                    record = json.loads(line)
                    at_ms = to_epoch_ms(parse_timestamp(record[when]))
                    identity = record[key]
                except (ValueError, KeyError, TypeError) as exc:
                    counts.invalid[_event_reason(exc, key, when)] += 1
                    continue
                try:  # the same model the functions validate with: a refused action is no label
                    EVENT_MODELS[kind].model_validate(record)
                except ValidationError as exc:
                    counts.invalid[_reason(exc)] += 1
                    continue
                if not isinstance(identity, str) or not identity:
                    counts.invalid[f"{key} missing"] += 1
                elif identity in seen:
                    counts.duplicates += 1
                elif (since is None or at_ms >= to_epoch_ms(since)) and (until is None or at_ms < to_epoch_ms(until)):
                    seen[identity] = (at_ms, record)
        ordered = [record for _, record in sorted(seen.values(), key=lambda item: item[0])]
        counts.kept = len(ordered)
        return Events(kind, ordered, counts)

    # -- SQL

    def connect(
        self, *, since: datetime | None = None, until: datetime | None = None, motor_id: str | None = None
    ) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the views `telemetry`, `alarms` and `actions` over the deduplicated records.

        `telemetry` holds the valid readings (the telemetry columns plus `ts_ms`); `alarms` and
        `actions` one column per top-level field (objects and lists as JSON text).
        """
        db = connect()
        readings = self.readings(motor_id=motor_id, since=since, until=until).table
        register(db, "telemetry_rows", readings)
        db.execute(
            f"CREATE VIEW telemetry AS SELECT {typed_select(READINGS_TYPES, readings.column_names)} FROM telemetry_rows"  # noqa: S608 - our own names; texts quoted
        )
        for kind in EVENT_KINDS:
            records = self.events(kind, since=since, until=until).records
            if motor_id is not None:
                records = [record for record in records if record.get("motor_id") == motor_id]
            if records:
                register(db, kind, events_table(records))
            else:
                db.execute(f"CREATE VIEW {kind} AS SELECT CAST(NULL AS VARCHAR) AS motor_id WHERE false")
        return db

    def _read_text(self, key: str) -> str:
        return self.store.read_bytes(key).decode("utf-8", errors="replace")


def read_shard(path: Path, counts: ReadCounts | None = None) -> Readings:
    """One motor's readings from `Archive.shard_by_motor`, deduplicated and sorted as `Archive.readings` gives them."""
    table = read_parquet(path)
    return unique_readings(table, counts if counts is not None else ReadCounts(read=table.num_rows))


def unique_readings(table: Table, counts: ReadCounts) -> Readings:
    """The first of each (motor_id, ts_ms, seq), sorted by that key; duplicates and what is kept counted."""
    order = _first_of_each(table)
    counts.duplicates = table.num_rows - len(order)
    counts.kept = len(order)
    return Readings(table.take(order), counts)


def _no_readings() -> Table:
    return Table(
        {
            name: np.zeros(0, dtype=object if kind == "VARCHAR" else NUMPY_TYPES[kind])
            for name, kind in READINGS_TYPES.items()
        }
    )


def _hidden(name: str) -> bool:
    """An object being written (local.firehose's temporary name) or a marker, not a record: skipped."""
    return name.startswith((".", "_"))


def _validate(batch: Table, valid: NDArray[np.bool_], ts_ms: NDArray[np.int64], invalid: Counter[str]) -> None:
    """Settle the rows the column checks (model.archive_checks) did not clear, one by one with the model.

    The model keeps the ones the column checks were too cautious about (marked valid, with their epoch ms)
    and names what is wrong with the others (counted in `invalid`).
    """
    doubtful = np.flatnonzero(~valid)
    if len(doubtful) == 0:
        return
    for index, row in zip(doubtful.tolist(), batch.take(doubtful).to_pylist(), strict=True):
        fields = {name: value for name, value in row.items() if value is not None}
        ts = fields.get("ts")
        if isinstance(ts, str) and ts.isdigit():  # epoch ms the legacy rule stamped, stored as text
            fields["ts"] = int(ts)
        try:
            reading = TelemetryEvent.model_validate(fields)
        except ValidationError as exc:
            invalid[_reason(exc)] += 1
            continue
        valid[index] = True
        ts_ms[index] = reading.ts_ms


def _reason(exc: ValidationError) -> str:
    """A validation failure as a reason to count: the field and the check, without the value."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "value_error":
        return f"{where + ': ' if where else ''}{_QUOTED.sub('...', error['msg'].removeprefix('Value error, '))}"
    return f"{where or 'reading'}: {error['type']}"


def _event_reason(exc: Exception, key: str, when: str) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return "not JSON"
    if isinstance(exc, KeyError):
        return f"{exc.args[0]} missing"
    return f"{when}: not a timestamp" if isinstance(exc, ValueError) else f"not a JSON object with {key}"


def _first_of_each(table: Table) -> NDArray[np.intp]:
    """The rows that are the first of each (motor_id, ts_ms, seq) in the table's order, sorted by that key."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.intp)
    _, motor = np.unique(np.ma.getdata(table["motor_id"]).astype(str), return_inverse=True)
    seq = np.ma.filled(table["seq"], np.iinfo(np.int64).max)  # a null sorts last, as one value
    ts_ms = np.asarray(table["ts_ms"], dtype=np.int64)
    order = np.lexsort((seq, ts_ms, motor))  # stable: equal keys keep the table's order
    keys = np.stack([motor[order], ts_ms[order], seq[order]])
    first = np.ones(len(order), dtype=bool)
    first[1:] = (keys[:, 1:] != keys[:, :-1]).any(axis=0)
    return order[first]


def events_table(records: list[dict[str, Any]]) -> Table:
    """Events as columns: one per top-level field, objects and lists as JSON text, mixed types as text."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return Table({name: _event_column([record.get(name) for record in records]) for name in names})


def _event_column(values: list[Any]) -> NDArray[Any]:
    """One field's values as a column of the type they share (a null where absent), else as JSON text."""
    present = [value for value in values if value is not None]
    missing = np.array([value is None for value in values], dtype=bool)
    if any(isinstance(value, dict | list) for value in present):
        return np.array([None if value is None else json.dumps(value) for value in values], dtype=object)
    kinds = {bool if isinstance(value, bool) else type(value) for value in present}
    for shared, dtype in (({bool}, np.bool_), ({int}, np.int64), ({int, float}, np.float64), ({float}, np.float64)):
        if kinds == shared:
            filled = [0 if value is None else value for value in values]
            return np.ma.masked_array(np.array(filled, dtype=dtype), mask=missing)
    if kinds <= {str}:
        return np.array(values, dtype=object)
    return np.array([None if value is None else json.dumps(value) for value in values], dtype=object)


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
