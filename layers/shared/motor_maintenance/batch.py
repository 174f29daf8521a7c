"""Batched ingestion: many motors' readings applied with one state read, one model call and one save per motor."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from motor_maintenance import unit_of_work
from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import Decision, Outcome, new_state, screen_in_order, step
from motor_maintenance.errors import PredictionUnavailable
from motor_maintenance.features import RunningStats, compute_features
from motor_maintenance.ports import BatchStateStore, EventPublisher, Predictor, StateStore
from motor_maintenance.prediction import Prediction
from motor_maintenance.scoring import not_scored
from motor_maintenance.service import Predicted, Result, reading_input, result
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from motor_maintenance.unit_of_work import Decided, MotorRecord


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
    """Positions of the readings the model is asked about: applied, running, and with something to score."""
    unscored: dict[int, str]
    """Positions of the applied running readings the model is not asked about, and why (scoring.not_scored)."""


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

    The batch's states are the store's kept copies (`remembered`) and, for the other motors, one `load_many` (a
    reload after a conflict, or to confirm a decision to save nothing made on a copy, reads that motor alone).
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
    loaded, remembered = _load_all(store, motors, may_start)
    # Screening and features are CPU alone, once the states are in: no thread would overlap anything.
    plans = {
        motor_id: _first_plan(loaded, motor_id, [items[i] for i in positions[motor_id]], now, config)
        for motor_id in motors
    }
    planned = {motor_id: plan for motor_id, plan in plans.items() if isinstance(plan, _Plan)}
    wanted = [(motor_id, k) for motor_id, plan in planned.items() for k in plan.to_score]
    answers, prediction_error = _predict_rows(predictor, [planned[m].features[k] for m, k in wanted])
    predicted: dict[str, dict[int, Predicted]] = {motor_id: {} for motor_id in motors}
    for (motor_id, k), answer in zip(wanted, _padded(answers, len(wanted)), strict=True):
        predicted[motor_id][k] = Predicted(answer, prediction_error)

    def apply(motor_id: str) -> list[Result] | BaseException:
        plan = plans[motor_id]
        if isinstance(plan, BaseException):
            return plan
        if not may_start():
            return TimeoutError("no time left in the invocation to apply this motor's readings")
        try:
            return _apply_motor(
                plan,
                predicted[motor_id],
                remembered=motor_id in remembered,
                store=store,
                predictor=predictor,
                publisher=publisher,
                config=config,
                now=now,
            )
        except Exception as exc:  # this motor fails; the others go on
            return exc

    results: list[Result | None] = [None] * len(items)
    failures: dict[str, str] = {}
    for motor_id, outcome in zip(motors, map_motors(apply, motors), strict=True):
        if isinstance(outcome, BaseException):
            failures[motor_id] = f"{type(outcome).__name__}: {outcome}"
            continue
        for index, motor_result in zip(positions[motor_id], outcome, strict=True):
            results[index] = motor_result
    calls = 1 if wanted and predictor is not None else 0
    probability = next((a.probability for a in answers or [] if a is not None), None)
    return BatchResult(tuple(results), failures, calls, len(wanted) if answers else 0, prediction_error, probability)


def _load_all(
    store: BatchStateStore, motors: list[str], may_start: Callable[[], bool]
) -> tuple[Mapping[str, MotorState | BaseException | None], set[str]]:
    """Every motor's state, or why it is not there, and the motors whose state is the store's kept copy (not read).

    A batch that cannot begin reads nothing.
    """
    if not may_start():
        late = TimeoutError("no time left in the invocation to begin this motor")
        return dict.fromkeys(motors, late), set()
    kept: dict[str, MotorState | BaseException | None] = {}
    for motor_id in motors:
        state = store.remembered(motor_id)
        if state is not None:
            kept[motor_id] = state
    unread = [motor_id for motor_id in motors if motor_id not in kept]
    try:
        read = store.load_many(unread) if unread else {}
    except Exception as exc:  # the contract is per motor; a store that raises fails them all, not the batch
        read = dict.fromkeys(unread, exc)
    return {**read, **kept}, set(kept)


def _first_plan(
    loaded: Mapping[str, MotorState | BaseException | None],
    motor_id: str,
    items: list[BatchItem],
    now: datetime,
    config: DetectorConfig,
) -> _Plan | BaseException:
    """The motor's plan against the state the batch read, or why there is none (this motor fails, not the batch)."""
    if motor_id not in loaded:
        return LookupError(f"the store's load_many returned nothing for {motor_id}")
    state = loaded[motor_id]
    if isinstance(state, BaseException):
        return state
    try:
        return _plan(state, items, now, config)
    except Exception as exc:
        return exc


def _plan(state: MotorState | None, items: list[BatchItem], now: datetime, config: DetectorConfig) -> _Plan:
    refusals = screen_in_order(state, [item.reading for item in items], now, config)
    features: dict[int, list[float]] = {}
    stats_after: dict[int, RunningStats] = {}
    to_score: list[int] = []
    unscored: dict[int, str] = {}
    stats = state.stats if state else None
    for k, (item, refusal) in enumerate(zip(items, refusals, strict=True)):
        if refusal is not None:
            continue
        features[k], stats = compute_features(item.reading, stats)
        stats_after[k] = stats
        if item.reading.running:
            reason = not_scored(features[k])
            if reason is None:
                to_score.append(k)
            else:
                unscored[k] = reason
    return _Plan(state, items, refusals, features, stats_after, to_score, unscored)


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
    first: _Plan,
    predicted: dict[int, Predicted],
    *,
    remembered: bool,
    store: StateStore,
    predictor: Predictor | None,
    publisher: EventPublisher,
    config: DetectorConfig,
    now: datetime,
) -> list[Result]:
    """Step the detector through one motor's readings, save once, publish: one unit of work."""
    items = first.items
    motor_id = items[0].reading.motor_id

    def decide(state: MotorState | None) -> Decided[MotorState, list[tuple[Decision, Predicted]]]:
        plan = first if state is first.state else _plan(state, items, now, config)
        missing = [k for k in plan.to_score if k not in predicted]
        if missing:  # a rival moved the state meanwhile: answers already given are reused, as process_reading does
            answers, error = _predict_rows(predictor, [plan.features[k] for k in missing])
            for k, answer in zip(missing, _padded(answers, len(missing)), strict=True):
                predicted[k] = Predicted(answer, error)
        current = state
        events: list[AlarmEvent] = []
        decided: list[tuple[Decision, Predicted]] = []
        for k, item in enumerate(items):
            refusal = plan.refusals[k]
            if refusal is not None:
                decided.append((Decision(current or new_state(motor_id), (), *refusal), Predicted()))
                continue
            unscored = plan.unscored.get(k) if predictor is not None else None
            reading_answer = predicted.get(k) or Predicted(not_scored=unscored)
            given = reading_input(item.reading, reading_answer.prediction, item.received_at_ms, plan.stats[k])
            decision = step(current, given, now, config)
            if decision.outcome is Outcome.APPLIED:
                current = decision.state
                events.extend(decision.events)
            decided.append((decision, reading_answer))
        applied = current is not state
        return Decided(decided, save=current if applied else None, events=tuple(events))

    record = MotorRecord(store, motor_id, loaded=(first.state,), remembered=remembered)
    done = unit_of_work.run(record, decide, publisher)
    last = len(done.outcome) - 1
    return [
        result(decision, done.published if k == last else (), done.conflicts, answer)
        for k, (decision, answer) in enumerate(done.outcome)
    ]
