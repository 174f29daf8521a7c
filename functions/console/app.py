"""ConsoleFunction: the operator console's HTTP API (docs/console.md) behind API Gateway's JWT authorizer.

GET /motors, GET /motors/{id}, GET /motors/{id}/history and POST /motors/{id}/actions, the last through the
same use case as an action published on {namespace}/{id}/actions, with the signed-in user as the operator.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from motor_lambda.console_api import console_api
from motor_lambda.settings import ConsoleSettings
from motor_lambda.shell import lambda_entry, powertools
from motor_lambda.wiring import ConsolePorts, console_ports, history_errors

logger, tracer, metrics = powertools()
settings = ConsoleSettings.from_env()


@cache
def ports() -> ConsolePorts:
    """The adapters, built on the first request and kept for the execution environment."""
    return console_ports(settings, history_errors(logger, metrics))


api = console_api(ports, logger, metrics)


@lambda_entry(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(event, context)
