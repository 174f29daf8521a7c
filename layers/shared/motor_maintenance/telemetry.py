"""The telemetry contract: one motor reading, as devices publish it and every component reads it."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Self, cast

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

MOTOR_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MOTOR_TYPE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

# Readings stamped before this are clock faults (an unset RTC reports 1970), not history.
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(2100, 1, 1, tzinfo=UTC)

MotorId = Annotated[str, Field(pattern=MOTOR_ID_PATTERN, description="Motor (and IoT thing) name.")]


def _plausible(value: datetime) -> datetime:
    if not EARLIEST_TS <= value < LATEST_TS:
        raise ValueError(f"timestamp {value.isoformat()} is outside {EARLIEST_TS.year}..{LATEST_TS.year}")
    return value


def _parse(value: Any) -> datetime:
    return parse_timestamp(value)


Timestamp = Annotated[datetime, BeforeValidator(_parse), AfterValidator(_plausible)]
"""A moment: ISO-8601 with a UTC offset or epoch milliseconds, between 2000 and 2100, as aware UTC."""


def _signal(lo: float, hi: float, unit: str, what: str) -> Any:
    """A physical signal: optional, finite, within what the physics of a motor allows."""
    return Field(default=None, ge=lo, le=hi, description=f"{what} [{unit}], {lo}..{hi}")


class CachingModel(BaseModel):
    """A frozen model that keeps values worked out once from its fields in its `__dict__`, as a cached_property does."""

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, without the values worked out from the fields: `update` may change the fields."""
        copied = super().model_copy(update=update, deep=deep)
        for name in copied.__dict__.keys() - type(self).model_fields.keys():
            del copied.__dict__[name]
        return copied


class Telemetry(CachingModel):
    """One reading from one motor.

    Ranges are the limits of physics and sensors, not alarm thresholds: a value outside them is a
    broken sensor or a forged message and the reading is rejected, never clipped.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    motor_id: MotorId
    motor_type: str = Field(pattern=MOTOR_TYPE_PATTERN, description="Motor model or class, e.g. 'pump-37kw'.")
    ts: Timestamp = Field(description="When the reading was taken: ISO-8601 with a UTC offset, or epoch ms.")
    seq: int = Field(ge=0, lt=2**53, description="Sequence number, monotonic per device boot.")
    running: bool = Field(description="Whether the motor is energised and turning.")

    speed_rpm: float | None = _signal(0, 20_000, "rpm", "shaft speed")
    torque_nm: float | None = _signal(-50_000, 50_000, "N m", "shaft torque (negative when braking)")
    current_a: float | None = _signal(0, 10_000, "A", "phase current, RMS")
    winding_temp_c: float | None = _signal(-60, 300, "degC", "stator winding temperature")
    bearing_temp_c: float | None = _signal(-60, 300, "degC", "drive-end bearing temperature")
    fluid_temp_c: float | None = _signal(-60, 500, "degC", "process fluid temperature")
    ambient_temp_c: float | None = _signal(-60, 70, "degC", "ambient air temperature")
    vibration_mm_s: float | None = _signal(0, 200, "mm/s", "vibration velocity, RMS (ISO 10816)")
    pressure_bar: float | None = _signal(-1, 1_000, "bar", "discharge pressure, gauge")
    flow_m3h: float | None = _signal(0, 100_000, "m3/h", "volumetric flow")

    fault: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]{1,40}$",
        description="Set by the device when it has stopped on a fault, e.g. 'bearing_failure'.",
    )

    @model_validator(mode="after")
    def _stopped_motor_does_not_spin(self) -> Telemetry:
        if self.fault is not None and self.running:
            raise ValueError("a motor that reports a fault must report running=false")
        return self

    @property
    def ts_ms(self) -> int:
        """The reading time in epoch milliseconds."""
        # Worked out once, the model being frozen: the features, the detector and their callers each ask.
        # Kept by hand where a cached_property keeps it: Python 3.11's takes a lock, dearer than the work.
        cached: int | None = self.__dict__.get("_ts_ms")
        if cached is None:
            cached = self.__dict__["_ts_ms"] = to_epoch_ms(self.ts)
        return cached

    def signals(self) -> dict[str, float]:
        """The physical signals this reading carries, by name (missing ones left out)."""
        fields = self.__dict__  # where pydantic keeps the field values: a third cheaper than getattr, once per reading
        signals = {}
        for name in SIGNALS:  # a loop: Python 3.11 calls a function for each comprehension (3.12 inlines them)
            value = fields[name]
            if value is not None:
                signals[name] = value
        return signals

    def signal_values(self) -> tuple[float, ...]:
        """The physical signals in SIGNALS order, NaN for a missing one (the features' view of a reading)."""
        values: tuple[float | None, ...] = _signal_fields(self.__dict__)
        if None in values:
            return tuple([_NAN if value is None else value for value in values])
        return cast(tuple[float, ...], values)


SIGNALS: tuple[str, ...] = (
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
)
"""Names of the numeric physical signals, in the order features and CSV rows use them."""
_signal_fields = operator.itemgetter(*SIGNALS)
_NAN = float("nan")


class TelemetryEvent(Telemetry):
    """A reading as the IoT rule delivers it: the device's payload plus what the rule adds."""

    topic_motor_id: str | None = Field(
        default=None, description="Motor id taken from the topic by the rule (topic(2)); must match motor_id."
    )
    received_at: int | None = Field(
        default=None,
        ge=0,
        lt=int(LATEST_TS.timestamp() * 1000),  # unbounded, 10**400 overflowed the latency metric's float
        description="When IoT Core received the message, epoch ms (timestamp()).",
    )

    @model_validator(mode="after")
    def _topic_matches_payload(self) -> TelemetryEvent:
        if self.topic_motor_id is not None and self.topic_motor_id != self.motor_id:
            raise ValueError(f"motor_id {self.motor_id!r} does not match the topic's motor id {self.topic_motor_id!r}")
        return self

    def reading(self) -> Telemetry:
        """The device's reading without the rule's envelope fields."""
        # Already validated as a whole: copy the fields rather than validate them a second time.
        return Telemetry.model_construct(**{name: getattr(self, name) for name in Telemetry.model_fields})


def parse_timestamp(value: Any) -> datetime:
    """Accept ISO-8601 with an explicit UTC offset, or epoch milliseconds; return an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be an ISO-8601 string or epoch milliseconds, not a boolean")
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("timestamp must be finite")
        if not 0 <= value < 10**15:
            raise ValueError("epoch-millisecond timestamp out of range")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    elif isinstance(value, str):
        if len(value) > 40:
            raise ValueError("timestamp string is too long to be ISO-8601")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError as exc:
            raise ValueError(f"timestamp {value!r} is not ISO-8601") from exc
    else:
        raise ValueError("timestamp must be an ISO-8601 string or epoch milliseconds")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset (e.g. '2026-01-01T12:00:00Z')")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 shifted past datetime's range by its offset
        raise ValueError(f"timestamp {value!r} is out of range") from exc


def to_epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return round(moment.timestamp() * 1000)


MAX_REASON_ERRORS = 10
"""A payload can break every rule at once (20,000 unknown fields fit in one message): a reason names ten."""
_MAX_NAME_CHARS = 64
_MAX_MESSAGE_CHARS = 300
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each offending field and why (the first ten, then how many more), for logs and metrics.

    Field names and some messages come from the payload. A name that is not plain ASCII letters,
    digits, '_' and '-' is quoted with escapes, so a key cannot break the line, pass for another
    field (a Cyrillic 'o' in 'motor_id') or hold characters a UTF-8 log cannot write (a lone
    surrogate); names and messages are cut short so that the line stays a line.
    """
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for error in errors[:MAX_REASON_ERRORS]:
        location = ".".join(_field_name(part) for part in error["loc"]) or "payload"
        parts.append(f"{location}: {_printable(error['msg'], _MAX_MESSAGE_CHARS)}")
    if len(errors) > MAX_REASON_ERRORS:
        parts.append(f"and {len(errors) - MAX_REASON_ERRORS} more")
    return "; ".join(parts)


def _field_name(part: str | int) -> str:
    if isinstance(part, int) or _PLAIN_NAME.fullmatch(part):
        return str(part)
    return ascii(part[:_MAX_NAME_CHARS]) + ("..." if len(part) > _MAX_NAME_CHARS else "")


def _printable(text: str, limit: int) -> str:
    if not (text.isascii() and text.isprintable()):
        text = ascii(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."
