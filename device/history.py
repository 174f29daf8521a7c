"""Fast-forward: months of fleet history in seconds, no network, labelled with the ground truth.

The model's training data and the strategy backtest come from here. Each reading carries what a
real fleet only reveals afterwards: how long until that motor's next failure (in calendar and in
operating time) and by which mode.

    python device/history.py --motors 20 --days 365 --jsonl history.jsonl
    python device/history.py --motors 60 --days 365 --archive /tmp/archive   # the archive's layout (docs/archive.md)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script: make `device` and the layer importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device.requirements_check import setup_needed

with setup_needed("device/history.py"):
    import numpy as np
    from numpy.typing import NDArray

with setup_needed("device/history.py"):
    from device.physics import (
        DAY_S,
        NO_FAILURE,
        SIGNAL_COLUMNS,
        WEAR_MODES,
        FailureMode,
        Fleet,
        FleetConfig,
        make_reading,
    )
    from device.plant import PlantConfig
    from motor_maintenance.telemetry import Telemetry

MODES: tuple[FailureMode, ...] = tuple(FailureMode)
DEFAULT_INTERVAL_S = 600.0
"""Ten minutes: the simulated fleet's reporting interval (the features mean the same at any interval)."""

Progress = Callable[[float], None]
"""Called now and then with the fraction of the history generated so far."""


@dataclass(frozen=True)
class History:
    """A fleet's readings as columns: index [t, motor] (and [mode, t, motor] for health)."""

    motor_ids: tuple[str, ...]
    motor_type: str
    ts_ms: NDArray[np.int64]
    running: NDArray[np.bool_]
    failed_mode: NDArray[np.int8]
    """Index into FailureMode of the failure the motor is down with, -1 when it is not down."""
    failure_count: NDArray[np.int32]
    """Failures of the motor so far: a new failure is where it goes up (even straight after a repair)."""
    signals: dict[str, NDArray[np.float32]]
    operating_s: NDArray[np.float64]
    health: NDArray[np.float32]
    time_to_failure_s: NDArray[np.float64]
    """Calendar seconds from the reading to the motor's next failure (0 while down; inf if none)."""
    operating_to_failure_s: NDArray[np.float64]
    """Operating seconds from the reading to the next failure (0 while down; inf if none)."""
    next_failure_mode: NDArray[np.int8]
    """Index into FailureMode of the next failure (or the current one while down); -1 if none."""
    motor_types: tuple[str, ...] | None = None
    """Each motor's type when they differ (a plant of several ratings); None: all are `motor_type`."""
    service_count: NDArray[np.int32] | None = None
    """Services of the motor so far (a maintenance that renewed its parts); None: not recorded."""

    @property
    def steps(self) -> int:
        return len(self.ts_ms)

    @property
    def motor_years(self) -> float:
        span_s = (self.ts_ms[-1] - self.ts_ms[0]) / 1000 if self.steps > 1 else 0.0
        return span_s * len(self.motor_ids) / (365 * DAY_S)

    def failures(self) -> list[tuple[str, int, FailureMode]]:
        """Every failure: (motor id, epoch ms of the first reading that reports it, mode)."""
        found: list[tuple[str, int, FailureMode]] = []
        for column, motor_id in enumerate(self.motor_ids):
            modes = self.failed_mode[:, column]
            onsets = _onsets(self.failure_count[:, column])
            found.extend((motor_id, int(self.ts_ms[t]), MODES[modes[t]]) for t in onsets)
        return sorted(found, key=lambda failure: (failure[1], failure[0]))

    def failures_by_mode(self) -> dict[str, int]:
        """How many failures of each mode, by mode name (modes that never happened left out)."""
        counts = Counter(mode.value for _, _, mode in self.failures())
        return dict(sorted(counts.items()))

    def motor(self, column: int) -> History:
        """Motor `column`'s history alone (its own column 0): small enough to hand to another process."""
        one = slice(column, column + 1)
        return replace(
            self,
            motor_ids=(self.motor_ids[column],),
            running=self.running[:, one].copy(),
            failed_mode=self.failed_mode[:, one].copy(),
            failure_count=self.failure_count[:, one].copy(),
            signals={name: values[:, one].copy() for name, values in self.signals.items()},
            operating_s=self.operating_s[:, one].copy(),
            health=self.health[:, :, one].copy(),
            time_to_failure_s=self.time_to_failure_s[:, one].copy(),
            operating_to_failure_s=self.operating_to_failure_s[:, one].copy(),
            next_failure_mode=self.next_failure_mode[:, one].copy(),
            motor_types=None if self.motor_types is None else (self.motor_types[column],),
            service_count=None if self.service_count is None else self.service_count[:, one].copy(),
        )

    def type_of(self, column: int) -> str:
        """The motor type of motor `column`."""
        return self.motor_type if self.motor_types is None else self.motor_types[column]

    def service_steps(self, column: int) -> NDArray[np.intp]:
        """Steps at which motor `column` was serviced (none if services were not recorded)."""
        if self.service_count is None:
            return np.empty(0, dtype=np.intp)
        return _onsets(self.service_count[:, column])

    def failure_onsets(self, column: int) -> NDArray[np.intp]:
        """Steps at which motor `column`'s failures begin (the first reading that reports each)."""
        return _onsets(self.failure_count[:, column])

    def reading(self, t: int, column: int) -> Telemetry:
        """The reading of motor `column` at step `t`, as the device published it."""
        mode = int(self.failed_mode[t, column])
        return make_reading(
            motor_id=self.motor_ids[column],
            motor_type=self.type_of(column),
            ts_ms=int(self.ts_ms[t]),
            seq=t + 1,
            running=bool(self.running[t, column]),
            failed_mode=MODES[mode] if mode != NO_FAILURE else None,
            signals={name: float(self.signals[name][t, column]) for name in SIGNAL_COLUMNS},
        )

    def readings(self, column: int) -> Iterator[Telemetry]:
        """One motor's readings in time order."""
        for t in range(self.steps):
            yield self.reading(t, column)

    def label(self, t: int, column: int) -> dict[str, Any]:
        """The ground truth behind a reading, JSON-ready."""
        mode = int(self.next_failure_mode[t, column])
        ttf = float(self.time_to_failure_s[t, column])
        otf = float(self.operating_to_failure_s[t, column])
        return {
            "time_to_failure_s": ttf if math.isfinite(ttf) else None,
            "operating_to_failure_s": otf if math.isfinite(otf) else None,
            "failure_mode": MODES[mode].value if mode != NO_FAILURE else None,
            "health": {mode.value: float(self.health[row, t, column]) for row, mode in enumerate(WEAR_MODES)},
        }


def generate(
    config: FleetConfig,
    *,
    duration_s: float,
    interval_s: float = DEFAULT_INTERVAL_S,
    progress: Progress | None = None,
    on_step: Callable[[Fleet, int], None] | None = None,
) -> History:
    """Run `config`'s fleet for `duration_s` simulated seconds, one reading per motor per interval.

    `on_step(fleet, t)` runs after each step: a backtest can service motors there.
    """
    if not interval_s > 0 or not duration_s >= interval_s:
        raise ValueError("need interval_s > 0 and a duration of at least one interval")
    fleet = Fleet(config)
    steps = int(duration_s // interval_s)
    n = config.motors
    ts_ms = np.empty(steps, dtype=np.int64)
    running = np.empty((steps, n), dtype=bool)
    failed = np.empty((steps, n), dtype=np.int8)
    count = np.empty((steps, n), dtype=np.int32)
    operating = np.empty((steps, n), dtype=np.float64)
    health = np.empty((len(WEAR_MODES), steps, n), dtype=np.float32)
    services = np.empty((steps, n), dtype=np.int32)
    signals = {name: np.empty((steps, n), dtype=np.float32) for name in SIGNAL_COLUMNS}
    report_every = max(steps // 20, 1)
    for t in range(steps):
        fleet.advance(interval_s)
        ts_ms[t] = fleet.time_ms
        running[t] = fleet.running
        failed[t] = fleet.failed
        count[t] = fleet.failure_count
        operating[t] = fleet.operating_s
        health[:, t] = fleet.health
        services[t] = fleet.service_count
        for name in SIGNAL_COLUMNS:
            signals[name][t] = fleet.signals[name]
        if on_step is not None:
            on_step(fleet, t)
        if progress is not None and (t + 1) % report_every == 0:
            progress((t + 1) / steps)
    ttf, otf, next_mode = _label(ts_ms, failed, count, operating)
    return History(
        motor_ids=fleet.motor_ids,
        motor_type=config.motor_type,
        ts_ms=ts_ms,
        running=running,
        failed_mode=failed,
        failure_count=count,
        signals=signals,
        operating_s=operating,
        health=health,
        time_to_failure_s=ttf,
        operating_to_failure_s=otf,
        next_failure_mode=next_mode,
        motor_types=None if config.plant is None else fleet.motor_types,
        service_count=services,
    )


def _onsets(failure_count: NDArray[np.int32]) -> NDArray[np.intp]:
    """Steps at which a motor's failure count goes up: where each of its failures begins."""
    return np.flatnonzero(np.diff(failure_count, prepend=0) > 0)


def _label(
    ts_ms: NDArray[np.int64],
    failed: NDArray[np.int8],
    count: NDArray[np.int32],
    operating: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int8]]:
    """Backward pass: for each reading, the next failure onset of its motor."""
    steps, n = failed.shape
    ttf = np.full((steps, n), np.inf)
    otf = np.full((steps, n), np.inf)
    next_mode = np.full((steps, n), NO_FAILURE, dtype=np.int8)
    index = np.arange(steps)
    for column in range(n):
        down = failed[:, column] != NO_FAILURE
        onsets = _onsets(count[:, column])
        if len(onsets) == 0:
            continue
        # The first onset at or after each reading (a reading while down belongs to its failure).
        nxt = np.searchsorted(onsets, index, side="left")
        has = nxt < len(onsets)
        target = onsets[np.minimum(nxt, len(onsets) - 1)]
        ttf[has, column] = (ts_ms[target[has]] - ts_ms[index[has]]) / 1000
        otf[has, column] = operating[target[has], column] - operating[index[has], column]
        next_mode[has, column] = failed[target[has], column]
        ttf[down, column] = 0.0
        otf[down, column] = 0.0
        next_mode[down, column] = failed[down, column]
    return ttf, np.maximum(otf, 0.0), next_mode


def write_jsonl(history: History, out: TextIO, *, with_truth: bool = True) -> int:
    """Readings (and optionally their ground truth under "truth") as JSON Lines, in time order."""
    count = 0
    for t in range(history.steps):
        for column in range(len(history.motor_ids)):
            record = history.reading(t, column).model_dump(mode="json", exclude_none=True)
            if with_truth:
                record["truth"] = history.label(t, column)
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Generate labelled fleet history in fast-forward (no network) and summarise it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--motors", type=int, default=20, help="motors in the fleet")
    parser.add_argument("--days", type=float, default=365.0, help="simulated days")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between readings")
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same history")
    parser.add_argument("--wear-scale", type=float, default=1.0, help="multiplies every wear rate")
    parser.add_argument(
        "--random-failures-per-year", type=float, default=0.3, help="failures without warning per motor-year running"
    )
    parser.add_argument(
        "--plant",
        action="store_true",
        help="a real plant (device/plant.py): noisier, drifting sensors that drop out, motors of 15, 37 and 90 kW, "
        "and services when condition alarms are acted on",
    )
    parser.add_argument("--jsonl", type=Path, help="write readings with their ground truth here (JSON Lines)")
    parser.add_argument("--no-truth", action="store_true", help="with --jsonl: readings only, as devices send them")
    parser.add_argument(
        "--archive",
        type=Path,
        help="write the readings (Parquet by day) and a report_failure / service_complete action at each failure "
        "and repair into this folder, in the archive's layout (docs/archive.md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = replace(
        FleetConfig(),
        motors=args.motors,
        seed=args.seed,
        wear_scale=args.wear_scale,
        random_failures_per_year=args.random_failures_per_year,
        plant=PlantConfig() if args.plant else None,
    )
    started = time.perf_counter()

    interactive = sys.stderr.isatty()
    shown = [0.0]

    def show(fraction: float) -> None:
        # A terminal gets one line rewritten in place; a log gets a line every quarter.
        if interactive:
            print(f"\rsimulating {args.motors} motors x {args.days:g} days: {fraction:4.0%}", end="", file=sys.stderr)
        elif fraction >= shown[0] + 0.25 or fraction >= 1.0:
            shown[0] = fraction
            print(f"simulating {args.motors} motors x {args.days:g} days: {fraction:4.0%}", file=sys.stderr)

    history = generate(config, duration_s=args.days * DAY_S, interval_s=args.interval, progress=show)
    elapsed = time.perf_counter() - started
    if interactive:
        print(file=sys.stderr)
    by_mode = history.failures_by_mode()
    print(
        f"{history.steps * len(history.motor_ids):,} readings, {history.motor_years:.1f} motor-years "
        f"in {elapsed:.1f} s ({history.motor_years / elapsed:.1f} motor-years/s); "
        f"{sum(by_mode.values())} failures: " + ", ".join(f"{mode} {count}" for mode, count in by_mode.items())
    )
    if args.jsonl:
        with args.jsonl.open("w", encoding="utf-8") as out:
            count = write_jsonl(history, out, with_truth=not args.no_truth)
        print(f"wrote {count:,} readings to {args.jsonl}")
    if args.archive:
        with setup_needed("device/history.py --archive"):
            from device.history_archive import write_archive  # noqa: PLC0415 - DuckDB loads only for --archive
        started = time.perf_counter()
        written = write_archive(history, args.archive, seed=args.seed)
        print(
            f"archived {written.readings:,} readings over {written.days} days, {written.failures_reported} "
            f"report_failure and {written.services} service_complete actions ({written.objects} objects) "
            f"in {args.archive} in {time.perf_counter() - started:.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
