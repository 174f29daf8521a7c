"""OfflineCheckFunction's tick: each motor whose timer is due is checked, then the tick is logged and counted.

Readings drive every other alarm; time alone drives these two: running motors gone silent, and snoozes
ending. Each motor's item carries its next deadline in a sparse index of the state table, so a tick
reads only the motors that are due, never the fleet (docs/architecture.md, "Offline detection").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from motor_adapters.clients import time_left_s
from motor_lambda.observability import count_alarms_raised, log_alarm_transition
from motor_lambda.responses import TickResponse
from motor_lambda.wiring import TimerPorts
from motor_maintenance.alarms import AlarmEvent, AlarmKind
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import Outcome
from motor_maintenance.errors import MaintenanceError
from motor_maintenance.service import process_timers
from motor_maintenance.telemetry import to_epoch_ms

STOP_WITH_S_LEFT = 25.0
"""No motor is started with less left: one AWS call's worst case is 19 s (docs/operations.md, "Timeout budget").
Motors not reached stay due, and the next tick takes them."""


class TimerChecksFailed(Exception):
    """Some due motors could not be checked; they stay due. Raised after the others are done, so the
    function's Errors metric (and its alarm) shows it and the tick goes to the on-failure queue."""


@dataclass
class Tick:
    """What one tick did."""

    checked: int = 0
    changed: int = 0
    left_for_next_tick: int = 0
    """Due motors not started for lack of time; the next tick takes them."""
    conflicts: int = 0
    events: list[AlarmEvent] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """Motors that could not be checked."""

    def response(self) -> TickResponse:
        """The function's answer; TimerChecksFailed if a motor could not be checked."""
        if self.failures:
            shown = ", ".join(self.failures[:20])
            raise TimerChecksFailed(f"{len(self.failures)} motor(s) could not be checked: {shown}")
        return TickResponse(
            checked=self.checked,
            changed=self.changed,
            left_for_next_tick=self.left_for_next_tick,
            events=[event.event_id for event in self.events],
        )


def check_due_motors(ports: TimerPorts, config: DetectorConfig, logger: Logger) -> Tick:
    """Check every motor that is due now, each in a unit of work of its own; a failure does not stop the others."""
    tick = Tick()
    for motor_id in ports.due.due_for_check(to_epoch_ms(datetime.now(UTC))):
        left = time_left_s()
        if left is not None and left < STOP_WITH_S_LEFT:
            tick.left_for_next_tick += 1
            continue  # counted, not checked: the rest of the query is cheap (keys only)
        try:
            result = process_timers(
                motor_id, store=ports.store, publisher=ports.publisher, config=config, now=datetime.now(UTC)
            )
        except MaintenanceError as exc:
            tick.failures.append(motor_id)
            logger.error("timer check failed; the motor stays due", motor_id=motor_id, reason=str(exc))
            continue
        tick.checked += 1
        if result.outcome is Outcome.APPLIED:
            tick.changed += 1
        tick.conflicts += result.conflicts
        for event in result.events:
            silent_s = event.value if event.kind is AlarmKind.OFFLINE else None
            log_alarm_transition(logger, event, motor_id=motor_id, silent_s=silent_s)
        tick.events.extend(result.events)
        if result.published and result.outcome is not Outcome.APPLIED:
            logger.info("undelivered alarm events delivered", motor_id=motor_id, events=len(result.published))
    return tick


def report_tick(tick: Tick, logger: Logger, metrics: Metrics) -> None:
    """One log line and the metrics of a tick."""
    offline = count_alarms_raised(metrics, tick.events)[AlarmKind.OFFLINE.value]
    metrics.add_metric(name="TimerChecks", unit=MetricUnit.Count, value=tick.checked)
    metrics.add_metric(name="MotorsOffline", unit=MetricUnit.Count, value=offline)
    if tick.left_for_next_tick:
        metrics.add_metric(name="TimerChecksDeferred", unit=MetricUnit.Count, value=tick.left_for_next_tick)
    if tick.failures:
        metrics.add_metric(name="TimerChecksFailed", unit=MetricUnit.Count, value=len(tick.failures))
    if tick.conflicts:
        metrics.add_metric(name="StateConflicts", unit=MetricUnit.Count, value=tick.conflicts)
    if tick.events:
        metrics.add_metric(name="AlarmTransitions", unit=MetricUnit.Count, value=len(tick.events))
    logger.info(
        "timer tick",
        checked=tick.checked,
        changed=tick.changed,
        offline_raised=offline,
        deferred=tick.left_for_next_tick,
        failed=len(tick.failures),
    )
