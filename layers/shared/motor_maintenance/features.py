"""The one feature function: training and the inference Lambda both call it, so they cannot drift.

A reading alone says little about wear; its trend does. Per motor we keep exponentially weighted
means of the signals that degrade (temperatures, vibration, current, hydraulics) with a fast
(1 h), a slow (24 h) and a baseline (1 week) time constant, in operating time. Fast minus slow is
the trend; fast minus the baseline is the drift from the motor's own normal, which a final phase
of wear lasting a day or two does not yet drag along.

Two physics ratios are tracked the same way, because load moves the raw signals more than early
wear does: the winding's heating per current squared (copper losses go with I^2, so it rises as
insulation or cooling degrade) and the current per kW of shaft power (ageing insulation leaks).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
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
DERIVED: tuple[str, ...] = ("winding_heating_k_per_a2", "current_a_per_kw")
"""Physics ratios computed from a reading's signals, tracked like the signals."""
FAST_TAU_S = 3600.0
SLOW_TAU_S = 24 * 3600.0
BASELINE_TAU_S = 7 * 24 * 3600.0
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
    *DERIVED,
    *(f"{name}_ewm_1h" for name in DERIVED),
    *(f"{name}_trend" for name in DERIVED),
    *(f"{name}_drift" for name in (*TRACKED, *DERIVED)),
)
"""Column order of the model's input (the CSV rows sent to SageMaker)."""

SIGNAL_LABELS: dict[str, str] = {
    "speed_rpm": "shaft speed",
    "torque_nm": "shaft torque",
    "current_a": "motor current",
    "winding_temp_c": "winding temperature",
    "bearing_temp_c": "bearing temperature",
    "fluid_temp_c": "fluid temperature",
    "ambient_temp_c": "ambient temperature",
    "vibration_mm_s": "vibration",
    "pressure_bar": "discharge pressure",
    "flow_m3h": "flow",
}
DERIVED_LABELS: dict[str, str] = {
    "winding_heating_k_per_a2": "winding heating per current squared",
    "current_a_per_kw": "current per kW of shaft power",
}


def _labelled(names: tuple[str, ...], suffix: str, words: str) -> dict[str, str]:
    """Labels of the `<name>_<suffix>` features: the tracked quantity's label and `words`."""
    base = {**SIGNAL_LABELS, **DERIVED_LABELS}
    return {f"{name}_{suffix}": f"{base[name]} {words}" for name in names}


FEATURE_LABELS: dict[str, str] = {
    "running": "motor running or stopped",
    **{name: SIGNAL_LABELS[name] for name in SIGNALS},
    **_labelled(TRACKED, "ewm_1h", "(1 h average)"),
    **_labelled(TRACKED, "ewm_24h", "(24 h average)"),
    **_labelled(TRACKED, "trend", "trend (1 h vs 24 h)"),
    "winding_rise_c": "winding temperature above ambient",
    "bearing_rise_c": "bearing temperature above ambient",
    "hydraulic_efficiency": "hydraulic efficiency",
    **DERIVED_LABELS,
    **_labelled(DERIVED, "ewm_1h", "(1 h average)"),
    **_labelled(DERIVED, "trend", "trend (1 h vs 24 h)"),
    **_labelled((*TRACKED, *DERIVED), "drift", "drift (1 h vs 1 week)"),
}
"""Each feature in words a plant engineer reads in an alert ("Main drivers: vibration (1 h average)")."""
_LABEL_MAX = 64

NAN = float("nan")
_TRACKED_AND_DERIVED: tuple[str, ...] = (*TRACKED, *DERIVED)
_N_TRACKED = len(TRACKED)


def _picker(names: tuple[str, ...]) -> Callable[[dict[str, float]], tuple[float, ...]]:
    """A function taking the values of `names` (two or more) out of a dict, in that order, NaN for a missing one."""
    take_all = operator.itemgetter(*names)

    def pick(values: dict[str, float]) -> tuple[float, ...]:
        try:
            # One C call, a third of the cost of a comprehension of `get`s: every reading, several times.
            return take_all(values)  # type: ignore[no-any-return]
        except KeyError:  # a signal not measured, an average not started yet
            return tuple([values.get(name, NAN) for name in names])

    return pick


_signal_values = _picker(SIGNALS)
_tracked_values = _picker(_TRACKED_AND_DERIVED)


@dataclass(frozen=True, slots=True)
class RunningStats:
    """Per-motor running statistics the features need; stored with the motor's state."""

    last_ts_ms: int | None = None
    fast: dict[str, float] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)
    operating_s: float = 0.0
    baseline: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_ts_ms": self.last_ts_ms,
            "fast": self.fast,
            "slow": self.slow,
            "baseline": self.baseline,
            "operating_s": self.operating_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunningStats:
        if not data:
            return cls()
        return cls(
            last_ts_ms=data.get("last_ts_ms"),
            fast={k: float(v) for k, v in data.get("fast", {}).items()},
            slow={k: float(v) for k, v in data.get("slow", {}).items()},
            baseline={k: float(v) for k, v in data.get("baseline", {}).items()},
            operating_s=float(data.get("operating_s", 0.0)),
        )


_NO_STATS = RunningStats()
"""The statistics before a motor's first reading: shared, as compute_features copies the averages it changes."""


def compute_features(reading: Telemetry, stats: RunningStats | None) -> tuple[list[float], RunningStats]:
    """Feature vector (in FEATURE_NAMES order, NaN where unknown) and the updated statistics.

    Averages advance only while the motor runs: a stopped pump cools down, which says nothing
    about its wear. The first reading seeds the averages with its own values.
    """
    stats = stats or _NO_STATS
    ts_ms = reading.ts_ms
    running = reading.running
    signals = reading.signals()
    get_signal = signals.get
    ambient = get_signal("ambient_temp_c")
    shaft_w = _shaft_w(signals)
    winding_rise_c = _difference(get_signal("winding_temp_c"), ambient)
    derived = _derived(get_signal("current_a"), winding_rise_c, shaft_w)
    fast = dict(stats.fast)
    slow = dict(stats.slow)
    baseline = dict(stats.baseline)
    operating_s = stats.operating_s
    if running:
        step_s = 0.0 if stats.last_ts_ms is None else min(max((ts_ms - stats.last_ts_ms) / 1000, 0.0), MAX_STEP_S)
        operating_s += step_s
        a_fast = 1.0 - math.exp(-step_s / FAST_TAU_S)
        a_slow = 1.0 - math.exp(-step_s / SLOW_TAU_S)
        a_baseline = 1.0 - math.exp(-step_s / BASELINE_TAU_S)
        isnan, get_tracked = math.isnan, (signals | derived).get  # once per reading and name: look each up once
        for name in _TRACKED_AND_DERIVED:
            value = get_tracked(name)
            if value is None or isnan(value):
                continue
            old_fast = fast.get(name)
            if old_fast is None:
                fast[name] = slow[name] = baseline[name] = value
                continue
            old_slow = slow[name]
            # Statistics stored before the baseline existed: it starts from the slow mean.
            old_baseline = baseline.get(name, old_slow)
            fast[name] = old_fast + a_fast * (value - old_fast)
            slow[name] = old_slow + a_slow * (value - old_slow)
            baseline[name] = old_baseline + a_baseline * (value - old_baseline)
    new_stats = RunningStats(ts_ms, fast, slow, operating_s, baseline)  # positional: a quarter cheaper

    # An average not started yet is NaN, and so is a difference with it (the three start together).
    # One list display, with the C-level `map`: this runs for every reading.
    ewm_fast = _tracked_values(fast)
    ewm_slow = _tracked_values(slow)
    trend = [*map(operator.sub, ewm_fast, ewm_slow)]
    vector: list[float] = [
        1.0 if running else 0.0,
        *_signal_values(signals),
        *ewm_fast[:_N_TRACKED],
        *ewm_slow[:_N_TRACKED],
        *trend[:_N_TRACKED],
        winding_rise_c,
        _difference(get_signal("bearing_temp_c"), ambient),
        _hydraulic_efficiency(signals, shaft_w),
        *derived.values(),
        *ewm_fast[_N_TRACKED:],
        *trend[_N_TRACKED:],
        *map(operator.sub, ewm_fast, _tracked_values(baseline)),
    ]
    return vector, new_stats


def _derived(current: float | None, rise: float, shaft_w: float) -> dict[str, float]:
    """The physics ratios of DERIVED, in that order, NaN where a signal is missing or the motor idles."""
    heating = NAN if current is None or current < 1.0 else rise / (current / 100.0) ** 2
    shaft_kw = shaft_w / 1000
    per_kw = NAN if current is None or math.isnan(shaft_kw) or shaft_kw < 0.5 else current / shaft_kw
    return {"winding_heating_k_per_a2": heating, "current_a_per_kw": per_kw}


def _difference(value: float | None, reference: float | None) -> float:
    return NAN if value is None or reference is None else value - reference


def _hydraulic_efficiency(signals: dict[str, float], shaft_w: float) -> float:
    """Hydraulic power over shaft power: falls as an impeller wears or cavitates."""
    try:
        hydraulic_w = signals["pressure_bar"] * 1e5 * signals["flow_m3h"] / 3600
    except KeyError:
        return NAN
    if math.isnan(shaft_w) or shaft_w < 100.0:  # idling or stopped: the ratio is noise
        return NAN
    return hydraulic_w / shaft_w


def _shaft_w(signals: dict[str, float]) -> float:
    """Mechanical power at the shaft, torque times angular speed."""
    try:
        return signals["torque_nm"] * signals["speed_rpm"] * 2 * math.pi / 60
    except KeyError:
        return NAN


def to_csv_row(features: list[float]) -> str:
    """One text/csv row as SageMaker's XGBoost container reads it: empty field for a missing value."""
    return ",".join("" if math.isnan(value) else repr(value) for value in features)


def feature_label(name: str) -> str:
    """A feature's label; a name the model knows and this code does not is shown as it is, made safe."""
    label = FEATURE_LABELS.get(name)
    if label is not None:
        return label
    safe = "".join(ch for ch in name if ch.isascii() and (ch.isalnum() or ch in "_.-"))[:_LABEL_MAX]
    return safe or "an unnamed feature"
