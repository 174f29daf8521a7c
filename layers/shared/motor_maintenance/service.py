"""Use cases: a reading, an operator action or the passing of time in; the motor's state saved, alarm events out.

Each is one unit of work (`unit_of_work.run`): load the motor's state, decide with the detector, save
the new state with its events in the outbox, publish them; again from what a rival left on a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from motor_maintenance import unit_of_work
from motor_maintenance.alarms import AlarmEvent, OperatorAction
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import Decision, Outcome, ReadingInput, check_timers, screen, step
from motor_maintenance.errors import PredictionUnavailable
from motor_maintenance.features import RunningStats, compute_features
from motor_maintenance.ports import EventPublisher, Predictor, StateStore
from motor_maintenance.prediction import Driver, Prediction
from motor_maintenance.scoring import not_scored
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from motor_maintenance.unit_of_work import Decided, MotorRecord


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
    model_version: str | None = None
    """The version of the model that gave `failure_probability`."""
    prediction_error: str | None = None
    not_scored: str | None = None
    """Why the model was not asked about a running motor's reading (scoring.not_scored); its state kept the
    probability it had."""
    conflicts: int = 0
    alarm_states: dict[str, str] = field(default_factory=dict)


class Predicted(NamedTuple):
    """The model's answer for one reading, or why there is none; all None: not asked (stopped, or no model)."""

    prediction: Prediction | None = None
    error: str | None = None
    """Why the model's call failed."""
    not_scored: str | None = None
    """Why the model was not asked about this running motor's reading."""


NOT_ASKED = Predicted()


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
    asked: list[Predicted] = []

    def decide(state: MotorState | None) -> Decided[MotorState, tuple[Decision, Predicted]]:
        refused = screen(state, reading, now, config)
        if refused is not None:  # duplicate, stale or from the future: no features, no model call
            return Decided((refused, Predicted()))
        features, stats = compute_features(reading, state.stats if state else None)
        if not asked:
            # One model call per invocation, so the endpoint's share of the invocation's time is
            # bounded (docs/operations.md, "Timeout budget"). A conflict retry reuses the answer, or
            # the failure, even if a rival's older reading moved the running averages meanwhile:
            # one reading's weight in them is a fraction of a percent.
            asked.append(predict_one(predictor, features, running=reading.running))
        predicted = asked[0]
        decision = step(state, reading_input(reading, predicted.prediction, received_at_ms, stats), now, config)
        return Decided((decision, predicted), save=decision.state, events=decision.events)

    done = unit_of_work.run(MotorRecord(store, reading.motor_id), decide, publisher)
    decision, predicted = done.outcome
    return result(decision, done.published, done.conflicts, predicted)


def reading_input(
    reading: Telemetry, prediction: Prediction | None, received_at_ms: int | None, stats: RunningStats
) -> ReadingInput:
    """What the detector is given for one reading: the reading and, if the model answered, its prediction."""
    if prediction is None:
        return ReadingInput(reading, None, (), received_at_ms, stats)
    return ReadingInput(
        reading, prediction.probability, prediction.drivers, received_at_ms, stats, prediction.model_version
    )


def predict_one(predictor: Predictor | None, features: list[float], *, running: bool) -> Predicted:
    """The model's prediction for one feature row, or why there is none.

    A stopped motor is not sent to the model, nor a row with nothing to judge wear by (`scoring.not_scored`).
    """
    if not running or predictor is None:
        return Predicted()
    reason = not_scored(features)
    if reason is not None:
        return Predicted(not_scored=reason)
    try:
        return Predicted(predictor.predict([features])[0])
    except PredictionUnavailable as exc:
        return Predicted(error=str(exc))


def process_action(
    action: OperatorAction,
    *,
    store: StateStore,
    publisher: EventPublisher,
    config: DetectorConfig,
    now: datetime,
) -> Result:
    """Apply one operator action: detect, save, publish."""

    def decide(state: MotorState | None) -> Decided[MotorState, Decision]:
        decision = step(state, action, now, config)
        # An ignored action is saved too: its id is remembered (a redelivery is then a duplicate)
        # and a snooze that ran out meanwhile is announced.
        saved = decision.outcome is Outcome.APPLIED or (decision.outcome is Outcome.IGNORED and state is not None)
        return Decided(decision, save=decision.state if saved else None, events=decision.events)

    done = unit_of_work.run(MotorRecord(store, action.motor_id), decide, publisher)
    return result(done.outcome, done.published, done.conflicts)


def process_timers(
    motor_id: str,
    *,
    store: StateStore,
    publisher: EventPublisher,
    config: DetectorConfig,
    now: datetime,
) -> Result:
    """What time alone does to one motor (snoozes ending, silence turning offline): detect, save, publish."""

    def decide(state: MotorState | None) -> Decided[MotorState, Decision | None]:
        if state is None:
            return Decided(None)
        decision = check_timers(state, now, config)
        applied = decision.outcome is Outcome.APPLIED
        return Decided(decision, save=decision.state if applied else None, events=decision.events)

    done = unit_of_work.run(MotorRecord(store, motor_id), decide, publisher)
    if done.outcome is None:
        return Result(motor_id, Outcome.IGNORED, "no state stored for this motor")
    return result(done.outcome, done.published, done.conflicts)


def result(
    decision: Decision,
    published: tuple[AlarmEvent, ...],
    conflicts: int,
    predicted: Predicted = NOT_ASKED,
) -> Result:
    """The Result of one input the detector decided on."""
    prediction = predicted.prediction
    return Result(
        motor_id=decision.state.motor_id,
        outcome=decision.outcome,
        reason=decision.reason,
        events=decision.events,
        published=published,
        failure_probability=prediction.probability if prediction else None,
        drivers=prediction.drivers if prediction else (),
        drivers_dropped=prediction.drivers_dropped if prediction else None,
        model_version=prediction.model_version if prediction else None,
        prediction_error=predicted.error,
        not_scored=predicted.not_scored,
        conflicts=conflicts,
        alarm_states=decision.state.alarm_states(),
    )
