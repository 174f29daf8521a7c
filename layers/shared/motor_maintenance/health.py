"""Fleet-wide health of the failure-prediction model: one `model_unavailable` alert per outage, one recovery.

The endpoint serves every motor, so its health is one alarm for the fleet, not one per motor (a
per-motor count would send 10,000 e-mails when the endpoint dies under a 10,000-motor fleet). It
lives in one shared record, and only transitions are written to it:

- each execution environment counts failed predictions, and answers, in a row (in memory: a shared
  counter would be one write per prediction on one key, a hot partition for a large fleet);
- at `unavailable_after` failures in a row, if the record says "available", the environment writes
  outage n+1 with the `raised` event in the record's outbox, conditional on the version it read.
  Of several environments that decide at once, one write wins; the others get a version conflict,
  read the record again and find nothing left to do. At `recover_after` answers in a row the same
  happens the other way round with a `cleared` event;
- the winner publishes the outbox like any alarm event (motors/all.motors/alarms -> AlertFunction,
  deduplicated by event id), then empties it. If it dies or the publish fails in between, whoever
  next reads the record publishes the outbox again: the event id is the same, so one alert.

An environment reads the record when it starts and every `REFRESH_S` after, so a transition
decided on a stale copy only costs a conflict and a re-read, never a wrong alert.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from motor_maintenance.alarms import ALL_MOTORS, NOTE_MAX, AlarmEvent, AlarmKind, AlarmState, Transition, event_id
from motor_maintenance.config import ModelHealthRule
from motor_maintenance.errors import PublishFailed, StoreUnavailable, VersionConflict
from motor_maintenance.service import EventPublisher
from motor_maintenance.telemetry import to_epoch_ms

MODEL_ALARM = "model_unavailable"
REFRESH_S = 60.0
MAX_SAVE_ATTEMPTS = 5
ERROR_KEPT = 300  # characters of the last error carried into the alert (an event's note holds NOTE_MAX)


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
    outbox: tuple[dict[str, Any], ...] = ()
    """Health events saved with the record and not yet confirmed published."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "outage": self.outage,
            "since_ms": self.since_ms,
            "last_error": self.last_error,
            "event_seq": self.event_seq,
            "outbox": list(self.outbox),
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
            outbox=tuple(data.get("outbox", ())),
        )


class HealthStore(Protocol):
    def load_health(self) -> ModelHealth | None:
        """The shared record, or None before the first transition."""
        ...

    def save_health(self, health: ModelHealth, expected_version: int) -> ModelHealth:
        """Write it if the stored version is still `expected_version` (0: none yet); else VersionConflict."""
        ...


def assess(
    health: ModelHealth, *, failures: int, answers: int, error: str, now_ms: int, rule: ModelHealthRule
) -> tuple[ModelHealth, AlarmEvent] | None:
    """Pure: the record after a transition and the event announcing it, or None when nothing changes."""
    if health.available and failures >= rule.unavailable_after:
        new = replace(
            health,
            available=False,
            outage=health.outage + 1,
            since_ms=now_ms,
            last_error=_printable(error)[:ERROR_KEPT],
            event_seq=health.event_seq + 1,
        )
        return new, _event(new, Transition.RAISED, now_ms=now_ms, outage_started_ms=now_ms, streak=failures, rule=rule)
    if not health.available and answers >= rule.recover_after:
        started_ms = health.since_ms if health.since_ms is not None else now_ms
        new = replace(health, available=True, since_ms=now_ms, event_seq=health.event_seq + 1)
        return new, _event(
            new, Transition.CLEARED, now_ms=now_ms, outage_started_ms=started_ms, streak=answers, rule=rule
        )
    return None


def _event(
    health: ModelHealth,
    transition: Transition,
    *,
    now_ms: int,
    outage_started_ms: int,
    streak: int,
    rule: ModelHealthRule,
) -> AlarmEvent:
    raised = transition is Transition.RAISED
    return AlarmEvent(
        # The outage's number and start make the id: the raise and the clear of one outage share a
        # cause, and no later outage can reuse it (not even after the record was deleted).
        event_id=event_id(ALL_MOTORS, MODEL_ALARM, transition, f"m:{health.outage}:{outage_started_ms}"),
        sequence=health.event_seq,
        motor_id=ALL_MOTORS,
        alarm=MODEL_ALARM,
        kind=AlarmKind.HEALTH,
        transition=transition,
        from_state=AlarmState.NORMAL if raised else AlarmState.ACTIVE,
        to_state=AlarmState.ACTIVE if raised else AlarmState.NORMAL,
        severity=rule.severity,
        at=now_ms,
        cause="model",
        value=float(streak),
        rule={"unavailable_after": rule.unavailable_after, "recover_after": rule.recover_after},
        active_since=outage_started_ms,
        note=_printable(health.last_error)[:NOTE_MAX] or None,
        advice=rule.advice if raised else "",
    )


def _printable(error: str) -> str:
    """An error's text as an alarm event takes it: a lone surrogate escaped (the event refuses one)."""
    return error.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What one observation did: the health events it published, or why the record could not be kept."""

    published: tuple[AlarmEvent, ...] = ()
    error: str | None = None


class ModelHealthMonitor:
    """One per execution environment: counts answers and failures in a row, writes only transitions."""

    def __init__(self, store: HealthStore, publisher: EventPublisher, refresh_s: float = REFRESH_S) -> None:
        self._store = store
        self._publisher = publisher
        self._refresh_ms = refresh_s * 1000
        self._failures = 0
        self._answers = 0
        self._view: ModelHealth | None = None
        self._read_at_ms = 0

    def observe(
        self, *, probability: float | None, error: str | None, now: datetime, rule: ModelHealthRule
    ) -> HealthReport:
        """Count one model call (an answer, or a failure with its reason); nothing when none was made.

        Never raises: the reading is already stored and announced, so a health record that cannot be
        read or written is reported and tried again with the next prediction.
        """
        if probability is None and error is None:
            return HealthReport()
        if error is None:
            self._failures, self._answers = 0, self._answers + 1
        else:
            self._failures, self._answers = self._failures + 1, 0
        try:
            return HealthReport(published=self._reconcile(error or "", to_epoch_ms(now), rule))
        except (StoreUnavailable, PublishFailed) as exc:
            return HealthReport(error=str(exc))

    def _reconcile(self, error: str, now_ms: int, rule: ModelHealthRule) -> tuple[AlarmEvent, ...]:
        published: list[AlarmEvent] = []
        for _ in range(MAX_SAVE_ATTEMPTS):
            view = self._current(now_ms)
            if view.outbox:  # a transition someone saved and did not confirm published
                published += self._flush(view)
                view = self._current(now_ms)
            decided = assess(
                view, failures=self._failures, answers=self._answers, error=error, now_ms=now_ms, rule=rule
            )
            if decided is None:
                break
            health, event = decided
            try:
                saved = self._store.save_health(
                    replace(health, outbox=(*health.outbox, event.model_dump(mode="json"))),
                    expected_version=view.version,
                )
            except VersionConflict:
                self._view = None  # another environment wrote first: read what it decided
                continue
            self._view = saved
            published += self._flush(saved)
            break
        return tuple(published)

    def _current(self, now_ms: int) -> ModelHealth:
        if self._view is None or now_ms - self._read_at_ms >= self._refresh_ms:
            self._view = self._store.load_health() or ModelHealth()
            self._read_at_ms = now_ms
        return self._view

    def _flush(self, health: ModelHealth) -> list[AlarmEvent]:
        events = [AlarmEvent.model_validate(item) for item in health.outbox]
        for event in events:
            self._publisher.publish(event)
        try:
            self._view = self._store.save_health(replace(health, outbox=()), expected_version=health.version)
        except VersionConflict:
            self._view = None
        return events
