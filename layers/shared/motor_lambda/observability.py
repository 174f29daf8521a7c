"""What more than one handler reports the same way: alarms raised, in total and per alarm kind, and the
log line of each alarm transition.

Every handler that produces alarm events (InferenceFunction, OperatorActionFunction, and the offline
check) calls `count_alarms_raised(metrics, events)` with its module-level Powertools `Metrics` and
the events it produced, so that the dashboard's "alarms raised by kind" sees every source.

CloudWatch's embedded metric format gives all the metrics of one log line the same dimensions, and
a handler's `Metrics` flushes everything it gathered in one line with `service` only. A per-kind
count therefore goes out on its own line, through Powertools' `single_metric`, which starts with no
dimension of the handler's; it gets `service` (the handler's, as `Metrics` adds it) and `kind`
explicitly, so the dashboard finds it under {service, kind} in the handler's namespace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from motor_maintenance.alarms import AlarmEvent, Transition

KIND_DIMENSION = "kind"
"""Dimension of the per-kind count; its values are `AlarmKind` values (schedule, condition, ...)."""


def count_alarms_raised(metrics: Metrics, events: Iterable[AlarmEvent]) -> Counter[str]:
    """Count the `raised` events: `AlarmsRaised` {service} for the fleet, and {service, kind} per kind.

    The total joins the handler's own metrics (flushed by `log_metrics`); each kind that was raised
    is written at once, as one EMF line with the number of its events. Returns the counts per kind.
    """
    raised = Counter(event.kind.value for event in events if event.transition is Transition.RAISED)
    total = sum(raised.values())
    if not total:
        return raised
    metrics.add_metric(name="AlarmsRaised", unit=MetricUnit.Count, value=total)
    for kind, count in sorted(raised.items()):
        with single_metric(
            name="AlarmsRaised", unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            if metrics.service:
                metric.add_dimension(name="service", value=str(metrics.service))
            metric.add_dimension(name=KIND_DIMENSION, value=kind)
    return raised


def log_alarm_transition(logger: Logger, event: AlarmEvent, **extra: Any) -> None:
    """The structured `alarm transition` log line of one event (plus `extra` keys, and its labels if it has any)."""
    given = {"verdict": event.verdict, "failure_mode": event.failure_mode}
    labels: dict[str, Any] = {name: str(value) for name, value in given.items() if value is not None}
    logger.info(
        "alarm transition",
        alarm=event.alarm,
        kind=event.kind.value,
        transition=event.transition.value,
        from_state=event.from_state.value,
        to_state=event.to_state.value,
        event_id=event.event_id,
        **labels,
        **extra,
    )
