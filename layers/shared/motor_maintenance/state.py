"""Per-motor state kept between readings (one DynamoDB item per motor), and its serialisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from motor_maintenance.alarms import AlarmState
from motor_maintenance.features import RunningStats
from motor_maintenance.prediction import DRIVERS_MAX, Driver

RECENT_ACTIONS_KEPT = 50


@dataclass(slots=True)
class AlarmStatus:
    """One alarm of one motor: its lifecycle state and what its rule has seen so far."""

    state: AlarmState = AlarmState.NORMAL
    held: bool = False
    """The rule's condition holds (after its duration or debounce, until its clear threshold)."""
    pending_since_ms: int | None = None
    """Condition rules: when the raise threshold was first crossed in the current excursion."""
    consecutive: int = 0
    """Predictive rule: predictions at or above the raise threshold in a row."""
    active_since_ms: int | None = None
    snoozed_until_ms: int | None = None
    last_value: float | None = None
    last_seen_ms: int | None = None
    """Condition rules: when a reading last carried the watched signal."""

    def copy(self) -> AlarmStatus:
        """An independent copy (every field is immutable).

        Several per reading, so positional: a third of the cost of `dataclasses.replace`; keep the order of
        the fields (tests/unit/test_state_copy.py checks each one survives).
        """
        return AlarmStatus(
            self.state,
            self.held,
            self.pending_since_ms,
            self.consecutive,
            self.active_since_ms,
            self.snoozed_until_ms,
            self.last_value,
            self.last_seen_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "held": self.held,
            "pending_since_ms": self.pending_since_ms,
            "consecutive": self.consecutive,
            "active_since_ms": self.active_since_ms,
            "snoozed_until_ms": self.snoozed_until_ms,
            "last_value": self.last_value,
            "last_seen_ms": self.last_seen_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlarmStatus:
        return cls(
            state=AlarmState(data.get("state", AlarmState.NORMAL)),
            held=bool(data.get("held", False)),
            pending_since_ms=data.get("pending_since_ms"),
            consecutive=int(data.get("consecutive", 0)),
            active_since_ms=data.get("active_since_ms"),
            snoozed_until_ms=data.get("snoozed_until_ms"),
            last_value=data.get("last_value"),
            last_seen_ms=data.get("last_seen_ms"),
        )


@dataclass(slots=True)
class MotorState:
    """Everything the detector remembers about one motor."""

    motor_id: str
    motor_type: str | None = None
    version: int = 0
    """Optimistic-locking version of the stored item; the store bumps it on every write."""
    last_ts_ms: int | None = None
    last_seq: int | None = None
    last_running: bool = False
    last_heard_ms: int | None = None
    """When the last applied reading arrived (IoT Core's receive time, else when it was processed): the
    offline alarm measures silence from here, not from the device's own clock."""
    next_check_ms: int | None = None
    """When the timer function must look at this motor (silence limit, end of a snooze); None: nothing to wait for.
    Never later than the earliest such deadline; may be earlier (the timer then only moves it on)."""
    run_hours: float = 0.0
    last_service_ms: int | None = None
    failure_probability: float | None = None
    probability_ts_ms: int | None = None
    probability_drivers: tuple[Driver, ...] = ()
    """The drivers of `failure_probability` (at most DRIVERS_MAX, so the item stays small)."""
    last_readings: dict[str, float] = field(default_factory=dict)
    alarms: dict[str, AlarmStatus] = field(default_factory=dict)
    stats: RunningStats = field(default_factory=RunningStats)
    event_seq: int = 0
    """Number of alarm events this motor has produced: each event carries its own as `sequence`."""
    recent_action_ids: tuple[str, ...] = ()
    outbox: tuple[dict[str, Any], ...] = ()
    """Alarm events saved with the state but not yet confirmed published (transactional outbox)."""

    def copy(self, *, statuses: bool = True) -> MotorState:
        """An independent copy: the detector never mutates the state it was given.

        `statuses=False`: the copy's `alarms` is a dict of its own holding the same AlarmStatus objects, for a
        caller that replaces each status by a copy before changing it. Once per reading, so spelled out and
        positional: `dataclasses.replace` costs several times as much. Keep the order of the fields
        (tests/unit/test_state_copy.py checks each one survives).
        """
        return MotorState(
            self.motor_id,
            self.motor_type,
            self.version,
            self.last_ts_ms,
            self.last_seq,
            self.last_running,
            self.last_heard_ms,
            self.next_check_ms,
            self.run_hours,
            self.last_service_ms,
            self.failure_probability,
            self.probability_ts_ms,
            self.probability_drivers,
            dict(self.last_readings),
            {name: status.copy() for name, status in self.alarms.items()} if statuses else dict(self.alarms),
            self.stats,
            self.event_seq,
            self.recent_action_ids,
            self.outbox,
        )

    def alarm_states(self) -> dict[str, str]:
        return {name: status.state.value for name, status in self.alarms.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "motor_id": self.motor_id,
            "motor_type": self.motor_type,
            "version": self.version,
            "last_ts_ms": self.last_ts_ms,
            "last_seq": self.last_seq,
            "last_running": self.last_running,
            "last_heard_ms": self.last_heard_ms,
            "next_check_ms": self.next_check_ms,
            "run_hours": self.run_hours,
            "last_service_ms": self.last_service_ms,
            "failure_probability": self.failure_probability,
            "probability_ts_ms": self.probability_ts_ms,
            "probability_drivers": [driver.model_dump() for driver in self.probability_drivers],
            "last_readings": self.last_readings,
            "alarms": {name: status.to_dict() for name, status in self.alarms.items()},
            "stats": self.stats.to_dict(),
            "event_seq": self.event_seq,
            "recent_action_ids": list(self.recent_action_ids),
            "outbox": list(self.outbox),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MotorState:
        return cls(
            motor_id=data["motor_id"],
            motor_type=data.get("motor_type"),
            version=int(data.get("version", 0)),
            last_ts_ms=data.get("last_ts_ms"),
            last_seq=data.get("last_seq"),
            last_running=bool(data.get("last_running", False)),
            last_heard_ms=data.get("last_heard_ms"),
            next_check_ms=data.get("next_check_ms"),
            run_hours=float(data.get("run_hours", 0.0)),
            last_service_ms=data.get("last_service_ms"),
            failure_probability=data.get("failure_probability"),
            probability_ts_ms=data.get("probability_ts_ms"),
            probability_drivers=tuple(
                Driver.model_validate(item) for item in data.get("probability_drivers", ())[:DRIVERS_MAX]
            ),
            last_readings={k: float(v) for k, v in data.get("last_readings", {}).items()},
            alarms={name: AlarmStatus.from_dict(value) for name, value in data.get("alarms", {}).items()},
            stats=RunningStats.from_dict(data.get("stats")),
            event_seq=int(data.get("event_seq", 0)),
            recent_action_ids=tuple(data.get("recent_action_ids", ())),
            outbox=tuple(data.get("outbox", ())),
        )
