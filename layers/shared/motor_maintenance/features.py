"""The one feature function: training and the inference Lambda both call it, so they cannot drift.

A reading alone says little about wear; its trend does. Per motor we keep exponentially weighted
means of the signals that degrade (temperatures, vibration, current, hydraulics) with a fast
(1 h) and a slow (24 h) time constant, in operating time. Their difference is the trend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from motor_maintenance.telemetry import SIGNALS, Telemetry

TRACKED: tuple[str, ...] = (
    "winding_temp_c",
    "bearing_temp_c",
    "fluid_temp_c",
    "vibration_mm_s",
    "current_a",
    "pressure_bar",
    "flow_m3h",
)
FAST_TAU_S = 3600.0
SLOW_TAU_S = 24 * 3600.0
MAX_STEP_S = 600.0
"""A gap longer than this (motor silent, or stopped) advances the averages by this much only."""

FEATURE_NAMES: tuple[str, ...] = (
    "running",
    *SIGNALS,
    *(f"{name}_ewm_1h" for name in TRACKED),
    *(f"{name}_ewm_24h" for name in TRACKED),
    *(f"{name}_trend" for name in TRACKED),
    "winding_rise_c",
    "bearing_rise_c",
    "hydraulic_efficiency",
)
"""Column order of the model's input (the CSV rows sent to SageMaker)."""

NAN = float("nan")


@dataclass(frozen=True, slots=True)
class RunningStats:
    """Per-motor running statistics the features need; stored with the motor's state."""

    last_ts_ms: int | None = None
    fast: dict[str, float] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)
    operating_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"last_ts_ms": self.last_ts_ms, "fast": self.fast, "slow": self.slow, "operating_s": self.operating_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunningStats:
        if not data:
            return cls()
        return cls(
            last_ts_ms=data.get("last_ts_ms"),
            fast={k: float(v) for k, v in data.get("fast", {}).items()},
            slow={k: float(v) for k, v in data.get("slow", {}).items()},
            operating_s=float(data.get("operating_s", 0.0)),
        )


def compute_features(reading: Telemetry, stats: RunningStats | None) -> tuple[list[float], RunningStats]:
    """Feature vector (in FEATURE_NAMES order, NaN where unknown) and the updated statistics.

    Averages advance only while the motor runs: a stopped pump cools down, which says nothing
    about its wear. The first reading seeds the averages with its own values.
    """
    stats = stats or RunningStats()
    ts_ms = reading.ts_ms
    signals = reading.signals()
    fast = dict(stats.fast)
    slow = dict(stats.slow)
    operating_s = stats.operating_s
    if reading.running:
        step_s = 0.0 if stats.last_ts_ms is None else min(max((ts_ms - stats.last_ts_ms) / 1000, 0.0), MAX_STEP_S)
        operating_s += step_s
        a_fast = 1.0 - math.exp(-step_s / FAST_TAU_S)
        a_slow = 1.0 - math.exp(-step_s / SLOW_TAU_S)
        for name in TRACKED:
            value = signals.get(name)
            if value is None:
                continue
            if name not in fast:
                fast[name] = slow[name] = value
            else:
                fast[name] += a_fast * (value - fast[name])
                slow[name] += a_slow * (value - slow[name])
    new_stats = RunningStats(last_ts_ms=ts_ms, fast=fast, slow=slow, operating_s=operating_s)

    ambient = signals.get("ambient_temp_c")
    vector: list[float] = [1.0 if reading.running else 0.0]
    vector.extend(signals.get(name, NAN) for name in SIGNALS)
    vector.extend(fast.get(name, NAN) for name in TRACKED)
    vector.extend(slow.get(name, NAN) for name in TRACKED)
    vector.extend(fast[name] - slow[name] if name in fast else NAN for name in TRACKED)
    vector.append(_difference(signals.get("winding_temp_c"), ambient))
    vector.append(_difference(signals.get("bearing_temp_c"), ambient))
    vector.append(_hydraulic_efficiency(signals))
    return vector, new_stats


def _difference(value: float | None, reference: float | None) -> float:
    return NAN if value is None or reference is None else value - reference


def _hydraulic_efficiency(signals: dict[str, float]) -> float:
    """Hydraulic power over shaft power: falls as an impeller wears or cavitates."""
    try:
        shaft_w = signals["torque_nm"] * signals["speed_rpm"] * 2 * math.pi / 60
        hydraulic_w = signals["pressure_bar"] * 1e5 * signals["flow_m3h"] / 3600
    except KeyError:
        return NAN
    if shaft_w < 100.0:  # idling or stopped: the ratio is noise
        return NAN
    return hydraulic_w / shaft_w


def to_csv_row(features: list[float]) -> str:
    """One text/csv row as SageMaker's XGBoost container reads it: empty field for a missing value."""
    return ",".join("" if math.isnan(value) else repr(value) for value in features)
