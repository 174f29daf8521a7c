"""The unit of work every use case runs: load, decide, save with the outbox, publish; again on a conflict.

A record (a motor's state, the fleet's model health) and the MQTT publish of its alarm events cannot be
written in one transaction, so the order of effects is what makes retries safe:

1. load the record (or take the copy this execution environment kept of what it last wrote: no read);
2. decide (pure: the detector, the model-health assessment);
3. save the decided record *with its new events appended to an outbox inside it*, conditional on the
   version loaded: a racing writer makes us load and decide again, never overwrite;
4. publish the outbox in order, then save the record without the published events.

If the invocation dies between 3 and 4, its retry finds the input already applied and publishes the outbox
left behind (a decision that saves nothing still publishes what it loaded). Events have deterministic ids,
so a consumer that sees one twice can tell (the alert function is idempotent on them).

A kept copy may be stale (another environment wrote since). That is safe: a save from it is conditional on its
version, so a stale copy only costs a conflict, whose answer carries what the rival stored; and a decision to save
nothing, which no write would check, is taken again on a fresh read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.errors import ConflictPersisted, VersionConflict
from motor_maintenance.ports import EventPublisher, StateStore
from motor_maintenance.state import MotorState

MAX_SAVE_ATTEMPTS = 5


class Outboxed(Protocol):
    """A stored record with an optimistic-locking version and an outbox of events not yet published."""

    @property
    def version(self) -> int: ...

    @property
    def outbox(self) -> tuple[AlarmEvent, ...]: ...

    def with_outbox(self, outbox: tuple[AlarmEvent, ...]) -> Self: ...


R = TypeVar("R", bound=Outboxed)
T = TypeVar("T")


class Record(Protocol[R]):
    """Where one record is kept: read it, or write it if its stored version is still the one expected."""

    key: str
    """What the record is, for errors: a motor id, or the model's health."""

    def load(self) -> R | None:
        """The record as stored (a read)."""
        ...

    def remembered(self) -> R | None:
        """The record as this execution environment last wrote it, if it keeps one (no read); it may be stale."""
        ...

    def save(self, record: R, expected_version: int) -> R:
        """The record as stored (version bumped); raises VersionConflict if someone wrote first (with what they
        wrote as its `current`, when the store could tell)."""
        ...


@dataclass(frozen=True, slots=True)
class Decided(Generic[R, T]):
    """What deciding on the loaded record came to."""

    outcome: T
    """Whatever the use case reports (a detector's decision, say)."""
    save: R | None = None
    """The record to store, with `events` appended to its outbox; None: store nothing."""
    events: tuple[AlarmEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """A unit of work carried out."""

    outcome: T
    published: tuple[AlarmEvent, ...]
    """Events delivered: the new ones and any an earlier invocation left in the outbox."""
    conflicts: int
    """Version conflicts met (each one a load and a decision again)."""


def run(record: Record[R], decide: Callable[[R | None], Decided[R, T]], publisher: EventPublisher) -> Done[T]:
    """Load, decide, save with the outbox, publish; on a version conflict, again from what the rival left.

    Raises ConflictPersisted after MAX_SAVE_ATTEMPTS conflicts in a row, and whatever the record or the
    publisher raise (the invocation then fails and is retried, the outbox intact).
    """
    loaded = record.remembered()
    fresh = loaded is None
    if fresh:
        loaded = record.load()
    conflicts = 0
    while True:
        decided = decide(loaded)
        if decided.save is None and not fresh:  # no write will check a remembered copy: decide on a read
            loaded, fresh = record.load(), True
            continue
        current = loaded
        if decided.save is not None:
            pending = decided.save.with_outbox(decided.save.outbox + decided.events)
            try:
                current = record.save(pending, expected_version=loaded.version if loaded is not None else 0)
            except VersionConflict as conflict:
                conflicts += 1
                if conflicts >= MAX_SAVE_ATTEMPTS:
                    message = f"{record.key} changed on every one of {MAX_SAVE_ATTEMPTS} attempts"
                    raise ConflictPersisted(message) from conflict
                rival = conflict.current
                loaded, fresh = (rival if rival is not None else record.load()), True
                continue
        return Done(decided.outcome, flush(current, record, publisher), conflicts)


def flush(current: R | None, record: Record[R], publisher: EventPublisher) -> tuple[AlarmEvent, ...]:
    """Publish the record's outbox in order, then drop those events from the stored record.

    A publish failure propagates with the outbox intact. Dropping the events is retried on what a rival
    wrote meanwhile; if it keeps failing, the events stay and are published again (same ids) later.
    """
    if current is None or not current.outbox:
        return ()
    events = current.outbox
    for event in events:
        publisher.publish(event)
    done = {event.event_id for event in events}
    stored: R | None = current
    for _ in range(MAX_SAVE_ATTEMPTS):
        if stored is None:
            break
        remaining = tuple(event for event in stored.outbox if event.event_id not in done)
        if len(remaining) == len(stored.outbox):
            break
        try:
            record.save(stored.with_outbox(remaining), expected_version=stored.version)
            break
        except VersionConflict as conflict:
            rival = conflict.current
            stored = rival if rival is not None else record.load()
    return events


class MotorRecord:
    """One motor's state in a StateStore, as a record of the unit of work."""

    def __init__(
        self,
        store: StateStore,
        motor_id: str,
        *,
        loaded: tuple[MotorState | None] | None = None,
        remembered: bool = False,
    ) -> None:
        """`loaded`: the state already at hand (from a batch's `load_many`, or with `remembered` the store's kept
        copy), in a 1-tuple: the first `load` (or `remembered`) returns it."""
        self.key = f"state of {motor_id}"
        self._store, self._motor_id = store, motor_id
        self._loaded, self._remembered = loaded, remembered

    def load(self) -> MotorState | None:
        if self._loaded is not None and not self._remembered:
            (state,), self._loaded = self._loaded, None
            return state
        self._loaded = None  # a kept copy not taken is not a read
        return self._store.load(self._motor_id)

    def remembered(self) -> MotorState | None:
        if self._loaded is None:
            return self._store.remembered(self._motor_id)
        if not self._remembered:
            return None  # a state read already: `load` returns it
        (state,), self._loaded = self._loaded, None
        return state

    def save(self, record: MotorState, expected_version: int) -> MotorState:
        return self._store.save(record, expected_version=expected_version)
