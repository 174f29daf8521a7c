"""What the operator watches in the local demo: each motor, the alarms, the alerts, the accounting, the summary.

`Watch` listens to the simulator (every reading it sends, with the ground truth behind it) and to the
local stack (every message the rules route, every function outcome, every batch of batched ingestion,
every alert the operator's queue receives) and keeps the figures the live view shows and the end-of-run
summary reports. It is the only place that sees both sides, so it is where "was this failure forewarned?"
can be answered.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from device.physics import Sample
from local.kinesis import BatchOutcome
from local.lambdas import Outcome
from local.observe import Alert
from local.router import Routed
from model.forewarning import Episode, Verdict, judge
from motor_maintenance.alarms import AlarmEvent, AlarmKind, Transition
from motor_maintenance.telemetry import to_epoch_ms

ENDS = frozenset({Transition.CLEARED, Transition.RESET, Transition.SNOOZED, Transition.DISABLED})
"""Transitions that take a raised alarm down: its episode ends there (model/forewarning.py)."""
PROCESSED = frozenset({"applied", "duplicate", "stale", "ignored"})
REJECTED = frozenset({"rejected", "future"})
WARNING_KINDS = frozenset({AlarmKind.PREDICTIVE, AlarmKind.CONDITION})


@dataclass
class MotorView:
    """One row of the live view."""

    motor_id: str
    readings: dict[str, float] = field(default_factory=dict)
    running: bool = False
    failed_mode: str | None = None
    sim_ms: int = 0
    failure_probability: float | None = None
    alarm_states: dict[str, str] = field(default_factory=dict)
    run_hours: float | None = None
    sent: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    motor_id: str
    mode: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Raise:
    motor_id: str
    alarm: str
    kind: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Summary:
    """How the run went, judged against the simulator's ground truth by training's rule (model/forewarning.py)."""

    failures: list[tuple[Failure, float | None, str | None]]
    """Each failure with the lead time in hours of its earliest warning (None: not forewarned) and that alarm."""
    false_alarms: list[Raise]
    """The raises of predictive and condition alarm episodes that forewarned no failure."""
    open_warnings: list[Raise]
    """Raises of episodes still up, or cleared less than the window before the run ended: too early to judge."""
    schedule_alarms: int
    counts: dict[str, int]

    @property
    def predictable(self) -> list[tuple[Failure, float | None, str | None]]:
        return [f for f in self.failures if f[0].mode != "random"]


class Watch:
    """Thread-safe: the simulator, the MQTT client and the function threads all report here."""

    def __init__(self, motor_ids: tuple[str, ...], *, alerts_kept: int = 200) -> None:
        self.motor_ids = motor_ids
        self.motors = {motor_id: MotorView(motor_id) for motor_id in motor_ids}
        self.alerts: deque[tuple[Alert, AlarmEvent | None]] = deque(maxlen=alerts_kept)
        self.counts: Counter[str] = Counter()
        self.failures: list[Failure] = []
        self.raises: list[Raise] = []
        self.ends: list[Raise] = []
        """Transitions that took an alarm down (ENDS), as Raise records."""
        self.events: dict[str, AlarmEvent] = {}
        self.sent_at: dict[tuple[str, int], float] = {}
        """Wall time each reading was handed to the device's connection, by (motor_id, seq)."""
        self.latencies_ms: list[float] = []
        self.started_s = time.monotonic()
        self.sim_ms = 0
        self._lock = threading.Lock()

    # -- the simulator's side ---------------------------------------------------------------------

    def on_sample(self, sample: Sample) -> None:
        """A reading the device is about to publish, with the ground truth behind it."""
        reading, truth = sample.reading, sample.truth
        ts_ms = to_epoch_ms(reading.ts)
        with self._lock:
            view = self.motors[reading.motor_id]
            mode = truth.failed_mode.value if truth.failed_mode is not None else None
            if mode is not None and view.failed_mode is None:
                self.failures.append(Failure(reading.motor_id, mode, ts_ms))
            view.failed_mode = mode
            view.running = bool(reading.running)
            view.readings = {
                name: value
                for name in ("fluid_temp_c", "vibration_mm_s", "winding_temp_c", "current_a")
                if (value := getattr(reading, name, None)) is not None
            }
            view.sim_ms = ts_ms
            view.sent += 1
            self.sim_ms = max(self.sim_ms, ts_ms)
            self.sent_at[(reading.motor_id, reading.seq)] = time.monotonic()

    # -- the stack's side -------------------------------------------------------------------------

    def on_stack(self, kind: str, item: Any) -> None:
        if kind == "routed":
            self._routed(item)
        elif kind == "outcome":
            self._outcome(item)
        elif kind == "batch":
            self._batch(item)
        elif kind == "alert":
            self._alert(item)

    def _routed(self, routed: Routed) -> None:
        with self._lock:
            if routed.error is not None:
                self.counts[f"rule_errors.{routed.rule}"] += 1
                if routed.parked and routed.topic.endswith("/telemetry"):
                    self.counts["readings.dead_lettered"] += 1
                return
            if routed.event is not None and routed.topic.endswith("/alarms"):
                try:
                    event = AlarmEvent.model_validate(routed.event)
                except ValueError:
                    return
                new = event.event_id not in self.events
                self.events[event.event_id] = event
                self.counts["alarm_events"] += 1
                record = Raise(event.motor_id, event.alarm, event.kind.value, to_epoch_ms(event.at))
                if new and event.transition is Transition.RAISED:
                    self.raises.append(record)
                elif new and event.transition in ENDS:
                    self.ends.append(record)

    def _outcome(self, outcome: Outcome) -> None:
        result = outcome.result if isinstance(outcome.result, dict) else {}
        with self._lock:
            self.counts[f"{outcome.function}.invocations"] += 1
            if outcome.function != "InferenceFunction":
                return
            if outcome.error is not None:
                self.counts["readings.dead_lettered" if outcome.dead_lettered else "readings.lost"] += 1
                return
            self._reading(result)

    def _batch(self, outcome: BatchOutcome) -> None:
        """A batch of batched ingestion: its settled readings count as direct results do, its discarded records as
        dead-lettered (their batch info is in the on-failure queue)."""
        with self._lock:
            self.counts[f"{outcome.function}.invocations"] += not outcome.discarded  # a discard invokes nothing
            if outcome.function != "InferenceFunction":
                return
            for reading in outcome.readings:
                self._reading(reading)
            if outcome.discarded:
                self.counts["readings.dead_lettered" if outcome.dead_lettered else "readings.lost"] += outcome.discarded

    def _reading(self, result: dict[str, Any]) -> None:
        """One reading's result (the direct invocation's, or an item of a batch's `readings`); under the lock."""
        status = str(result.get("status"))
        if status in PROCESSED:
            self.counts["readings.processed"] += 1
            self.counts[f"readings.{status}"] += 1
        elif status in REJECTED:
            self.counts["readings.rejected"] += 1
        else:
            self.counts[f"readings.{status}"] += 1
        view = self.motors.get(str(result.get("motor_id")))
        if view is not None:
            if result.get("failure_probability") is not None:
                view.failure_probability = float(result["failure_probability"])
            elif not view.running:
                view.failure_probability = None
            if result.get("alarm_states"):
                view.alarm_states = dict(result["alarm_states"])

    def _alert(self, alert: Alert) -> None:
        with self._lock:
            event = self.events.get(alert.attributes.get("event_id", ""))
            self.alerts.append((alert, event))
            self.counts["alerts"] += 1
            if event is not None and event.reading_seq is not None:
                sent = self.sent_at.get((event.motor_id, event.reading_seq))
                if sent is not None:
                    self.latencies_ms.append((alert.received_s - sent) * 1000)

    def update_state(self, items: list[dict[str, Any]]) -> None:
        """Run hours and alarm states as the state table holds them (the cloud's view of each motor)."""
        with self._lock:
            for item in items:
                view = self.motors.get(item.get("motor_id", {}).get("S", ""))
                if view is None:
                    continue
                if "run_hours" in item:
                    view.run_hours = float(item["run_hours"]["N"])
                states = item.get("alarm_states", {}).get("M")
                if states:
                    view.alarm_states = {name: value["S"] for name, value in states.items()}

    # -- reading it -------------------------------------------------------------------------------

    def snapshot(self) -> tuple[list[MotorView], list[tuple[Alert, AlarmEvent | None]], dict[str, int], int]:
        with self._lock:
            motors = [
                MotorView(**{**view.__dict__, "readings": dict(view.readings), "alarm_states": dict(view.alarm_states)})
                for view in self.motors.values()
            ]
            return motors, list(self.alerts), dict(self.counts), self.sim_ms

    def summary(self, sent: int) -> Summary:
        """Failures forewarned (and how early), false alarms, against the ground truth.

        Each predictive or condition alarm's episodes (raise to clear) are judged against its motor's failures
        by the rule training's evaluation uses (model/forewarning.py): forewarned if an alarm was up in the
        24 h before the failure; an episode that forewarned nothing is a false alarm once the run has gone on
        24 h past its clear, and open before that.
        """
        with self._lock:
            kinds = {k.value for k in WARNING_KINDS}
            raises = sorted((r for r in self.raises if r.kind in kinds), key=lambda r: r.at_ms)
            ends = sorted((r for r in self.ends if r.kind in kinds), key=lambda r: r.at_ms)
            failures = sorted(self.failures, key=lambda f: f.at_ms)
            end_ms = self.sim_ms
            counts = dict(self.counts)
            schedule = sum(1 for r in self.raises if r.kind == AlarmKind.SCHEDULE.value)
        judged: list[tuple[Failure, float | None, str | None]] = []
        false_alarms: list[Raise] = []
        open_warnings: list[Raise] = []
        for motor_id in sorted({f.motor_id for f in failures} | {r.motor_id for r in raises}):
            motor = judge_motor(
                [f for f in failures if f.motor_id == motor_id],
                [r for r in raises if r.motor_id == motor_id],
                [e for e in ends if e.motor_id == motor_id],
                end_ms,
            )
            judged += motor[0]
            false_alarms += motor[1]
            open_warnings += motor[2]
        judged.sort(key=lambda row: row[0].at_ms)
        counts["readings.sent"] = sent
        by_time = sorted(false_alarms, key=lambda r: r.at_ms), sorted(open_warnings, key=lambda r: r.at_ms)
        return Summary(judged, *by_time, schedule, counts)


def judge_motor(
    failures: list[Failure], raises: list[Raise], ends: list[Raise], end_ms: int
) -> tuple[list[tuple[Failure, float | None, str | None]], list[Raise], list[Raise]]:
    """One motor's failures with their lead time and forewarning alarm, its false alarms and its open ones.

    `raises` and `ends` in time order; an episode runs from a raise to the next end of the same alarm.
    """
    raised_and_ended = [
        (raised, next((e.at_ms for e in ends if e.alarm == raised.alarm and e.at_ms >= raised.at_ms), None))
        for raised in raises
    ]
    spans = [Episode(raised.at_ms, ended_ms) for raised, ended_ms in raised_and_ended]
    failures_ms = [f.at_ms for f in failures]
    verdict = judge(spans, failures_ms, end_ms=end_ms)
    judged = [
        (failure, lead_h, None if index is None else raises[index].alarm)
        for failure, index, lead_h in zip(failures, verdict.earliest, verdict.lead_h(spans, failures_ms), strict=True)
    ]
    false_alarms = [r for r, v in zip(raises, verdict.verdicts, strict=True) if v is Verdict.FALSE]
    open_warnings = [r for r, v in zip(raises, verdict.verdicts, strict=True) if v is Verdict.OPEN]
    return judged, false_alarms, open_warnings


def when(ms: int) -> str:
    """A simulated time as the demo shows it (UTC, minutes); '-' before the first reading."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M") if ms else "-"
