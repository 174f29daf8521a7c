"""The archive's share of a motor-month: the rules' Firehose actions, Firehose, S3 storage and Athena.

Every reading, alarm event and operator action is archived in every architecture (docs/archive.md), so
these items are added to each one's cost by scripts/costs.py. Readings arrive one Firehose record each from
the telemetry rules' Firehose action (direct), or packed several to a record by the batched function
(motor_adapters.firehose_archive.pack, the code the function runs): no rule action, and a record's 5 KB
billed for many readings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from motor_adapters.firehose_archive import pack
from scripts.pricing import GB, HOURS_PER_MONTH, Price

FIREHOSE_RECORD_BYTES = 5 * 1024
"""Firehose bills ingestion, and format conversion, on the ingested volume with each record rounded up to 5 KB."""
IOT_MESSAGE_BYTES = 5 * 1024
"""IoT Core meters a rule's actions in 5 KB increments."""
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
ARCHIVE_STREAMS = 3
"""Readings, alarm events, operator actions: each stream writes its own objects."""

FIREHOSE_PRICING = "https://aws.amazon.com/kinesis/data-firehose/pricing/"
S3_PRICING = "https://aws.amazon.com/s3/pricing/"
FIREHOSE_CHECKED = (
    "NOT VERIFIED: copies of the pricing page confirm the dimension (per GB ingested, each record rounded up to"
    " 5 KB; format conversion per GB of that same volume) but did not render the rate; the us-east-1 rate as"
    " remembered"
)
S3_CHECKED = "NOT VERIFIED: not rendered by the stored copies of the page; the long-standing us-east-1 rate"
ARCHIVE_PRICES: dict[str, Price] = {
    "firehose_ingestion_gb": Price(
        0.029, 1.0, "GB ingested by Direct PUT, 5 KB per record at least (first 500 TB a month)", FIREHOSE_PRICING,
        FIREHOSE_CHECKED,
    ),
    "firehose_format_conversion_gb": Price(
        0.018, 1.0, "GB converted to Parquet, counted as ingested (5 KB per record)", FIREHOSE_PRICING,
        FIREHOSE_CHECKED,
    ),
    "s3_standard_gb_month": Price(0.023, 1.0, "GB-months in S3 Standard (first 50 TB)", S3_PRICING, S3_CHECKED),
    "s3_glacier_ir_gb_month": Price(
        0.004, 1.0, "GB-months in S3 Glacier Instant Retrieval (90 days and 128 KB at least)", S3_PRICING, S3_CHECKED
    ),
    "s3_glacier_ir_retrieval_gb": Price(
        0.03, 1.0, "GB read from S3 Glacier Instant Retrieval", S3_PRICING, S3_CHECKED
    ),
    "s3_put_requests": Price(0.005, 1000.0, "PUT requests to S3 Standard", S3_PRICING, S3_CHECKED),
    "s3_glacier_ir_transitions": Price(
        0.02, 1000.0, "lifecycle transitions into S3 Glacier Instant Retrieval", S3_PRICING, S3_CHECKED
    ),
    "athena_tb_scanned": Price(
        5.00, 1.0, "TB scanned (10 MB at least per query)", "https://aws.amazon.com/athena/pricing/",
        "third-party transcriptions of the page agree ($5 per TB, rounded up to the MB, 10 MB minimum)",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ArchiveUse:
    """How the archive is kept and read; defaults in docs/costs.md, 'The archive'."""

    event_bytes: int = 1500
    """One alarm event or operator action as a JSON line (assumed; an event with its rule and readings)."""
    actions_per_month: float = 10.0
    """Operator actions per motor and month (assumed: about one per alarm event)."""
    buffer_s: float = 900.0
    """ArchiveBufferSeconds: each stream writes one object per buffer while records arrive."""
    glacier_after_days: float = 365.0
    """ArchiveGlacierAfterDays (0: never)."""
    months_kept: float = 12.0
    """How many months of history the bucket holds in the month priced (ArchiveExpireAfterDays bounds it)."""
    scans_per_month: float = 1.0
    """Reads of the whole telemetry history a month (a retraining, a backtest) through Athena."""


def archive_items(
    *,
    readings: float,
    payload_bytes: int,
    parquet_bytes: float,
    alarm_events: float,
    motors: int,
    use: ArchiveUse,
    rates: Mapping[str, float],
    batch: float | None = None,
) -> dict[str, float]:
    """US$ per motor-month of archiving `readings` readings and the motor's alarm events and actions.

    `payload_bytes` is a reading as the rule emits it, `parquet_bytes` its share of a Parquet object.
    `batch`: the readings of a batch ArchiveFunction archives together (None: the rules archive
    each reading, one Firehose action and record each).
    """
    records = alarm_events + use.actions_per_month
    reading_actions = readings * _steps(payload_bytes) if batch is None else 0.0
    reading_units = readings * (_steps(payload_bytes) if batch is None else packed_units(payload_bytes, batch))
    actions = reading_actions + records * _steps(use.event_bytes)  # one Firehose action each
    firehose_gb = (reading_units + records * _steps(use.event_bytes)) * FIREHOSE_RECORD_BYTES / GB
    converted_gb = reading_units * FIREHOSE_RECORD_BYTES / GB
    monthly_gb = (readings * parquet_bytes + records * use.event_bytes) / GB

    # The bucket holds `months_kept` months: each month's data in Standard for its first
    # glacier_after_days, in Glacier Instant Retrieval after that.
    standard_months = use.months_kept
    if use.glacier_after_days > 0:
        standard_months = min(use.months_kept, use.glacier_after_days / DAYS_PER_MONTH)
    glacier_months = use.months_kept - standard_months
    storage = monthly_gb * (
        standard_months * rates["s3_standard_gb_month"] + glacier_months * rates["s3_glacier_ir_gb_month"]
    )
    # Each scan reads the readings of every month kept; those in Glacier IR pay its retrieval too.
    readings_gb = readings * parquet_bytes / GB
    scanned_tb = use.scans_per_month * readings_gb * use.months_kept / 1024
    retrieved_gb = use.scans_per_month * readings_gb * glacier_months

    # Objects: one per stream and buffer, shared by the fleet; readings' objects move to Glacier IR once.
    objects = ARCHIVE_STREAMS * HOURS_PER_MONTH * 3600 / use.buffer_s
    transitions = HOURS_PER_MONTH * 3600 / use.buffer_s if glacier_months > 0 else 0.0
    requests = objects * rates["s3_put_requests"] + transitions * rates["s3_glacier_ir_transitions"]
    return {
        "archive: IoT rule actions": actions * rates["iot_actions_executed"],
        "archive: Firehose ingestion": firehose_gb * rates["firehose_ingestion_gb"],
        "archive: Parquet conversion": converted_gb * rates["firehose_format_conversion_gb"],
        "archive: S3 storage": storage,
        "archive: S3 requests": requests / motors,
        "archive: Athena": scanned_tb * rates["athena_tb_scanned"] + retrieved_gb * rates["s3_glacier_ir_retrieval_gb"],
    }


def packed_units(payload_bytes: int, batch: float) -> float:
    """Billed 5 KB units per reading of a batch ArchiveFunction archives: its readings packed as the function packs
    them (firehose_archive.pack: each followed by a newline, records filled up to 5 KB)."""
    size = max(1, round(batch))
    records = pack([b"x" * payload_bytes] * size)
    return sum(_steps(len(record)) for record in records) / size


def _steps(size: int) -> int:
    """5 KB units of a record (Firehose and IoT Core meter the same step)."""
    return max(1, math.ceil(size / FIREHOSE_RECORD_BYTES))


def measured_parquet_bytes(motors: int, readings_per_minute: float, buffer_s: float) -> float:
    """A reading's share of one buffer's Parquet object: the simulator's fleet, as the telemetry rule emits it.

    Written with DuckDB (Snappy), the column types the Glue table declares; Firehose's own Parquet
    writer may differ by some percent. The fleet is capped at 1,000 motors: larger objects compress
    no worse.
    """
    from device.archive_layout import TELEMETRY_TYPES  # noqa: PLC0415 - measured only when asked
    from device.columnar import Table, parquet_bytes  # noqa: PLC0415
    from device.history import generate  # noqa: PLC0415
    from device.physics import FleetConfig  # noqa: PLC0415

    fleet = min(motors, 1000)
    interval_s = 60 / readings_per_minute
    history = generate(FleetConfig(motors=fleet, seed=7), duration_s=max(buffer_s, interval_s), interval_s=interval_s)
    rows = []
    for t in range(history.steps):
        for column in range(fleet):
            reading = history.reading(t, column)
            row = reading.model_dump(mode="json")
            row.update(topic_motor_id=reading.motor_id, received_at=reading.ts_ms + 50)
            rows.append(row)
    written = parquet_bytes(Table.from_rows(rows, TELEMETRY_TYPES), TELEMETRY_TYPES, row_group_rows=len(rows))
    return len(written) / len(rows)
