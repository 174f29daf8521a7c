"""A batch of historian rows as readings of the telemetry schema; each row refused is counted by its reason.

Whole columns at a time: timestamps to epoch ms (ISO 8601 with an offset, local wall-clock times in a
timezone, epoch seconds or ms, strftime patterns), units through pint, running from a status text or
from speed (or current) above zero. Then every row goes through the telemetry schema, as the archive's
reader does (model.archive_checks on whole columns, `TelemetryEvent` for every row they do not clear).
A row is refused for the first reason it has, and counted under it: nothing is dropped unsaid.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from pydantic import ValidationError

from device.archive_layout import TELEMETRY_SCHEMA
from model.archive_checks import clearly_valid
from model.import_mapping import EPOCH_MS, EPOCH_S, ISO8601, MappingError, SignalSpec, TelemetrySpec, TimeSpec
from motor_maintenance.telemetry import TelemetryEvent

_OFFSET = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"
"""A time of day followed by a UTC offset: the texts cast as moments; the others are local times."""
AMBIGUOUS_WINDOW_MS = 2 * 3600 * 1000
"""How far apart two of a motor's ambiguous local times may be and still be the same night's clock change."""


class RowChecks:
    """Which rows of a batch are still fine, and why the others were refused (each counted once)."""

    def __init__(self, rows: int, refused: Counter[str]) -> None:
        self.ok = np.ones(rows, dtype=bool)
        self.refused = refused

    def require(self, passed: NDArray[np.bool_], reason: str) -> None:
        bad = int(np.count_nonzero(self.ok & ~passed))
        if bad:
            self.refused[reason] += bad
        self.ok &= passed


class LocalClock:
    """Resolves local times that happen twice (clocks going back) in each motor's order of rows.

    A historian without offsets writes the hour after a clock change twice; in a motor's rows in time
    order, the second pass shows as its wall clock going back. Until then an ambiguous time is the
    first of its two moments, from then on the second.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, bool]] = {}

    def resolve(self, motors: list[str], wall_ms: list[int]) -> list[bool]:
        """For each ambiguous time (in row order) whether it is the later of its two moments."""
        later = []
        for motor, wall in zip(motors, wall_ms, strict=True):
            last, second = self._last.get(motor, (None, False))
            if last is None or abs(wall - last) > AMBIGUOUS_WINDOW_MS:
                second = False
            elif wall <= last:
                second = True
            self._last[motor] = (wall, second)
            later.append(second)
        return later


def _refuse(checks: RowChecks, rows: NDArray[np.intp], reason: str) -> None:
    """Refuse these rows (positions in the batch) for `reason`."""
    if len(rows):
        passed = np.ones(len(checks.ok), dtype=bool)
        passed[rows] = False
        checks.require(passed, reason)


def text(column: pa.Array) -> pa.Array:
    """A column as text (null stays null)."""
    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


class Moments:
    """Reads one mapped time column, batch after batch (a LocalClock carries over between batches)."""

    def __init__(self, spec: TimeSpec, key: str) -> None:
        self.spec, self.key = spec, key
        self.clock = LocalClock()

    def epoch_ms(self, column: pa.Array, motors: pa.Array, checks: RowChecks) -> NDArray[np.int64]:
        """Each row's moment in epoch ms (0 where refused); `motors` says whose row it is, for local times."""
        spec, key = self.spec, self.key
        name = spec.column
        checks.require(pc.is_valid(column).to_numpy(zero_copy_only=False), f"{name}: blank")
        ms = np.zeros(len(column), dtype=np.int64)
        rows = np.flatnonzero(checks.ok)
        if len(rows) == 0:
            return ms
        values = column.take(pa.array(rows))
        kind = values.type
        if pa.types.is_timestamp(kind):
            if kind.tz is not None:
                ms[rows] = pc.cast(values, pa.timestamp("ms", tz="UTC"), safe=False).cast(pa.int64()).to_numpy()
                return ms
            if spec.timezone is None:
                raise MappingError(f"{key}: column {name!r} holds times without a UTC offset: give it a timezone")
            return self._local(values, rows, motors, checks, ms)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            if spec.format not in (EPOCH_S, EPOCH_MS):
                raise MappingError(f"{key}: column {name!r} holds numbers: give its format, epoch_s or epoch_ms")
            return self._epoch(values.cast(pa.float64()), rows, spec, checks, ms)
        values = text(values)
        if spec.format in (EPOCH_S, EPOCH_MS):
            numbers, parsed = _cast_each(values, pa.float64())
            unit = "epoch seconds" if spec.format == EPOCH_S else "epoch milliseconds"
            _refuse(checks, rows[~parsed], f"{name}: not {unit}")
            return self._epoch(pa.array(numbers), rows, spec, checks, ms)
        if spec.format != ISO8601:
            parsed_times = pc.strptime(values, format=spec.format, unit="ms", error_is_null=True)
            matched = pc.is_valid(parsed_times).to_numpy(zero_copy_only=False)
            _refuse(checks, rows[~matched], f"{name}: does not match the format {spec.format!r}")
            if parsed_times.type.tz is not None:
                ms[rows] = parsed_times.cast(pa.int64()).fill_null(0).to_numpy()
                return ms
            return self._local(parsed_times, rows, motors, checks, ms)
        return self._iso(values, rows, motors, checks, ms)

    def _iso(
        self, values: pa.Array, rows: NDArray[np.intp], motors: pa.Array, checks: RowChecks, ms: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """ISO 8601 texts: with an offset, moments; without, wall-clock times in the mapping's timezone."""
        name, zone = self.spec.column, self.spec.timezone
        iso = pc.match_substring_regex(values, _ISO_TEXT).to_numpy(zero_copy_only=False)
        _refuse(checks, rows[~iso], f"{name}: not ISO 8601")
        rows, values = rows[iso], values.filter(pa.array(iso))
        offset = pc.match_substring_regex(values, _OFFSET).to_numpy(zero_copy_only=False)
        if zone is None:
            _refuse(checks, rows[~offset], f"{name}: no UTC offset (and the mapping gives no timezone)")
        aware, aware_ok = _cast_each(values.filter(pa.array(offset)), pa.timestamp("us", tz="UTC"))
        _refuse(checks, rows[offset][~aware_ok], f"{name}: not ISO 8601")
        ms[rows[offset]] = aware // 1000
        if zone is not None and not offset.all():
            naive, naive_ok = _cast_each(values.filter(pa.array(~offset)), pa.timestamp("us"))
            _refuse(checks, rows[~offset][~naive_ok], f"{name}: not ISO 8601")
            walls = pa.array(naive[naive_ok], pa.timestamp("us"))
            self._local(walls, rows[~offset][naive_ok], motors, checks, ms)
        return ms

    @staticmethod
    def _epoch(
        numbers: pa.Array, rows: NDArray[np.intp], spec: TimeSpec, checks: RowChecks, ms: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        values = numbers.to_numpy(zero_copy_only=False).astype(np.float64)
        scaled = values * (1000.0 if spec.format == EPOCH_S else 1.0)
        finite = np.isfinite(scaled) & (np.abs(scaled) < 2**62)
        _refuse(checks, rows[~finite], f"{spec.column}: not a finite number")
        ms[rows[finite]] = np.round(scaled[finite]).astype(np.int64)
        return ms

    def _local(
        self, walls: pa.Array, rows: NDArray[np.intp], motors: pa.Array, checks: RowChecks, ms: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """Wall-clock times in the mapping's timezone as epoch ms; a time the clock skipped is refused."""
        spec, zone = self.spec, str(self.spec.timezone)

        def moments(ambiguous: str, nonexistent: str) -> NDArray[np.int64]:
            placed = pc.assume_timezone(walls, timezone=zone, ambiguous=ambiguous, nonexistent=nonexistent)
            return np.asarray(pc.cast(placed, pa.timestamp("ms", tz="UTC"), safe=False).cast(pa.int64()).fill_null(0))

        earliest, latest, skipped = (
            moments("earliest", "earliest"),
            moments("latest", "earliest"),
            moments("earliest", "latest"),
        )
        missing = earliest != skipped
        _refuse(
            checks,
            rows[missing],
            f"{spec.column}: a local time that does not exist in {zone} (the clocks went forward)",
        )
        chosen = earliest.copy()
        twice = np.flatnonzero((earliest != latest) & ~missing)
        if len(twice):
            wall_ms = pc.cast(walls.take(pa.array(twice)), pa.timestamp("ms"), safe=False).cast(pa.int64()).to_numpy()
            who = text(motors.take(pa.array(rows[twice]))).to_pylist()
            later = np.array(self.clock.resolve([str(m) for m in who], wall_ms.tolist()), dtype=bool)
            chosen[twice[later]] = latest[twice[later]]
        ms[rows[~missing]] = chosen[~missing]
        return ms


_NUMBER = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|(?i:nan|inf|infinity))$"
_ISO_TEXT = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)?$"


def _cast_each(values: pa.Array, kind: pa.DataType) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """Each text cast to `kind` (epoch units as int64 for a time): (values, 0 where not), which cast.

    One cast for the batch when every text casts; else the texts that cannot be numbers or ISO 8601
    are set aside by a pattern, and if some still fail, the batch is halved until each bad text is alone.
    """
    try:
        cast = pc.cast(values, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pattern = _ISO_TEXT if pa.types.is_timestamp(kind) else _NUMBER
        plausible = pc.fill_null(pc.match_substring_regex(values, pattern), False)
        values = pc.if_else(plausible, values, pa.scalar(None, values.type))
        try:
            cast = pc.cast(values, kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _halving(values, kind)
    if pa.types.is_timestamp(kind):
        cast = cast.cast(pa.int64())
    ok = pc.is_valid(cast).to_numpy(zero_copy_only=False)
    return cast.fill_null(0).to_numpy(zero_copy_only=False), ok


def _halving(values: pa.Array, kind: pa.DataType) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    size = len(values)
    try:
        cast = pc.cast(values, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if size <= 1:
            return np.zeros(size, dtype=np.float64 if kind == pa.float64() else np.int64), np.zeros(size, dtype=bool)
        half = size // 2
        (first, first_ok), (second, second_ok) = _halving(values[:half], kind), _halving(values[half:], kind)
        return np.concatenate([first, second]), np.concatenate([first_ok, second_ok])
    if pa.types.is_timestamp(kind):
        cast = cast.cast(pa.int64())
    return cast.fill_null(0).to_numpy(zero_copy_only=False), pc.is_valid(cast).to_numpy(zero_copy_only=False)


def numbers(column: pa.Array, signal: SignalSpec, checks: RowChecks) -> NDArray[np.float64]:
    """A signal's values in the schema's unit, NaN where missing (blank, or written as NaN)."""
    if pa.types.is_string(column.type) or not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        column = text(column)
        values, parsed = _cast_each(column, pa.float64())
        blank = pc.is_null(column).to_numpy(zero_copy_only=False)
        checks.require(parsed | blank, f"{signal.column}: not a number")
        values = np.where(parsed, values, np.nan)
    else:
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return signal.convert(np.asarray(values, dtype=np.float64))


def running(
    rows: pa.RecordBatch, spec: TelemetrySpec, signals: dict[str, NDArray[np.float64]], checks: RowChecks
) -> NDArray[np.bool_]:
    """Whether each motor ran: its status is a true value, or (no status) its speed, else its current, is above 0."""
    size = rows.num_rows
    known = np.zeros(size, dtype=bool)
    flags = np.zeros(size, dtype=bool)
    if spec.running is not None:
        column, true_values = spec.running
        status = pc.utf8_lower(text(rows.column(column)))
        known = pc.is_valid(status).to_numpy(zero_copy_only=False)
        flags = pc.fill_null(pc.is_in(status, pa.array(sorted(true_values))), False).to_numpy(zero_copy_only=False)
    for name in ("speed_rpm", "current_a"):
        if name in signals:
            values = signals[name]
            told = ~known & ~np.isnan(values)
            flags = np.where(told, values > 0, flags)
            known |= told
    where = spec.running[0] if spec.running is not None else "running"
    checks.require(known, f"{where}: blank, and no speed or current to tell")
    return flags


class TelemetryConverter:
    """Turns batches of a telemetry export into valid readings; `refused` counts the rest by reason."""

    def __init__(self, spec: TelemetrySpec) -> None:
        self.spec = spec
        self.moments = Moments(spec.timestamp, "telemetry.timestamp")
        self.refused: Counter[str] = Counter()
        self._columns = {signal.signal: signal.column for signal in spec.signals}

    def convert(self, rows: pa.RecordBatch) -> tuple[pa.Table, NDArray[np.int64]]:
        """The rows that are valid readings (the telemetry columns), and their times in epoch ms."""
        spec, size = self.spec, rows.num_rows
        checks = RowChecks(size, self.refused)
        motor_ids = text(rows.column(spec.motor_id))
        checks.require(pc.is_valid(motor_ids).to_numpy(zero_copy_only=False), f"{spec.motor_id}: blank")
        ms = self.moments.epoch_ms(rows.column(spec.timestamp.column), motor_ids, checks)
        signals = {signal.signal: numbers(rows.column(signal.column), signal, checks) for signal in spec.signals}
        ran = running(rows, spec, signals, checks)
        if spec.motor_type_column:
            motor_types = text(rows.column(spec.motor_type))
            checks.require(pc.is_valid(motor_types).to_numpy(zero_copy_only=False), f"{spec.motor_type}: blank")
        else:
            motor_types = _constant(spec.motor_type, size)
        keep = pa.array(checks.ok)
        kept_ms = ms[checks.ok]
        columns: dict[str, Any] = {
            "motor_id": motor_ids.filter(keep),
            "motor_type": motor_types.filter(keep),
            "ts": iso_texts(kept_ms),
            "seq": pa.array(kept_ms, pa.int64()),
            "running": pa.array(ran[checks.ok]),
        }
        for name, values in signals.items():
            kept = values[checks.ok]
            columns[name] = pa.array(kept, pa.float64(), mask=np.isnan(kept))
        count = len(kept_ms)
        table = pa.table(
            {f.name: columns.get(f.name, pa.nulls(count, f.type)) for f in TELEMETRY_SCHEMA}, schema=TELEMETRY_SCHEMA
        )
        valid = self._validate(table)
        return table.filter(pa.array(valid)), kept_ms[valid]

    def _validate(self, table: pa.Table) -> NDArray[np.bool_]:
        """Which readings the telemetry schema accepts; the others counted by field, column and rule."""
        if table.num_rows == 0:
            return np.zeros(0, dtype=bool)
        batch = table.combine_chunks().to_batches()[0]
        valid, _ = clearly_valid(batch)
        doubtful = np.flatnonzero(~valid)
        if len(doubtful) == 0:
            return valid
        for index, row in zip(doubtful.tolist(), batch.take(pa.array(doubtful)).to_pylist(), strict=True):
            try:
                TelemetryEvent.model_validate({name: value for name, value in row.items() if value is not None})
            except ValidationError as exc:
                self.refused[self._reason(exc)] += 1
                continue
            valid[index] = True
        return valid

    def _reason(self, exc: ValidationError) -> str:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"])
        column = self._columns.get(field) or {"motor_id": self.spec.motor_id}.get(field)
        where = f"{field} ({column})" if column else field or "reading"
        return f"{where}: {re.sub(r'^Value error, ', '', error['msg'])}"


def iso_texts(ms: NDArray[np.int64]) -> pa.Array:
    """Epoch ms as ISO 8601 UTC text ("2025-03-09T07:45:00.000Z"), each distinct moment formatted once."""
    if len(ms) == 0:
        return pa.array([], pa.string())
    distinct, index = np.unique(ms, return_inverse=True)
    texts = pa.array(np.datetime_as_string(distinct.astype("datetime64[ms]"), unit="ms", timezone="UTC"))
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), texts).cast(pa.string())


def _constant(value: str, size: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(size, dtype=np.int32)), pa.array([value])).cast(pa.string())
