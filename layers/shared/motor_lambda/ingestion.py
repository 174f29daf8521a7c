"""InferenceFunction's work on readings: one from TelemetryRule (direct) or a batch from TelemetryStream (batched),
applied, reported, and the model call counted by the model's health monitor; and the adapters it is done with."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from motor_adapters import clients
from motor_adapters.dynamodb_store import DynamoBatchStateStore, DynamoHealthStore
from motor_adapters.embedded_predictor import EmbeddedPredictor
from motor_adapters.sagemaker_predictor import SageMakerPredictor
from motor_adapters.written_states import WrittenStates
from motor_lambda.reports import ReadingReporter, report_health
from motor_lambda.responses import ReadingSummary, Rejected
from motor_lambda.settings import InferenceSettings
from motor_lambda.wiring import (
    HistoryErrors,
    InferencePorts,
    alarm_publisher,
    config_source,
    current_config,
    history_errors,
    recorded_batch,
)
from motor_maintenance.config import DetectorConfig
from motor_maintenance.health import ModelHealthMonitor
from motor_maintenance.ports import Predictor
from motor_maintenance.service import process_reading
from motor_maintenance.telemetry import TelemetryEvent


def inference_ports(settings: InferenceSettings, on_history_error: HistoryErrors) -> InferencePorts:
    """The state store may read many motors at once (BatchGetItem): only this function applies batches."""
    publisher = alarm_publisher(settings)
    model = predictor(settings)
    # The model's health for this execution environment: its own counts, the fleet's shared record.
    monitor = (
        ModelHealthMonitor(DynamoHealthStore(settings.state_table_name, clients.client("dynamodb")), publisher)
        if model is not None
        else None
    )
    # Keeps the states it writes: a motor's next reading in this environment needs no read.
    store = DynamoBatchStateStore(
        settings.state_table_name,
        clients.client("dynamodb"),
        written=WrittenStates(),
        state_format=settings.state_item_format,
    )
    return InferencePorts(
        recorded_batch(store, settings, on_history_error), model, publisher, config_source(settings), monitor
    )


def predictor(settings: InferenceSettings) -> Predictor | None:
    """The model: embedded (fetched once per environment), behind the endpoint, or none."""
    if settings.model_s3_url:
        return EmbeddedPredictor(settings.model_s3_url, clients.client("s3"))
    if settings.endpoint_name:
        # One attempt, bounded: a reading must not wait out a cold or throttled endpoint (the next one asks again).
        runtime = clients.client("sagemaker-runtime", read_timeout=settings.endpoint_timeout_s, max_attempts=1)
        return SageMakerPredictor(settings.endpoint_name, runtime)
    return None


def is_batch(event: Any) -> bool:
    """Whether the event is a batch of records rather than one reading.

    Only Lambda's event source mapping sends an event of "Records" alone: the rules add topic_motor_id and
    received_at to whatever a device publishes, so no device can pass a batch of others' readings.
    """
    return isinstance(event, dict) and event.keys() == {"Records"}


class Ingestion:
    """Readings in, with the function's adapters (built on the first reading) and its logger and metrics."""

    def __init__(self, settings: InferenceSettings, logger: Logger, metrics: Metrics) -> None:
        self.settings = settings
        self.reporter = ReadingReporter(logger, metrics)

    @cached_property
    def ports(self) -> InferencePorts:
        return inference_ports(self.settings, history_errors(self.reporter.logger, self.reporter.metrics))

    def reject(self, event: Any, exc: Exception) -> Rejected:
        return self.reporter.reject(event, exc)

    def reading(self, telemetry: TelemetryEvent) -> ReadingSummary:
        """Apply one reading (direct ingestion)."""
        ports, now = self.ports, datetime.now(UTC)
        config = current_config(ports.source, self.reporter.logger, self.reporter.metrics)
        result = process_reading(
            telemetry.reading(),
            store=ports.store,
            predictor=ports.predictor,
            publisher=ports.publisher,
            config=config,
            now=now,
            received_at_ms=telemetry.received_at,
        )
        self.reporter.report(result, received_at=telemetry.received_at)
        self._observe_model(result.failure_probability, result.prediction_error, now, config)
        return ReadingSummary.of(result)

    def batch(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Apply a batch from TelemetryStream (batched): `batchItemFailures` for Lambda, and each record's fate."""
        # Imported on the first batch: the direct path's cold start does not pay for Powertools' batch utility.
        from motor_lambda import stream_batch  # noqa: PLC0415

        if not stream_batch.is_stream_batch(event):
            return self.reject(event, ValueError("a batch of records that is not from a Kinesis stream")).model_dump()
        ports, now = self.ports, datetime.now(UTC)
        config = current_config(ports.source, self.reporter.logger, self.reporter.metrics)
        response, batch = stream_batch.apply_batch(
            event, context, ports, config=config, now=now, reporter=self.reporter
        )
        if batch.model_calls:
            self._observe_model(batch.probability, batch.prediction_error, now, config)
        return response.model_dump()

    def _observe_model(
        self, probability: float | None, error: str | None, now: datetime, config: DetectorConfig
    ) -> None:
        """One model call (an answer, or why there is none) to the model's health monitor; what it did, reported."""
        monitor = self.ports.monitor
        if monitor is None:
            return
        health = monitor.observe(probability=probability, error=error, now=now, rule=config.model_health)
        report_health(health, self.reporter.logger, self.reporter.metrics)
