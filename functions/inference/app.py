"""InferenceFunction: readings from motors/{id}/telemetry -> prediction, detector, state, alarm events.

Two ways in (template parameter IngestionMode): TelemetryRule invokes it with one reading (direct), or
Lambda's event source mapping hands it a batch of readings from TelemetryStream (batched), applied with
one model call and one state write per motor (docs/architecture.md, "Batched ingestion").
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from motor_adapters.clients import client, within_lambda_timeout
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoBatchStateStore
from motor_adapters.embedded_predictor import EmbeddedPredictor
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.reading_report import ReadingReporter, summary
from motor_adapters.sagemaker_predictor import SageMakerPredictor
from motor_adapters.settings import Settings
from motor_adapters.wiring import (
    alarm_publisher,
    batch_state_store,
    config_source,
    current_config,
    health_monitor,
    report_health,
)
from motor_maintenance.health import ModelHealthMonitor
from motor_maintenance.ports import Predictor
from motor_maintenance.service import process_reading
from motor_maintenance.telemetry import TelemetryEvent

logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # the only library doing I/O here; patching all costs ~20 ms of init
metrics = Metrics()
settings = Settings.from_env()
reporter = ReadingReporter(logger, metrics)


@cache
def _wiring() -> tuple[
    DynamoBatchStateStore, Predictor | None, IotAlarmPublisher, ConfigSource, ModelHealthMonitor | None
]:
    predictor: Predictor | None = None
    if settings.model_s3_url:  # InferenceMode embedded: the model runs here, fetched once per environment
        predictor = EmbeddedPredictor(settings.model_s3_url, client("s3"))
    elif settings.endpoint_name:
        # One attempt, bounded: a reading must not wait out a cold or throttled endpoint (the next one asks again).
        runtime = client("sagemaker-runtime", read_timeout=settings.endpoint_timeout_s, max_attempts=1)
        predictor = SageMakerPredictor(settings.endpoint_name, runtime)
    publisher = alarm_publisher(settings)
    monitor = health_monitor(settings, publisher) if predictor is not None else None
    return batch_state_store(settings), predictor, publisher, config_source(settings), monitor


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@within_lambda_timeout
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Only Lambda's event source mapping sends an event of "Records" alone: the rules add topic_motor_id
    # and received_at to whatever a device publishes, so no device can pass a batch of others' readings.
    if isinstance(event, dict) and event.keys() == {"Records"}:
        return batch_handler(event, context)
    try:
        telemetry = parse(event=event, model=TelemetryEvent)
    except (ValidationError, ValueError, TypeError) as exc:
        return reporter.reject(event, exc)

    store, predictor, publisher, source, monitor = _wiring()
    config = current_config(source, logger, metrics)

    reading, now = telemetry.reading(), datetime.now(UTC)
    logger.append_keys(motor_id=reading.motor_id)
    result = process_reading(
        reading,
        store=store,
        predictor=predictor,
        publisher=publisher,
        config=config,
        now=now,
        received_at_ms=telemetry.received_at,
    )
    reporter.report(result, received_at=telemetry.received_at)
    if monitor is not None:
        health = monitor.observe(
            probability=result.failure_probability, error=result.prediction_error, now=now, rule=config.model_health
        )
        report_health(health, logger, metrics)
    return summary(result)


def batch_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A batch from TelemetryStream (IngestionMode batched): `batchItemFailures` for Lambda, each reading's summary."""
    # Imported on the first batch: the direct path's cold start does not pay for Powertools' batch utility.
    from motor_adapters import stream_batch  # noqa: PLC0415

    if not stream_batch.is_stream_batch(event):
        return reporter.reject(event, ValueError("a batch of records that is not from a Kinesis stream"))
    store, predictor, publisher, source, monitor = _wiring()
    ports = stream_batch.Ports(store, predictor, publisher, current_config(source, logger, metrics), monitor)
    response, health = stream_batch.handle_batch(event, context, ports, reporter)
    if health is not None:
        report_health(health, logger, metrics)
    return response


# Last at init: what the imports and module-level set-up made (Powertools, botocore, pydantic's validators)
# lives as long as the execution environment. Moved out of the cyclic collector's generations, it is no
# longer walked by the collections that every reading's allocations trigger (benchmarks/warm_inference.py).
gc.freeze()
