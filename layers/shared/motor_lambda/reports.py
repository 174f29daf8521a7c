"""Logs and metrics of the use cases' results: readings (one, or each of a batch's), actions, the model's health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from motor_lambda.observability import count_alarms_raised, log_alarm_transition
from motor_lambda.rejection import payload_preview, rejected
from motor_lambda.responses import Rejected
from motor_maintenance.alarms import OperatorAction, Transition
from motor_maintenance.detector import Outcome
from motor_maintenance.health import HealthReport
from motor_maintenance.service import Result


class ReadingReporter:
    """The handler's logger and metrics, applied to readings, one at a time or a batch's one by one.

    A batch's readings are reported exactly as single ones are, so the dashboard and the alarms read
    the same metrics in both modes (Powertools writes a metric's values in lines of up to 100).
    """

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self.logger = logger
        self.metrics = metrics

    def reject(self, event: Any, exc: Exception) -> Rejected:
        """Bad input: a log line naming the reason and a metric; nothing raised, so nothing retried."""
        motor_id = event.get("motor_id") if isinstance(event, dict) else None
        claimed = payload_preview(motor_id, 80) if motor_id is not None else None
        self.metrics.add_metric(name="ReadingsRejected", unit=MetricUnit.Count, value=1)
        return rejected("reading rejected", event, exc, self.logger, claimed_motor_id=claimed)

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
        if result.not_scored:
            metrics.add_metric(name="ReadingsNotScored", unit=MetricUnit.Count, value=1)
            log.info("reading not scored by the model", motor_id=result.motor_id, reason=result.not_scored)
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


def report_action(action: OperatorAction, result: Result, logger: Logger, metrics: Metrics) -> None:
    """Metrics and logs of an operator's action: applied, rejected, or without effect."""
    if result.outcome is Outcome.APPLIED:
        metrics.add_metric(name="ActionsApplied", unit=MetricUnit.Count, value=1)
        logger.info("action applied", operator=action.operator, alarm=action.alarm, events=len(result.events))
    elif result.outcome in (Outcome.REJECTED, Outcome.FUTURE):
        metrics.add_metric(name="ActionsRejected", unit=MetricUnit.Count, value=1)
        logger.warning("action rejected", reason=result.reason)
    else:
        metrics.add_metric(name="ActionsIgnored", unit=MetricUnit.Count, value=1)
        logger.info("action had no effect", outcome=result.outcome.value, reason=result.reason)
    if result.events:
        metrics.add_metric(name="AlarmTransitions", unit=MetricUnit.Count, value=len(result.events))
    count_alarms_raised(metrics, result.events)


def report_health(report: HealthReport, logger: Logger, metrics: Metrics) -> None:
    """Logs and metrics for what the model-health monitor did; a record it could not keep is not fatal."""
    for event in report.published:
        if event.transition is Transition.RAISED:
            metrics.add_metric(name="ModelOutages", unit=MetricUnit.Count, value=1)
            logger.error(
                "model unavailable; health alert published",
                event_id=event.event_id,
                failures_in_a_row=event.value,
                reason=event.note,
            )
        else:
            logger.info(
                "model available again; recovery notice published",
                event_id=event.event_id,
                unavailable_since=event.active_since.isoformat() if event.active_since else None,
            )
    if report.error:
        metrics.add_metric(name="ModelHealthUnrecorded", unit=MetricUnit.Count, value=1)
        logger.error("model health not recorded; tried again with the next prediction", reason=report.error)
