"""A motor's recent history for the console's charts: what each saved state adds to it, and the window asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import to_epoch_ms

HISTORY_HOURS_MAX = 24
"""How long the history store keeps an entry (its TTL), so the longest window the console may ask for."""
POINTS_MAX = 1000
"""Points one history answer carries at most: a chart is a few hundred pixels wide."""
INTERVAL_S_DEFAULT = 300
"""A motor's readings recorded at most once per this many seconds of reading time (HISTORY_INTERVAL_S):
288 points over 24 hours, one history write for 5 readings at 1 reading a minute."""


@dataclass(frozen=True, slots=True)
class Point:
    """One reading as a chart needs it: when, running or not, the model's probability for it, the signals."""

    at_ms: int
    running: bool
    failure_probability: float | None
    readings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at_ms": self.at_ms,
            "running": self.running,
            "failure_probability": self.failure_probability,
            "readings": self.readings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Point:
        probability = data.get("failure_probability")
        return cls(
            at_ms=int(data["at_ms"]),
            running=bool(data.get("running", False)),
            failure_probability=None if probability is None else float(probability),
            readings={str(name): float(value) for name, value in (data.get("readings") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """What one saved state adds to the motor's history: a new reading, new alarm transitions, or both."""

    motor_id: str
    at_ms: int
    version: int
    """The state's stored version: with `at_ms`, the entry's key (two saves never share a version)."""
    point: Point | None
    transitions: tuple[AlarmEvent, ...]


@dataclass(frozen=True, slots=True)
class Seen:
    """What the history already holds of a motor: its last reading's (ts, seq) and the events announced."""

    reading: tuple[int | None, int | None]
    event_ids: frozenset[str]

    @classmethod
    def of(cls, state: MotorState) -> Seen:
        return cls((state.last_ts_ms, state.last_seq), frozenset(event.event_id for event in state.outbox))


def entry_for(saved: MotorState, before: Seen | None, interval_ms: int = INTERVAL_S_DEFAULT * 1000) -> Entry | None:
    """The history entry a saved state makes, given what was loaded before it; None if it adds nothing.

    The history is sampled by reading time: a new reading is recorded only if it is the first in its
    `interval_ms` bucket (its ts falls in a later bucket than the previous reading's, `before.reading`), or
    if the save brings alarm transitions, which are never sampled away (the entry then carries that
    reading too). Decided from the states alone, so any environment, on any redelivery, decides alike: a
    point missed (a conflict retried elsewhere) only thins a chart, a point recorded twice has the same key.
    `interval_ms` 0 records every reading. A state saved only to empty its outbox (the unit of work's
    second save) adds nothing. `before` None (the saving process never saw the motor) records the state's
    reading and its whole outbox: the reader drops the repeats by event id and by reading time.
    """
    seen_events = before.event_ids if before is not None else frozenset()
    transitions = tuple(event for event in saved.outbox if event.event_id not in seen_events)
    point = None
    if saved.last_ts_ms is not None and _records(saved, before, interval_ms, bool(transitions)):
        scored = saved.probability_ts_ms == saved.last_ts_ms
        point = Point(
            at_ms=saved.last_ts_ms,
            running=saved.last_running,
            failure_probability=saved.failure_probability if scored else None,
            readings=dict(saved.last_readings),
        )
    if point is None and not transitions:
        return None
    at_ms = point.at_ms if point is not None else max(_epoch_ms(event) for event in transitions)
    return Entry(saved.motor_id, at_ms, saved.version, point, transitions)


def _records(saved: MotorState, before: Seen | None, interval_ms: int, transitions: bool) -> bool:
    """Whether the saved state's reading is recorded: new, and the first of its bucket or with transitions."""
    if before is None:
        return True
    previous_ts, _ = before.reading
    if (saved.last_ts_ms, saved.last_seq) == before.reading:
        return False  # no new reading (an action, a timer's check, the outbox emptied)
    if transitions or previous_ts is None or interval_ms <= 0 or saved.last_ts_ms is None:
        return True
    return saved.last_ts_ms // interval_ms > previous_ts // interval_ms


def window(entries: list[Entry], from_ms: int, to_ms: int) -> tuple[list[Point], list[AlarmEvent], bool]:
    """The points and transitions in [from_ms, to_ms], each once and in time order; whether points were thinned."""
    points: dict[int, Point] = {}
    events: dict[str, AlarmEvent] = {}
    for entry in entries:
        if entry.point is not None and from_ms <= entry.point.at_ms <= to_ms:
            points[entry.point.at_ms] = entry.point
        for event in entry.transitions:
            if from_ms <= _epoch_ms(event) <= to_ms:
                events.setdefault(event.event_id, event)
    ordered = [points[at] for at in sorted(points)]
    thinned = thin(ordered, POINTS_MAX)
    transitions = sorted(events.values(), key=lambda event: (_epoch_ms(event), event.sequence))
    return thinned, transitions, len(thinned) < len(ordered)


def thin(points: list[Point], limit: int) -> list[Point]:
    """At most `limit` points, evenly spaced by position, the newest always kept."""
    if len(points) <= limit:
        return points
    step = len(points) / limit
    picked = [points[len(points) - 1 - int(i * step)] for i in range(limit)]
    return picked[::-1]


def _epoch_ms(event: AlarmEvent) -> int:
    return to_epoch_ms(event.at)
