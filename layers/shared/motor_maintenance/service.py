"""Use cases: a reading or an operator action in, state saved and alarm events out.

The ports below are what the use cases need from the outside world; `motor_adapters` implements
them with boto3, tests and the local stack with whatever they like. The order of effects is what
makes retries safe:

1. load the state; a reading that is not newer than the last one applied changes nothing;
2. features, prediction, detector (pure);
3. save the new state *with its new alarm events in an outbox*, conditional on the version we
   loaded: a racing invocation makes us reload and re-run the detector, never overwrite;
4. publish the outbox, then save the state without it.

If the invocation dies between 3 and 4, the retry finds the reading already applied and publishes
the outbox it left behind. Events have deterministic ids, so a consumer that sees one twice can
tell (the alert function is idempotent on them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from motor_maintenance.alarms import AlarmEvent, OperatorAction
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import Decision, Outcome, ReadingInput, check_timers, screen, step
from motor_maintenance.errors import ConflictPersisted, PredictionUnavailable, VersionConflict
from motor_maintenance.features import compute_features
from motor_maintenance.prediction import Driver, Prediction
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry

MAX_SAVE_ATTEMPTS = 5


class StateStore(Protocol):
    def load(self, motor_id: str) -> MotorState | None:
        """The motor's state, or None for a motor never seen."""
        ...

    def save(self, state: MotorState, expected_version: int) -> MotorState:
        """Write the state if the stored version is still `expected_version` (0: not stored yet).

        Returns the state as stored (version bumped); raises VersionConflict otherwise.
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


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one input, for the handler's logs, metrics and return value."""

    motor_id: str
    outcome: Outcome
    reason: str = ""
    events: tuple[AlarmEvent, ...] = ()
    published: tuple[AlarmEvent, ...] = ()
    """Events delivered in this invocation: new ones and any left over by an earlier one."""
    failure_probability: float | None = None
    drivers: tuple[Driver, ...] = ()
    """What drove `failure_probability` up, largest first."""
    drivers_dropped: str | None = None
    """Why the model's drivers were dropped (malformed); the probability was kept."""
    prediction_error: str | None = None
    conflicts: int = 0
    alarm_states: dict[str, str] = field(default_factory=dict)


def process_reading(
    reading: Telemetry,
    *,
    store: StateStore,
    predictor: Predictor | None,
    publisher: EventPublisher,
    config: DetectorConfig,
    now: datetime,
    received_at_ms: int | None = None,
) -> Result:
    """Apply one reading: predict (while running), detect, save, publish.

    `received_at_ms` is when IoT Core received it (the rule's timestamp()): the offline alarm counts
    silence from there. None means now.
    """
    conflicts = 0
    predicted: tuple[Prediction | None, str | None] | None = None
    for _ in range(MAX_SAVE_ATTEMPTS):
        state = store.load(reading.motor_id)
        refused = screen(state, reading, now, config)
        if refused is not None:  # duplicate, stale or from the future: no features, no model call
            published = _flush_outbox(state, store, publisher)
            return _result(reading.motor_id, refused, published=published, conflicts=conflicts)

        features, stats = compute_features(reading, state.stats if state else None)
        if predicted is None:
            # One model call per invocation, so the endpoint's share of the invocation's time is
            # bounded (docs/operations.md, "Timeout budget"). A conflict retry reuses the answer, or
            # the failure, even if a rival's older reading moved the running averages meanwhile:
            # one reading's weight in them is a fraction of a percent.
            predicted = _predict(predictor, features, reading.running)
        prediction, prediction_error = predicted

        probability, drivers = (prediction.probability, prediction.drivers) if prediction else (None, ())
        decision = step(state, ReadingInput(reading, probability, drivers, received_at_ms, stats), now, config)
        try:
            saved = _save_with_outbox(
                decision.state, decision.events, store, expected_version=state.version if state else 0
            )
        except VersionConflict:
            conflicts += 1
            continue
        published = _flush_outbox(saved, store, publisher)
        return _result(
            reading.motor_id,
            decision,
            published=published,
            prediction=prediction,
            prediction_error=prediction_error,
            conflicts=conflicts,
        )
    raise ConflictPersisted(f"state of {reading.motor_id} changed on every one of {MAX_SAVE_ATTEMPTS} attempts")


def _predict(predictor: Predictor | None, features: list[float], running: bool) -> tuple[Prediction | None, str | None]:
    """The model's prediction, or why there is none. A stopped motor is not sent to the model."""
    if not running or predictor is None:
        return None, None
    try:
        return predictor.predict([features])[0], None
    except PredictionUnavailable as exc:
        return None, str(exc)


def process_action(
    action: OperatorAction,
    *,
    store: StateStore,
    publisher: EventPublisher,
    config: DetectorConfig,
    now: datetime,
) -> Result:
    """Apply one operator action: detect, save, publish."""

    def decide(state: MotorState | None) -> tuple[Decision, bool]:
        decision = step(state, action, now, config)
        # An ignored action is saved too: its id is remembered (a redelivery is then a duplicate)
        # and a snooze that ran out meanwhile is announced.
        return decision, decision.outcome is Outcome.APPLIED or (
            decision.outcome is Outcome.IGNORED and state is not None
        )

    return _decide_save_publish(action.motor_id, decide, store, publisher)


def process_timers(
    motor_id: str,
    *,
    store: StateStore,
    publisher: EventPublisher,
    config: DetectorConfig,
    now: datetime,
) -> Result:
    """What time alone does to one motor (snoozes ending, silence turning offline): detect, save, publish."""

    def decide(state: MotorState | None) -> tuple[Decision, bool] | Result:
        if state is None:
            return Result(motor_id, Outcome.IGNORED, "no state stored for this motor")
        decision = check_timers(state, now, config)
        return decision, decision.outcome is Outcome.APPLIED

    return _decide_save_publish(motor_id, decide, store, publisher)


def _decide_save_publish(
    motor_id: str,
    decide: Callable[[MotorState | None], tuple[Decision, bool] | Result],
    store: StateStore,
    publisher: EventPublisher,
) -> Result:
    """Load, decide, save the decision with its events in the outbox if it says so, publish them.

    A racing writer (VersionConflict) makes it load and decide again, on what the rival left.
    """
    conflicts = 0
    for _ in range(MAX_SAVE_ATTEMPTS):
        state = store.load(motor_id)
        decided = decide(state)
        if isinstance(decided, Result):
            return decided
        decision, persist = decided
        if not persist:
            published = _flush_outbox(state, store, publisher)
            return _result(motor_id, decision, published=published, conflicts=conflicts)
        try:
            saved = _save_with_outbox(
                decision.state, decision.events, store, expected_version=state.version if state else 0
            )
        except VersionConflict:
            conflicts += 1
            continue
        published = _flush_outbox(saved, store, publisher)
        return _result(motor_id, decision, published=published, conflicts=conflicts)
    raise ConflictPersisted(f"state of {motor_id} changed on every one of {MAX_SAVE_ATTEMPTS} attempts")


def _save_with_outbox(
    state: MotorState, events: Sequence[AlarmEvent], store: StateStore, expected_version: int
) -> MotorState:
    pending = tuple(event.model_dump(mode="json") for event in events)
    return store.save(replace(state, outbox=state.outbox + pending), expected_version=expected_version)


def _flush_outbox(state: MotorState | None, store: StateStore, publisher: EventPublisher) -> tuple[AlarmEvent, ...]:
    """Publish pending events in order, then drop them from the stored state.

    A publish failure propagates (the invocation fails and is retried with the outbox intact).
    """
    if state is None or not state.outbox:
        return ()
    events = tuple(AlarmEvent.model_validate(item) for item in state.outbox)
    for event in events:
        publisher.publish(event)
    done = {event.event_id for event in events}
    current: MotorState | None = state
    for _ in range(MAX_SAVE_ATTEMPTS):
        if current is None:
            break
        remaining = tuple(item for item in current.outbox if item.get("event_id") not in done)
        if remaining == current.outbox:
            break
        try:
            store.save(replace(current, outbox=remaining), expected_version=current.version)
            break
        except VersionConflict:
            current = store.load(state.motor_id)
    return events


def _result(
    motor_id: str,
    decision: Decision,
    *,
    published: tuple[AlarmEvent, ...] = (),
    prediction: Prediction | None = None,
    prediction_error: str | None = None,
    conflicts: int = 0,
) -> Result:
    return Result(
        motor_id=motor_id,
        outcome=decision.outcome,
        reason=decision.reason,
        events=decision.events,
        published=published,
        failure_probability=prediction.probability if prediction else None,
        drivers=prediction.drivers if prediction else (),
        drivers_dropped=prediction.drivers_dropped if prediction else None,
        prediction_error=prediction_error,
        conflicts=conflicts,
        alarm_states=decision.state.alarm_states(),
    )
