"""The historian import's mapping file (docs/import.md): read, and checked against the schema, pint and the files.

Every mistake a mapping can hold (an unknown key, signal, unit, timezone, a unit of the wrong
dimension, a file pattern that matches nothing) is a MappingError whose message is one line naming it;
columns are checked against the files themselves (model.import_sources).
"""

from __future__ import annotations

import functools
import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pint
import yaml  # type: ignore[import-untyped, unused-ignore]
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from motor_maintenance.telemetry import MOTOR_TYPE_PATTERN, SIGNALS, TelemetryEvent

ISO8601, EPOCH_S, EPOCH_MS = "iso8601", "epoch_s", "epoch_ms"
FILE_KINDS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""What a file is read as, by its name's last suffix (`.csv.gz`: gzip-compressed CSV)."""
PINT_SPELLING = {"m3/h": "m**3/h", "N m": "N*m"}
"""The schema's unit names where pint spells them otherwise."""
DEFAULT_TRUE_VALUES = ("true", "1")


class MappingError(Exception):
    """A mapping that cannot be followed; its message is one line that names what is wrong."""


def schema_units() -> dict[str, str]:
    """Each schema signal's unit, as its field description states it ("... [degC], -60..300")."""
    units = {}
    for name in SIGNALS:
        description = TelemetryEvent.model_fields[name].description or ""
        found = re.search(r"\[([^\]]+)\]", description)
        if found is None:
            raise RuntimeError(f"the telemetry schema's {name} names no unit in its description")
        units[name] = found.group(1)
    return units


SCHEMA_UNITS = schema_units()


@functools.cache
def units() -> pint.UnitRegistry[Any]:
    return pint.UnitRegistry()


# -- the file's shape (pydantic, so that a misspelt key is named)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Time(_Strict):
    column: str
    format: str = ISO8601
    timezone: str | None = None


def _default_true() -> list[str | int | bool]:
    return [*DEFAULT_TRUE_VALUES]


class _Running(_Strict):
    column: str
    true_values: list[str | int | bool] = Field(default_factory=_default_true, min_length=1)


class _Column(_Strict):
    column: str


class _Signal(_Strict):
    column: str
    unit: str | None = None


class _Telemetry(_Strict):
    files: list[str] | str
    motor_id: str
    timestamp: str | _Time
    running: str | _Running | None = None
    motor_type: str | _Column
    signals: dict[str, str | _Signal] = Field(min_length=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)


class _Services(_Strict):
    files: list[str] | str
    motor_id: str
    timestamp: str | _Time
    delimiter: str = Field(default=",", min_length=1, max_length=1)


class _Failures(_Services):
    mode: str | None = None


class _Mapping(_Strict):
    telemetry: _Telemetry | None = None
    failures: _Failures | None = None
    services: _Services | None = None


# -- what the importer follows


@dataclass(frozen=True)
class TimeSpec:
    """How a column says when: ISO 8601 (with an offset, or in `timezone`), epoch seconds or ms, or strftime."""

    column: str
    format: str
    timezone: str | None

    @property
    def local(self) -> bool:
        """Whether times are local wall-clock times that `timezone` turns into moments."""
        return self.format not in (EPOCH_S, EPOCH_MS) and self.timezone is not None


@dataclass(frozen=True)
class SignalSpec:
    """A schema signal taken from a column, converted from `unit` to the schema's unit."""

    signal: str
    column: str
    unit: str

    def convert(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Values in `unit` (NaN: missing) in the schema's unit."""
        if self.unit == SCHEMA_UNITS[self.signal]:
            return values
        target = PINT_SPELLING.get(SCHEMA_UNITS[self.signal], SCHEMA_UNITS[self.signal])
        converted: NDArray[np.float64] = units().Quantity(values, self.unit).to(target).magnitude
        return converted


@dataclass(frozen=True)
class TelemetrySpec:
    files: tuple[Path, ...]
    motor_id: str
    timestamp: TimeSpec
    running: tuple[str, frozenset[str]] | None
    """(column, its values that mean running, lower case); None: running while speed (or current) > 0."""
    motor_type: str
    motor_type_column: bool
    signals: tuple[SignalSpec, ...]
    delimiter: str

    def columns(self) -> dict[str, str]:
        """Each column the mapping reads, with the mapping key that names it."""
        found = {self.motor_id: "telemetry.motor_id", self.timestamp.column: "telemetry.timestamp"}
        if self.running is not None:
            found[self.running[0]] = "telemetry.running"
        if self.motor_type_column:
            found[self.motor_type] = "telemetry.motor_type"
        for signal in self.signals:
            found[signal.column] = f"telemetry.signals.{signal.signal}"
        return found


@dataclass(frozen=True)
class LogSpec:
    """A failure or service log: who, when and (failures) how."""

    section: str
    files: tuple[Path, ...]
    motor_id: str
    timestamp: TimeSpec
    mode: str | None
    delimiter: str

    def columns(self) -> dict[str, str]:
        found = {self.motor_id: f"{self.section}.motor_id", self.timestamp.column: f"{self.section}.timestamp"}
        if self.mode is not None:
            found[self.mode] = f"{self.section}.mode"
        return found


@dataclass(frozen=True)
class Mapping:
    path: Path
    telemetry: TelemetrySpec | None
    failures: LogSpec | None
    services: LogSpec | None


def load_mapping(path: Path) -> Mapping:
    """The mapping in `path`, checked; MappingError (one line) for anything that cannot be followed."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise MappingError(f"{path}: not YAML{line}: {getattr(exc, 'problem', None) or exc}") from exc
    try:
        parsed = _Mapping.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise MappingError(f"{path}: {_one_line(exc)}") from exc
    if parsed.telemetry is None and parsed.failures is None and parsed.services is None:
        raise MappingError(f"{path}: nothing to import: give telemetry, failures or services")
    base = path.resolve().parent
    try:
        return Mapping(
            path=path,
            telemetry=_telemetry(parsed.telemetry, base) if parsed.telemetry is not None else None,
            failures=_log("failures", parsed.failures, base) if parsed.failures is not None else None,
            services=_log("services", parsed.services, base) if parsed.services is not None else None,
        )
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from exc


def _one_line(exc: ValidationError) -> str:
    """The most telling of pydantic's errors (a union reports one per branch), as `where: what`."""
    errors = exc.errors(include_url=False, include_input=False)
    error = max(
        errors,
        key=lambda e: (e["type"] == "extra_forbidden", len([p for p in e["loc"] if not _branch(p)]), e["type"]),
    )
    where = ".".join(str(part) for part in error["loc"] if not _branch(part)) or "mapping"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    if error["type"] == "missing":
        return f"{where}: missing"
    return f"{where}: {_SHAPES.sub(lambda found: _SHAPE_NAMES[found.group(1)], error['msg'])}"


_SHAPE_NAMES = {
    "Time": "{column, format, timezone}",
    "Running": "{column, true_values}",
    "Column": "{column}",
    "Signal": "{column, unit}",
}
_SHAPES = re.compile(r"instance of _(Time|Running|Column|Signal)")
_DIMENSIONS = {
    "[temperature]": "a temperature",
    "[mass] / [length] / [time] ** 2": "a pressure",
    "[length] / [time]": "a speed",
    "[length] ** 3 / [time]": "a volume flow",
    "1 / [time]": "a frequency or rotational speed",
    "[current]": "a current",
    "[length] ** 2 * [mass] / [time] ** 2": "a torque or energy",
    "[length] ** 2 * [mass] / [time] ** 3": "a power",
    "[length]": "a length",
    "[time]": "a time",
    "dimensionless": "dimensionless",
}


def _dimension(unit: Any) -> str:
    text = str(unit.dimensionality)
    return _DIMENSIONS.get(text, text)


def _branch(part: Any) -> bool:
    """A union branch in an error's location (`str`, `_Time`, ...), not a key the user wrote."""
    return isinstance(part, str) and (part in {"str", "list[str]", "int", "bool"} or part.startswith("_"))


def _files(section: str, patterns: list[str] | str, base: Path) -> tuple[Path, ...]:
    found: list[Path] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        full = Path(pattern) if Path(pattern).is_absolute() else base / pattern
        matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True)) if glob.has_magic(pattern) else [full]
        matches = [match for match in matches if match.is_file()]
        if not matches:
            what = "matches no file" if glob.has_magic(pattern) else "no such file"
            raise MappingError(f"{section}.files: {pattern!r}: {what} (paths are relative to {base})")
        for match in matches:
            if match.suffix.lower() not in FILE_KINDS:
                kinds = ", ".join(sorted(FILE_KINDS))
                raise MappingError(f"{section}.files: {match.name}: not a file the importer reads ({kinds})")
        found += matches
    return tuple(dict.fromkeys(found))


def _time(section: str, spec: str | _Time) -> TimeSpec:
    if isinstance(spec, str):
        return TimeSpec(spec, ISO8601, None)
    where = f"{section}.timestamp"
    if spec.timezone is not None:
        try:
            ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise MappingError(f"{where}.timezone: {spec.timezone!r} is not a timezone (e.g. Europe/Berlin)") from exc
    if spec.format in (EPOCH_S, EPOCH_MS):
        if spec.timezone is not None:
            raise MappingError(f"{where}.timezone: epoch times need no timezone (they count from 1970 UTC)")
    elif spec.format != ISO8601:
        if "%" not in spec.format:
            formats = f"{ISO8601}, {EPOCH_S}, {EPOCH_MS} or a strftime pattern such as '%d/%m/%Y %H:%M'"
            raise MappingError(f"{where}.format: {spec.format!r} is not {formats}")
        if "%z" not in spec.format and spec.timezone is None:
            raise MappingError(f"{where}: format {spec.format!r} has no UTC offset (%z): give a timezone")
    return TimeSpec(spec.column, spec.format, spec.timezone)


def _signal(name: str, spec: str | _Signal) -> SignalSpec:
    where = f"telemetry.signals.{name}"
    if name not in SIGNALS:
        raise MappingError(f"{where}: {name!r} is not a signal of the telemetry schema ({', '.join(SIGNALS)})")
    column, unit = (spec, None) if isinstance(spec, str) else (spec.column, spec.unit)
    schema_unit = SCHEMA_UNITS[name]
    if unit is None or unit == schema_unit:
        return SignalSpec(name, column, schema_unit)
    registry = units()
    try:
        source = registry.Unit(unit)
    except Exception as exc:  # pint raises a parser's error, an undefined unit's or an attribute error
        raise MappingError(f"{where}.unit: {unit!r} is not a unit pint knows") from exc
    target = registry.Unit(PINT_SPELLING.get(schema_unit, schema_unit))
    if source.dimensionality != target.dimensionality:
        raise MappingError(
            f"{where}.unit: {unit!r} is {_dimension(source)}, but {name} is {_dimension(target)} ({schema_unit})"
        )
    return SignalSpec(name, column, unit)


def _telemetry(spec: _Telemetry, base: Path) -> TelemetrySpec:
    running: tuple[str, frozenset[str]] | None = None
    if isinstance(spec.running, str):
        running = (spec.running, frozenset(DEFAULT_TRUE_VALUES))
    elif spec.running is not None:
        values = frozenset(_text(value).lower() for value in spec.running.true_values)
        running = (spec.running.column, values)
    signals = tuple(_signal(name, signal) for name, signal in spec.signals.items())
    if running is None and not {"speed_rpm", "current_a"} & {signal.signal for signal in signals}:
        raise MappingError("telemetry.running: missing, and no speed_rpm or current_a signal to tell it from")
    if isinstance(spec.motor_type, str):
        if not re.fullmatch(MOTOR_TYPE_PATTERN.strip("^$"), spec.motor_type):
            raise MappingError(f"telemetry.motor_type: {spec.motor_type!r} does not match {MOTOR_TYPE_PATTERN}")
        motor_type, from_column = spec.motor_type, False
    else:
        motor_type, from_column = spec.motor_type.column, True
    return TelemetrySpec(
        files=_files("telemetry", spec.files, base),
        motor_id=spec.motor_id,
        timestamp=_time("telemetry", spec.timestamp),
        running=running,
        motor_type=motor_type,
        motor_type_column=from_column,
        signals=signals,
        delimiter=spec.delimiter,
    )


def _log(section: str, spec: _Services, base: Path) -> LogSpec:
    return LogSpec(
        section=section,
        files=_files(section, spec.files, base),
        motor_id=spec.motor_id,
        timestamp=_time(section, spec.timestamp),
        mode=spec.mode if isinstance(spec, _Failures) else None,
        delimiter=spec.delimiter,
    )


def _text(value: str | int | bool) -> str:
    """A YAML scalar as the text a CSV cell holds (YAML reads `true` and `1` as a boolean and a number)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
