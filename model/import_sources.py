"""The historian import's input files, read in batches: CSV (also gzip-compressed) and Parquet.

A CSV file is parsed block by block (pyarrow.csv.open_csv), a Parquet file row group by row group,
so a file of any size is never held whole. Every column the mapping names is read as it is written:
CSV cells as text (blank or whitespace-only cells as null), Parquet columns in their own types; the
conversion (model.import_convert) decides what each holds. `columns_of` lets the importer check a
mapping's columns against every file before it reads any row.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from model.import_mapping import FILE_KINDS, MappingError

BLOCK_BYTES = 1 << 20
"""CSV bytes parsed at a time. pyarrow reads a few dozen blocks ahead, so this bounds the memory a file takes."""
BATCH_ROWS = 131_072
"""Rows converted at a time: parsed blocks are gathered up to this many (the conversion has a cost per batch)."""


@dataclass(frozen=True)
class Batch:
    """Some rows of a file (only the mapped columns) and how far through the file they reach."""

    rows: pa.RecordBatch
    done_bytes: int
    total_bytes: int


def kind(path: Path) -> str:
    return FILE_KINDS[path.suffix.lower()]


def columns_of(path: Path, delimiter: str) -> list[str]:
    """The column names of a file (a CSV file's header), without reading its rows."""
    try:
        if kind(path) == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        with _open(path) as raw:
            options = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=lambda _row: "skip")
            return list(pacsv.open_csv(raw, parse_options=options).schema.names)
    except (OSError, pa.ArrowInvalid, EOFError) as exc:
        raise MappingError(f"{path}: cannot be read as {kind(path).upper()} ({_first_line(exc)})") from exc


def check_columns(path: Path, delimiter: str, wanted: dict[str, str]) -> None:
    """MappingError naming the first column the mapping names (with the key that names it) the file lacks."""
    present = columns_of(path, delimiter)
    for column, key in wanted.items():
        if column not in present:
            shown = ", ".join(present[:20]) + (", ..." if len(present) > 20 else "")
            raise MappingError(f"{key}: column {column!r} is not in {path.name} (its columns: {shown})")


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
    if kind(path) == "parquet":
        yield from _parquet(path, columns, batch_rows)
        return
    gathered: list[pa.RecordBatch] = []
    for rows, done, total in _csv_blocks(path, columns, delimiter, refused, block_bytes):
        gathered.append(rows)
        if sum(block.num_rows for block in gathered) >= batch_rows:
            yield Batch(_blank_as_null(_combine(gathered)), done, total)
            gathered = []
    if gathered:
        yield Batch(_blank_as_null(_combine(gathered)), path.stat().st_size, path.stat().st_size)


def _combine(blocks: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(blocks) == 1:
        return blocks[0]
    return pa.Table.from_batches(blocks).combine_chunks().to_batches()[0]


def _csv_blocks(
    path: Path, columns: list[str], delimiter: str, refused: Counter[str], block_bytes: int
) -> Iterator[tuple[pa.RecordBatch, int, int]]:
    total = path.stat().st_size

    def malformed(row: Any) -> str:
        refused[f"a CSV line with {row.actual_columns} fields where the header has {row.expected_columns}"] += 1
        return "skip"

    with _open(path) as raw:
        reader = pacsv.open_csv(
            raw,
            read_options=pacsv.ReadOptions(block_size=block_bytes, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=malformed),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types=dict.fromkeys(columns, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        for rows in reader:
            yield rows, _position(raw), total


def _parquet(path: Path, columns: list[str], batch_rows: int) -> Iterator[Batch]:
    source = pq.ParquetFile(path)
    total, done = max(source.metadata.num_rows, 1), 0
    for rows in source.iter_batches(batch_size=batch_rows, columns=columns):
        done += rows.num_rows
        yield Batch(_blank_as_null(rows), done, total)


def _blank_as_null(rows: pa.RecordBatch) -> pa.RecordBatch:
    """Text columns trimmed, a blank cell (empty or only spaces) as null: blank is missing, never zero."""
    arrays = []
    for column in rows.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            trimmed = pc.utf8_trim_whitespace(column)
            arrays.append(pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed))
        else:
            arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=rows.schema.names)


def _open(path: Path) -> Any:
    """A gzip file through Python's gzip (its position counts compressed bytes), any other as pyarrow's stream."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return pa.input_stream(str(path))


def _position(raw: Any) -> int:
    """Bytes of the file read so far (of the compressed file, for a .gz); pyarrow reads some blocks ahead."""
    inner = getattr(raw, "fileobj", None)
    return int((inner if inner is not None else raw).tell())


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
