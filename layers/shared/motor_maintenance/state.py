"""The records kept between invocations: each motor's state, the fleet's model health, and their serialisation."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from motor_maintenance.alarms import AlarmEvent, AlarmState
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

        Positional, in the order of the fields: each reading copies every alarm, and keyword arguments cost three
        times as much (tests/unit/test_state_copy.py checks that every field survives).
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


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """A failure an operator reported (report_failure): when it happened, how, and the action that said so."""

    at_ms: int
    mode: str
    action_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "mode": self.mode, "action_id": self.action_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FailureRecord | None:
        if not data:
            return None
        return cls(at_ms=int(data["at_ms"]), mode=str(data["mode"]), action_id=str(data["action_id"]))


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
    outbox: tuple[AlarmEvent, ...] = ()
    """Alarm events saved with the state but not yet confirmed published (the unit of work's outbox)."""
    last_failure: FailureRecord | None = None
    """The most recent failure reported (by when it happened); None: none reported, or an item older than the field."""
    probability_model_version: str | None = None
    """The version of the model that gave `failure_probability` (None: not said, or an item older than the field)."""

    def copy(self) -> MotorState:
        """An independent copy: the detector changes its copy, never the state it was given.

        Positional, as AlarmStatus.copy is, and for the same reason.
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
            {name: status.copy() for name, status in self.alarms.items()},
            self.stats,
            self.event_seq,
            self.recent_action_ids,
            self.outbox,
            self.last_failure,
            self.probability_model_version,
        )

    def with_outbox(self, outbox: tuple[AlarmEvent, ...]) -> MotorState:
        return replace(self, outbox=outbox)

    def alarm_states(self) -> dict[str, str]:
        return {name: status.state.value for name, status in self.alarms.items()}

    def to_dict(self) -> dict[str, Any]:
        data = {
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
            "outbox": [event.model_dump(mode="json") for event in self.outbox],
        }
        if self.last_failure is not None:  # most motors never report one: their items stay as they were
            data["last_failure"] = self.last_failure.to_dict()
        if self.probability_model_version is not None:
            data["probability_model_version"] = self.probability_model_version
        return data

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
            outbox=tuple(AlarmEvent.model_validate(item) for item in data.get("outbox", ())),
            last_failure=FailureRecord.from_dict(data.get("last_failure")),
            probability_model_version=data.get("probability_model_version"),
        )


@dataclass(frozen=True, slots=True)
class ModelHealth:
    """The shared record: is the model available, since when, and which outage this is."""

    available: bool = True
    outage: int = 0
    """Outages so far: the current one while unavailable."""
    since_ms: int | None = None
    """When the current status began."""
    last_error: str = ""
    event_seq: int = 0
    version: int = 0
    outbox: tuple[AlarmEvent, ...] = ()
    """Health events saved with the record and not yet confirmed published."""

    def with_outbox(self, outbox: tuple[AlarmEvent, ...]) -> ModelHealth:
        return replace(self, outbox=outbox)

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "outage": self.outage,
            "since_ms": self.since_ms,
            "last_error": self.last_error,
            "event_seq": self.event_seq,
            "outbox": [event.model_dump(mode="json") for event in self.outbox],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], version: int) -> ModelHealth:
        return cls(
            available=bool(data.get("available", True)),
            outage=int(data.get("outage", 0)),
            since_ms=data.get("since_ms"),
            last_error=str(data.get("last_error", "")),
            event_seq=int(data.get("event_seq", 0)),
            version=version,
            outbox=tuple(AlarmEvent.model_validate(item) for item in data.get("outbox", ())),
        )
