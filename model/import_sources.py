"""The historian import's input files, read in batches with DuckDB: CSV (also gzip-compressed) and Parquet.

A CSV file is cut into blocks of whole lines (BLOCK_BYTES at a time, gathered up to about BATCH_ROWS
lines) and each batch parsed by DuckDB's CSV reader; a Parquet file is read a few row groups at a time;
so a file of any size is never held whole. Every column the mapping names is read as it is written: CSV
cells as text (trimmed; blank or whitespace-only cells as null), Parquet columns in their own types;
the conversion (model.import_convert) decides what each holds. A batch stays in DuckDB (`Rows`): the
conversion asks it for the columns and casts it needs. `columns_of` lets the importer check a mapping's
columns against every file before it reads any row.
"""

from __future__ import annotations

import csv
import gzip
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb
import numpy as np
from numpy.typing import NDArray

from device.columnar import connect, literal, parquet_columns, parquet_source, quoted, row_group_ranges
from model.import_mapping import FILE_KINDS, MappingError

BLOCK_BYTES = 1 << 20
"""CSV bytes read at a time: with BATCH_ROWS, this bounds the memory a file takes."""
BATCH_ROWS = 131_072
"""Rows converted at a time: blocks are gathered up to this many lines (the conversion has a cost per batch)."""
_WHITESPACE = r"[\s\p{Z}\x{0b}\x{85}]"
"""Unicode's white space, in RE2: what trimming a cell removes at either end."""


class Rows:
    """One batch of a file's rows, held in a DuckDB table: its columns fetched or cast on demand, in row order."""

    def __init__(self, db: duckdb.DuckDBPyConnection, table: str, types: dict[str, str]) -> None:
        self.db, self.table, self.types = db, table, types
        self.num_rows = int(db.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])  # noqa: S608

    def values(self, expression: str) -> NDArray[Any]:
        """An SQL expression over the batch's columns (quote them with `column`), one value per row."""
        # One thread (see `batches`): the table is scanned in the order its rows were inserted, the file's.
        found = self.db.execute(f"SELECT {expression} AS v FROM {self.table}").fetchnumpy()  # noqa: S608
        return found["v"]

    def text(self, name: str) -> NDArray[Any]:
        """A column as text (object array of str, None for null)."""
        found = self.values(f"CAST({column(name)} AS VARCHAR)")
        texts = np.array(np.ma.getdata(found), dtype=object)
        texts[np.ma.getmaskarray(found)] = None
        return texts

    def is_text(self, name: str) -> bool:
        return self.types[name] == "VARCHAR"


def column(name: str) -> str:
    """A column of a batch in SQL."""
    return quoted(name)


@dataclass(frozen=True)
class Batch:
    """Some rows of a file (only the mapped columns) and how far through the file they reach."""

    rows: Rows
    done_bytes: int
    total_bytes: int


def kind(path: Path) -> str:
    return FILE_KINDS[path.suffix.lower()]


def columns_of(path: Path, delimiter: str) -> list[str]:
    """The column names of a file (a CSV file's header), without reading its rows."""
    try:
        if kind(path) == "parquet":
            db = connect()
            try:
                return list(parquet_columns(db, path))
            finally:
                db.close()
        with _open(path) as raw:
            return _header(raw, delimiter)
    except (OSError, duckdb.Error, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise MappingError(f"{path}: cannot be read as {kind(path).upper()} ({_first_line(exc)})") from exc


def check_columns(path: Path, delimiter: str, wanted: dict[str, str]) -> None:
    """MappingError naming the first column the mapping names (with the key that names it) the file lacks."""
    present = columns_of(path, delimiter)
    for name, key in wanted.items():
        if name not in present:
            shown = ", ".join(present[:20]) + (", ..." if len(present) > 20 else "")
            raise MappingError(f"{key}: column {name!r} is not in {path.name} (its columns: {shown})")


def batches(
    path: Path,
    columns: list[str],
    delimiter: str,
    refused: Counter[str],
    *,
    block_bytes: int = BLOCK_BYTES,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[Batch]:
    """The file's rows, `columns` only, about `batch_rows` at a time; a CSV line that is no row counts in `refused`."""
    db = connect()
    db.execute("SET threads = 1")  # rows kept in the file's order; one batch at a time is converted anyway
    try:
        if kind(path) == "parquet":
            yield from _parquet(db, path, columns, batch_rows)
        else:
            yield from _csv(db, path, columns, delimiter, refused, block_bytes=block_bytes, batch_rows=batch_rows)
    finally:
        db.close()


def _csv(
    db: duckdb.DuckDBPyConnection,
    path: Path,
    columns: list[str],
    delimiter: str,
    refused: Counter[str],
    *,
    block_bytes: int,
    batch_rows: int,
) -> Iterator[Batch]:
    total = path.stat().st_size
    with _open(path) as raw, tempfile.TemporaryDirectory(prefix="import-") as folder:
        header = _header(raw, delimiter)
        chunk = Path(folder) / "rows.csv"
        carry = b""
        while True:
            gathered, lines = [carry], carry.count(b"\n")
            carry, ended = b"", False
            while lines < batch_rows:
                block = raw.read(block_bytes)
                if not block:
                    ended = True
                    break
                gathered.append(block)
                lines += block.count(b"\n")
            data = b"".join(gathered)
            if not ended:  # whole lines only: the rest starts the next batch
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
            if data.strip():
                chunk.write_bytes(data)
                rows = _parse(db, chunk, header, columns, delimiter=delimiter, refused=refused)
                yield Batch(rows, total if ended else _position(raw), total)
            if ended:
                return


def _parse(
    db: duckdb.DuckDBPyConnection,
    chunk: Path,
    header: list[str],
    columns: list[str],
    *,
    delimiter: str,
    refused: Counter[str],
) -> Rows:
    """A block of whole CSV lines as a batch; a line with too few or too many fields is counted and skipped."""
    names = "{" + ", ".join(f"{literal(name)}: 'VARCHAR'" for name in header) + "}"
    source = (
        f"read_csv({literal(str(chunk))}, header = false, auto_detect = false, columns = {names}, "
        f"delim = {literal(delimiter)}, quote = '\"', escape = '\"', store_rejects = true, "
        "rejects_table = 'import_rejects', rejects_scan = 'import_scans', strict_mode = true)"
    )
    selected = ", ".join(f"{_blank_as_null(column(name))} AS {column(name)}" for name in columns)
    db.execute(f"CREATE OR REPLACE TEMP TABLE batch AS SELECT {selected} FROM {source}")  # noqa: S608 - our own names; texts quoted
    for _, text in db.execute("SELECT DISTINCT line, csv_line FROM import_rejects ORDER BY line").fetchall():
        fields = len(next(csv.reader([text], delimiter=delimiter), []))
        refused[f"a CSV line with {fields} fields where the header has {len(header)}"] += 1
    db.execute("DELETE FROM import_rejects")
    db.execute("DELETE FROM import_scans")
    return Rows(db, "batch", dict.fromkeys(columns, "VARCHAR"))


def _parquet(db: duckdb.DuckDBPyConnection, path: Path, columns: list[str], batch_rows: int) -> Iterator[Batch]:
    types = parquet_columns(db, path)
    ranges = list(row_group_ranges(db, path, batch_rows))
    total = max(ranges[-1][1], 1) if ranges else 1
    selected = ", ".join(
        f"{_blank_as_null(column(name)) if types[name] == 'VARCHAR' else column(name)} AS {column(name)}"
        for name in columns
    )
    for first, end in ranges:
        db.execute(
            f"CREATE OR REPLACE TEMP TABLE batch AS SELECT {selected} "  # noqa: S608 - our own names; texts quoted
            f"FROM {parquet_source([path], row_numbers=True)} "
            f"WHERE file_row_number >= {first} AND file_row_number < {end}"
        )
        yield Batch(Rows(db, "batch", {name: types[name] for name in columns}), end, total)


def _blank_as_null(text: str) -> str:
    """A text cell trimmed, a blank one (empty or only spaces) as null: blank is missing, never zero."""
    space = _WHITESPACE
    trimmed = f"regexp_replace({text}, {literal(f'^{space}+|{space}+$')}, '', 'g')"
    # The pattern only where an end is a space, a control or beyond ASCII (where Unicode's spaces are).
    ends = f"(ord({text}[1]) <= 32 OR ord({text}[1]) >= 127 OR ord({text}[-1]) <= 32 OR ord({text}[-1]) >= 127)"
    return f"nullif(CASE WHEN {ends} THEN {trimmed} ELSE {text} END, '')"


def _header(raw: IO[bytes], delimiter: str) -> list[str]:
    """A CSV file's first line, as column names; ValueError for an empty file."""
    line = raw.readline()
    if not line.strip():
        raise EOFError("Empty CSV file")
    return next(csv.reader([line.decode("utf-8").rstrip("\r\n")], delimiter=delimiter))


def _open(path: Path) -> Any:
    """A gzip file through Python's gzip (its position counts compressed bytes), any other as a binary file."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _position(raw: Any) -> int:
    """Bytes of the file read so far (of the compressed file, for a .gz)."""
    inner = getattr(raw, "fileobj", None)
    return int((inner if inner is not None else raw).tell())


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
