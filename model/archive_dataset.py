"""Training data from an archive: each motor's readings through the Lambda's features, labelled from its failure log.

    data = build_from_archive(Archive.open(location), scratch=folder, horizon_s=24 * 3600)

One pass over the archive splits the valid readings by motor (`Archive.shard_by_motor`); then the
motors are worked on one at a time, in parallel processes, each holding only its own readings:
sorted by (ts, seq), through `compute_features` (the inference Lambda's function, so the features
and the operating time are the ones the Lambda computes), labelled from the operators' actions:

- a running reading is positive if a `report_failure` of its motor follows within `horizon_s` of
  operation (operating time as the features count it, up to the last reading before `failed_at`);
- readings between a failure and its repair (the first `service_complete` after it, or the next
  failure) are left out: the motor is down, or being worked on;
- failures of a mode named as giving no warning are tallied as the simulator's random failures are:
  the readings before them are out of training and of the row metrics, and they are not misses.

`ArchivedMotor` presents one motor's readings as `device.history.History` does for one column, so the
held-out motors go through the same detector replay (`model.evaluate.replay`) as simulated ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from device.archive_layout import ACTIONS
from device.columnar import Table
from device.physics import NO_FAILURE, FailureMode
from model.archive import Archive, ReadCounts, read_shard
from model.dataset import Dataset, Log, in_processes
from motor_maintenance.features import FEATURE_NAMES, RunningStats, compute_features
from motor_maintenance.telemetry import SIGNALS, Telemetry, parse_timestamp, to_epoch_ms

MODES: tuple[FailureMode, ...] = tuple(FailureMode)
RANDOM = MODES.index(FailureMode.RANDOM)
WARNED = MODES.index(FailureMode.BEARING_WEAR)
"""The FailureMode index an `ArchivedMotor` gives a failure that warns when its reported mode is none of the
simulator's wear modes (a plant's own): the evaluation tells predictable failures from random ones by it; the
failures' own mode names are kept beside (`MotorRows.failure_modes`)."""
_COLUMNS = ("motor_id", "motor_type", "ts_ms", "seq", "running", *SIGNALS, "fault")


@dataclass(frozen=True)
class MaintenanceLog:
    """One motor's failures (epoch ms, mode as reported) and repairs (epoch ms), each in time order."""

    failures: tuple[tuple[int, str], ...] = ()
    repairs: tuple[int, ...] = ()


@dataclass(frozen=True)
class MotorRows:
    """What one worker returns for one motor: its rows, and its timeline for the replay."""

    motor_id: str
    motor_type: str
    features: NDArray[np.float32]
    steps: NDArray[np.int32]
    """Each row's reading: its index in the motor's readings sorted by (ts, seq)."""
    labels: NDArray[np.int8]
    unpredictable: NDArray[np.bool_]
    ts_ms: NDArray[np.int64]
    """Every reading's time, rows or not."""
    operating_s: NDArray[np.float64]
    """Operating time after every reading, as the features count it."""
    onsets: NDArray[np.intp]
    """Each failure's first reading at or after `failed_at` (the first that shows the motor down)."""
    failure_modes: tuple[str, ...]
    warns: tuple[bool, ...]
    """Whether each failure is of a mode that gives warning (not named as giving none)."""
    left_out: int
    """Running readings between a failure and its repair, left out."""
    duplicates: int
    """Readings archived more than once (Firehose delivers at least once), counted once."""


@dataclass
class ArchiveData:
    """The rows of every motor (`dataset.column` indexes `motors`) and what the replay needs of each."""

    dataset: Dataset
    motors: list[MotorRows]
    shards: dict[str, Path]
    readings: ReadCounts
    actions: ReadCounts
    left_out: int = 0
    failures_without_readings: int = 0
    failures_by_mode: dict[str, int] = field(default_factory=dict)

    @property
    def motor_years(self) -> float:
        return sum(_span_years(motor.ts_ms) for motor in self.motors)

    def failures_of(self, columns: Iterable[int], *, warning_only: bool = True) -> int:
        return sum(sum(self.motors[c].warns) if warning_only else len(self.motors[c].warns) for c in columns)


def maintenance_logs(records: Iterable[dict[str, Any]]) -> dict[str, MaintenanceLog]:
    """Each motor's failures and repairs from the archive's operator actions (one failure per motor and time)."""
    failures: dict[str, dict[int, str]] = {}
    repairs: dict[str, set[int]] = {}
    for record in records:
        motor_id, action = record.get("motor_id"), record.get("action")
        if not isinstance(motor_id, str):
            continue
        if action == "report_failure":
            failed_ms = _epoch_ms(record["failed_at"])
            failures.setdefault(motor_id, {}).setdefault(failed_ms, str(record["failure_mode"]))
        elif action == "service_complete":
            repairs.setdefault(motor_id, set()).add(_epoch_ms(record["ts"]))
    return {
        motor: MaintenanceLog(tuple(sorted(failures.get(motor, {}).items())), tuple(sorted(repairs.get(motor, ()))))
        for motor in sorted(set(failures) | set(repairs))
    }


@dataclass
class ArchivedFleet:
    """An archive split by motor: each motor's valid readings in a Parquet file of its own, and its maintenance log."""

    shards: dict[str, Path]
    readings: ReadCounts
    logs: dict[str, MaintenanceLog]
    actions: ReadCounts


def split_by_motor(archive: Archive, *, scratch: Path, log: Log | None = None) -> ArchivedFleet:
    """One pass over the archive's readings into per-motor files under `scratch`, and every motor's maintenance log."""
    shards, reading_counts = archive.shard_by_motor(scratch, progress=_every_million(log))
    actions = archive.events(ACTIONS)
    if log is not None:
        log(
            f"  {reading_counts.read:,} readings read ({reading_counts.invalid_total:,} invalid) of {len(shards)} "
            f"motors; {len(actions.records):,} operator actions ({actions.counts.invalid_total:,} invalid)"
        )
    return ArchivedFleet(shards, reading_counts, maintenance_logs(actions.records), actions.counts)


def rows_of(
    fleet: ArchivedFleet,
    motor_ids: Sequence[str],
    *,
    horizon_s: float,
    no_warning_modes: Sequence[str] = (),
    workers: int | None = None,
    log: Log | None = None,
) -> list[MotorRows]:
    """The rows of the motors `motor_ids` (in that order), worked on in parallel processes (`motor_rows`)."""
    unwarned = tuple(no_warning_modes)
    jobs = [(fleet.shards[m], fleet.logs.get(m, MaintenanceLog()), horizon_s, unwarned) for m in motor_ids]
    return in_processes(
        motor_rows, jobs, workers=workers, log=log, unit="motors", readings=lambda motor: len(motor.ts_ms)
    )


def build_from_archive(
    archive: Archive,
    *,
    scratch: Path,
    horizon_s: float,
    no_warning_modes: Sequence[str] = (),
    workers: int | None = None,
    log: Log | None = None,
) -> ArchiveData:
    """Every motor's rows and labels; the motors' readings are kept under `scratch` (one Parquet file each)."""
    fleet = split_by_motor(archive, scratch=scratch, log=log)
    shards, reading_counts, logs = fleet.shards, fleet.readings, fleet.logs
    motors = rows_of(
        fleet, list(shards), horizon_s=horizon_s, no_warning_modes=no_warning_modes, workers=workers, log=log
    )
    reading_counts.duplicates = sum(motor.duplicates for motor in motors)
    reading_counts.kept = sum(len(motor.ts_ms) for motor in motors)
    total_rows = sum(len(m.labels) for m in motors)
    features = np.concatenate([m.features for m in motors]) if motors else np.empty((0, len(FEATURE_NAMES)), np.float32)
    dataset = Dataset(
        features.reshape(total_rows, len(FEATURE_NAMES)),
        np.concatenate([m.labels for m in motors]) if motors else np.empty(0, np.int8),
        np.concatenate([m.unpredictable for m in motors]) if motors else np.empty(0, bool),
        np.concatenate([np.full(len(m.labels), c, np.int32) for c, m in enumerate(motors)])
        if motors
        else np.empty(0, np.int32),
        np.concatenate([m.steps for m in motors]) if motors else np.empty(0, np.int32),
    )
    known = {motor.motor_id for motor in motors}
    orphans = sum(len(entry.failures) for motor_id, entry in logs.items() if motor_id not in known)
    modes = Counter(mode for motor in motors for mode in motor.failure_modes)
    return ArchiveData(
        dataset,
        motors,
        shards,
        reading_counts,
        fleet.actions,
        left_out=sum(m.left_out for m in motors),
        failures_without_readings=orphans,
        failures_by_mode=dict(sorted(modes.items())),
    )


def _every_million(log: Log | None) -> Callable[[int], None] | None:
    """A progress callback that logs once per million readings read."""
    if log is None:
        return None
    shown = [0]

    def show(read: int) -> None:
        if read // 1_000_000 > shown[0]:
            shown[0] = read // 1_000_000
            log(f"  read {read:,} readings")

    return show


def motor_rows(
    shard: Path, maintenance: MaintenanceLog, horizon_s: float, no_warning_modes: tuple[str, ...]
) -> MotorRows:
    """One motor's feature rows and labels (runs in a worker process: everything it needs comes as arguments)."""
    read = read_shard(shard)
    readings = read.table
    motor_id = str(readings["motor_id"][0]) if readings.num_rows else shard.stem
    motor_type = str(readings["motor_type"][0]) if readings.num_rows else ""
    ts_ms = np.asarray(readings["ts_ms"], dtype=np.int64)
    running = np.asarray(np.ma.filled(readings["running"], False), dtype=bool)
    operating = np.empty(len(ts_ms), dtype=np.float64)
    rows: list[list[float]] = []
    stats: RunningStats | None = None
    for index, reading in enumerate(_telemetry(readings)):
        vector, stats = compute_features(reading, stats)
        operating[index] = stats.operating_s
        if reading.running:
            rows.append(vector)
    features = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))
    steps = np.flatnonzero(running).astype(np.int32)

    failed_ms = np.array([at for at, _ in maintenance.failures], dtype=np.int64)
    warns = tuple(mode not in no_warning_modes for _, mode in maintenance.failures)
    onsets = np.searchsorted(ts_ms, failed_ms, side="left")
    # Operating time at a failure: that of the last reading before it (the motor ran up to then).
    at_failure = np.where(onsets > 0, operating[np.maximum(onsets - 1, 0)], 0.0)
    row_ts = ts_ms[steps]
    following = np.searchsorted(failed_ms, row_ts, side="right")  # the first failure after each row
    has_next = following < len(failed_ms)
    to_failure = np.full(len(steps), np.inf)
    to_failure[has_next] = at_failure[following[has_next]] - operating[steps[has_next]]
    soon = to_failure <= horizon_s
    warned = np.asarray(warns, dtype=bool)[np.minimum(following, max(len(warns) - 1, 0))] if warns else soon
    labels = (soon & warned).astype(np.int8)
    unpredictable = soon & ~warned

    down = _repair_gaps(row_ts, failed_ms, np.asarray(maintenance.repairs, dtype=np.int64))
    keep = ~down
    return MotorRows(
        motor_id=motor_id,
        motor_type=motor_type,
        features=features[keep],
        steps=steps[keep],
        labels=labels[keep],
        unpredictable=unpredictable[keep],
        ts_ms=ts_ms,
        operating_s=operating,
        onsets=np.minimum(onsets, max(len(ts_ms) - 1, 0)).astype(np.intp),
        failure_modes=tuple(mode for _, mode in maintenance.failures),
        warns=warns,
        left_out=int(down.sum()),
        duplicates=read.counts.duplicates,
    )


def _repair_gaps(
    ts_ms: NDArray[np.int64], failed_ms: NDArray[np.int64], repairs_ms: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """Which times fall between a failure and its repair: the first service after it, or the next failure."""
    down = np.zeros(len(ts_ms), dtype=bool)
    for index, failed in enumerate(failed_ms.tolist()):
        later = repairs_ms[repairs_ms > failed]
        ends = [int(later[0])] if len(later) else []
        if index + 1 < len(failed_ms):
            ends.append(int(failed_ms[index + 1]))
        end = min(ends) if ends else None
        if end is not None:
            down |= (ts_ms >= failed) & (ts_ms < end)
    return down


def _telemetry(readings: Table) -> Iterable[Telemetry]:
    """The archive's valid readings as the Lambda's model (validated again: the shard is plain Parquet)."""
    columns = {name: readings.values(name) for name in _COLUMNS if name in readings.column_names}
    names = list(columns)
    for values in zip(*columns.values(), strict=True):
        record = {name: value for name, value in zip(names, values, strict=True) if value is not None}
        record["ts"] = record.pop("ts_ms")
        yield Telemetry.model_validate(record)


class ArchivedMotor:
    """One archived motor as `device.history.History` presents one column, for `model.evaluate.replay`."""

    def __init__(self, rows: MotorRows, shard: Path) -> None:
        self.motor_ids = (rows.motor_id,)
        self.motor_type = rows.motor_type
        self.ts_ms = rows.ts_ms
        self.operating_s = rows.operating_s[:, None]
        self.failed_mode = np.full((len(rows.ts_ms), 1), NO_FAILURE, dtype=np.int8)
        for onset, mode, warns in zip(rows.onsets.tolist(), rows.failure_modes, rows.warns, strict=True):
            self.failed_mode[onset, 0] = _replay_mode(mode, warns)
        self._onsets = rows.onsets
        self._readings = list(_telemetry(read_shard(shard).table))

    @property
    def motor_years(self) -> float:
        return _span_years(self.ts_ms)

    def failure_onsets(self, column: int) -> NDArray[np.intp]:
        return self._onsets

    def reading(self, t: int, column: int) -> Telemetry:
        return self._readings[t]


def _replay_mode(mode: str, warns: bool) -> int:
    """The FailureMode index the replay files a reported failure under: random if it gives no warning, else its
    own mode when that is one of the simulator's wear modes, else `WARNED`."""
    if not warns:
        return RANDOM
    try:
        index = MODES.index(FailureMode(mode))
    except ValueError:
        return WARNED
    return WARNED if index == RANDOM else index


def _span_years(ts_ms: NDArray[np.int64]) -> float:
    return float(ts_ms[-1] - ts_ms[0]) / 1000 / (365 * 86_400) if len(ts_ms) > 1 else 0.0


def _epoch_ms(value: Any) -> int:
    return to_epoch_ms(parse_timestamp(value))
