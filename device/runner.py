"""The fleet runner: steps the simulated fleet in real time and hands every reading to a sink.

The same loop runs against AWS IoT Core, the local stack and stdout: a tick every `interval_s` wall
seconds, each advancing the physics `interval_s * speedup` simulated seconds, until the count, a
stop, or forever. Operator actions that arrive meanwhile (`service_complete`) are applied between ticks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from device.mqtt import DeliveryCounts
from device.physics import FailureMode, Fleet, FleetConfig
from device.sinks import RecordingSink, Sink
from motor_maintenance.alarms import ActionName, OperatorAction
from motor_maintenance.config import DetectorConfig
from motor_maintenance.topics import DEFAULT_NAMESPACE

log = logging.getLogger("device.simulate")

MAX_CLOCK_SKEW_S: float = DetectorConfig.model_fields["max_clock_skew_s"].default


@dataclass(frozen=True, slots=True)
class FailureSpec:
    """A failure to inject: `motor_id` fails by `mode` after about `after_s` seconds of running."""

    motor_id: str
    mode: FailureMode
    after_s: float


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What to simulate and how fast: the command line's fleet options, checked."""

    motor_ids: tuple[str, ...]
    readings: int | None
    """Readings per motor; None: until stopped."""
    interval_s: float = 5.0
    """Wall-clock seconds between ticks."""
    speedup: float = 1.0
    """Simulated seconds per wall second."""
    seed: int = 1
    first_reading_ms: int | None = None
    """--start: the first reading's timestamp; None: see `start_ms`."""
    failures: tuple[FailureSpec, ...] = ()
    wear_scale: float = 1.0
    random_failures_per_year: float = 0.3
    progress_every_s: float = 10.0
    """Seconds between progress lines (0: none)."""
    drain_timeout_s: float = 10.0
    """Seconds the sink gets to deliver what is queued and in flight at the end."""
    record: Path | None = None
    """Also write every reading with its ground truth here (JSON lines)."""
    topic_namespace: str = DEFAULT_NAMESPACE
    """The stack's first topic level: the recorded readings' topics."""

    @property
    def step_s(self) -> float:
        return self.interval_s * self.speedup

    def start_ms(self, now_ms: int) -> int:
        """Simulated time of the start: --start names the first reading; else none is stamped after it is sent."""
        if self.first_reading_ms is not None:
            return explicit_start_ms(self.first_reading_ms, self.interval_s, self.speedup)
        return default_start_ms(now_ms, self.readings, self.interval_s, self.speedup)


def explicit_start_ms(first_reading_ms: int, interval_s: float, speedup: float) -> int:
    """Simulated time of the start for --start, which names the first reading's timestamp."""
    return first_reading_ms - round(interval_s * speedup * 1000)


def default_start_ms(now_ms: int, readings: int | None, interval_s: float, speedup: float) -> int:
    """Simulated time of the start, so that no reading is stamped after the moment it is sent.

    Reading k (1, 2, ...) is sent k-1 intervals after the start and stamped k simulated steps after
    it. With the number of readings known, the last one is stamped when it is sent (and all earlier
    ones before theirs, since simulated time runs at least as fast as real time); otherwise the first
    one is.
    """
    step_s = interval_s * speedup
    n = readings or 1
    return now_ms + round(((n - 1) * interval_s - n * step_s) * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ServiceDesk:
    """Operator actions arriving on the client's thread, applied to the fleet between steps."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[OperatorAction] = queue.SimpleQueue()
        self._applied: set[str] = set()

    def receive(self, action: OperatorAction) -> None:
        self._inbox.put(action)

    def apply(self, fleet: Fleet) -> None:
        while True:
            try:
                action = self._inbox.get_nowait()
            except queue.Empty:
                return
            # QoS 1 may deliver an action twice: apply each action id once.
            if action.action is not ActionName.SERVICE_COMPLETE or action.action_id in self._applied:
                continue
            self._applied.add(action.action_id)
            fleet.service(action.motor_id)
            log.info("%s: service complete (action %s by %s)", action.motor_id, action.action_id, action.operator)


class FleetRunner:
    """Runs the fleet into a sink until the count, the duration or `stop`; `desk` takes the operator's actions."""

    def __init__(self, settings: RunSettings, *, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.desk = ServiceDesk()

    def run(self, sink: Sink) -> tuple[DeliveryCounts, int]:
        """Step the fleet from now (connecting may have taken a while); the final counts and the ticks made."""
        settings = self.settings
        start_ms = settings.start_ms(round(time.time() * 1000))
        log.info(
            "simulating %d motors from %s, %.3g simulated s per reading every %.3g s",
            len(settings.motor_ids),
            iso(start_ms),
            settings.step_s,
            settings.interval_s,
        )
        if settings.record is None:
            return self._run(sink, start_ms)
        with settings.record.open("w", encoding="utf-8") as out:
            return self._run(RecordingSink(sink, out, settings.topic_namespace), start_ms)

    def _fleet(self, start_ms: int) -> Fleet:
        settings = self.settings
        fleet = Fleet(
            FleetConfig(
                motors=len(settings.motor_ids),
                motor_ids=settings.motor_ids,
                seed=settings.seed,
                start_ms=start_ms,
                wear_scale=settings.wear_scale,
                random_failures_per_year=settings.random_failures_per_year,
            )
        )
        for spec in settings.failures:
            fleet.inject(spec.motor_id, spec.mode, after_s=spec.after_s)
        return fleet

    def _run(self, sink: Sink, start_ms: int) -> tuple[DeliveryCounts, int]:
        settings, stop = self.settings, self.stop
        fleet = self._fleet(start_ms)
        progress_every_s = settings.progress_every_s
        warned_future = False
        ticks = 0
        next_tick = time.monotonic()
        next_progress = next_tick + progress_every_s
        while not stop.is_set():
            self.desk.apply(fleet)
            samples = fleet.step(settings.step_s)
            ticks += 1
            ahead_s = fleet.time_ms / 1000 - time.time()
            if ahead_s > 1.0 and not warned_future:
                warned_future = True
                self._warn_ahead(ahead_s)
            for sample in samples:
                sink.submit(sample)
            if settings.readings is not None and ticks >= settings.readings:
                break
            next_tick += settings.interval_s
            while not stop.is_set():
                now = time.monotonic()
                if progress_every_s and now >= next_progress:
                    next_progress = now + progress_every_s
                    log.info("progress: %s; %s", sink.counts().describe(), sink.status())
                if now >= next_tick:
                    break
                stop.wait(min(next_tick, next_progress) - now if progress_every_s else next_tick - now)
        # Finished or stopped, readings already made are delivered if the connection allows it in time.
        return sink.close(timeout_s=settings.drain_timeout_s, deliver_queued=True), ticks

    def _warn_ahead(self, ahead_s: float) -> None:
        fix = (
            "give an earlier --start or a lower --speedup"
            if self.settings.first_reading_ms is not None or self.settings.readings is not None
            else "give --count or --duration (the clock then starts in the past), or a lower --speedup"
        )
        log.warning(
            "readings are stamped ahead of the clock (%.0f s and growing); the cloud refuses readings more than "
            "%.0f s in the future: %s",
            ahead_s,
            MAX_CLOCK_SKEW_S,
            fix,
        )


def summary_line(counts: DeliveryCounts, motors: int, ticks: int, status: str | None = None) -> str:
    """The run's last line on stderr: every reading's fate."""
    return f"summary: {counts.describe()}; {motors} motors, {ticks} readings each" + (f"; {status}" if status else "")
