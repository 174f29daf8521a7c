"""A fleet's history written straight into the archive's layout: readings as Parquet by day, labels as actions.

`device/history.py --archive DIR` calls `write_archive`: the readings go in as the telemetry rule would
have delivered them (with `topic_motor_id` and a `received_at` a fraction of a second after `ts`), one
Parquet object per arrival day, built column by column from the history's arrays; each failure becomes
the `report_failure` an operator sends some minutes to hours after it (`failed_at` = the first reading
that shows it; the physics' `random` mode is reported as `other`), and each repair the
`service_complete` sent when the motor is back. device/archive_writer.py writes the objects, named as
Firehose names them, so model/archive.py reads this archive exactly as one the stack wrote.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from device.archive_layout import TELEMETRY_TYPES
from device.archive_writer import DAY_MS, ArchiveWriter
from device.columnar import Table
from device.physics import FAULT_CODES, NO_FAILURE, ROUNDING, SIGNAL_COLUMNS, FailureMode


class History(Protocol):
    """What of `device.history.History` the archive writer reads (a protocol: history.py imports this module)."""

    @property
    def motor_ids(self) -> tuple[str, ...]: ...
    @property
    def motor_type(self) -> str: ...
    @property
    def ts_ms(self) -> NDArray[np.int64]: ...
    @property
    def running(self) -> NDArray[np.bool_]: ...
    @property
    def failed_mode(self) -> NDArray[np.int8]: ...
    @property
    def signals(self) -> dict[str, NDArray[np.float32]]: ...
    def failure_onsets(self, column: int) -> NDArray[np.intp]: ...
    def service_steps(self, column: int) -> NDArray[np.intp]: ...
    def type_of(self, column: int) -> str: ...


WRITER = "history"
"""The stream name in the objects' names."""
OPERATORS = ("a.kovacs", "j.smith", "m.okafor", "r.silva", "s.tanaka")
LATENCY_MS = (40, 400)
"""Publish -> IoT Core receive time of a reading, drawn uniformly (ms)."""
REPORT_DELAY_MIN = (10, 240)
"""How long after a failure shows its operator reports it, drawn uniformly (minutes)."""
UNREPORTED_MODE = "other"
"""What an operator reports for the physics' `random` failures (a person names no such mode)."""


@dataclass(frozen=True)
class ArchiveCounts:
    """What `write_archive` wrote."""

    readings: int
    days: int
    failures_reported: int
    services: int
    objects: int


def write_archive(history: History, root: Path, *, seed: int = 1) -> ArchiveCounts:
    """Write `history` under `root` in the archive's layout; the same history and seed write the same records."""
    rng = np.random.default_rng(seed)
    table, received_at = _telemetry(history, rng)
    actions = _actions(history, rng)
    with ArchiveWriter(root, WRITER) as writer:
        writer.add_readings(table, received_at)
        arrived = [action.pop("_arrived_ms") for action in actions]
        writer.write_actions(actions, arrived)
    reports = sum(1 for action in actions if action["action"] == "report_failure")
    days = len(np.unique(received_at // DAY_MS))
    return ArchiveCounts(table.num_rows, days, reports, len(actions) - reports, writer.objects)


def _telemetry(history: History, rng: np.random.Generator) -> tuple[Table, NDArray[np.int64]]:
    """Every reading as one table, time-major, and when each arrived (epoch ms)."""
    steps, motors = history.running.shape
    motor_index = np.tile(np.arange(motors, dtype=np.int32), steps)
    motor_ids = np.array(history.motor_ids, dtype=object)[motor_index]
    ts_text = np.datetime_as_string(history.ts_ms.astype("datetime64[ms]"), unit="ms", timezone="UTC").astype(object)
    received_at = np.repeat(history.ts_ms, motors) + rng.integers(*LATENCY_MS, size=steps * motors)
    failed = history.failed_mode.ravel().astype(np.int32)
    codes = np.array([FAULT_CODES[mode] for mode in FailureMode], dtype=object)
    fault = codes[np.where(failed == NO_FAILURE, 0, failed)]
    fault[failed == NO_FAILURE] = None
    columns: dict[str, Any] = {
        "motor_id": motor_ids,
        "motor_type": np.array([history.type_of(c) for c in range(motors)], dtype=object)[motor_index],
        "ts": np.repeat(ts_text, motors),
        "seq": np.repeat(np.arange(1, steps + 1, dtype=np.int64), motors),
        "running": history.running.ravel(),
    }
    for name in SIGNAL_COLUMNS:  # at sensor resolution, as device.physics.make_reading reports them
        values = np.round(history.signals[name].ravel().astype(np.float64), ROUNDING[name])
        # a sensor that dropped out (NaN) is a null (DuckDB reads NaN as NULL)
        columns[name] = np.maximum(values, -1.0) if name == "pressure_bar" else values
    columns.update(fault=fault, topic_motor_id=motor_ids, received_at=received_at.astype(np.int64))
    return Table({name: columns[name] for name in TELEMETRY_TYPES}), received_at


def _actions(history: History, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A report_failure at each failure and a service_complete at each repair and service, in time order."""
    actions = []
    for column, motor_id in enumerate(history.motor_ids):
        down = history.failed_mode[:, column] != NO_FAILURE
        for t in history.failure_onsets(column).tolist():
            mode = FailureMode(tuple(FailureMode)[int(history.failed_mode[t, column])])
            failed_ms = int(history.ts_ms[t])
            reported_ms = failed_ms + int(rng.integers(*REPORT_DELAY_MIN)) * 60_000
            reported = UNREPORTED_MODE if mode is FailureMode.RANDOM else mode.value
            note = f"{FAULT_CODES[mode].replace('_', ' ')} found on site"
            extra = {"failed_at": _iso(failed_ms), "failure_mode": reported, "note": note}
            actions.append(_action(motor_id, "report_failure", reported_ms, rng, extra))
        repaired = np.flatnonzero(down[:-1] & ~down[1:]) + 1  # the first reading with the motor back
        for t in repaired.tolist():
            extra = {"note": "repaired and back in service"}
            actions.append(_action(motor_id, "service_complete", int(history.ts_ms[t]), rng, extra))
        for t in history.service_steps(column).tolist():
            if t == 0 or not down[t - 1]:  # servicing a motor that is down is its repair, reported above
                extra = {"note": "serviced after a condition alarm"}
                actions.append(_action(motor_id, "service_complete", int(history.ts_ms[t]), rng, extra))
    return sorted(actions, key=lambda action: (action["_arrived_ms"], action["motor_id"]))


def _action(motor_id: str, name: str, ts_ms: int, rng: np.random.Generator, extra: dict[str, Any]) -> dict[str, Any]:
    """An operator action as the ActionRule archives it (with `topic_motor_id`)."""
    return {
        "motor_id": motor_id,
        "action": name,
        "action_id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
        "ts": _iso(ts_ms),
        "operator": OPERATORS[int(rng.integers(len(OPERATORS)))],
        **extra,
        "topic_motor_id": motor_id,
        "_arrived_ms": ts_ms + int(rng.integers(*LATENCY_MS)),
    }


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
