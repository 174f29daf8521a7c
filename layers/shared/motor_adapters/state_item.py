"""The motor's state item in DynamoDB, format 3: the MotorState in one compact binary attribute, within one write unit.

A state is rewritten on every reading, and DynamoDB bills a write per started kilobyte of the item, so the
item is kept under 1 KB for a motor with the default configuration and every alarm in use (docs/costs.md):

- fields in a fixed order, each integer a variable-length number, each time in milliseconds as its distance
  from the last reading's time (a few bytes instead of thirteen digits);
- the running statistics as 8-byte doubles, exactly as computed (the features read back what they wrote);
- the readings' values, the drivers' contributions, the alarms' last values and the statistics' operating
  time and interval as a decimal integer and its number of decimals when that reads back as the very same
  double (a reading of 1294.2: three bytes), else as an 8-byte double;
- names (signals, statistics, alarms, drivers' features, failure modes) as one byte when they are in NAMES,
  else as text;
- operator actions' ids as 16 bytes when they are UUIDs, else as text; a model version as its 6 bytes when
  it is "m-" and 12 hex digits (model/artifact.py), else as text.

Formats 2 (the same fields, each of those numbers a double, the failure mode and the model version as text)
and 1 (the MotorState as JSON text in the attribute `state`) are still read (`state_of`); the next write of
that motor stores format 3. NAMES and ALARM_STATES are part of the format: append to them, never reorder.
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
from typing import Any

from motor_maintenance.alarms import AlarmEvent, AlarmState
from motor_maintenance.features import RunningStats
from motor_maintenance.prediction import DRIVERS_MAX, Driver
from motor_maintenance.state import AlarmStatus, FailureRecord, MotorState

FORMAT = 3
READ_FORMATS = (2, 3)
"""The formats of the binary attribute `decode` reads, and `encode` writes (FORMAT unless told otherwise)."""
FORMAT_2_NAMES = 55
"""How many of NAMES format 2 knew: a format-2 state writes the others as text, as format-2 code reads them."""
STATE_ATTRIBUTE = "s"
"""The binary attribute that holds a format-2 or format-3 state."""
LEGACY_STATE_ATTRIBUTE = "state"
"""The text attribute that held a format-1 state (JSON)."""

NAMES: tuple[str, ...] = (
    "speed_rpm",
    "torque_nm",
    "current_a",
    "winding_temp_c",
    "bearing_temp_c",
    "fluid_temp_c",
    "ambient_temp_c",
    "vibration_mm_s",
    "pressure_bar",
    "flow_m3h",
    "winding_heating_k_per_a2",
    "current_a_per_kw",
    "schedule",
    "fluid_overtemperature",
    "vibration_zone_d",
    "predictive",
    "offline",
    "running",
    "winding_temp_c_ewm_1h",
    "bearing_temp_c_ewm_1h",
    "fluid_temp_c_ewm_1h",
    "vibration_mm_s_ewm_1h",
    "current_a_ewm_1h",
    "pressure_bar_ewm_1h",
    "flow_m3h_ewm_1h",
    "winding_temp_c_ewm_24h",
    "bearing_temp_c_ewm_24h",
    "fluid_temp_c_ewm_24h",
    "vibration_mm_s_ewm_24h",
    "current_a_ewm_24h",
    "pressure_bar_ewm_24h",
    "flow_m3h_ewm_24h",
    "winding_temp_c_trend",
    "bearing_temp_c_trend",
    "fluid_temp_c_trend",
    "vibration_mm_s_trend",
    "current_a_trend",
    "pressure_bar_trend",
    "flow_m3h_trend",
    "winding_rise_c",
    "bearing_rise_c",
    "hydraulic_efficiency",
    "winding_heating_k_per_a2_ewm_1h",
    "current_a_per_kw_ewm_1h",
    "winding_heating_k_per_a2_trend",
    "current_a_per_kw_trend",
    "winding_temp_c_drift",
    "bearing_temp_c_drift",
    "fluid_temp_c_drift",
    "vibration_mm_s_drift",
    "current_a_drift",
    "pressure_bar_drift",
    "flow_m3h_drift",
    "winding_heating_k_per_a2_drift",
    "current_a_per_kw_drift",
    # format 3
    "hydraulic_kw_per_a",
    "hydraulic_kw_per_a_ewm_1h",
    "hydraulic_kw_per_a_trend",
    "hydraulic_kw_per_a_drift",
    "hydraulic_kw_per_a_drift_pct",
    "hydraulic_kw_per_a_drift_24h_pct",
    "bearing_wear",
    "winding_insulation",
    "cooling_loss",
    "impeller_wear",
    "other",
)
"""Names written as one byte (their position + 1): the signals, the statistics' quantities, the default alarms, the
features and the default failure modes, as they were when each format was made. Append only (a format-2 item holds
codes of the first 55); other names are written as text."""
ALARM_STATES: tuple[AlarmState, ...] = (
    AlarmState.NORMAL,
    AlarmState.ACTIVE,
    AlarmState.ACKNOWLEDGED,
    AlarmState.LATCHED,
    AlarmState.SNOOZED,
    AlarmState.DISABLED,
)
_NAME_CODES = {name: code for code, name in enumerate(NAMES, start=1)}
_STATE_CODES = {state: code for code, state in enumerate(ALARM_STATES)}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MODEL_VERSION = re.compile(r"m-[0-9a-f]{12}")
_DOUBLE = struct.Struct("<d")
_TEXT, _UUID_BYTES = 0, 1
_DECIMALS_MAX = 7
"""Decimals a short number may have (three bits of its code)."""


def state_of(item: dict[str, Any]) -> MotorState:
    """The MotorState a state item holds (format 3 or 2, or format 1), with the item's version."""
    version = int(item["version"]["N"])
    if STATE_ATTRIBUTE in item:
        return decode(item["motor_id"]["S"], bytes(item[STATE_ATTRIBUTE]["B"]), version)
    state = MotorState.from_dict(json.loads(item[LEGACY_STATE_ATTRIBUTE]["S"]))
    state.version = version
    return state


def encode(state: MotorState, state_format: int = FORMAT) -> bytes:
    """The state in `state_format` (3, or 2 for code that reads format 2 only: a stack being upgraded), without
    its motor id and version (the item's key and `version` hold them)."""
    if state_format not in READ_FORMATS:
        raise ValueError(f"state item format {state_format}: not one of {READ_FORMATS}")
    out = _Writer(state_format)
    base = state.last_ts_ms or 0
    out.uint(state_format)
    out.opt_text(state.motor_type)
    out.opt_int(state.last_ts_ms)
    out.opt_int(state.last_seq)
    out.uint(1 if state.last_running else 0)
    for ms in (state.last_heard_ms, state.next_check_ms):
        out.opt_int(None if ms is None else ms - base)
    out.double(state.run_hours)
    out.opt_int(None if state.last_service_ms is None else state.last_service_ms - base)
    out.opt_double(state.failure_probability)
    out.opt_int(None if state.probability_ts_ms is None else state.probability_ts_ms - base)
    out.uint(len(state.probability_drivers))
    for driver in state.probability_drivers:
        out.name(driver.feature)
        out.number(driver.contribution)
    out.uint(len(state.last_readings))
    for name, value in state.last_readings.items():
        out.name(name)
        out.number(value)
    out.uint(len(state.alarms))
    for name, status in state.alarms.items():
        _write_alarm(out, name, status, base)
    _write_stats(out, state.stats, base)
    out.uint(state.event_seq)
    out.uint(len(state.recent_action_ids))
    for action_id in state.recent_action_ids:
        _write_action_id(out, action_id)
    failure = state.last_failure
    out.uint(0 if failure is None else 1)
    if failure is not None:
        out.signed(failure.at_ms - base)
        if state_format == 2:
            out.text(failure.mode)
        else:
            out.name(failure.mode)
        _write_action_id(out, failure.action_id)
    out.model_version(state.probability_model_version)
    outbox = [event.model_dump(mode="json") for event in state.outbox]
    out.text(json.dumps(outbox, separators=(",", ":")) if outbox else "")
    return bytes(out.data)


def decode(motor_id: str, data: bytes, version: int) -> MotorState:
    """The MotorState `encode` wrote, or format 2 held; ValueError if `data` is neither or is cut short."""
    read = _Reader(data)
    read.format = read.uint()
    if read.format not in READ_FORMATS:
        raise ValueError(f"state of {motor_id}: format {read.format}, not one of {READ_FORMATS}")
    motor_type = read.opt_text()
    last_ts_ms = read.opt_int()
    base = last_ts_ms or 0
    state = MotorState(motor_id, motor_type, version, last_ts_ms, read.opt_int(), read.uint() == 1)
    state.last_heard_ms = read.opt_time(base)
    state.next_check_ms = read.opt_time(base)
    state.run_hours = read.double()
    state.last_service_ms = read.opt_time(base)
    state.failure_probability = read.opt_double()
    state.probability_ts_ms = read.opt_time(base)
    drivers = [Driver(feature=read.name(), contribution=read.number()) for _ in range(read.uint())]
    state.probability_drivers = tuple(drivers[:DRIVERS_MAX])
    state.last_readings = {read.name(): read.number() for _ in range(read.uint())}
    state.alarms = dict(_read_alarm(read, base) for _ in range(read.uint()))
    state.stats = _read_stats(read, base)
    state.event_seq = read.uint()
    state.recent_action_ids = tuple(_read_action_id(read) for _ in range(read.uint()))
    if read.uint():
        at_ms = read.signed() + base
        mode = read.name() if read.format >= 3 else read.text()
        state.last_failure = FailureRecord(at_ms, mode, _read_action_id(read))
    state.probability_model_version = read.model_version()
    outbox = read.text()
    state.outbox = tuple(AlarmEvent.model_validate(event) for event in json.loads(outbox)) if outbox else ()
    if not read.done():
        raise ValueError(f"state of {motor_id}: {len(data) - read.at} bytes after the end of the state")
    return state


def _write_alarm(out: _Writer, name: str, status: AlarmStatus, base: int) -> None:
    out.name(name)
    out.uint(_STATE_CODES[status.state] * 2 + (1 if status.held else 0))
    out.opt_int(None if status.pending_since_ms is None else status.pending_since_ms - base)
    out.uint(status.consecutive)
    for ms in (status.active_since_ms, status.snoozed_until_ms):
        out.opt_int(None if ms is None else ms - base)
    out.opt_number(status.last_value)
    out.opt_int(None if status.last_seen_ms is None else status.last_seen_ms - base)


def _read_alarm(read: _Reader, base: int) -> tuple[str, AlarmStatus]:
    name = read.name()
    code = read.uint()
    status = AlarmStatus(ALARM_STATES[code // 2], code % 2 == 1, read.opt_time(base), read.uint())
    status.active_since_ms = read.opt_time(base)
    status.snoozed_until_ms = read.opt_time(base)
    status.last_value = read.opt_number()
    status.last_seen_ms = read.opt_time(base)
    return name, status


def _write_stats(out: _Writer, stats: RunningStats, base: int) -> None:
    """The three means of each quantity together (they start together); NaN for one a mean lacks."""
    out.opt_int(None if stats.last_ts_ms is None else stats.last_ts_ms - base)
    out.number(stats.operating_s)
    out.opt_number(stats.interval_s)
    out.uint(1 if stats.last_running else 0)
    means = (stats.fast, stats.slow, stats.baseline)
    names = list(dict.fromkeys([*means[0], *means[1], *means[2]]))
    out.uint(len(names))
    for name in names:
        out.name(name)
        for mean in means:
            out.double(mean.get(name, math.nan))


def _read_stats(read: _Reader, base: int) -> RunningStats:
    last_ts_ms = read.opt_time(base)
    operating_s = read.number()
    interval_s = read.opt_number()
    last_running = read.uint() == 1
    fast: dict[str, float] = {}
    slow: dict[str, float] = {}
    baseline: dict[str, float] = {}
    for _ in range(read.uint()):
        name = read.name()
        for mean in (fast, slow, baseline):
            value = read.double()
            if not math.isnan(value):
                mean[name] = value
    if last_ts_ms is None and not fast and not slow and not baseline and not operating_s and interval_s is None:
        return RunningStats(last_running=last_running)
    return RunningStats(last_ts_ms, fast, slow, operating_s, baseline, interval_s=interval_s, last_running=last_running)


def _write_action_id(out: _Writer, action_id: str) -> None:
    if _UUID.match(action_id):
        out.uint(_UUID_BYTES)
        out.data += uuid.UUID(action_id).bytes
    else:
        out.uint(_TEXT)
        out.text(action_id)


def _read_action_id(read: _Reader) -> str:
    if read.uint() == _UUID_BYTES:
        return str(uuid.UUID(bytes=read.raw(16)))
    return read.text()


def _short_decimal(value: float) -> tuple[int, int] | None:
    """(scaled, decimals) such that scaled / 10**decimals is the very same double as `value`, else None.

    From repr, the shortest decimal that reads back as `value`, and checked to the bit (-0.0, for one, is not
    0 / 1). Never longer than a tag and a double: repr has at most 17 significant digits without an exponent.
    """
    text = repr(value)
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    if "e" in text or "n" in text or len(fraction) > _DECIMALS_MAX:  # an exponent, inf or nan
        return None
    scaled = int(whole + fraction)
    if _DOUBLE.pack(_decimal(scaled, len(fraction))) != _DOUBLE.pack(value):
        return None
    return scaled, len(fraction)


def _decimal(scaled: int, decimals: int) -> float:
    """The double nearest scaled / 10**decimals (Python divides integers correctly rounded): what the reader reads."""
    divisor: int = 10**decimals
    return scaled / divisor


def _zigzag(value: int) -> int:
    """A signed integer as an unsigned one, small either side of 0: 0, -1, 1, -2 ... as 0, 1, 2, 3 ..."""
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


class _Writer:
    """Appends values: unsigned integers as varints (7 bits a byte), signed ones zigzagged, floats as doubles or
    short decimals."""

    def __init__(self, state_format: int = FORMAT) -> None:
        self.data = bytearray()
        self.format = state_format
        self._names = FORMAT_2_NAMES if state_format == 2 else len(NAMES)

    def uint(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"{value} is negative where a count or a code was expected")
        while value > 0x7F:
            self.data.append(value & 0x7F | 0x80)
            value >>= 7
        self.data.append(value)

    def signed(self, value: int) -> None:
        self.uint(_zigzag(value))

    def opt_int(self, value: int | None) -> None:
        """0 for None, else the zigzagged value + 1."""
        self.uint(0 if value is None else _zigzag(value) + 1)

    def double(self, value: float) -> None:
        self.data += _DOUBLE.pack(value)

    def opt_double(self, value: float | None) -> None:
        self.uint(0 if value is None else 1)
        if value is not None:
            self.double(value)

    def number(self, value: float) -> None:
        if self.format == 2:
            self.double(value)
        else:
            self.opt_number(value)

    def opt_number(self, value: float | None) -> None:
        """0 for None; 1 and the double; else 2 + the short decimal's zigzagged integer x 8 + its decimals."""
        if self.format == 2:
            self.opt_double(value)
            return
        if value is None:
            self.uint(0)
            return
        short = _short_decimal(value)
        if short is None:
            self.uint(1)
            self.double(value)
        else:
            scaled, decimals = short
            self.uint(2 + _zigzag(scaled) * (_DECIMALS_MAX + 1) + decimals)

    def model_version(self, value: str | None) -> None:
        """0 for None; 1 and 6 bytes for "m-" and 12 hex digits; else 2 + the text's length, and the text."""
        if self.format == 2:
            self.opt_text(value)
        elif value is None:
            self.uint(0)
        elif _MODEL_VERSION.fullmatch(value):
            self.uint(1)
            self.data += bytes.fromhex(value[2:])
        else:
            encoded = value.encode()
            self.uint(len(encoded) + 2)
            self.data += encoded

    def text(self, value: str) -> None:
        encoded = value.encode()
        self.uint(len(encoded))
        self.data += encoded

    def opt_text(self, value: str | None) -> None:
        if value is None:
            self.uint(0)
        else:
            encoded = value.encode()
            self.uint(len(encoded) + 1)
            self.data += encoded

    def name(self, value: str) -> None:
        code = _NAME_CODES.get(value)
        if code is None or code > self._names:
            self.uint(0)
            self.text(value)
        else:
            self.uint(code)


class _Reader:
    """Reads what _Writer wrote, in the same order; ValueError when the data ends early.

    `format` is the state's: a format-2 state holds doubles where format 3 holds numbers, and a text
    where it holds a model version.
    """

    def __init__(self, data: bytes) -> None:
        self.data, self.at, self.format = data, 0, FORMAT

    def done(self) -> bool:
        return self.at == len(self.data)

    def raw(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.data):
            raise ValueError("the state ends early: the item is cut short or not in a format this code reads")
        chunk, self.at = self.data[self.at : end], end
        return chunk

    def uint(self, shift: int = 0) -> int:
        value = 0
        while True:
            (byte,) = self.raw(1)
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def signed(self) -> int:
        return _unzigzag(self.uint())

    def opt_int(self) -> int | None:
        coded = self.uint()
        return None if coded == 0 else _unzigzag(coded - 1)

    def opt_time(self, base: int) -> int | None:
        offset = self.opt_int()
        return None if offset is None else offset + base

    def double(self) -> float:
        (value,) = _DOUBLE.unpack(self.raw(8))
        return float(value)

    def opt_double(self) -> float | None:
        return self.double() if self.uint() else None

    def number(self) -> float:
        if self.format == 2:
            return self.double()
        value = self.opt_number()
        if value is None:
            raise ValueError("no number where the state must have one: the item is not in a format this code reads")
        return value

    def opt_number(self) -> float | None:
        if self.format == 2:
            return self.opt_double()
        code = self.uint()
        if code < 2:
            return self.double() if code else None
        zigzag, decimals = divmod(code - 2, _DECIMALS_MAX + 1)
        return _decimal(_unzigzag(zigzag), decimals)

    def model_version(self) -> str | None:
        if self.format == 2:
            return self.opt_text()
        code = self.uint()
        if code < 2:
            return "m-" + self.raw(6).hex() if code else None
        return self.raw(code - 2).decode()

    def text(self) -> str:
        return self.raw(self.uint()).decode()

    def opt_text(self) -> str | None:
        size = self.uint()
        return None if size == 0 else self.raw(size - 1).decode()

    def name(self) -> str:
        code = self.uint()
        if code == 0:
            return self.text()
        if code > len(NAMES):
            raise ValueError(f"name code {code} is not in NAMES: a state written by a newer format")
        return NAMES[code - 1]
