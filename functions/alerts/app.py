"""AlertFunction: an alarm event from motors/{id}/alarms -> words for people -> SNS, once per event id."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from motor_adapters.clients import client, within_lambda_timeout
from motor_adapters.settings import Settings
from motor_adapters.sns_notifier import SnsNotifier
from motor_adapters.wiring import payload_preview, rejection_reason
from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.alerts import format_alert

logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # the only library doing I/O here; patching all costs ~20 ms of init
metrics = Metrics()
settings = Settings.from_env()
settings.require("alert_topic_arn", "idempotency_table_name")

# An alarm event is alerted once: redeliveries (IoT rule retries, Lambda retries, an outbox flushed
# twice) find the record keyed on its deterministic event_id and return the first result.
idempotency_config = IdempotencyConfig(event_key_jmespath="event_id", expires_after_seconds=7 * 24 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name, boto3_client=client("dynamodb"))


@cache
def _notifier() -> SnsNotifier:
    return SnsNotifier(settings.alert_topic_arn, client("sns"))


@idempotent_function(data_keyword_argument="alarm", persistence_store=persistence, config=idempotency_config)  # type: ignore[untyped-decorator]
def send_alert(alarm: AlarmEvent) -> dict[str, Any]:
    alert = format_alert(alarm)
    message_id = _notifier().send(alert, alarm)
    metrics.add_metric(name="AlertsSent", unit=MetricUnit.Count, value=1)
    logger.info("alert sent", event_id=alarm.event_id, message_id=message_id, subject=alert.subject)
    return {"message_id": message_id, "subject": alert.subject}


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@within_lambda_timeout
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        alarm = parse(event=event, model=AlarmEvent)
    except (ValidationError, ValueError, TypeError) as exc:
        reason = rejection_reason(exc)
        logger.warning("alarm event rejected", reason=reason, payload_preview=payload_preview(event))
        metrics.add_metric(name="AlarmEventsRejected", unit=MetricUnit.Count, value=1)
        return {"status": "rejected", "reason": reason}

    metrics.add_metric(name="AlarmEventsReceived", unit=MetricUnit.Count, value=1)
    idempotency_config.register_lambda_context(context)
    logger.append_keys(motor_id=alarm.motor_id, alarm=alarm.alarm, event_id=alarm.event_id)
    sent = send_alert(alarm=alarm)
    return {"status": "sent", "event_id": alarm.event_id, **sent}
