"""The console's read side: the fleet by risk, one motor with its alarms and the actions that apply, its history.

Pure: built from the states and history entries the adapters read, with `now` passed in. The models are
the API's answers (docs/console.md), so a field is renamed here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from motor_maintenance.alarms import ActionName, AlarmEvent, AlarmState
from motor_maintenance.config import DetectorConfig
from motor_maintenance.features import feature_label
from motor_maintenance.history import Entry, Point, window
from motor_maintenance.state import AlarmStatus, MotorState
from motor_maintenance.transitions import alarm_kind, rule_details

RISK_ORDER = (
    AlarmState.ACTIVE,
    AlarmState.LATCHED,
    AlarmState.ACKNOWLEDGED,
    AlarmState.SNOOZED,
    AlarmState.DISABLED,
    AlarmState.NORMAL,
)
"""Worst first: an alarm nobody has seen yet, one that cleared unseen, one being handled, then the quiet ones."""

_ACTIONS_BY_STATE: dict[AlarmState, tuple[ActionName, ...]] = {
    AlarmState.ACTIVE: (ActionName.ACKNOWLEDGE, ActionName.SNOOZE, ActionName.DISABLE, ActionName.RESET),
    AlarmState.LATCHED: (ActionName.ACKNOWLEDGE, ActionName.SNOOZE, ActionName.DISABLE, ActionName.RESET),
    AlarmState.ACKNOWLEDGED: (ActionName.SNOOZE, ActionName.DISABLE, ActionName.RESET),
    AlarmState.SNOOZED: (ActionName.SNOOZE, ActionName.DISABLE),
    AlarmState.NORMAL: (ActionName.SNOOZE, ActionName.DISABLE),
    AlarmState.DISABLED: (ActionName.ENABLE,),
}
"""What the detector applies in each state (motor_maintenance.detector, the _ACTIONS): the page's buttons."""
MOTOR_ACTIONS = (ActionName.SERVICE_COMPLETE, ActionName.REPORT_FAILURE)


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class DriverView(View):
    feature: str
    label: str
    """The feature in words (motor_maintenance.features.feature_label)."""
    contribution: float


class WorstAlarm(View):
    name: str
    state: AlarmState


class MotorSummary(View):
    """A row of the fleet table."""

    motor_id: str
    motor_type: str | None
    running: bool
    last_reading_at: datetime | None
    run_hours: float
    failure_probability: float | None
    probability_at: datetime | None
    drivers: list[DriverView]
    worst_alarm: WorstAlarm | None
    alarm_states: dict[str, AlarmState]

    @classmethod
    def of(cls, state: MotorState) -> Self:
        worst = worst_alarm(state)
        return cls(
            motor_id=state.motor_id,
            motor_type=state.motor_type,
            running=state.last_running,
            last_reading_at=_time(state.last_ts_ms),
            run_hours=round(state.run_hours, 3),
            failure_probability=state.failure_probability,
            probability_at=_time(state.probability_ts_ms),
            drivers=[
                DriverView(feature=d.feature, label=feature_label(d.feature), contribution=d.contribution)
                for d in state.probability_drivers
            ],
            worst_alarm=WorstAlarm(name=worst[0], state=worst[1].state) if worst else None,
            alarm_states={name: status.state for name, status in state.alarms.items()},
        )


class AlarmView(View):
    name: str
    kind: str
    severity: str | None
    """None for an alarm whose rule the configuration in force no longer defines (frozen as it was)."""
    state: AlarmState
    active_since: datetime | None
    snoozed_until: datetime | None
    value: float | None
    actions: list[ActionName]


class MotorDetail(MotorSummary):
    """One motor's page."""

    last_heard_at: datetime | None
    last_service_at: datetime | None
    readings: dict[str, float]
    alarms: list[AlarmView]
    motor_actions: list[ActionName]
    failure_modes: list[str]

    @classmethod
    def of_state(cls, state: MotorState, config: DetectorConfig) -> Self:
        defined = set(config.alarm_names())
        alarms = [
            _alarm_view(name, status, config if name in defined else None)
            for name, status in sorted(state.alarms.items(), key=lambda item: (_rank(item[1].state), item[0]))
        ]
        return cls(
            **MotorSummary.of(state).model_dump(),
            last_heard_at=_time(state.last_heard_ms),
            last_service_at=_time(state.last_service_ms),
            readings=dict(state.last_readings),
            alarms=alarms,
            motor_actions=list(MOTOR_ACTIONS),
            failure_modes=list(config.failure_modes),
        )


class FleetPage(View):
    motors: list[MotorSummary]
    next_token: str | None
    count: int
    generated_at: datetime


class PointView(View):
    at: datetime
    running: bool
    failure_probability: float | None
    readings: dict[str, float]

    @classmethod
    def of(cls, point: Point) -> Self:
        return cls(
            at=_at(point.at_ms),
            running=point.running,
            failure_probability=point.failure_probability,
            readings=point.readings,
        )


class TransitionView(View):
    at: datetime
    alarm: str
    transition: str
    from_state: AlarmState
    to_state: AlarmState
    operator: str | None
    event_id: str

    @classmethod
    def of(cls, event: AlarmEvent) -> Self:
        return cls(
            at=event.at,
            alarm=event.alarm,
            transition=event.transition.value,
            from_state=event.from_state,
            to_state=event.to_state,
            operator=event.operator,
            event_id=event.event_id,
        )


class HistoryView(View):
    model_config = ConfigDict(frozen=True, serialize_by_alias=True)

    motor_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    points: list[PointView]
    transitions: list[TransitionView]
    thinned: bool

    @classmethod
    def of(cls, motor_id: str, entries: list[Entry], from_ms: int, to_ms: int) -> Self:
        points, events, thinned = window(entries, from_ms, to_ms)
        return cls.model_validate(
            {
                "motor_id": motor_id,
                "from": _at(from_ms),
                "to": _at(to_ms),
                "points": [PointView.of(point) for point in points],
                "transitions": [TransitionView.of(event) for event in events],
                "thinned": thinned,
            }
        )


def worst_alarm(state: MotorState) -> tuple[str, AlarmStatus] | None:
    """The motor's alarm in the worst state (by RISK_ORDER, then by name); None if all are NORMAL."""
    ranked = sorted(state.alarms.items(), key=lambda item: (_rank(item[1].state), item[0]))
    if not ranked or ranked[0][1].state is AlarmState.NORMAL:
        return None
    return ranked[0]


def risk_key(state: MotorState) -> tuple[int, float, str]:
    """Sort key, riskiest first: the worst alarm state, then the higher probability (none last), then the id."""
    worst = worst_alarm(state)
    rank = _rank(worst[1].state) if worst else _rank(AlarmState.NORMAL)
    probability = state.failure_probability if state.failure_probability is not None else -1.0
    return rank, -probability, state.motor_id


def fleet_page(states: Iterable[MotorState], offset: int, limit: int, now: datetime) -> tuple[FleetPage, int | None]:
    """The page of the fleet at `offset` in risk order, and the offset of the next page (None: the last)."""
    ordered: Sequence[MotorState] = sorted(states, key=risk_key)
    page = ordered[offset : offset + limit]
    following = offset + limit if offset + limit < len(ordered) else None
    summaries = [MotorSummary.of(state) for state in page]
    return FleetPage(motors=summaries, next_token=None, count=len(summaries), generated_at=now), following


def actions_for(state: AlarmState) -> list[ActionName]:
    return list(_ACTIONS_BY_STATE[state])


def _alarm_view(name: str, status: AlarmStatus, config: DetectorConfig | None) -> AlarmView:
    severity = rule_details(name, config)[0].value if config is not None else None
    return AlarmView(
        name=name,
        kind=alarm_kind(name).value,
        severity=severity,
        state=status.state,
        active_since=_time(status.active_since_ms),
        snoozed_until=_time(status.snoozed_until_ms) if status.state is AlarmState.SNOOZED else None,
        value=status.last_value,
        actions=actions_for(status.state) if config is not None else [],
    )


def _rank(state: AlarmState) -> int:
    return RISK_ORDER.index(state)


def _time(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else _at(epoch_ms)


def _at(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
