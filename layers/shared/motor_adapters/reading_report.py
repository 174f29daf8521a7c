"""Logs and metrics for readings, the same for one reading (direct ingestion) and for each of a batch's (batched)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from motor_adapters.observability import count_alarms_raised, log_alarm_transition
from motor_adapters.wiring import payload_preview, rejection_reason
from motor_maintenance.detector import Outcome
from motor_maintenance.service import Result


def summary(result: Result) -> dict[str, Any]:
    """What InferenceFunction answers about one reading: the invocation's result, or an item of a batch's `readings`."""
    return {
        "status": result.outcome.value,
        "motor_id": result.motor_id,
        "reason": result.reason,
        "failure_probability": result.failure_probability,
        "drivers": [driver.model_dump() for driver in result.drivers],
        "alarm_states": result.alarm_states,
        "events": [event.event_id for event in result.events],
    }


class ReadingReporter:
    """The handler's logger and metrics, applied to readings, one at a time or a batch's one by one.

    A batch's readings are reported exactly as single ones are, so the dashboard and the alarms read
    the same metrics in both modes (Powertools writes a metric's values in lines of up to 100).
    """

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self.logger = logger
        self.metrics = metrics

    def reject(self, event: Any, exc: Exception) -> dict[str, Any]:
        """Bad input: a log line naming the reason and a metric; nothing raised, so nothing retried."""
        reason = rejection_reason(exc)
        motor_id = event.get("motor_id") if isinstance(event, dict) else None
        self.logger.warning(
            "reading rejected",
            reason=reason,
            claimed_motor_id=payload_preview(motor_id, 80) if motor_id is not None else None,
            payload_preview=payload_preview(event),
        )
        self.metrics.add_metric(name="ReadingsRejected", unit=MetricUnit.Count, value=1)
        return {"status": "rejected", "reason": reason}

    def report(self, result: Result, received_at: int | None, *, log_prediction_error: bool = True) -> None:
        """Metrics and structured logs for one processed reading.

        A batch logs its failed model call once (`log_prediction_error` False for its readings); each of
        its readings still counts in `PredictionsFailed`, as one reading's failed call does.
        """
        log, metrics = self.logger, self.metrics
        if result.outcome is Outcome.APPLIED:
            metrics.add_metric(name="ReadingsProcessed", unit=MetricUnit.Count, value=1)
        elif result.outcome in (Outcome.DUPLICATE, Outcome.STALE):
            metrics.add_metric(name="ReadingsDuplicate", unit=MetricUnit.Count, value=1)
            log.info("reading skipped", motor_id=result.motor_id, outcome=result.outcome.value, reason=result.reason)
        else:
            metrics.add_metric(name="ReadingsRejected", unit=MetricUnit.Count, value=1)
            log.warning(
                "reading rejected", motor_id=result.motor_id, outcome=result.outcome.value, reason=result.reason
            )
        if result.failure_probability is not None:
            metrics.add_metric(name="PredictionsMade", unit=MetricUnit.Count, value=1)
        if result.drivers_dropped:
            metrics.add_metric(name="PredictionDriversDropped", unit=MetricUnit.Count, value=1)
            log.warning(
                "prediction drivers dropped; probability kept", motor_id=result.motor_id, reason=result.drivers_dropped
            )
        if result.prediction_error:
            metrics.add_metric(name="PredictionsFailed", unit=MetricUnit.Count, value=1)
            if log_prediction_error:
                log.warning(
                    "prediction failed; schedule and condition rules still evaluated", reason=result.prediction_error
                )
        if result.conflicts:
            metrics.add_metric(name="StateConflicts", unit=MetricUnit.Count, value=result.conflicts)
        for event in result.events:
            metrics.add_metric(name="AlarmTransitions", unit=MetricUnit.Count, value=1)
            log_alarm_transition(log, event)
        count_alarms_raised(self.metrics, result.events)
        if received_at is not None:
            latency_ms = max(datetime.now(UTC).timestamp() * 1000 - received_at, 0.0)
            metrics.add_metric(name="IngestLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
