"""AlertFunction: an alarm event from {namespace}/{id}/alarms -> words for people -> SNS, once per event id."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from motor_adapters.sns_notifier import SnsNotifier
from motor_lambda.alerting import idempotency_store, notifier
from motor_lambda.rejection import rejected
from motor_lambda.responses import AlertSent
from motor_lambda.settings import AlertSettings
from motor_lambda.shell import lambda_entry, powertools
from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.alerts import format_alert

logger, tracer, metrics = powertools()
settings = AlertSettings.from_env()

# An alarm event is alerted once: redeliveries (IoT rule retries, Lambda retries, an outbox flushed
# twice) find the record keyed on its deterministic event_id and return the first result.
idempotency_config = IdempotencyConfig(event_key_jmespath="event_id", expires_after_seconds=7 * 24 * 3600)
persistence = idempotency_store(settings)


@cache
def sns() -> SnsNotifier:
    """The SNS adapter, built on the first alert and kept for the execution environment."""
    return notifier(settings)


@idempotent_function(data_keyword_argument="alarm", persistence_store=persistence, config=idempotency_config)  # type: ignore[untyped-decorator]
def send_alert(alarm: AlarmEvent) -> dict[str, Any]:
    alert = format_alert(alarm, settings.topic_namespace)
    message_id = sns().send(alert, alarm)
    metrics.add_metric(name="AlertsSent", unit=MetricUnit.Count, value=1)
    logger.info("alert sent", event_id=alarm.event_id, message_id=message_id, subject=alert.subject)
    return {"message_id": message_id, "subject": alert.subject}


@lambda_entry(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        alarm = parse(event=event, model=AlarmEvent)
    except (ValidationError, ValueError, TypeError) as exc:
        metrics.add_metric(name="AlarmEventsRejected", unit=MetricUnit.Count, value=1)
        return rejected("alarm event rejected", event, exc, logger).model_dump()

    metrics.add_metric(name="AlarmEventsReceived", unit=MetricUnit.Count, value=1)
    idempotency_config.register_lambda_context(context)
    logger.append_keys(motor_id=alarm.motor_id, alarm=alarm.alarm, event_id=alarm.event_id)
    return AlertSent(event_id=alarm.event_id, **send_alert(alarm=alarm)).model_dump()
