"""OfflineCheckFunction: every minute, the motors whose timer is due: running motors gone silent, snoozes ending.

Readings drive every other alarm; time alone drives these two. Each motor's item carries its next
deadline in a sparse index of the state table, so a tick reads only the motors that are due, never
the fleet (docs/architecture.md, "Offline detection").
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from motor_adapters.clients import time_left_s, within_lambda_timeout
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoDueIndex, DynamoStateStore
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.observability import count_alarms_raised, log_alarm_transition
from motor_adapters.settings import Settings
from motor_adapters.wiring import alarm_publisher, config_source, current_config, due_index, state_store
from motor_maintenance.alarms import AlarmEvent, AlarmKind
from motor_maintenance.detector import Outcome
from motor_maintenance.errors import MaintenanceError
from motor_maintenance.service import process_timers
from motor_maintenance.telemetry import to_epoch_ms

logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # the only library doing I/O here; patching all costs ~20 ms of init
metrics = Metrics()
settings = Settings.from_env()

STOP_WITH_S_LEFT = 25.0
"""No motor is started with less left: one AWS call's worst case is 19 s (docs/operations.md, "Timeout budget").
Motors not reached stay due, and the next tick takes them."""


class TimerChecksFailed(Exception):
    """Some due motors could not be checked; they stay due. Raised after the others are done, so the
    function's Errors metric (and its alarm) shows it and the tick goes to the on-failure queue."""


@cache
def _wiring() -> tuple[DynamoStateStore, DynamoDueIndex, IotAlarmPublisher, ConfigSource]:
    return state_store(settings), due_index(settings), alarm_publisher(settings), config_source(settings)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@within_lambda_timeout
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    store, due, publisher, source = _wiring()
    config = current_config(source, logger, metrics)
    tick = datetime.now(UTC)
    counts: Counter[str] = Counter()
    events: list[AlarmEvent] = []
    failures: list[str] = []
    for motor_id in due.due_for_check(to_epoch_ms(tick)):
        left = time_left_s()
        if left is not None and left < STOP_WITH_S_LEFT:
            counts["left_for_next_tick"] += 1
            continue  # counted, not checked: the rest of the query is cheap (keys only)
        try:
            result = process_timers(motor_id, store=store, publisher=publisher, config=config, now=datetime.now(UTC))
        except MaintenanceError as exc:
            failures.append(motor_id)
            logger.error("timer check failed; the motor stays due", motor_id=motor_id, reason=str(exc))
            continue
        counts["checked"] += 1
        counts[result.outcome.value] += 1
        counts["conflicts"] += result.conflicts
        for alarm_event in result.events:
            silent_s = alarm_event.value if alarm_event.kind is AlarmKind.OFFLINE else None
            log_alarm_transition(logger, alarm_event, motor_id=motor_id, silent_s=silent_s)
        events.extend(result.events)
        if result.published and result.outcome is not Outcome.APPLIED:
            logger.info("undelivered alarm events delivered", motor_id=motor_id, events=len(result.published))
    _report(counts, events, len(failures))
    if failures:
        raise TimerChecksFailed(f"{len(failures)} motor(s) could not be checked: {', '.join(failures[:20])}")
    return {
        "status": "ok",
        "checked": counts["checked"],
        "changed": counts[Outcome.APPLIED.value],
        "left_for_next_tick": counts["left_for_next_tick"],
        "events": [alarm_event.event_id for alarm_event in events],
    }


def _report(counts: Counter[str], events: list[AlarmEvent], failed: int) -> None:
    """One log line and the metrics of a tick."""
    offline = count_alarms_raised(metrics, events)[AlarmKind.OFFLINE.value]
    metrics.add_metric(name="TimerChecks", unit=MetricUnit.Count, value=counts["checked"])
    metrics.add_metric(name="MotorsOffline", unit=MetricUnit.Count, value=offline)
    if counts["left_for_next_tick"]:
        metrics.add_metric(name="TimerChecksDeferred", unit=MetricUnit.Count, value=counts["left_for_next_tick"])
    if failed:
        metrics.add_metric(name="TimerChecksFailed", unit=MetricUnit.Count, value=failed)
    if counts["conflicts"]:
        metrics.add_metric(name="StateConflicts", unit=MetricUnit.Count, value=counts["conflicts"])
    if events:
        metrics.add_metric(name="AlarmTransitions", unit=MetricUnit.Count, value=len(events))
    logger.info(
        "timer tick",
        checked=counts["checked"],
        changed=counts[Outcome.APPLIED.value],
        offline_raised=offline,
        deferred=counts["left_for_next_tick"],
        failed=failed,
    )
