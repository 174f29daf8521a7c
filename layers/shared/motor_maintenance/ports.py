"""The ports: what the use cases need from the outside world, implemented by `motor_adapters` with boto3,
and by the tests and the local stack with whatever they like."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.history import Entry
from motor_maintenance.prediction import Prediction
from motor_maintenance.state import ModelHealth, MotorState


class StateStore(Protocol):
    def load(self, motor_id: str) -> MotorState | None:
        """The motor's state, or None for a motor never seen."""
        ...

    def save(self, state: MotorState, expected_version: int) -> MotorState:
        """Write the state if the stored version is still `expected_version` (0: not stored yet).

        Returns the state as stored (version bumped); raises VersionConflict otherwise (with the stored state
        as its `current` when the store can tell it without another call).
        """
        ...

    def remembered(self, motor_id: str) -> MotorState | None:
        """The state as this execution environment last saved it, if it keeps one (no I/O; it may be stale).

        Return None to make every unit of work read. What is returned must be the caller's own copy.
        """
        ...


class BatchStateStore(StateStore, Protocol):
    """A StateStore that can also read many motors' states at once: what `process_batch` needs.

    A port of its own rather than a method of every StateStore so that only the function that applies
    batches holds an adapter able to make the batch read (and only its role is granted it).
    """

    def load_many(self, motor_ids: Sequence[str]) -> Mapping[str, MotorState | Exception | None]:
        """Each motor's state as `load` would return it (None: never seen), or why it could not be read.

        One entry per distinct motor id asked for. An error concerns only the motors it is given for:
        the others are read, and their states are as current as `load`'s (strongly consistent).
        """
        ...


class Predictor(Protocol):
    def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        """Probability of failure within 24 h, and its drivers if the model gives them, for each feature row.

        Raises PredictionUnavailable.
        """
        ...


class EventPublisher(Protocol):
    def publish(self, event: AlarmEvent) -> None:
        """Deliver one alarm event; raises PublishFailed."""
        ...


class HealthStore(Protocol):
    def load_health(self) -> ModelHealth | None:
        """The shared record, or None before the first transition."""
        ...

    def save_health(self, health: ModelHealth, expected_version: int) -> ModelHealth:
        """Write it if the stored version is still `expected_version` (0: none yet); else VersionConflict."""
        ...


class FleetReader(Protocol):
    """The console's read side of the motors' state: never written through, so it never takes part in a unit of work."""

    def motors(self) -> Iterator[MotorState]:
        """Every motor's state (eventually consistent: a state a second old is fine for a page)."""
        ...

    def motor(self, motor_id: str) -> MotorState | None:
        """One motor's state, or None for a motor never seen."""
        ...


class HistoryRecorder(Protocol):
    """Where a motor's recent history (motor_maintenance.history) is written, kept a limited time."""

    def record(self, entry: Entry) -> None:
        """Keep one entry; raises StoreUnavailable."""
        ...


class HistoryReader(Protocol):
    """Where the console reads a motor's recent history: a port of its own, so only its role may query it."""

    def entries(self, motor_id: str, from_ms: int, to_ms: int) -> list[Entry]:
        """The motor's entries from `from_ms` to `to_ms`, in time order; raises StoreUnavailable."""
        ...
