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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from motor_maintenance.alarms import AlarmEvent, OperatorAction
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import (
    Decision,
    Outcome,
    ReadingInput,
    check_timers,
    new_state,
    screen,
    screen_in_order,
    step,
)
from motor_maintenance.errors import ConflictPersisted, PredictionUnavailable, VersionConflict
from motor_maintenance.features import RunningStats, compute_features
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


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One valid reading of a batch, with when IoT Core received it (the rule's timestamp())."""

    reading: Telemetry
    received_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What happened to a batch: a Result per item, or its motor's failure (none of that motor's readings applied)."""

    results: tuple[Result | None, ...]
    """In the items' order; None for an item whose motor failed."""
    failures: dict[str, str]
    """Motor id -> why its readings were not applied (they are to be delivered again)."""
    model_calls: int = 0
    rows_scored: int = 0
    prediction_error: str | None = None
    """Why the batch's model call failed (its readings were then applied without a probability)."""
    probability: float | None = None
    """One probability the model gave (None: no call, or it failed): for the model-health monitor."""


@dataclass(slots=True)
class _Plan:
    """One motor's readings of a batch, screened and featurised against its stored state, before the model call."""

    state: MotorState | None
    items: list[BatchItem]
    refusals: list[tuple[Outcome, str] | None]
    features: dict[int, list[float]]
    stats: dict[int, RunningStats]
    to_score: list[int]
    """Positions of the readings the model is asked about: applied and running."""


_T = TypeVar("_T")
_R = TypeVar("_R")
MapMotors = Callable[[Callable[[_T], _R], Sequence[_T]], list[_R]]
"""Runs a function over the batch's motors (a thread pool's map, say); each motor's work is independent."""


def _in_turn(function: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    return [function(item) for item in items]


def process_batch(
    items: Sequence[BatchItem],
    *,
    store: BatchStateStore,
    predictor: Predictor | None,
    publisher: EventPublisher,
    config: DetectorConfig,
    now: datetime,
    map_motors: MapMotors[Any, Any] = _in_turn,
    may_start: Callable[[], bool] = lambda: True,
) -> BatchResult:
    """Apply a batch of readings of many motors: their states read together, one model call, one save per motor.

    The batch's states are read with one `load_many` (a reload after a conflict reads that motor alone).
    Each motor's readings are applied in the order given, exactly as `process_reading` would apply them
    one after the other (the same features, predictions and detector steps), and saved together with
    their events in one conditional write; the events are then published. A motor is all or nothing:
    if anything fails for it (its state unread, a store or publish error, or `may_start` saying there
    is no time left to begin the batch or the motor), none of its readings is reported done, so a
    redelivery finds them unapplied or, if only the publish failed, applied with their events still in
    the outbox. Other motors are not affected.
    """
    positions: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        positions.setdefault(item.reading.motor_id, []).append(index)
    motors = list(positions)
    failures: dict[str, str] = {}
    loaded = _load_all(store, motors, may_start)

    def plan(motor_id: str) -> _Plan | BaseException:
        if motor_id not in loaded:
            return LookupError(f"the store's load_many returned nothing for {motor_id}")
        state = loaded[motor_id]
        if isinstance(state, BaseException):
            return state
        try:
            return _plan(state, [items[i] for i in positions[motor_id]], now, config)
        except Exception as exc:  # this motor fails; the others go on
            return exc

    # Screening and features are CPU alone, once the states are in: no thread would overlap anything.
    plans = {motor_id: plan(motor_id) for motor_id in motors}
    planned = {motor_id: p for motor_id, p in plans.items() if isinstance(p, _Plan)}
    wanted = [(motor_id, k) for motor_id, p in planned.items() for k in p.to_score]
    answers, prediction_error = _predict_rows(predictor, [planned[m].features[k] for m, k in wanted])
    predicted: dict[str, dict[int, tuple[Prediction | None, str | None]]] = {motor_id: {} for motor_id in motors}
    for (motor_id, k), answer in zip(wanted, _padded(answers, len(wanted)), strict=True):
        predicted[motor_id][k] = (answer, prediction_error)
    calls = 1 if wanted and predictor is not None else 0

    def apply(motor_id: str) -> list[Result] | BaseException:
        first = plans[motor_id]
        if isinstance(first, BaseException):
            return first
        if not may_start():
            return TimeoutError("no time left in the invocation to apply this motor's readings")
        try:
            return _apply_motor(
                first,
                predicted[motor_id],
                store=store,
                predictor=predictor,
                publisher=publisher,
                config=config,
                now=now,
            )
        except Exception as exc:
            return exc

    results: list[Result | None] = [None] * len(items)
    for motor_id, outcome in zip(motors, map_motors(apply, motors), strict=True):
        if isinstance(outcome, BaseException):
            failures[motor_id] = f"{type(outcome).__name__}: {outcome}"
            continue
        for index, result in zip(positions[motor_id], outcome, strict=True):
            results[index] = result
    probability = next((a.probability for a in answers or [] if a is not None), None)
    return BatchResult(tuple(results), failures, calls, len(wanted) if answers else 0, prediction_error, probability)


def _load_all(
    store: BatchStateStore, motors: list[str], may_start: Callable[[], bool]
) -> Mapping[str, MotorState | BaseException | None]:
    """Every motor's stored state, or why it is not there; a batch that cannot begin reads nothing."""
    if not may_start():
        late = TimeoutError("no time left in the invocation to begin this motor")
        return dict.fromkeys(motors, late)
    try:
        return store.load_many(motors)
    except Exception as exc:  # the contract is per motor; a store that raises fails them all, not the batch
        return dict.fromkeys(motors, exc)


def _plan(state: MotorState | None, items: list[BatchItem], now: datetime, config: DetectorConfig) -> _Plan:
    refusals = screen_in_order(state, [item.reading for item in items], now, config)
    features: dict[int, list[float]] = {}
    stats_after: dict[int, RunningStats] = {}
    to_score: list[int] = []
    stats = state.stats if state else None
    for k, (item, refusal) in enumerate(zip(items, refusals, strict=True)):
        if refusal is not None:
            continue
        features[k], stats = compute_features(item.reading, stats)
        stats_after[k] = stats
        if item.reading.running:
            to_score.append(k)
    return _Plan(state, items, refusals, features, stats_after, to_score)


def _padded(answers: list[Prediction] | None, count: int) -> list[Prediction | None]:
    """The answers, or None for each row when there are none."""
    return list(answers) if answers is not None else [None] * count


def _predict_rows(predictor: Predictor | None, rows: list[list[float]]) -> tuple[list[Prediction] | None, str | None]:
    """The model's answers for every row, in one call, or why there are none."""
    if not rows or predictor is None:
        return None, None
    try:
        return predictor.predict(rows), None
    except PredictionUnavailable as exc:
        return None, str(exc)


def _apply_motor(
    plan: _Plan,
    predicted: dict[int, tuple[Prediction | None, str | None]],
    *,
    store: StateStore,
    predictor: Predictor | None,
    publisher: EventPublisher,
    config: DetectorConfig,
    now: datetime,
) -> list[Result]:
    """Step the detector through one motor's readings, save once, publish; on a conflict, again from the new state."""
    motor_id = plan.items[0].reading.motor_id
    conflicts = 0
    for attempt in range(MAX_SAVE_ATTEMPTS):
        if attempt:
            plan = _plan(store.load(motor_id), plan.items, now, config)
            missing = [k for k in plan.to_score if k not in predicted]
            # A rival moved the state meanwhile: answers already given are reused, as process_reading does.
            answers, error = _predict_rows(predictor, [plan.features[k] for k in missing])
            for k, answer in zip(missing, _padded(answers, len(missing)), strict=True):
                predicted[k] = (answer, error)
        current = plan.state
        events: list[AlarmEvent] = []
        decided: list[tuple[Decision, Prediction | None, str | None]] = []
        for k, item in enumerate(plan.items):
            refusal = plan.refusals[k]
            if refusal is not None:
                decided.append((Decision(current or new_state(motor_id), (), *refusal), None, None))
                continue
            prediction, error = predicted.get(k, (None, None))
            probability, drivers = (prediction.probability, prediction.drivers) if prediction else (None, ())
            reading_input = ReadingInput(item.reading, probability, drivers, item.received_at_ms, plan.stats[k])
            decision = step(current, reading_input, now, config)
            if decision.outcome is Outcome.APPLIED:
                current, events = decision.state, events + list(decision.events)
            decided.append((decision, prediction, error))
        if current is plan.state or current is None:  # nothing applied
            published = _flush_outbox(plan.state, store, publisher)
        else:
            try:
                saved = _save_with_outbox(
                    current, events, store, expected_version=plan.state.version if plan.state else 0
                )
            except VersionConflict:
                conflicts += 1
                continue
            published = _flush_outbox(saved, store, publisher)
        last = len(decided) - 1
        return [
            _result(
                motor_id,
                decision,
                published=published if k == last else (),
                prediction=prediction,
                prediction_error=error,
                conflicts=conflicts,
            )
            for k, (decision, prediction, error) in enumerate(decided)
        ]
    raise ConflictPersisted(f"state of {motor_id} changed on every one of {MAX_SAVE_ATTEMPTS} attempts")


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
