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
- the winner publishes the outbox like any alarm event ({namespace}/all.motors/alarms -> AlertFunction,
  deduplicated by event id), then empties it. If it dies or the publish fails in between, whoever
  next reads the record publishes the outbox again: the event id is the same, so one alert.

An environment reads the record when it starts and every `REFRESH_S` after, so a transition
decided on a stale copy only costs a conflict and a re-read, never a wrong alert.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from motor_maintenance import unit_of_work
from motor_maintenance.alarms import ALL_MOTORS, NOTE_MAX, AlarmEvent, AlarmKind, AlarmState, Transition, event_id
from motor_maintenance.config import ModelHealthRule
from motor_maintenance.errors import ConflictPersisted, PublishFailed, StoreUnavailable, VersionConflict
from motor_maintenance.ports import EventPublisher, HealthStore
from motor_maintenance.state import ModelHealth
from motor_maintenance.telemetry import to_epoch_ms
from motor_maintenance.unit_of_work import Decided

MODEL_ALARM = "model_unavailable"
REFRESH_S = 60.0
ERROR_KEPT = 300  # characters of the last error carried into the alert (an event's note holds NOTE_MAX)


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
        self._record = _SharedRecord(store, refresh_ms=refresh_s * 1000)
        self._publisher = publisher
        self._failures = 0
        self._answers = 0

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
        now_ms = to_epoch_ms(now)

        def decide(health: ModelHealth | None) -> Decided[ModelHealth, None]:
            decided = assess(
                health or ModelHealth(),
                failures=self._failures,
                answers=self._answers,
                error=error or "",
                now_ms=now_ms,
                rule=rule,
            )
            if decided is None:  # no transition; an outbox someone saved and did not confirm is still published
                return Decided(None)
            new, event = decided
            return Decided(None, save=new, events=(event,))

        self._record.now_ms = now_ms
        try:
            done = unit_of_work.run(self._record, decide, self._publisher)
        except (StoreUnavailable, PublishFailed, ConflictPersisted) as exc:
            return HealthReport(error=str(exc))
        return HealthReport(published=done.published)


class _SharedRecord:
    """The fleet's health record as the unit of work reads and writes it.

    A read is this environment's copy while it is younger than the refresh interval: most observations
    change nothing and read nothing. A write keeps what it wrote as the copy; a version conflict drops the
    copy, so the next read is the store's (what the environment that wrote first decided).
    """

    key = "the model's health record"

    def __init__(self, store: HealthStore, *, refresh_ms: float) -> None:
        self._store, self._refresh_ms = store, refresh_ms
        self._copy: ModelHealth | None = None
        self._read_at_ms = 0
        self.now_ms = 0
        """The time of the observation under way."""

    def load(self) -> ModelHealth:
        if self._copy is None or self.now_ms - self._read_at_ms >= self._refresh_ms:
            self._copy = self._store.load_health() or ModelHealth()
            self._read_at_ms = self.now_ms
        return self._copy

    def remembered(self) -> ModelHealth | None:
        """None: `load` already answers from this environment's copy while it is young enough."""
        return None

    def save(self, record: ModelHealth, expected_version: int) -> ModelHealth:
        try:
            self._copy = self._store.save_health(record, expected_version=expected_version)
        except VersionConflict:
            self._copy = None
            raise
        return self._copy
