"""OperatorActionFunction: an operator's command from motors/{id}/actions -> detector, state, alarm events."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from motor_adapters.clients import within_lambda_timeout
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoStateStore
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.observability import count_alarms_raised
from motor_adapters.settings import Settings
from motor_adapters.wiring import (
    alarm_publisher,
    config_source,
    current_config,
    payload_preview,
    rejection_reason,
    state_store,
)
from motor_maintenance.alarms import OperatorAction
from motor_maintenance.detector import Outcome
from motor_maintenance.service import process_action

logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # the only library doing I/O here; patching all costs ~20 ms of init
metrics = Metrics()
settings = Settings.from_env()


@cache
def _wiring() -> tuple[DynamoStateStore, IotAlarmPublisher, ConfigSource]:
    return state_store(settings), alarm_publisher(settings), config_source(settings)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@within_lambda_timeout
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        action = parse(event=event, model=OperatorAction)
    except (ValidationError, ValueError, TypeError) as exc:
        reason = rejection_reason(exc)
        logger.warning("action rejected", reason=reason, payload_preview=payload_preview(event))
        metrics.add_metric(name="ActionsRejected", unit=MetricUnit.Count, value=1)
        return {"status": "rejected", "reason": reason}

    store, publisher, source = _wiring()
    config = current_config(source, logger, metrics)

    logger.append_keys(motor_id=action.motor_id, action=action.action.value, action_id=action.action_id)
    result = process_action(action, store=store, publisher=publisher, config=config, now=datetime.now(UTC))
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
    return {
        "status": result.outcome.value,
        "motor_id": result.motor_id,
        "reason": result.reason,
        "alarm_states": result.alarm_states,
        "events": [alarm_event.event_id for alarm_event in result.events],
    }
