"""Batched ingestion (IngestionMode batched): a batch of readings from TelemetryStream, through Lambda's
event source mapping, applied with one model call and one state write per motor.

The batch is decided as a whole (`motor_maintenance.batch.process_batch`); Powertools' batch
processor then turns each record's fate into the partial-failure response Lambda reads
(ReportBatchItemFailures). A record whose motor failed is reported with every other record of that
motor in the batch, and Lambda delivers the shard again from the earliest reported one, so a motor's
readings are never applied out of order. Records the schema refuses are rejected (logged, counted),
not reported: delivering them again would not help. The archive reads the same stream through its own
mapping (motor_lambda.archiving): nothing here waits for it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from motor_adapters.clients import time_left_s
from motor_lambda.reports import ReadingReporter
from motor_lambda.responses import BatchedReading, BatchedRejection, BatchResponse
from motor_lambda.stream_records import decode
from motor_lambda.wiring import InferencePorts
from motor_maintenance.batch import BatchItem, BatchResult, process_batch
from motor_maintenance.config import DetectorConfig

WORKERS = 8
"""Motors of a batch worked on at once: their state writes and publishes overlap (botocore's pool holds 10)."""
MOTOR_START_RESERVE_S = 2.0
"""No motor is begun with less time left than this; its readings are reported and delivered again."""


class ReadingNotApplied(Exception):
    """A record whose motor could not be brought up to date; Lambda delivers it again."""


def is_stream_batch(event: Any) -> bool:
    """A batch from the event source mapping on TelemetryStream, rather than one reading from the rule."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], dict)
        and records[0].get("eventSource") == "aws:kinesis"
    )


def apply_batch(
    event: dict[str, Any],
    context: Any,
    ports: InferencePorts,
    *,
    config: DetectorConfig,
    now: datetime,
    reporter: ReadingReporter,
) -> tuple[BatchResponse, BatchResult]:
    """Apply the batch: the response (`batchItemFailures`, and `readings`: each finished record's summary, for
    `sam local invoke` and the local stack; Lambda reads only the failures) and what the batch did."""
    records: list[dict[str, Any]] = event["Records"]
    finished: dict[str, BatchedReading | BatchedRejection] = {}
    items: list[BatchItem] = []
    sequences: list[str] = []
    reporter.metrics.add_metric(name="BatchReadings", unit=MetricUnit.Count, value=len(records))
    decoded = [(_sequence(record), *decode(record)) for record in records]
    for sequence, payload, telemetry in decoded:
        if isinstance(telemetry, Exception):
            refused = reporter.reject(payload, telemetry)
            finished[sequence] = BatchedRejection(reason=refused.reason, sequence_number=sequence)
            continue
        items.append(BatchItem(telemetry.reading(), telemetry.received_at))
        sequences.append(sequence)
    batch = process_batch(
        items,
        store=ports.store,
        predictor=ports.predictor,
        publisher=ports.publisher,
        config=config,
        now=now,
        map_motors=map_motors,
        may_start=may_start_motor,
    )
    failed = _report(batch, items, sequences, finished, reporter)
    failures = partial_response(event, failed, context)["batchItemFailures"]
    return BatchResponse(batchItemFailures=failures, readings=list(finished.values())), batch


def _sequence(record: dict[str, Any]) -> str:
    return str((record.get("kinesis") or {}).get("sequenceNumber", ""))


def partial_response(event: dict[str, Any], failed: dict[str, str], context: Any) -> dict[str, Any]:
    """Lambda's partial batch response: the records in `failed` (sequence number -> why), through Powertools."""

    def record_handler(record: KinesisStreamRecord) -> None:
        reason = failed.get(record.kinesis.sequence_number)
        if reason is not None:
            raise ReadingNotApplied(reason)

    # A batch that failed whole is reported whole, not raised: the same redelivery, and the metrics flushed.
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )


def _report(
    batch: BatchResult,
    items: Sequence[BatchItem],
    sequences: Sequence[str],
    finished: dict[str, BatchedReading | BatchedRejection],
    reporter: ReadingReporter,
) -> dict[str, str]:
    """Logs and metrics of an applied batch; the sequence numbers to deliver again, with why."""
    failed: dict[str, str] = {}
    for item, sequence, result in zip(items, sequences, batch.results, strict=True):
        if result is None:
            failed[sequence] = batch.failures[item.reading.motor_id]
            continue
        reporter.report(result, item.received_at_ms, log_prediction_error=False)
        finished[sequence] = BatchedReading.of(result, sequence_number=sequence)
    for motor_id, reason in batch.failures.items():
        reporter.logger.error("readings of a motor not applied; delivered again", motor_id=motor_id, reason=reason)
    metrics = reporter.metrics
    metrics.add_metric(name="ModelCalls", unit=MetricUnit.Count, value=batch.model_calls)
    if failed:
        metrics.add_metric(name="ReadingsRedelivered", unit=MetricUnit.Count, value=len(failed))
    if batch.prediction_error:
        reporter.logger.warning(
            "prediction failed for the batch; schedule and condition rules still evaluated",
            reason=batch.prediction_error,
            readings=sum(1 for result in batch.results if result is not None),
        )
    return failed


_T = TypeVar("_T")
_R = TypeVar("_R")


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="motor")


def map_motors(function: Callable[[_T], _R], motors: Sequence[_T]) -> list[_R]:
    """The batch's motors worked on at once, each in a copy of the invocation's context (its deadline)."""
    if len(motors) < 2:
        return [function(motor) for motor in motors]
    context = contextvars.copy_context()
    return list(_pool().map(lambda motor: context.copy().run(function, motor), motors))


def may_start_motor() -> bool:
    left = time_left_s()
    return left is None or left > MOTOR_START_RESERVE_S
