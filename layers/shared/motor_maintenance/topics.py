"""The MQTT topics of a stack: `{namespace}/{motor_id}/{telemetry|actions|alarms}`.

IoT Core's topics belong to the whole account and region, so each stack keeps its own first topic
level, the template's `TopicNamespace` (`motors` unless told otherwise): two stacks in one account
then never see each other's readings, actions or alarm events. The namespace is exactly one topic
level, so the rules' `topic(2)` is always the motor id.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

DEFAULT_NAMESPACE = "motors"
NAMESPACE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""One topic level without wildcards or '$' (template.yaml's TopicNamespace AllowedPattern says the same)."""
TopicNamespace = Annotated[str, Field(pattern=NAMESPACE_PATTERN, description="The stack's first topic level.")]

_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def check_namespace(namespace: str) -> str:
    """The namespace, or ValueError saying what a namespace must be."""
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"topic namespace {namespace!r} is not one topic level of 1-64 letters, digits, '_' or '-' "
            "(no '/', '+', '#' or '$')"
        )
    return namespace


def telemetry_topic(motor_id: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Where a motor publishes its readings."""
    return f"{namespace}/{motor_id}/telemetry"


def actions_topic(motor_id: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Where operators publish a motor's actions."""
    return f"{namespace}/{motor_id}/actions"


def alarms_topic(motor_id: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Where a motor's alarm events are published (`all.motors` for the fleet's)."""
    return f"{namespace}/{motor_id}/alarms"
