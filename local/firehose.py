"""Amazon Data Firehose on one machine: each delivery stream of the template writing the archive into a folder.

What `DeliveryStream` does is what Firehose documents for an S3 destination (local.delivery reads the
configuration from template.yaml; docs/archive.md has the layout):

- records are buffered as they arrive, and delivered as one object when the buffer reaches
  BufferingHints.SizeInMBs (counted on the records as they came in) or IntervalInSeconds after its
  first record arrived, whichever comes first, and whatever is buffered when the stack stops;
- an object lands under the Prefix with `!{timestamp:...}` expanded for the arrival time (UTC) of the
  oldest record in it, named `<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>` plus the FileExtension;
- with record format conversion, each JSON object of a record (one, or several concatenated, `{"a":1}{"a":2}`,
  as Firehose's deserializer reads them; whitespace between them is skipped) is converted against the Glue
  table's columns into one Parquet row as the OpenX JSON SerDe reads it (fields outside the columns are not
  kept, missing ones are null, numeric text is parsed into a number column, any JSON value's text fills a
  text column); a record that cannot be converted (not JSON objects, or a value its column cannot read,
  in any of its documents: **assumed** so, Firehose's guide does not say how it treats a record of several
  documents one of which fails) goes whole, in Firehose's error record format, to the ErrorOutputPrefix with
  `!{firehose:error-output-type}` = `format-conversion-failed`: nothing is dropped;
- without conversion the records are written as they came, concatenated (the IoT rule's Separator
  ends each with a newline: JSON lines).

Objects are written to a hidden temporary name and renamed, so a reader never sees half an object.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device.archive_layout import object_name, record_documents
from device.columnar import Table, duckdb_types, read_parquet, write_parquet
from local.delivery import DeliveryStreamSpec, expand_prefix

log = logging.getLogger("local.firehose")

CONVERSION_FAILED = "format-conversion-failed"
CONVERSION_ERROR_CODE = "DataFormatConversion.InvalidSchema"
ROW_GROUP_ROWS = 1_048_576
"""Rows per Parquet row group at most (an object holds at most a buffer's records: mostly one row group)."""
TICK_S = 0.2
"""How often the interval is checked."""


class ConversionError(ValueError):
    """A record that does not fit the table's columns."""


@dataclass(frozen=True, slots=True)
class _Record:
    data: bytes
    arrived_ms: int


class DeliveryStream:
    """One delivery stream writing under `root`; `put` from any thread, `close` flushes and stops the timer."""

    def __init__(
        self,
        spec: DeliveryStreamSpec,
        root: Path,
        *,
        clock_ms: Callable[[], int] = lambda: round(time.time() * 1000),
        timer: bool = True,
    ) -> None:
        self.spec, self.root, self._clock_ms = spec, root, clock_ms
        self._types = duckdb_types(spec.columns) if spec.columns is not None else None
        self._buffer: list[_Record] = []
        self._buffered_bytes = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self.records_in = 0
        self.records_delivered = 0
        """Records written as data (rows or lines)."""
        self.records_failed = 0
        """Records written to the error prefix."""
        self.objects: list[Path] = []
        self._timer = threading.Thread(target=self._tick, name=f"firehose-{spec.logical_id}", daemon=True)
        if timer:
            self._timer.start()

    @property
    def size_limit_bytes(self) -> int:
        return self.spec.buffer_size_mb * 1024 * 1024

    def put(self, data: bytes) -> None:
        """PutRecord: buffer the record; deliver the buffer if it reached its size."""
        if self._closed.is_set():
            raise RuntimeError(f"delivery stream {self.spec.name} is closed")
        with self._lock:
            self._buffer.append(_Record(data, self._clock_ms()))
            self._buffered_bytes += len(data)
            self.records_in += 1
            full = self._buffered_bytes >= self.size_limit_bytes
            batch = self._take() if full else None
        if batch:
            self._deliver(batch)

    def flush_due(self) -> None:
        """Deliver the buffer if its oldest record has waited the buffering interval."""
        with self._lock:
            due = (
                bool(self._buffer)
                and self._clock_ms() - self._buffer[0].arrived_ms >= self.spec.buffer_interval_s * 1000
            )
            batch = self._take() if due else None
        if batch:
            self._deliver(batch)

    def flush(self) -> None:
        """Deliver whatever is buffered now."""
        with self._lock:
            batch = self._take()
        if batch:
            self._deliver(batch)

    def close(self) -> None:
        """Stop taking records and deliver what is buffered (the stack stopping). Idempotent."""
        self._closed.set()
        if self._timer.is_alive():
            self._timer.join(5)
        self.flush()

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def _take(self) -> list[_Record]:
        batch, self._buffer, self._buffered_bytes = self._buffer, [], 0
        return batch

    def _tick(self) -> None:
        while not self._closed.wait(TICK_S):
            try:
                self.flush_due()
            except Exception:  # a failed write must not stop the timer: the next tick retries the next buffer
                log.exception("delivery stream %s could not deliver", self.spec.name)

    # -- delivery

    def _deliver(self, batch: list[_Record]) -> None:
        with self._write_lock:
            if self._types is None:
                self._write(batch[0].arrived_ms, b"".join(record.data for record in batch), self.spec.extension)
                self.records_delivered += len(batch)
                return
            rows: list[dict[str, Any]] = []
            oldest_ms: int | None = None
            failed: list[tuple[_Record, str]] = []
            for record in batch:
                try:
                    rows.extend(self._convert(record.data))
                except ConversionError as exc:
                    failed.append((record, str(exc)))
                    continue
                oldest_ms = record.arrived_ms if oldest_ms is None else oldest_ms
            if rows and oldest_ms is not None:
                self._write(oldest_ms, Table.from_rows(rows, self._types), self.spec.extension)
                self.records_delivered += len(rows)
            if failed:
                self._write_errors(failed)
                self.records_failed += len(failed)

    def _convert(self, data: bytes) -> list[dict[str, Any]]:
        """A record's JSON objects as rows of the table's columns, as the OpenX JSON deserializer reads them."""
        columns = self.spec.columns or ()
        rows = []
        for record in _documents(data):
            if not isinstance(record, dict):
                raise ConversionError("the record is not a JSON object")
            row = {name: _column_value(record.get(name), hive_type, name) for name, hive_type in columns}
            for name, value in row.items():
                if isinstance(value, str):
                    try:
                        value.encode("utf-8")  # JSON may spell a lone surrogate ("\ud800"), which Parquet cannot hold
                    except UnicodeEncodeError as exc:
                        raise ConversionError(f"column {name} is not valid Unicode: {exc.reason}") from exc
            rows.append(row)
        return rows

    def _write_errors(self, failed: list[tuple[_Record, str]]) -> None:
        now_ms = self._clock_ms()
        lines = []
        for number, (record, message) in enumerate(failed):
            error = {
                "attemptsMade": 1,
                "arrivalTimestamp": record.arrived_ms,
                "ErrorCode": CONVERSION_ERROR_CODE,
                "ErrorMessage": message,
                "attemptEndingTimestamp": now_ms,
                "rawData": base64.b64encode(record.data).decode(),
                "sequenceNumber": f"{record.arrived_ms}{number:08d}",
                "dataCatalogTable": {"databaseName": self.spec.database, "tableName": self.spec.table},
            }
            lines.append(json.dumps(error) + "\n")
        self._write(failed[0][0].arrived_ms, "".join(lines).encode(), "", error_type=CONVERSION_FAILED)

    def _write(self, arrived_ms: int, body: bytes | Table, extension: str, *, error_type: str | None = None) -> Path:
        """One object (bytes as they are, a Table as Parquet of the table's columns) under its hidden name, renamed."""
        arrived = datetime.fromtimestamp(arrived_ms / 1000, tz=UTC)
        prefix = self.spec.error_prefix if error_type is not None else self.spec.prefix
        key = expand_prefix(prefix, arrived, error_type) + object_name(self.spec.name, arrived_ms, extension)
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        if isinstance(body, Table):
            types = self._types or {}
            write_parquet(temporary, body, types, row_group_rows=ROW_GROUP_ROWS, compression=self.spec.compression)
        else:
            temporary.write_bytes(body)
        os.replace(temporary, path)
        self.objects.append(path)
        return path


@dataclass(frozen=True)
class ArchiveTally:
    """What the delivery streams wrote since a mark, counted from the objects themselves (for the run's report)."""

    location: Path
    readings: int = 0
    """Rows of the Parquet objects of the stream that converts (the readings)."""
    errors: int = 0
    """Records in the error prefix."""
    lines: dict[str, int] | None = None
    """JSON lines of each other stream, by the first part of its prefix (`alarms`, `actions`)."""


def marks(streams: dict[str, DeliveryStream]) -> dict[str, int]:
    """How many objects each stream had written: a mark to tally from."""
    return {name: len(stream.objects) for name, stream in streams.items()}


def tally(streams: dict[str, DeliveryStream], since: dict[str, int], location: Path) -> ArchiveTally:
    """Flush every stream, then count the records in the objects each wrote after `since`."""
    readings = errors = 0
    lines: dict[str, int] = {}
    for name, stream in streams.items():
        stream.flush()
        for path in stream.objects[since.get(name, 0) :]:
            if CONVERSION_FAILED in path.parts or path.suffix != stream.spec.extension:
                errors += sum(1 for line in path.read_bytes().splitlines() if line.strip())
            elif stream.spec.columns is not None:
                readings += read_parquet(path).num_rows
            else:
                kind = stream.spec.prefix.split("/")[0]
                lines[kind] = lines.get(kind, 0) + sum(1 for line in path.read_bytes().splitlines() if line.strip())
    return ArchiveTally(location, readings, errors, lines)


def _documents(data: bytes) -> list[Any]:
    """The JSON documents of a record (device.archive_layout.record_documents); ConversionError if it has none."""
    try:
        return [document for document, _ in record_documents(data)]
    except ValueError as exc:
        raise ConversionError(f"the record is not JSON: {exc}") from exc


def _column_value(value: Any, hive_type: str, name: str) -> Any:
    """A JSON value as its column's type; ConversionError for a value of the wrong type."""
    if value is None:
        return None
    kind = hive_type.lower()
    if kind == "string":  # the OpenX SerDe takes any JSON value's text (an object's or a list's too)
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ConversionError(f"column {name} (boolean): got {json.dumps(value)[:60]}")
    if isinstance(value, str):  # as the OpenX SerDe does: numeric text is parsed into a numeric column
        value = _number(value, kind, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConversionError(f"column {name} ({kind}): got {json.dumps(value)[:60]}")
    if kind in ("double", "float"):
        return float(value)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ConversionError(f"column {name} ({kind}): {value} is not a whole number")
    number = int(value)
    if (kind == "int" and not -(2**31) <= number < 2**31) or not -(2**63) <= number < 2**63:
        raise ConversionError(f"column {name} ({kind}): {number} is out of range")
    return number


def _number(text: str, kind: str, name: str) -> int | float:
    """Numeric text as the number it spells (Java's parseDouble / parseLong), or ConversionError."""
    try:
        return float(text) if kind in ("double", "float") else int(text)
    except ValueError:
        raise ConversionError(f"column {name} ({kind}): {json.dumps(text)[:60]} is not a number") from None
