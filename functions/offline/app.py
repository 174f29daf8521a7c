"""OfflineCheckFunction: every minute, the motors whose timer is due: running motors gone silent, snoozes ending.

Readings drive every other alarm; time alone drives these two (motor_lambda.timers; docs/architecture.md,
"Offline detection").
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from motor_lambda.settings import OfflineSettings
from motor_lambda.shell import lambda_entry, powertools
from motor_lambda.timers import check_due_motors, report_tick
from motor_lambda.wiring import TimerPorts, current_config, history_errors, timer_ports

logger, tracer, metrics = powertools()
settings = OfflineSettings.from_env()


@cache
def ports() -> TimerPorts:
    """The adapters, built on the first tick and kept for the execution environment."""
    return timer_ports(settings, history_errors(logger, metrics))


@lambda_entry(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A scheduled tick (the event carries nothing the check needs). TimerChecksFailed if a motor could not be
    checked: raised after the others are done, so the tick goes to the on-failure queue."""
    adapters = ports()
    tick = check_due_motors(adapters, current_config(adapters.source, logger, metrics), logger)
    report_tick(tick, logger, metrics)
    return tick.response().model_dump()
