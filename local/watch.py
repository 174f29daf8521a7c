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
from motor_maintenance.alarms import AlarmEvent, AlarmKind, Transition
from motor_maintenance.telemetry import to_epoch_ms

FOREWARNING_WINDOW_H = 72.0
"""A raise counts for a failure that comes within this many hours (model/evaluate.py uses the same window)."""
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
    """How the run went, judged against the simulator's ground truth."""

    failures: list[tuple[Failure, float | None, str | None]]
    """Each failure with the lead time in hours of its earliest warning (None: not forewarned) and that alarm."""
    false_alarms: list[Raise]
    open_warnings: list[Raise]
    """Raised too close to the end of the run to know whether a failure follows."""
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
                self.events[event.event_id] = event
                self.counts["alarm_events"] += 1
                if event.transition is Transition.RAISED:
                    at_ms = to_epoch_ms(event.at)
                    self.raises.append(Raise(event.motor_id, event.alarm, event.kind.value, at_ms))

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
        """Failures forewarned (and how early), false alarms, against the ground truth."""
        with self._lock:
            raises = [r for r in self.raises if r.kind in {k.value for k in WARNING_KINDS}]
            end_ms = self.sim_ms
            window_ms = FOREWARNING_WINDOW_H * 3600 * 1000
            judged: list[tuple[Failure, float | None, str | None]] = []
            used: set[int] = set()
            previous: dict[str, int] = {}
            for failure in sorted(self.failures, key=lambda f: f.at_ms):
                since = previous.get(failure.motor_id, 0)
                warnings = [
                    (i, r)
                    for i, r in enumerate(raises)
                    if r.motor_id == failure.motor_id and since <= r.at_ms <= failure.at_ms
                    and failure.at_ms - r.at_ms <= window_ms
                ]  # fmt: skip
                used.update(i for i, _ in warnings)
                previous[failure.motor_id] = failure.at_ms
                if warnings:
                    first = min(warnings, key=lambda w: w[1].at_ms)[1]
                    judged.append((failure, (failure.at_ms - first.at_ms) / 3_600_000, first.alarm))
                else:
                    judged.append((failure, None, None))
            unused = [r for i, r in enumerate(raises) if i not in used]
            open_warnings = [r for r in unused if end_ms - r.at_ms < window_ms]
            false_alarms = [r for r in unused if end_ms - r.at_ms >= window_ms]
            counts = dict(self.counts)
        counts["readings.sent"] = sent
        schedule = sum(1 for r in self.raises if r.kind == AlarmKind.SCHEDULE.value)
        return Summary(judged, false_alarms, open_warnings, schedule, counts)


def when(ms: int) -> str:
    """A simulated time as the demo shows it (UTC, minutes); '-' before the first reading."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M") if ms else "-"
