"""The archive's layout (docs/archive.md): prefixes, partitions, object names and the readings' Parquet schema.

Everything that writes the archive (the local stack's Firehose, `device/history.py --archive`) and its
reader (model/archive.py) take the layout from here, so the three cannot drift apart; in AWS the
template's Firehose streams and Glue tables say the same, and the tests compare the two. It lives in
`device/`, the lowest of the packages that use it (history writes the archive; model and local import
device already).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from device.columnar import duckdb_types
from device.requirements_check import ROOT

TELEMETRY, ALARMS, ACTIONS, ERRORS = "telemetry", "alarms", "actions", "errors"
EVENT_KINDS = (ALARMS, ACTIONS)
"""The record kinds kept as JSON lines."""
LOCAL_ARCHIVE = ROOT / ".local-stack" / "archive"
"""Where the local stack archives by default (git-ignored with the rest of .local-stack/)."""
FIREHOSE_VERSION = 1
"""The version number in a Firehose object name (`<stream>-<version>-<time>-<uuid>`)."""
DAY_FORMAT = "%Y-%m-%d"

TELEMETRY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("motor_id", "string"),
    ("motor_type", "string"),
    ("ts", "string"),
    ("seq", "bigint"),
    ("running", "boolean"),
    ("speed_rpm", "double"),
    ("torque_nm", "double"),
    ("current_a", "double"),
    ("winding_temp_c", "double"),
    ("bearing_temp_c", "double"),
    ("fluid_temp_c", "double"),
    ("ambient_temp_c", "double"),
    ("vibration_mm_s", "double"),
    ("pressure_bar", "double"),
    ("flow_m3h", "double"),
    ("fault", "string"),
    ("topic_motor_id", "string"),
    ("received_at", "bigint"),
)
"""The `telemetry` Glue table's columns (name, Hive type), in order: docs/archive.md's schema."""


TELEMETRY_TYPES = duckdb_types(TELEMETRY_COLUMNS)
"""The telemetry columns' DuckDB (Parquet) types, in order."""


def day(moment: datetime | date) -> str:
    """A `dt` partition value: the UTC day, yyyy-MM-dd."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date()
    return moment.strftime(DAY_FORMAT)


def day_of_ms(epoch_ms: int) -> str:
    return day(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))


def first_partition(since: datetime) -> str:
    """The earliest `dt` that can hold a record taken at or after `since`: the day before, for clock skew."""
    return day(since.astimezone(UTC).date() - timedelta(days=1))


def object_name(stream: str, arrived_ms: int, extension: str = "") -> str:
    """Firehose's name for a delivered object: `<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><extension>`."""
    stamp = datetime.fromtimestamp(arrived_ms / 1000, tz=UTC).strftime("%Y-%m-%d-%H-%M-%S")
    return f"{stream}-{FIREHOSE_VERSION}-{stamp}-{uuid.uuid4()}{extension}"


def partition_dir(root: Path, kind: str, dt: str) -> Path:
    """The folder of one kind's partition: `<root>/<kind>/dt=<dt>/`."""
    return root / kind / f"dt={dt}"


def record_documents(data: bytes) -> list[tuple[Any, bytes]]:
    """The JSON documents of one Firehose record, one after another as Firehose's JSON deserializer reads them
    (`{"a":1}{"a":2}`, or one a line: a record the batched archive packed), each with its own bytes.

    ValueError if the record is not that: not UTF-8, not JSON, or empty.
    """
    text = data.decode("utf-8")
    decoder, documents, position = json.JSONDecoder(), [], 0
    while (start := len(text) - len(text[position:].lstrip(" \t\n\r"))) < len(text):  # JSON's whitespace only
        document, position = decoder.raw_decode(text, start)
        documents.append((document, text[start:position].encode()))
    if not documents:
        raise ValueError("it is empty")
    return documents
