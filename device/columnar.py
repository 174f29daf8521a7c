"""Rows in flight as NumPy columns, and Parquet written and read with DuckDB (no Arrow).

A `Table` is a dict of column name -> NumPy array of one length. A null is a masked entry of a NumPy
masked array (what DuckDB's `fetchnumpy` gives), or None in an object column, or NaN in a plain float
array (DuckDB reads NaN as NULL when it scans arrays); in a masked float array NaN is the value NaN,
which is how `fetch` returns every float column, so that what is read is written back as it was.
Text columns are object arrays of `str`.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from numpy.typing import NDArray

HIVE_TO_DUCKDB = {
    "string": "VARCHAR",
    "bigint": "BIGINT",
    "int": "INTEGER",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
}
"""The Glue (Hive) column types the archive uses, as DuckDB's (and so Parquet's) types."""
NUMPY_TYPES = {"BIGINT": np.int64, "INTEGER": np.int32, "DOUBLE": np.float64, "FLOAT": np.float32, "BOOLEAN": np.bool_}
"""The NumPy type of each DuckDB type (text: object arrays)."""


def duckdb_types(columns: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Glue columns (name, Hive type) as name -> DuckDB type; ValueError for a Hive type the archive does not use."""
    types = {}
    for name, hive_type in columns:
        found = HIVE_TO_DUCKDB.get(hive_type.lower())
        if found is None:
            raise ValueError(f"column {name}: Glue type {hive_type!r} is not one of {sorted(HIVE_TO_DUCKDB)}")
        types[name] = found
    return types


@dataclass(frozen=True)
class Table:
    """Columns of equal length, in order."""

    columns: dict[str, NDArray[Any]]

    @property
    def num_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self.columns[name]

    def nulls(self, name: str) -> NDArray[np.bool_]:
        """Which rows of a column are null."""
        return is_null(self.columns[name])

    def values(self, name: str) -> list[Any]:
        """A column as Python values, None for a null."""
        return to_list(self.columns[name])

    def to_pylist(self) -> list[dict[str, Any]]:
        """Each row as a dict (None for a null)."""
        names = list(self.columns)
        lists = [to_list(self.columns[name]) for name in names]
        return [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]

    def take(self, rows: NDArray[Any]) -> Table:
        """The rows at these positions, or where a boolean mask is true."""
        return Table({name: values[rows] for name, values in self.columns.items()})

    @staticmethod
    def from_rows(rows: Sequence[dict[str, Any]], types: dict[str, str]) -> Table:
        """Rows (dicts of Python values, None or absent for a null) as columns of these DuckDB types."""
        columns: dict[str, NDArray[Any]] = {}
        for name, kind in types.items():
            values = [row.get(name) for row in rows]
            dtype = NUMPY_TYPES.get(kind)
            if dtype is None:
                columns[name] = np.array(values, dtype=object)
            else:
                missing = np.array([value is None for value in values], dtype=bool)
                filled: NDArray[Any] = np.array([0 if value is None else value for value in values], dtype=dtype)
                columns[name] = np.ma.masked_array(filled, mask=missing)
        return Table(columns)

    @staticmethod
    def concat(tables: Sequence[Table]) -> Table:
        """Tables with the same columns, one after another."""
        if len(tables) == 1:
            return tables[0]
        names = tables[0].column_names
        return Table({name: concatenate([table.columns[name] for table in tables]) for name in names})


def is_null(values: NDArray[Any]) -> NDArray[np.bool_]:
    """Which entries are null: masked, NaN in a plain float array, None in an object array."""
    mask = np.ma.getmaskarray(values).copy()
    data = np.ma.getdata(values)
    if data.dtype.kind == "f" and not isinstance(values, np.ma.MaskedArray):
        mask |= np.isnan(data)
    elif data.dtype == object:
        mask |= np.fromiter((value is None for value in data), dtype=bool, count=len(data))
    return mask


def to_list(values: NDArray[Any]) -> list[Any]:
    """Python values, None for a null."""
    data = np.ma.getdata(values).tolist()
    return [None if null else value for value, null in zip(data, is_null(values).tolist(), strict=True)]


def concatenate(arrays: Sequence[NDArray[Any]]) -> NDArray[Any]:
    """Arrays one after another, masked if any is."""
    if any(isinstance(array, np.ma.MaskedArray) for array in arrays):
        joined: NDArray[Any] = np.ma.concatenate(arrays)  # type: ignore[no-untyped-call]
        return joined
    return np.concatenate(arrays)


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB in UTC, without the extensions it would otherwise download (a plant may be offline)."""
    db = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    db.execute("SET TimeZone = 'UTC'")
    return db


def session() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB (see `connect`), kept for the next call: opening one costs tens of milliseconds."""
    db: duckdb.DuckDBPyConnection | None = getattr(_sessions, "db", None)
    if db is None:
        db = _sessions.db = connect()
    return db


_sessions = threading.local()


def quoted(name: str) -> str:
    """A column name as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A text as a DuckDB string literal (for paths in COPY, which takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def parquet_source(paths: Sequence[Path | str], *, row_numbers: bool = False) -> str:
    """`read_parquet` of these files, in order, without reading folder names such as `dt=...` as columns."""
    files = "[" + ", ".join(literal(str(path)) for path in paths) + "]"
    numbers = ", file_row_number = true" if row_numbers else ""
    return f"read_parquet({files}, hive_partitioning = false{numbers})"


def typed_select(types: dict[str, str], present: Iterable[str]) -> str:
    """A SELECT list casting each column to its type, NULL of that type for a column not present."""
    have = set(present)
    return ", ".join(
        f"CAST({quoted(name) if name in have else 'NULL'} AS {kind}) AS {quoted(name)}" for name, kind in types.items()
    )


def register(db: duckdb.DuckDBPyConnection, view: str, table: Table) -> None:
    """`table` as a view of `db`, nulls as nulls and a masked float array's NaN as the value NaN."""
    columns, select = dict(table.columns), []
    for index, (name, values) in enumerate(table.columns.items()):
        expression = quoted(name)
        if isinstance(values, np.ma.MaskedArray) and values.dtype.kind == "f":
            nan = np.isnan(values.filled(0.0))
            if nan.any():  # DuckDB scans NaN as NULL: a marker column says where the value is NaN
                columns[f"__nan_{index}"] = nan
                expression = f"CASE WHEN __nan_{index} THEN CAST('NaN' AS DOUBLE) ELSE {expression} END"
        select.append(f"{expression} AS {quoted(name)}")
    if len(columns) == len(table.columns):  # no NaN to keep: the arrays are the view
        db.register(view, columns)
        return
    db.register(f"{view}_arrays", columns)
    db.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {', '.join(select) or '*'} FROM {view}_arrays")  # noqa: S608 - our own names


def unregister(db: duckdb.DuckDBPyConnection, view: str) -> None:
    """Let go of what `register` made."""
    db.execute(f"DROP VIEW IF EXISTS {view}")
    for name in (view, f"{view}_arrays"):
        db.unregister(name)


def write_parquet(
    path: Path, table: Table, types: dict[str, str], *, row_group_rows: int, compression: str = "snappy"
) -> None:
    """`table` as one Parquet file with exactly the columns `types` names, in their order and types."""
    db = session()
    register(db, "rows_out", table)
    codec = "uncompressed" if compression in ("uncompressed", "none") else compression
    db.execute(
        f"COPY (SELECT {typed_select(types, table.column_names)} FROM rows_out) TO {literal(str(path))} "  # noqa: S608 - our own names; texts quoted
        f"(FORMAT parquet, COMPRESSION {codec}, ROW_GROUP_SIZE {max(row_group_rows, 1)})"
    )
    unregister(db, "rows_out")


def fetch(result: duckdb.DuckDBPyConnection | duckdb.DuckDBPyRelation) -> Table:
    """A query's whole result as a Table (float columns as masked arrays: a NaN read is the value NaN)."""
    columns = result.fetchnumpy()
    return Table({name: _masked_floats(values) for name, values in columns.items()})


def _masked_floats(values: NDArray[Any]) -> NDArray[Any]:
    if values.dtype.kind == "f" and not isinstance(values, np.ma.MaskedArray):
        return np.ma.masked_array(values, mask=np.zeros(len(values), dtype=bool))
    return values


def read_parquet(path: Path | str) -> Table:
    """A whole Parquet file as a Table."""
    return fetch(session().execute(f"SELECT * FROM {parquet_source([path])}"))  # noqa: S608 - a quoted path


def read_parquet_bytes(body: bytes) -> Table:
    """A Parquet object held in memory (an S3 body) as a Table."""
    with tempfile.TemporaryDirectory(prefix="parquet-") as folder:
        path = Path(folder) / "object.parquet"
        path.write_bytes(body)
        return read_parquet(path)


def parquet_bytes(table: Table, types: dict[str, str], *, row_group_rows: int, compression: str = "snappy") -> bytes:
    """`table` as a Parquet object in memory (see `write_parquet`)."""
    with tempfile.TemporaryDirectory(prefix="parquet-") as folder:
        path = Path(folder) / "object.parquet"
        write_parquet(path, table, types, row_group_rows=row_group_rows, compression=compression)
        return path.read_bytes()


def parquet_columns(db: duckdb.DuckDBPyConnection, path: Path | str) -> dict[str, str]:
    """The columns of a Parquet file and their DuckDB types, without reading its rows."""
    described = db.execute(f"DESCRIBE SELECT * FROM {parquet_source([path])}").fetchall()  # noqa: S608 - our own names; texts quoted
    return {str(row[0]): str(row[1]) for row in described}


def row_group_ranges(db: duckdb.DuckDBPyConnection, path: Path | str, batch_rows: int) -> Iterator[tuple[int, int]]:
    """[first, end) file row numbers of a Parquet file, whole row groups gathered up to `batch_rows` rows each."""
    sizes = db.execute(
        "SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(?) ORDER BY row_group_id", [str(path)]
    ).fetchall()
    first = end = 0
    for _, rows in sizes:
        end += int(rows)
        if end - first >= batch_rows:
            yield first, end
            first = end
    if end > first:
        yield first, end
