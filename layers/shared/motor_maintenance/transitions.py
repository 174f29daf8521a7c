"""What an alarm transition announces: the event, built from what one detector step knows about its cause."""

from __future__ import annotations

from typing import Any, Literal

from motor_maintenance.alarms import AlarmEvent, AlarmKind, AlarmState, OperatorAction, Transition, event_id
from motor_maintenance.config import OFFLINE_ALARM, PREDICTIVE_ALARM, SCHEDULE_ALARM, DetectorConfig, Severity
from motor_maintenance.prediction import Driver
from motor_maintenance.state import MotorState


def alarm_kind(name: str) -> AlarmKind:
    """The strategy an alarm name belongs to."""
    if name == SCHEDULE_ALARM:
        return AlarmKind.SCHEDULE
    if name == PREDICTIVE_ALARM:
        return AlarmKind.PREDICTIVE
    if name == OFFLINE_ALARM:
        return AlarmKind.OFFLINE
    return AlarmKind.CONDITION


class EventContext:
    """What every event of one step shares: the cause, its time and the evidence."""

    def __init__(
        self,
        state: MotorState,
        *,
        cause_key: str,
        at_ms: int,
        cause: Literal["reading", "action", "timer"],
        config: DetectorConfig,
        now_ms: int,
    ):
        self.state = state
        self.now_ms = now_ms
        self.cause_key = cause_key
        self.at_ms = at_ms
        self.cause: Literal["reading", "action", "timer"] = cause
        self.config = config
        self.reading_seq: int | None = None
        self.readings: dict[str, float] = {}
        self.probability: float | None = state.failure_probability
        self.probability_at_ms: int | None = state.probability_ts_ms
        self.drivers: tuple[Driver, ...] = state.probability_drivers
        """The drivers of `probability`: the prediction an event quotes, whether this reading's or older."""
        self.model_version: str | None = state.probability_model_version
        """The version of the model that gave `probability`."""
        self.action: OperatorAction | None = None
        self.run_hours_before: float | None = None

    def event(self, name: str, transition: Transition, from_state: AlarmState, to_state: AlarmState) -> AlarmEvent:
        status = self.state.alarms[name]
        severity, rule, advice = rule_details(name, self.config)
        self.state.event_seq += 1
        action = self.action
        return AlarmEvent(
            event_id=event_id(self.state.motor_id, name, transition, self.cause_key),
            sequence=self.state.event_seq,
            motor_id=self.state.motor_id,
            motor_type=self.state.motor_type,
            alarm=name,
            kind=alarm_kind(name),
            transition=transition,
            from_state=from_state,
            to_state=to_state,
            severity=severity,
            at=self.at_ms,
            cause=self.cause,
            reading_seq=self.reading_seq,
            action_id=action.action_id if action else None,
            value=status.last_value if self.run_hours_before is None else self.run_hours_before,
            rule=rule,
            readings=self.readings,
            failure_probability=self.probability,
            probability_at=self.probability_at_ms,
            model_version=self.model_version if self.probability is not None else None,
            # Why the model predicts a failure is news when the alarm is raised; a clear, an
            # acknowledgement or a snooze is about the alarm, and the drivers of a low probability
            # would read as a reason for alarm.
            drivers=self.drivers if name == PREDICTIVE_ALARM and transition is Transition.RAISED else (),
            active_since=status.active_since_ms,
            run_hours=self.state.run_hours if self.run_hours_before is None else self.run_hours_before,
            snoozed_until=status.snoozed_until_ms if to_state is AlarmState.SNOOZED else None,
            operator=action.operator if action else None,
            note=(action.note or None) if action else None,
            advice=advice,
            # The labels: only the actions that may carry them have them (the schema sees to it).
            verdict=action.verdict if action else None,
            failure_mode=action.failure_mode if action else None,
            failed_at=action.failed_at if action else None,
        )


def rule_details(name: str, config: DetectorConfig) -> tuple[Severity, dict[str, Any], str]:
    """What an event of this alarm says about its rule: severity, the rule's parameters, the advice."""
    if name == SCHEDULE_ALARM:
        schedule = config.schedule
        return schedule.severity, {"service_interval_h": schedule.service_interval_h}, schedule.advice
    if name == PREDICTIVE_ALARM:
        predictive = config.predictive
        rule = predictive.model_dump(include={"raise_threshold", "clear_threshold", "consecutive"})
        return predictive.severity, rule, predictive.advice
    if name == OFFLINE_ALARM:
        offline = config.offline
        return offline.severity, {"after_s": offline.after_s}, offline.advice
    condition = config.condition(name)
    if condition is None:  # pragma: no cover - events are only made for the configured alarms
        raise KeyError(name)
    rule = condition.model_dump(
        include={"signal", "direction", "raise_threshold", "clear_threshold", "min_duration_s", "description"}
    )
    return condition.severity, rule, condition.advice
