"""Writes readings and operator actions straight into an archive folder, in its layout (docs/archive.md).

`device/history.py --archive` and `model/import_history.py` write through it, so both lay out objects
exactly as the reader (model/archive.py) expects: readings as Parquet (Snappy) with the telemetry
table's columns, actions as JSON lines, each in the daily partition of its arrival, objects named as
Firehose names them. Readings may come in any number of batches: each day's rows go to one object,
written a part at a time (a day's rows are gathered up to ROW_GROUP_ROWS first, and everything gathered
is written once BUFFERED_ROWS are held), so memory stays bounded however long the history. A day written
in several parts becomes one object when the writer closes: DuckDB streams the parts into it in order.
Objects are written under a hidden name and renamed when complete, so a reader never sees half a one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from device.archive_layout import ACTIONS, TELEMETRY, TELEMETRY_TYPES, day_of_ms, object_name, partition_dir
from device.columnar import Table, literal, parquet_source, session, write_parquet

ROW_GROUP_ROWS = 131_072
BUFFERED_ROWS = 524_288
"""Rows gathered across all days before they are written (about 60 MB of readings)."""
DAY_MS = 86_400_000


class ArchiveWriter:
    """One writer's objects in an archive folder; use it as a context manager, or call `close()`."""

    def __init__(self, root: Path, stream: str) -> None:
        self.root, self.stream = root, stream
        self.objects = 0
        self._parts: dict[str, tuple[list[Path], Path]] = {}
        self._pending: dict[str, list[Table]] = defaultdict(list)
        self._pending_rows: dict[str, int] = defaultdict(int)
        self._first_ms: dict[str, int] = {}
        self._buffered = 0

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close(keep=kind is None)

    def add_readings(self, table: Table, arrived_ms: NDArray[np.int64]) -> None:
        """Readings (the telemetry columns) and when each arrived (epoch ms), which picks its `dt` partition."""
        if table.num_rows == 0:
            return
        table = Table({name: table[name] for name in TELEMETRY_TYPES if name in table.columns})
        days = arrived_ms // DAY_MS
        order = np.argsort(days, kind="stable")
        unique, starts = np.unique(days[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        for index, day_number in enumerate(unique.tolist()):
            rows = order[bounds[index] : bounds[index + 1]]
            dt = day_of_ms(int(day_number) * DAY_MS)
            self._first_ms.setdefault(dt, int(arrived_ms[rows[0]]))
            self._pending[dt].append(table.take(rows))
            self._pending_rows[dt] += len(rows)
            self._buffered += len(rows)
            if self._pending_rows[dt] >= ROW_GROUP_ROWS:
                self._flush(dt)
        if self._buffered >= BUFFERED_ROWS:
            for dt in list(self._pending):
                self._flush(dt)

    def write_actions(self, actions: Iterable[dict[str, Any]], arrived_ms: Iterable[int]) -> int:
        """Actions as archived (JSON objects) and when each arrived: one JSON-lines object per arrival day."""
        by_day: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for action, arrived in zip(actions, arrived_ms, strict=True):
            by_day[day_of_ms(arrived)].append((arrived, action))
        for dt, records in sorted(by_day.items()):
            records.sort(key=lambda item: item[0])
            folder = partition_dir(self.root, ACTIONS, dt)
            folder.mkdir(parents=True, exist_ok=True)
            lines = "".join(json.dumps(action) + "\n" for _, action in records)
            final = folder / object_name(self.stream, records[0][0], ".jsonl")
            hidden = final.with_name("." + final.name)
            hidden.write_text(lines, encoding="utf-8")
            hidden.rename(final)
            self.objects += 1
        return sum(len(records) for records in by_day.values())

    def close(self, *, keep: bool = True) -> None:
        """Write what is gathered and finish every object (`keep=False`: remove the unfinished ones instead)."""
        if keep:
            for dt in list(self._pending):
                self._flush(dt)
        for parts, final in self._parts.values():
            if keep:
                _join(parts, final)
                self.objects += 1
            for part in parts:
                part.unlink(missing_ok=True)
        self._parts.clear()
        self._pending.clear()

    def _flush(self, dt: str) -> None:
        tables = self._pending.pop(dt, [])
        rows = self._pending_rows.pop(dt, 0)
        self._buffered -= rows
        if not tables:
            return
        if dt not in self._parts:
            folder = partition_dir(self.root, TELEMETRY, dt)
            folder.mkdir(parents=True, exist_ok=True)
            self._parts[dt] = ([], folder / object_name(self.stream, self._first_ms[dt], ".parquet"))
        parts, final = self._parts[dt]
        part = final.with_name(f".{final.name}.{len(parts)}")
        parts.append(part)
        write_parquet(part, Table.concat(tables), TELEMETRY_TYPES, row_group_rows=ROW_GROUP_ROWS)


def _join(parts: list[Path], final: Path) -> None:
    """A day's parts as its one object, rows in order (under a hidden name until it is complete)."""
    if len(parts) == 1:
        parts[0].rename(final)
        return
    hidden = final.with_name("." + final.name)
    db = session()
    db.execute(
        f"COPY (SELECT * FROM {parquet_source(parts)}) TO {literal(str(hidden))} "  # noqa: S608 - our own names; texts quoted
        f"(FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
    )
    hidden.rename(final)
