"""A batch of historian rows as readings of the telemetry schema; each row refused is counted by its reason.

Whole columns at a time, cast by DuckDB where the batch is held (model.import_sources.Rows): timestamps
to epoch ms (ISO 8601 with an offset, local wall-clock times in a timezone, epoch seconds or ms, strftime
patterns), units through pint, running from a status text or from speed (or current) above zero.
Then every row goes through the telemetry schema, as the archive's
reader does (model.archive_checks on whole columns, `TelemetryEvent` for every row they do not clear).
A row is refused for the first reason it has, and counted under it: nothing is dropped unsaid.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from device.archive_layout import TELEMETRY_TYPES
from device.columnar import NUMPY_TYPES, Table, literal
from model.archive_checks import clearly_valid
from model.import_mapping import EPOCH_MS, EPOCH_S, ISO8601, MappingError, SignalSpec, TelemetrySpec, TimeSpec
from model.import_sources import Rows, column
from motor_maintenance.telemetry import TelemetryEvent

_OFFSET = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"
"""A time of day followed by a UTC offset: the texts cast as moments; the others are local times."""
AMBIGUOUS_WINDOW_MS = 2 * 3600 * 1000
"""How far apart two of a motor's ambiguous local times may be and still be the same night's clock change."""
_ISO_TEXT = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)?$"
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_EPOCH = datetime(1970, 1, 1)  # the naive origin of wall-clock microseconds


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


def is_number(kind: str) -> bool:
    """A DuckDB column type that holds numbers."""
    return kind in _NUMERIC or kind in ("DOUBLE", "FLOAT") or kind.startswith("DECIMAL")


def _flag(rows: Rows, expression: str) -> NDArray[np.bool_]:
    """A boolean SQL expression per row, false where it is NULL."""
    return np.asarray(np.ma.filled(rows.values(expression), False), dtype=bool)


def _ints(rows: Rows, expression: str) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """An integer SQL expression per row: (values, 0 where NULL; which are not NULL)."""
    found = rows.values(f"CAST({expression} AS BIGINT)")
    return np.asarray(np.ma.filled(found, 0), dtype=np.int64), ~np.ma.getmaskarray(found)


def _text(rows: Rows, name: str) -> str:
    """A column as text in SQL (null stays null)."""
    return column(name) if rows.is_text(name) else f"CAST({column(name)} AS VARCHAR)"


def _number_sql(text: str) -> str:
    """A text cast to a number when it spells one (digits, a decimal point, an exponent; NaN, Inf), else NULL.

    DuckDB's cast also reads digits grouped by underscores ("1_000"), which is no number here.
    """
    cast = f"TRY_CAST({text} AS DOUBLE)"
    return f"CASE WHEN {cast} IS NULL OR NOT contains({text}, '_') THEN {cast} END"


class Moments:
    """Reads one mapped time column, batch after batch (a LocalClock carries over between batches)."""

    def __init__(self, spec: TimeSpec, key: str) -> None:
        self.spec, self.key = spec, key
        self.clock = LocalClock()

    def epoch_ms(self, rows: Rows, motors: NDArray[Any], checks: RowChecks) -> NDArray[np.int64]:
        """Each row's moment in epoch ms (0 where refused); `motors` says whose row it is, for local times."""
        spec, key = self.spec, self.key
        name = spec.column
        checks.require(_flag(rows, f"{column(name)} IS NOT NULL"), f"{name}: blank")
        ms = np.zeros(rows.num_rows, dtype=np.int64)
        where = np.flatnonzero(checks.ok)
        if len(where) == 0:
            return ms
        kind = rows.types[name]
        if kind.startswith("TIMESTAMP"):
            if kind == "TIMESTAMP WITH TIME ZONE":
                ms[where] = _ints(rows, f"epoch_ms({column(name)})")[0][where]
                return ms
            if spec.timezone is None:
                raise MappingError(f"{key}: column {name!r} holds times without a UTC offset: give it a timezone")
            walls = _ints(rows, f"epoch_us({column(name)})")[0][where]
            return self._local(walls, where, motors, checks, ms)
        if is_number(kind):
            if spec.format not in (EPOCH_S, EPOCH_MS):
                raise MappingError(f"{key}: column {name!r} holds numbers: give its format, epoch_s or epoch_ms")
            numbers = np.ma.filled(rows.values(f"CAST({column(name)} AS DOUBLE)"), np.nan)[where]
            return self._epoch(np.asarray(numbers, dtype=np.float64), where, spec, checks, ms)
        text = _text(rows, name)
        if spec.format in (EPOCH_S, EPOCH_MS):
            found = rows.values(_number_sql(text))
            parsed = ~np.ma.getmaskarray(found)[where]
            unit = "epoch seconds" if spec.format == EPOCH_S else "epoch milliseconds"
            _refuse(checks, where[~parsed], f"{name}: not {unit}")
            numbers = np.asarray(np.ma.filled(found, 0.0), dtype=np.float64)[where]
            return self._epoch(numbers, where, spec, checks, ms)
        if spec.format != ISO8601:
            parsed_times = f"try_strptime({text}, {literal(spec.format)})"
            aware = "%z" in spec.format or "%Z" in spec.format
            found, matched = _ints(rows, f"{'epoch_ms' if aware else 'epoch_us'}({parsed_times})")
            _refuse(checks, where[~matched[where]], f"{name}: does not match the format {spec.format!r}")
            if aware:
                ms[where] = found[where]
                return ms
            return self._local(found[where], where, motors, checks, ms)
        return self._iso(rows, text, where, motors=motors, checks=checks, ms=ms)

    def _iso(
        self,
        rows: Rows,
        text: str,
        where: NDArray[np.intp],
        *,
        motors: NDArray[Any],
        checks: RowChecks,
        ms: NDArray[np.int64],
    ) -> NDArray[np.int64]:
        """ISO 8601 texts: with an offset, moments; without, wall-clock times in the mapping's timezone."""
        name, zone = self.spec.column, self.spec.timezone
        iso = _flag(rows, f"regexp_matches({text}, {literal(_ISO_TEXT)})")[where]
        _refuse(checks, where[~iso], f"{name}: not ISO 8601")
        where = where[iso]
        offset = _flag(rows, f"regexp_matches({text}, {literal(_OFFSET)})")[where]
        if zone is None:
            _refuse(checks, where[~offset], f"{name}: no UTC offset (and the mapping gives no timezone)")
        aware, aware_ok = _ints(rows, f"epoch_us(TRY_CAST(upper({text}) AS TIMESTAMPTZ))")
        aware_rows = where[offset]
        _refuse(checks, aware_rows[~aware_ok[aware_rows]], f"{name}: not ISO 8601")
        ms[aware_rows] = aware[aware_rows] // 1000
        if zone is not None and not offset.all():
            naive, naive_ok = _ints(rows, f"epoch_us(TRY_CAST({text} AS TIMESTAMP))")
            local_rows = where[~offset]
            _refuse(checks, local_rows[~naive_ok[local_rows]], f"{name}: not ISO 8601")
            local_rows = local_rows[naive_ok[local_rows]]
            self._local(naive[local_rows], local_rows, motors, checks, ms)
        return ms

    @staticmethod
    def _epoch(
        values: NDArray[np.float64], rows: NDArray[np.intp], spec: TimeSpec, checks: RowChecks, ms: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        scaled = values * (1000.0 if spec.format == EPOCH_S else 1.0)
        finite = np.isfinite(scaled) & (np.abs(scaled) < 2**62)
        _refuse(checks, rows[~finite], f"{spec.column}: not a finite number")
        ms[rows[finite]] = np.round(scaled[finite]).astype(np.int64)
        return ms

    def _local(
        self,
        walls_us: NDArray[np.int64],
        rows: NDArray[np.intp],
        motors: NDArray[Any],
        checks: RowChecks,
        ms: NDArray[np.int64],
    ) -> NDArray[np.int64]:
        """Wall-clock times (µs since 1970-01-01 on the wall) in the mapping's timezone as epoch ms.

        A time the clock skipped is refused; a time that happens twice is resolved by the LocalClock.
        """
        spec, zone = self.spec, str(self.spec.timezone)
        distinct, index = np.unique(walls_us, return_inverse=True)
        placed = np.array([_place(int(wall), ZoneInfo(zone)) for wall in distinct.tolist()], dtype=np.int64)
        placed = placed.reshape(len(distinct), 3)
        earliest, latest = placed[index, 0] // 1000, placed[index, 1] // 1000
        missing = placed[index, 2].astype(bool)
        _refuse(
            checks,
            rows[missing],
            f"{spec.column}: a local time that does not exist in {zone} (the clocks went forward)",
        )
        chosen = earliest.copy()
        twice = np.flatnonzero((earliest != latest) & ~missing)
        if len(twice):
            wall_ms = walls_us[twice] // 1000
            who = [str(motor) for motor in motors[rows[twice]].tolist()]
            later = np.array(self.clock.resolve(who, wall_ms.tolist()), dtype=bool)
            chosen[twice[later]] = latest[twice[later]]
        ms[rows[~missing]] = chosen[~missing]
        return ms


def _place(wall_us: int, zone: ZoneInfo) -> tuple[int, int, int]:
    """A wall-clock time in `zone`: (its earlier moment, its later moment, in epoch µs; 1 if the clock skipped it)."""
    naive = _EPOCH + timedelta(microseconds=wall_us)
    moments = []
    for fold in (0, 1):
        offset = naive.replace(tzinfo=zone, fold=fold).utcoffset() or timedelta(0)
        moments.append(wall_us - (offset.days * 86_400 + offset.seconds) * 1_000_000 - offset.microseconds)
    back = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=moments[0])
    skipped = back.astimezone(zone).replace(tzinfo=None) != naive
    return min(moments), max(moments), int(skipped)


def numbers(rows: Rows, signal: SignalSpec, checks: RowChecks) -> NDArray[np.float64]:
    """A signal's values in the schema's unit, NaN where missing (blank, or written as NaN)."""
    name = signal.column
    if is_number(rows.types[name]):
        values = np.ma.filled(rows.values(f"CAST({column(name)} AS DOUBLE)"), np.nan)
    else:
        found = rows.values(_number_sql(_text(rows, name)))
        parsed = ~np.ma.getmaskarray(found)
        blank = _flag(rows, f"{column(name)} IS NULL")
        checks.require(parsed | blank, f"{name}: not a number")
        values = np.where(parsed, np.ma.filled(found, np.nan), np.nan)
    return signal.convert(np.asarray(values, dtype=np.float64))


def running(
    rows: Rows, spec: TelemetrySpec, signals: dict[str, NDArray[np.float64]], checks: RowChecks
) -> NDArray[np.bool_]:
    """Whether each motor ran: its status is a true value, or (no status) its speed, else its current, is above 0."""
    size = rows.num_rows
    known = np.zeros(size, dtype=bool)
    flags = np.zeros(size, dtype=bool)
    if spec.running is not None:
        name, true_values = spec.running
        status = f"lower({_text(rows, name)})"
        known = _flag(rows, f"{status} IS NOT NULL")
        flags = _flag(rows, f"{status} IN ({', '.join(literal(value) for value in sorted(true_values))})")
    for signal in ("speed_rpm", "current_a"):
        if signal in signals:
            values = signals[signal]
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

    def convert(self, rows: Rows) -> tuple[Table, NDArray[np.int64]]:
        """The rows that are valid readings (the telemetry columns), and their times in epoch ms."""
        spec, size = self.spec, rows.num_rows
        checks = RowChecks(size, self.refused)
        motor_ids = rows.text(spec.motor_id)
        checks.require(motor_ids != None, f"{spec.motor_id}: blank")  # noqa: E711 - element-wise
        ms = self.moments.epoch_ms(rows, motor_ids, checks)
        signals = {signal.signal: numbers(rows, signal, checks) for signal in spec.signals}
        ran = running(rows, spec, signals, checks)
        if spec.motor_type_column:
            motor_types = rows.text(spec.motor_type)
            checks.require(motor_types != None, f"{spec.motor_type}: blank")  # noqa: E711 - element-wise
        else:
            motor_types = np.full(size, spec.motor_type, dtype=object)
        keep = checks.ok
        kept_ms = ms[keep]
        count = len(kept_ms)
        columns: dict[str, NDArray[Any]] = {
            "motor_id": motor_ids[keep],
            "motor_type": motor_types[keep],
            "ts": iso_texts(kept_ms),
            "seq": kept_ms.copy(),
            "running": ran[keep],
        }
        for name, values in signals.items():
            kept = values[keep]
            columns[name] = np.ma.masked_array(kept, mask=np.isnan(kept))
        table = Table({name: columns.get(name, _nulls(kind, count)) for name, kind in TELEMETRY_TYPES.items()})
        valid = self._validate(table)
        return table.take(valid), kept_ms[valid]

    def _validate(self, table: Table) -> NDArray[np.bool_]:
        """Which readings the telemetry schema accepts; the others counted by field, column and rule."""
        if table.num_rows == 0:
            return np.zeros(0, dtype=bool)
        valid, _ = clearly_valid(table)
        doubtful = np.flatnonzero(~valid)
        if len(doubtful) == 0:
            return valid
        for index, row in zip(doubtful.tolist(), table.take(doubtful).to_pylist(), strict=True):
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


def iso_texts(ms: NDArray[np.int64]) -> NDArray[Any]:
    """Epoch ms as ISO 8601 UTC text ("2025-03-09T07:45:00.000Z"), each distinct moment formatted once."""
    if len(ms) == 0:
        return np.zeros(0, dtype=object)
    distinct, index = np.unique(ms, return_inverse=True)
    texts = np.datetime_as_string(distinct.astype("datetime64[ms]"), unit="ms", timezone="UTC").astype(object)
    return texts[index]


def _nulls(kind: str, count: int) -> NDArray[Any]:
    """A column of nulls of a DuckDB type."""
    dtype = NUMPY_TYPES.get(kind)
    if dtype is None:
        return np.full(count, None, dtype=object)
    return np.ma.masked_array(np.zeros(count, dtype=dtype), mask=np.ones(count, dtype=bool))
