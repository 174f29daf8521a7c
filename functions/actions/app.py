"""OperatorActionFunction: an operator's command from {namespace}/{id}/actions -> detector, state, alarm events."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from motor_lambda.rejection import rejected
from motor_lambda.reports import report_action
from motor_lambda.responses import ActionResponse
from motor_lambda.settings import ActionSettings
from motor_lambda.shell import lambda_entry, powertools
from motor_lambda.wiring import MotorPorts, current_config, history_errors, motor_ports
from motor_maintenance.alarms import OperatorAction
from motor_maintenance.service import process_action

logger, tracer, metrics = powertools()
settings = ActionSettings.from_env()


@cache
def ports() -> MotorPorts:
    """The adapters, built on the first action and kept for the execution environment."""
    return motor_ports(settings, history_errors(logger, metrics))


@lambda_entry(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        action = parse(event=event, model=OperatorAction)
    except (ValidationError, ValueError, TypeError) as exc:
        metrics.add_metric(name="ActionsRejected", unit=MetricUnit.Count, value=1)
        return rejected("action rejected", event, exc, logger).model_dump()

    logger.append_keys(motor_id=action.motor_id, action=action.action.value, action_id=action.action_id)
    adapters = ports()
    config = current_config(adapters.source, logger, metrics)
    now = datetime.now(UTC)
    result = process_action(action, store=adapters.store, publisher=adapters.publisher, config=config, now=now)
    report_action(action, result, logger, metrics)
    return ActionResponse.of(result).model_dump()
