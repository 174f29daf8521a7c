"""Writes readings and operator actions straight into an archive folder, in its layout (docs/archive.md).

`device/history.py --archive` and `model/import_history.py` write through it, so both lay out objects
exactly as the reader (model/archive.py) expects: readings as Parquet (Snappy) with the telemetry
table's columns, actions as JSON lines, each in the daily partition of its arrival, objects named as
Firehose names them. Readings may come in any number of batches: each day's rows go to one object,
written a row group at a time (a day's rows are gathered up to ROW_GROUP_ROWS first, and everything
gathered is written once BUFFERED_ROWS are held), so memory stays bounded however long the history.
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
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from device.archive_layout import ACTIONS, TELEMETRY, TELEMETRY_SCHEMA, day_of_ms, object_name, partition_dir

ROW_GROUP_ROWS = 131_072
BUFFERED_ROWS = 524_288
"""Rows gathered across all days before they are written (about 60 MB of readings)."""
DAY_MS = 86_400_000


class ArchiveWriter:
    """One writer's objects in an archive folder; use it as a context manager, or call `close()`."""

    def __init__(self, root: Path, stream: str) -> None:
        self.root, self.stream = root, stream
        self.objects = 0
        self._writers: dict[str, tuple[pq.ParquetWriter, Path, Path]] = {}
        self._pending: dict[str, list[pa.Table]] = defaultdict(list)
        self._pending_rows: dict[str, int] = defaultdict(int)
        self._first_ms: dict[str, int] = {}
        self._buffered = 0

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close(keep=kind is None)

    def add_readings(self, table: pa.Table, arrived_ms: NDArray[np.int64]) -> None:
        """Readings (the telemetry columns) and when each arrived (epoch ms), which picks its `dt` partition."""
        if table.num_rows == 0:
            return
        table = table.select(TELEMETRY_SCHEMA.names).cast(TELEMETRY_SCHEMA)
        days = arrived_ms // DAY_MS
        order = np.argsort(days, kind="stable")
        unique, starts = np.unique(days[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        for index, day_number in enumerate(unique.tolist()):
            rows = order[bounds[index] : bounds[index + 1]]
            dt = day_of_ms(int(day_number) * DAY_MS)
            self._first_ms.setdefault(dt, int(arrived_ms[rows[0]]))
            self._pending[dt].append(table.take(pa.array(rows)))
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
        for writer, hidden, final in self._writers.values():
            writer.close()
            if keep:
                hidden.rename(final)
                self.objects += 1
            else:
                hidden.unlink(missing_ok=True)
        self._writers.clear()
        self._pending.clear()

    def _flush(self, dt: str) -> None:
        tables = self._pending.pop(dt, [])
        rows = self._pending_rows.pop(dt, 0)
        self._buffered -= rows
        if not tables:
            return
        if dt not in self._writers:
            folder = partition_dir(self.root, TELEMETRY, dt)
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / object_name(self.stream, self._first_ms[dt], ".parquet")
            hidden = final.with_name("." + final.name)
            self._writers[dt] = (pq.ParquetWriter(hidden, TELEMETRY_SCHEMA, compression="snappy"), hidden, final)
        self._writers[dt][0].write_table(pa.concat_tables(tables), row_group_size=max(rows, 1))
