"""The archive's one reader: readings, alarm events and operator actions, validated and deduplicated.

    archive = Archive.open(".local-stack/archive")        # or "s3://bucket/prefix"
    readings = archive.readings(motor_id="motor-002", since=datetime(...))
    with archive.connect(since=...) as db:                 # DuckDB views telemetry, alarms, actions
        db.sql("SELECT motor_id, count(*) FROM telemetry GROUP BY 1").show()

The archive is the raw record (docs/archive.md): readings are validated here, with the telemetry model
the functions use (whole columns at a time, model.archive_checks, and row by row where that is in
doubt), and each invalid one is counted by reason, never silently dropped; every kind is
deduplicated on its key, because Firehose delivers at least once. Only the partitions that can hold the
period asked for are read (`dt >= day(since) - 1`). Readings stream through in Parquet batches; an
`s3://` location is read with pyarrow's S3 filesystem (credentials and region as the AWS SDK finds
them; `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` point it at another endpoint, such as moto's).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.ipc
from pydantic import ValidationError

from device.archive_layout import (
    ACTIONS,
    ALARMS,
    ERRORS,
    EVENT_KINDS,
    TELEMETRY,
    TELEMETRY_SCHEMA,
    first_partition,
)
from model.archive_checks import clearly_valid
from motor_maintenance.alarms import AlarmEvent, OperatorAction
from motor_maintenance.telemetry import TelemetryEvent, parse_timestamp, to_epoch_ms

READING_KEY = ("motor_id", "ts_ms", "seq")
EVENT_KEYS = {ALARMS: "event_id", ACTIONS: "action_id"}
"""The deduplication key of each kind (docs/archive.md)."""
EVENT_TIMES = {ALARMS: "at", ACTIONS: "ts"}
EVENT_MODELS: dict[str, type[AlarmEvent] | type[OperatorAction]] = {ALARMS: AlarmEvent, ACTIONS: OperatorAction}
"""The field that says when an event or action happened."""
BATCH_ROWS = 65_536
READINGS_SCHEMA = TELEMETRY_SCHEMA.append(pa.field("ts_ms", pa.int64()))
"""The readings' columns as read: the telemetry table's and the reading time in epoch ms."""
SHARD_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
"""Shards are compressed (measured: half the size, about 90 bytes a reading): the readings pass through disk."""
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

    table: pa.Table
    counts: ReadCounts


@dataclass
class Events:
    """Alarm events or operator actions, deduplicated, in time order (each as published)."""

    kind: str
    records: list[dict[str, Any]]
    counts: ReadCounts


class Archive:
    """An archive folder or S3 prefix; `open` it, then read each kind (every read goes back to the storage)."""

    def __init__(self, filesystem: pafs.FileSystem, root: str, location: str) -> None:
        self.filesystem, self.root, self.location = filesystem, root.rstrip("/"), location

    @classmethod
    def open(cls, location: str | Path) -> Archive:
        """A local folder or `s3://bucket/prefix`; ArchiveError if there is nothing there to read."""
        text = str(location)
        if text.startswith("s3://"):
            parsed = urlparse(text)
            if not parsed.netloc:
                raise ArchiveError(f"{text}: an s3:// location names a bucket (s3://bucket/prefix)")
            archive = cls(s3_filesystem(), f"{parsed.netloc}/{parsed.path.strip('/')}", text)
        else:
            folder = Path(text).expanduser().resolve()
            if not folder.is_dir():
                raise ArchiveError(f"{text}: no archive folder there (the local stack writes one when it runs)")
            archive = cls(pafs.LocalFileSystem(), folder.as_posix(), text)
        try:
            archive.filesystem.get_file_info(archive.root)
        except OSError as exc:
            raise ArchiveError(f"{text}: cannot be read ({exc})") from exc
        return archive

    # -- what is there

    def days(self, kind: str) -> list[str]:
        """The `dt` partitions of one kind, in order."""
        return sorted(dt for dt, _ in self._partitions(kind))

    def _partitions(self, kind: str, since: datetime | None = None) -> Iterator[tuple[str, str]]:
        """(dt, folder) of one kind's partitions that can hold records taken at or after `since`."""
        first = first_partition(since) if since is not None else ""
        base = f"{self.root}/{kind}"
        for info in self.filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True)):
            name = info.base_name
            if info.type == pafs.FileType.Directory and name.startswith("dt=") and name[3:] >= first:
                yield name[3:], info.path

    def _files(self, kind: str, since: datetime | None = None) -> list[str]:
        files = []
        for _, folder in sorted(self._partitions(kind, since)):
            selector = pafs.FileSelector(folder, recursive=True)
            found = self.filesystem.get_file_info(selector)
            files += sorted(i.path for i in found if i.type == pafs.FileType.File and not _hidden(i.base_name))
        return files

    def errors(self) -> Counter[str]:
        """Records Firehose could not convert or deliver, by `<stream>/<error-type>` (one per line of its objects)."""
        found: Counter[str] = Counter()
        selector = pafs.FileSelector(f"{self.root}/{ERRORS}", recursive=True, allow_not_found=True)
        for info in self.filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            parts = info.path[len(self.root) + len(ERRORS) + 2 :].split("/")
            where = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
            found[where] += sum(1 for line in self._read_text(info.path).splitlines() if line.strip())
        return found

    # -- readings

    def readings(
        self, *, motor_id: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> Readings:
        """Valid readings taken in [since, until), deduplicated on (motor_id, ts as epoch ms, seq)."""
        counts = ReadCounts()
        kept = list(self._valid_batches(counts, motor_id=motor_id, since=since, until=until))
        return unique_readings(pa.Table.from_batches(kept, schema=READINGS_SCHEMA), counts)

    def shard_by_motor(
        self,
        directory: Path,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[dict[str, Path], ReadCounts]:
        """Valid readings split into one Arrow file per motor under `directory`, in one pass over the archive.

        Memory holds a batch at a time, whatever the archive's size; `read_shard` then gives one motor's
        readings, deduplicated and sorted, as `readings(motor_id=...)` would (without reading the archive again).
        `progress(readings_read)` is called after each batch.
        """
        directory.mkdir(parents=True, exist_ok=True)
        counts = ReadCounts()
        writers: dict[str, pa.ipc.RecordBatchFileWriter] = {}
        paths: dict[str, Path] = {}
        try:
            for batch in self._valid_batches(counts, since=since, until=until):
                motors = batch.column("motor_id")
                for motor_id in pc.unique(motors).to_pylist():
                    if motor_id not in writers:
                        paths[motor_id] = directory / f"{len(paths):06d}.arrow"
                        writers[motor_id] = pa.ipc.new_file(paths[motor_id], READINGS_SCHEMA, options=SHARD_OPTIONS)
                    writers[motor_id].write_batch(batch.filter(pc.equal(motors, motor_id)))
                if progress is not None:
                    progress(counts.read)
        finally:
            for writer in writers.values():
                writer.close()
        counts.kept = counts.read - counts.invalid_total  # before deduplication, which read_shard does
        return dict(sorted(paths.items())), counts

    def _valid_batches(
        self,
        counts: ReadCounts,
        *,
        motor_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The valid readings taken in [since, until) batch by batch, with `ts_ms`; what is read counted in `counts`."""
        files = self._files(TELEMETRY, since)
        if not files:
            return
        dataset = ds.dataset(files, schema=TELEMETRY_SCHEMA, format="parquet", filesystem=self.filesystem)
        where = ds.field("motor_id") == motor_id if motor_id is not None else None
        since_ms = to_epoch_ms(since) if since is not None else -(2**62)
        until_ms = to_epoch_ms(until) if until is not None else 2**62
        for stored in dataset.to_batches(filter=where, batch_size=BATCH_ROWS):
            counts.read += stored.num_rows
            valid, ts_ms = _validate(stored, counts.invalid)
            if not valid.any():
                continue
            batch = stored.filter(pa.array(valid)).append_column("ts_ms", pa.array(ts_ms[valid], pa.int64()))
            in_period = pc.and_(pc.greater_equal(batch["ts_ms"], since_ms), pc.less(batch["ts_ms"], until_ms))
            yield batch.filter(in_period)

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
        db = duckdb.connect()
        db.register("telemetry", self.readings(motor_id=motor_id, since=since, until=until).table)
        for kind in EVENT_KINDS:
            records = self.events(kind, since=since, until=until).records
            if motor_id is not None:
                records = [record for record in records if record.get("motor_id") == motor_id]
            db.register(kind, events_table(records))
        return db

    def _read_text(self, path: str) -> str:
        with self.filesystem.open_input_stream(path) as stream:
            return bytes(stream.read()).decode("utf-8", errors="replace")


def read_shard(path: Path, counts: ReadCounts | None = None) -> Readings:
    """One motor's readings from `Archive.shard_by_motor`, deduplicated and sorted as `Archive.readings` gives them."""
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    return unique_readings(table, counts if counts is not None else ReadCounts(read=table.num_rows))


def unique_readings(table: pa.Table, counts: ReadCounts) -> Readings:
    """The first of each (motor_id, ts_ms, seq), sorted by that key; duplicates and what is kept counted."""
    unique = _first_of_each(table, list(READING_KEY))
    counts.duplicates = table.num_rows - unique.num_rows
    counts.kept = unique.num_rows
    return Readings(unique.sort_by([(name, "ascending") for name in READING_KEY]), counts)


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem, at `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` when one is set (as boto3 reads them)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options: dict[str, Any] = {"region": region} if region else {}
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
    return pafs.S3FileSystem(**options)


def _hidden(name: str) -> bool:
    """An object being written (local.firehose's temporary name) or a marker, not a record: skipped."""
    return name.startswith((".", "_"))


def _validate(batch: pa.RecordBatch, invalid: Counter[str]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Which rows of a batch are valid readings (TelemetryEvent), and the epoch ms of each valid one.

    Whole columns first (model.archive_checks); the rows that do not clearly pass go through the model
    one by one, which keeps the ones the column checks were too cautious about and names what is wrong.
    """
    valid, ts_ms = clearly_valid(batch)
    doubtful = np.flatnonzero(~valid)
    if len(doubtful) == 0:
        return valid, ts_ms
    for index, row in zip(doubtful.tolist(), batch.take(pa.array(doubtful)).to_pylist(), strict=True):
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
    return valid, ts_ms


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


def _first_of_each(table: pa.Table, keys: list[str]) -> pa.Table:
    """The first row of each group of rows with equal `keys` (the archive's order)."""
    if table.num_rows == 0:
        return table
    indexed = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    first = indexed.group_by(keys, use_threads=False).aggregate([("_row", "min")])
    return table if first.num_rows == table.num_rows else table.take(first["_row_min"])


def events_table(records: list[dict[str, Any]]) -> pa.Table:
    """Events as an Arrow table: a column per top-level field, objects and lists as JSON text, mixed types as text."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {}
    for name in names:
        values = [record.get(name) for record in records]
        if any(isinstance(value, dict | list) for value in values):
            values = [None if value is None else json.dumps(value) for value in values]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if value is None else json.dumps(value) for value in values])
    return pa.table(columns) if columns else pa.table({"motor_id": pa.array([], pa.string())})


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
