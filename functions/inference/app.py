"""InferenceFunction: a reading from motors/{id}/telemetry -> prediction, detector, state, alarm events."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from motor_adapters.clients import client, within_lambda_timeout
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoStateStore
from motor_adapters.embedded_predictor import EmbeddedPredictor
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.observability import count_alarms_raised, log_alarm_transition
from motor_adapters.sagemaker_predictor import SageMakerPredictor
from motor_adapters.settings import Settings
from motor_adapters.wiring import (
    alarm_publisher,
    config_source,
    current_config,
    health_monitor,
    payload_preview,
    rejection_reason,
    report_health,
    state_store,
)
from motor_maintenance.detector import Outcome
from motor_maintenance.health import ModelHealthMonitor
from motor_maintenance.service import Predictor, Result, process_reading
from motor_maintenance.telemetry import TelemetryEvent

logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # the only library doing I/O here; patching all costs ~20 ms of init
metrics = Metrics()
settings = Settings.from_env()


@cache
def _wiring() -> tuple[DynamoStateStore, Predictor | None, IotAlarmPublisher, ConfigSource, ModelHealthMonitor | None]:
    predictor: Predictor | None = None
    if settings.model_s3_url:  # InferenceMode embedded: the model runs here, fetched once per environment
        predictor = EmbeddedPredictor(settings.model_s3_url, client("s3"))
    elif settings.endpoint_name:
        # One attempt, bounded: a reading must not wait out a cold or throttled endpoint (the next one asks again).
        runtime = client("sagemaker-runtime", read_timeout=settings.endpoint_timeout_s, max_attempts=1)
        predictor = SageMakerPredictor(settings.endpoint_name, runtime)
    publisher = alarm_publisher(settings)
    monitor = health_monitor(settings, publisher) if predictor is not None else None
    return state_store(settings), predictor, publisher, config_source(settings), monitor


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@within_lambda_timeout
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        telemetry = parse(event=event, model=TelemetryEvent)
    except (ValidationError, ValueError, TypeError) as exc:
        return reject(event, exc)

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
    report(result, received_at=telemetry.received_at)
    if monitor is not None:
        health = monitor.observe(
            probability=result.failure_probability, error=result.prediction_error, now=now, rule=config.model_health
        )
        report_health(health, logger, metrics)
    return {
        "status": result.outcome.value,
        "motor_id": result.motor_id,
        "reason": result.reason,
        "failure_probability": result.failure_probability,
        "drivers": [driver.model_dump() for driver in result.drivers],
        "alarm_states": result.alarm_states,
        "events": [event.event_id for event in result.events],
    }


def reject(event: Any, exc: Exception) -> dict[str, Any]:
    """Bad input: a log line naming the reason and a metric; nothing raised, so nothing retried."""
    reason = rejection_reason(exc)
    motor_id = event.get("motor_id") if isinstance(event, dict) else None
    logger.warning(
        "reading rejected",
        reason=reason,
        claimed_motor_id=payload_preview(motor_id, 80) if motor_id is not None else None,
        payload_preview=payload_preview(event),
    )
    metrics.add_metric(name="ReadingsRejected", unit=MetricUnit.Count, value=1)
    return {"status": "rejected", "reason": reason}


def report(result: Result, received_at: int | None) -> None:
    """Metrics and structured logs for one processed reading."""
    if result.outcome is Outcome.APPLIED:
        metrics.add_metric(name="ReadingsProcessed", unit=MetricUnit.Count, value=1)
    elif result.outcome in (Outcome.DUPLICATE, Outcome.STALE):
        metrics.add_metric(name="ReadingsDuplicate", unit=MetricUnit.Count, value=1)
        logger.info("reading skipped", outcome=result.outcome.value, reason=result.reason)
    else:
        metrics.add_metric(name="ReadingsRejected", unit=MetricUnit.Count, value=1)
        logger.warning("reading rejected", outcome=result.outcome.value, reason=result.reason)
    if result.failure_probability is not None:
        metrics.add_metric(name="PredictionsMade", unit=MetricUnit.Count, value=1)
    if result.drivers_dropped:
        metrics.add_metric(name="PredictionDriversDropped", unit=MetricUnit.Count, value=1)
        logger.warning("prediction drivers dropped; probability kept", reason=result.drivers_dropped)
    if result.prediction_error:
        metrics.add_metric(name="PredictionsFailed", unit=MetricUnit.Count, value=1)
        logger.warning(
            "prediction failed; schedule and condition rules still evaluated", reason=result.prediction_error
        )
    if result.conflicts:
        metrics.add_metric(name="StateConflicts", unit=MetricUnit.Count, value=result.conflicts)
    for event in result.events:
        metrics.add_metric(name="AlarmTransitions", unit=MetricUnit.Count, value=1)
        log_alarm_transition(logger, event)
    count_alarms_raised(metrics, result.events)
    if received_at is not None:
        latency_ms = max(datetime.now(UTC).timestamp() * 1000 - received_at, 0.0)
        metrics.add_metric(name="IngestLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
