"""Detector configuration: every threshold, interval and debounce in one validated model."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from motor_maintenance.telemetry import SIGNALS, CachingModel

SCHEDULE_ALARM = "schedule"
PREDICTIVE_ALARM = "predictive"
OFFLINE_ALARM = "offline"
FAILURE_MODE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
FAILURE_MODES_MAX = 50
DEFAULT_FAILURE_MODES: tuple[str, ...] = (
    "bearing_wear",
    "winding_insulation",
    "cooling_loss",
    "impeller_wear",
    "other",
)
"""What an operator may report: the simulator's wear modes (device/physics.py, WEAR_MODES) and `other`."""
DESCRIPTION_MAX = 500
ADVICE_MAX = 1000
"""Characters of a rule's description and advice: both travel in every alarm event, which bounds them."""


class Severity(StrEnum):
    """How urgently people must act; SNS subscribers can filter on it."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class _Frozen(CachingModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConditionRule(_Frozen):
    """A threshold on a live signal, held for a minimum duration, cleared with hysteresis."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Alarm name, unique per motor.")
    signal: str = Field(description="Telemetry field the rule watches, e.g. 'fluid_temp_c'.")
    direction: Literal["above", "below"] = "above"
    raise_threshold: float = Field(description="The rule starts to hold when the signal crosses this...")
    clear_threshold: float = Field(description="...and stops holding once it is back past this one.")
    min_duration_s: float = Field(default=0, ge=0, description="How long the raise threshold must be crossed.")
    severity: Severity = Severity.HIGH
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    advice: str = Field(default="", max_length=ADVICE_MAX, description="What a maintenance engineer should do next.")

    @model_validator(mode="after")
    def _hysteresis_points_the_right_way(self) -> ConditionRule:
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown signal {self.signal!r}; expected one of {', '.join(SIGNALS)}")
        if self.direction == "above" and self.clear_threshold > self.raise_threshold:
            raise ValueError("for an 'above' rule, clear_threshold must not exceed raise_threshold")
        if self.direction == "below" and self.clear_threshold < self.raise_threshold:
            raise ValueError("for a 'below' rule, clear_threshold must not be below raise_threshold")
        return self

    def crossed(self, value: float) -> bool:
        """Whether the value is past the raise threshold."""
        return value > self.raise_threshold if self.direction == "above" else value < self.raise_threshold

    def back_to_normal(self, value: float) -> bool:
        """Whether the value is back past the clear threshold (the hysteresis band is left)."""
        return value <= self.clear_threshold if self.direction == "above" else value >= self.clear_threshold


class ScheduleRule(_Frozen):
    """Service by run hours: the seed's schedule-based strategy."""

    service_interval_h: float = Field(default=1000.0, gt=0, description="Run hours between services.")
    severity: Severity = Severity.MEDIUM
    advice: str = Field(
        default="Plan the scheduled service, then report 'service_complete' to reset the run-hours counter.",
        max_length=ADVICE_MAX,
    )


class PredictiveRule(_Frozen):
    """The model's failure probability, debounced over consecutive predictions."""

    raise_threshold: float = Field(default=0.5, ge=0, le=1, description="Probability that counts as a warning.")
    clear_threshold: float = Field(default=0.3, ge=0, le=1, description="Probability below which it clears.")
    consecutive: int = Field(default=2, ge=1, le=100, description="Warnings in a row needed to raise.")
    severity: Severity = Severity.HIGH
    advice: str = Field(
        default="Inspect the motor within 24 hours: bearings (vibration, temperature), winding insulation, "
        "impeller and seals. Plan the repair before it fails.",
        max_length=ADVICE_MAX,
    )

    @model_validator(mode="after")
    def _clear_below_raise(self) -> PredictiveRule:
        if self.clear_threshold > self.raise_threshold:
            raise ValueError("clear_threshold must not exceed raise_threshold")
        return self


class OfflineRule(_Frozen):
    """A motor that was running and has gone silent: the heartbeat IoT Events detector models were used for."""

    enabled: bool = Field(default=True, description="Watch running motors for silence (off: no offline alarm).")
    after_s: float = Field(
        default=600.0,
        ge=1,
        le=7 * 24 * 3600,
        description="Seconds without a reading, after a reading that said the motor was running, that raise it. "
        "Checked by a timer every minute, so it is raised up to about a minute after this.",
    )
    severity: Severity = Severity.HIGH
    advice: str = Field(
        default="The motor was running and has stopped reporting. Check its power, the sensor gateway and the "
        "network; if the motor itself stopped, find out why before it is restarted.",
        max_length=ADVICE_MAX,
    )

    @cached_property
    def after_ms(self) -> int:
        """`after_s` in milliseconds, the unit of the state's times (worked out once: every reading asks)."""
        return int(self.after_s * 1000)


class ModelHealthRule(_Frozen):
    """When the failure-prediction model counts as unavailable, for one fleet-wide health alarm."""

    unavailable_after: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed predictions in a row (in one execution environment) that raise model_unavailable.",
    )
    recover_after: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Answers in a row (in one execution environment) that clear it: a throttled endpoint that "
        "answers now and then does not announce a recovery and a new outage every few readings.",
    )
    severity: Severity = Severity.HIGH
    advice: str = Field(
        default="Check the SageMaker endpoint: its status, its invocation errors and throttling (raise the "
        "stack's EndpointMaxConcurrency if it throttles), and the reason in the InferenceFunction log lines "
        "'prediction failed'.",
        max_length=ADVICE_MAX,
    )


DEFAULT_CONDITIONS: tuple[ConditionRule, ...] = (
    ConditionRule(
        name="fluid_overtemperature",
        signal="fluid_temp_c",
        raise_threshold=200.0,
        clear_threshold=190.0,
        min_duration_s=300.0,
        severity=Severity.CRITICAL,
        description="Fluid temperature above 200 C for 5 minutes",
        advice="Check the cooling circuit and fluid level; reduce load or stop the pump if it keeps rising.",
    ),
    ConditionRule(
        name="vibration_zone_d",
        signal="vibration_mm_s",
        raise_threshold=11.2,
        clear_threshold=7.1,
        min_duration_s=60.0,
        severity=Severity.CRITICAL,
        description="Vibration in ISO 10816 zone D (above 11.2 mm/s) for 1 minute",
        advice="Vibration this high damages the machine: check bearings, alignment, balance and mounting; "
        "stop the motor if it persists.",
    ),
)


class DetectorConfig(_Frozen):
    """All the maintenance rules for a fleet.

    Defaults follow the brief: the original sample's three strategies (a run-hours service
    interval, fluid temperature above 200 C for 5 minutes, failure probability of 0.5 or more)
    with hysteresis and debounce added, plus an ISO 10816 zone D vibration rule and an offline
    alarm for a running motor silent for 10 minutes. The original's own service interval was
    6000 run minutes (100 h); the brief's 1000 h is the default here.
    """

    schedule: ScheduleRule = ScheduleRule()
    conditions: tuple[ConditionRule, ...] = DEFAULT_CONDITIONS
    predictive: PredictiveRule = PredictiveRule()
    offline: OfflineRule = OfflineRule()
    model_health: ModelHealthRule = ModelHealthRule()
    latch: bool = Field(
        default=True, description="A cleared alarm nobody acknowledged waits in LATCHED (IoT Events' latch)."
    )
    max_gap_s: float = Field(
        default=600.0,
        gt=0,
        description="Longest gap between readings counted as run time and as a condition watched throughout; "
        "the offline rule's after_s instead, if that is longer (see `silence_s`).",
    )
    max_clock_skew_s: float = Field(
        default=300.0, gt=0, description="Readings stamped further than this in the future are rejected."
    )
    max_snooze_s: float = Field(default=7 * 24 * 3600.0, gt=0, description="Longest snooze an operator may set.")
    failure_modes: tuple[Annotated[str, Field(pattern=FAILURE_MODE_PATTERN)], ...] = Field(
        default=DEFAULT_FAILURE_MODES,
        min_length=1,
        max_length=FAILURE_MODES_MAX,
        description="The failure modes a report_failure may name (lower-case names, unique).",
    )

    @model_validator(mode="after")
    def _names_unique(self) -> DetectorConfig:
        names = [rule.name for rule in self.conditions]
        reserved = {SCHEDULE_ALARM, PREDICTIVE_ALARM, OFFLINE_ALARM} & set(names)
        if reserved:
            raise ValueError(f"condition rule names {sorted(reserved)} are reserved")
        if len(set(names)) != len(names):
            raise ValueError("condition rule names must be unique")
        if len(set(self.failure_modes)) != len(self.failure_modes):
            raise ValueError("failure_modes must be unique")
        return self

    def alarm_names(self) -> tuple[str, ...]:
        """Every alarm a motor has under this configuration."""
        return self._alarm_names

    @cached_property
    def _alarm_names(self) -> tuple[str, ...]:
        offline = (OFFLINE_ALARM,) if self.offline.enabled else ()
        return (SCHEDULE_ALARM, *(rule.name for rule in self.conditions), PREDICTIVE_ALARM, *offline)

    @cached_property
    def silence_s(self) -> float:
        """The longest gap between two readings that still counts as run time, and over which a condition counts
        as watched throughout: `max_gap_s`, or the offline rule's `after_s` if it is on and longer.

        A gap the offline alarm does not call an outage is the motor's ordinary reporting interval: a motor
        that reports every hour, with the offline alarm set past an hour, earns an hour of run time a reading
        (not `max_gap_s`), and a condition crossed on two readings an hour apart has held for that hour.
        """
        return max(self.max_gap_s, self.offline.after_s) if self.offline.enabled else self.max_gap_s

    def condition(self, name: str) -> ConditionRule | None:
        """The condition rule with this name, if configured."""
        return next((rule for rule in self.conditions if rule.name == name), None)

    @classmethod
    def with_overrides(cls, overrides: dict[str, Any] | None) -> DetectorConfig:
        """Defaults with an operator's overrides (e.g. from SSM Parameter Store) applied on top.

        Top-level keys replace the default's; nested rule models are merged field by field, so
        `{"schedule": {"service_interval_h": 500}}` keeps the schedule rule's severity and advice.
        """
        if overrides is not None and not isinstance(overrides, dict):
            raise ValueError(f"overrides must be a JSON object, not {type(overrides).__name__}")
        if not overrides:
            return cls()
        base = cls().model_dump()
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return cls.model_validate(base)
