"""What a real plant adds to the ideal physics: noisier sensors that drift and drop out, motors of
several ratings, and maintenance done when a condition alarm is acted on.

`FleetConfig(plant=PlantConfig())` turns it on (`python model/train.py --plant`, `python
device/history.py --plant`); without it the fleet is the ideal simulator, reading for reading. The
plant draws from a random stream of its own. Documented in docs/model.md ("A real plant").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from device.ratings import RATINGS, MotorRating
from motor_maintenance.config import DetectorConfig

F64 = NDArray[np.float64]
YEAR_S = 365.0 * 86_400.0

DRIFT_OFFSET: dict[str, float] = {
    "winding_temp_c": 3.0,
    "bearing_temp_c": 3.0,
    "fluid_temp_c": 3.0,
    "ambient_temp_c": 1.0,
    "pressure_bar": 0.1,
}
"""Zero drift: standard deviation after a year (random walk, in the signal's unit)."""
DRIFT_GAIN: dict[str, float] = {"vibration_mm_s": 0.08, "flow_m3h": 0.04, "current_a": 0.01, "torque_nm": 0.02}
"""Sensitivity drift: standard deviation of the relative gain error after a year (random walk)."""


def _alarm_thresholds() -> dict[str, float]:
    """The default condition rules that fire on a high reading: what a plant's operators are alerted to."""
    return {rule.signal: rule.raise_threshold for rule in DetectorConfig().conditions if rule.direction == "above"}


@dataclass(frozen=True, slots=True)
class PlantConfig:
    """How far a plant is from the ideal simulator. Same seed, same plant."""

    noise_scale: float = 4.0
    """Multiplies every sensor's noise of the ideal simulator."""
    drift_offset: dict[str, float] = field(default_factory=lambda: dict(DRIFT_OFFSET))
    drift_gain: dict[str, float] = field(default_factory=lambda: dict(DRIFT_GAIN))
    dropouts_per_sensor_day: float = 0.1
    """How often a sensor stops reporting (its signal missing from the reading), per sensor and day."""
    dropout_mean_h: float = 4.0
    """Mean length of a dropout (exponential)."""
    ratings: tuple[MotorRating, ...] = tuple(RATINGS.values())
    """Each motor gets one of these nameplates, drawn at random."""
    act_on_alarm: float = 0.5
    """Share of condition alarms the plant acts on by servicing the motor (the rest are ignored)."""
    response_h: tuple[float, float] = (2.0, 24.0)
    """The service comes this long after the alarm (uniform)."""
    alarm_thresholds: dict[str, float] = field(default_factory=_alarm_thresholds)
    """Signal: raise threshold of the condition alarms that are acted on (the detector's defaults)."""


class Plant:
    """The plant's state over a fleet: each sensor's drift and dropout, and the services booked."""

    def __init__(self, config: PlantConfig, motors: int, rng: np.random.Generator) -> None:
        if config.noise_scale < 0 or not 0 <= config.act_on_alarm <= 1 or config.dropout_mean_h <= 0:
            raise ValueError("noise_scale must not be negative, act_on_alarm within 0..1, dropout_mean_h positive")
        self.config = config
        self.rng = rng
        self.offset = {name: np.zeros(motors) for name in config.drift_offset}
        self.gain = {name: np.ones(motors) for name in config.drift_gain}
        self.dropped: dict[str, NDArray[np.bool_]] = {}
        self.service_due_ms = np.full(motors, np.iinfo(np.int64).max, dtype=np.int64)
        self.alarm_seen = np.zeros(motors, dtype=bool)
        """The motor's alarm was already decided on (acted on or ignored) and has not cleared since."""

    def ratings(self, motors: int) -> list[MotorRating]:
        """A nameplate for each motor, drawn from the configured ones."""
        choice = self.rng.integers(0, len(self.config.ratings), motors)
        return [self.config.ratings[int(index)] for index in choice]

    def sense(self, signals: dict[str, F64], dt_s: float) -> dict[str, F64]:
        """The ideal sensors' readings as this plant's sensors report them: drifted, some missing (NaN)."""
        config, rng = self.config, self.rng
        motors = len(next(iter(signals.values())))
        root_years = math.sqrt(dt_s / YEAR_S)
        steps = rng.standard_normal((len(self.offset) + len(self.gain), motors)) * root_years
        for row, (name, sigma) in enumerate(config.drift_offset.items()):
            self.offset[name] += sigma * steps[row]
        for row, (name, sigma) in enumerate(config.drift_gain.items(), start=len(self.offset)):
            self.gain[name] = np.maximum(self.gain[name] + sigma * steps[row], 0.5)
        p_start = -math.expm1(-config.dropouts_per_sensor_day * dt_s / 86_400.0)
        p_end = -math.expm1(-dt_s / (config.dropout_mean_h * 3600.0))
        draws = rng.random((len(signals), motors))
        sensed: dict[str, F64] = {}
        for draw, (name, values) in zip(draws, signals.items(), strict=True):
            dropped = self.dropped.get(name)
            dropped = draw < p_start if dropped is None else np.where(dropped, draw >= p_end, draw < p_start)
            self.dropped[name] = dropped
            value = values * self.gain[name] if name in self.gain else values
            value = value + self.offset[name] if name in self.offset else value
            sensed[name] = np.where(dropped, np.nan, value)
        return sensed

    def services_due(self, signals: dict[str, F64], running: NDArray[np.bool_], now_ms: int) -> list[int]:
        """Motors to service now: book a service for a share of new alarms, and return those that are due."""
        config = self.config
        alarm = np.zeros(len(running), dtype=bool)
        for name, threshold in config.alarm_thresholds.items():
            with np.errstate(invalid="ignore"):
                alarm |= running & (signals[name] > threshold)  # a missing reading raises nothing
        new = alarm & ~self.alarm_seen
        self.alarm_seen = alarm | (self.alarm_seen & ~running)  # a stopped motor's alarm is held, as LATCHED
        lo, hi = config.response_h
        for column in np.flatnonzero(new):
            booked = self.service_due_ms[column] != np.iinfo(np.int64).max
            if not booked and self.rng.random() < config.act_on_alarm:
                self.service_due_ms[column] = now_ms + round(self.rng.uniform(lo, hi) * 3_600_000)
        due = np.flatnonzero(self.service_due_ms <= now_ms)
        return [int(column) for column in due]

    def serviced(self, column: int) -> None:
        """A service recalibrates the motor's sensors and ends its booking."""
        self.service_due_ms[column] = np.iinfo(np.int64).max
        self.alarm_seen[column] = False
        for offsets in self.offset.values():
            offsets[column] = 0.0
        for gains in self.gain.values():
            gains[column] = 1.0
