"""The one feature function: training and the inference Lambda both call it, so they cannot drift.

A reading alone says little about wear; its trend does. Per motor we keep exponentially weighted
means of the signals that degrade (temperatures, vibration, current, hydraulics) with a fast
(1 h), a slow (24 h) and a baseline (1 week) time constant, in operating time. Fast minus slow is
the trend; fast minus the baseline is the drift from the motor's own normal, which a final phase
of wear lasting a day or two does not yet drag along.

Three physics ratios are tracked the same way, because load moves the raw signals more than early
wear does: the winding's heating per current squared (copper losses go with I^2, so it rises as
insulation or cooling degrade), the current per kW of shaft power (ageing insulation leaks), and the
hydraulic power delivered per ampere drawn (discharge pressure times flow over current, the pump's
wire-to-water efficiency as far as the signals tell it). The last separates a wearing impeller or
wear ring from a process change: a worn pump delivers less flow AND less head for the current it
draws, so the ratio falls, and stays down until the repair; a throttled or reopened valve moves the
pump along its own curve (less flow with more head, or the reverse) and the current with it, so the
ratio barely moves, and an upset such as cavitation lowers it for hours, not days. Because pumps of
different sizes deliver different powers per ampere, it is also read against the pump's own normal
(its one-week mean) as a share, over the last hour and over the last 24 operating hours.

The averages mean the same at any reporting interval (every 10 s, 10 minutes or hour): each running
reading moves them by the operating time it stands for, the time since the previous reading. A
silence is the exception: a gap longer than SILENCE_INTERVALS of the motor's own reporting interval
(a device offline, or one that does not report while stopped) says nothing about how long the motor
ran, so the reading after it counts as one interval. The interval is learnt per motor from its gaps.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
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
DERIVED: tuple[str, ...] = ("winding_heating_k_per_a2", "current_a_per_kw", "hydraulic_kw_per_a")
"""Physics ratios computed from a reading's signals, tracked like the signals."""
FAST_TAU_S = 3600.0
SLOW_TAU_S = 24 * 3600.0
BASELINE_TAU_S = 7 * 24 * 3600.0
SILENCE_INTERVALS = 3.0
"""A gap longer than this many reporting intervals is a silence: the reading after it counts as one interval."""
INTERVAL_WEIGHT = 0.25
"""How far each gap moves the motor's reporting interval towards itself (jitter averages out; a new rate is learnt)."""
LONGEST_INTERVAL_S = 6 * 3600.0
"""The longest reporting interval learnt; also the most a motor's second reading (no interval known yet) counts."""

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
    "hydraulic_kw_per_a_drift_pct",
    "hydraulic_kw_per_a_drift_24h_pct",
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
    "hydraulic_kw_per_a": "hydraulic power per ampere",
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
    "hydraulic_kw_per_a_drift_pct": "hydraulic power per ampere against its normal (1 h vs 1 week, %)",
    "hydraulic_kw_per_a_drift_24h_pct": "hydraulic power per ampere against its normal (24 h vs 1 week, %)",
}
"""Each feature in words a plant engineer reads in an alert ("Main drivers: vibration (1 h average)")."""
_LABEL_MAX = 64

NAN = float("nan")
_TRACKED_AND_DERIVED: tuple[str, ...] = (*TRACKED, *DERIVED)
_N_TRACKED = len(TRACKED)
_HYDRAULIC = _TRACKED_AND_DERIVED.index("hydraulic_kw_per_a")
_tracked_signals = operator.itemgetter(*(SIGNALS.index(name) for name in TRACKED))
"""The TRACKED signals out of a reading's `signal_values`, in TRACKED order."""
_all_averages = operator.itemgetter(*_TRACKED_AND_DERIVED)
"""The means of _TRACKED_AND_DERIVED out of a dict holding them all, in that order (KeyError if one is missing)."""

Means = dict[str, float]
_Fields = tuple[int | None, Means, Means, float, Means, float | None, bool]
"""last_ts_ms, fast, slow, operating_s, baseline, interval_s, last_running: what a RunningStats is made of."""
Averages = tuple[Sequence[float], Sequence[float], Sequence[float]]
"""The fast, slow and baseline means of the quantities of _TRACKED_AND_DERIVED, in that order."""
_Read = tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]
"""What the features read from the averages: fast, slow, trend (fast - slow), drift (fast - baseline)."""


class RunningStats:
    """Per-motor running statistics the features need; stored with the motor's state. Read-only.

    `fast`, `slow` and `baseline` are the exponentially weighted means by name, as stored. Once every
    tracked quantity has all three, `compute_features` works on them as `averages`, in
    _TRACKED_AND_DERIVED order, and the dicts of the statistics it makes are built when first read:
    storing a state builds them, the readings of a batch before it never do (building three dicts for
    every reading cost more than the averaging itself). The dicts are not to be changed.
    """

    __slots__ = (
        "_averages",
        "_interval_s",
        "_last_running",
        "_last_ts_ms",
        "_layout",
        "_means",
        "_operating_s",
        "_read",
    )
    _last_ts_ms: int | None
    _operating_s: float
    _interval_s: float | None
    """The motor's reporting interval as learnt from its gaps; None before its second reading."""
    _last_running: bool
    """Whether the previous reading said the motor was running."""
    _averages: Averages | None
    _means: tuple[Means, Means, Means] | None
    """fast, slow and baseline; None until first read when made from `averages`."""
    _layout: tuple[Means, Means, Means]
    """The means that those built from `averages` take their names (and their order) from."""
    _read: _Read | None
    """What the features read from the averages (`read`), once worked out."""

    def __init__(
        self,
        last_ts_ms: int | None = None,
        fast: Means | None = None,
        slow: Means | None = None,
        operating_s: float = 0.0,
        baseline: Means | None = None,
        *,
        interval_s: float | None = None,
        last_running: bool = True,
    ) -> None:
        means = ({} if fast is None else fast, {} if slow is None else slow, {} if baseline is None else baseline)
        self._last_ts_ms = last_ts_ms
        self._operating_s = operating_s
        self._interval_s = interval_s
        self._last_running = last_running
        try:
            self._averages = (_all_averages(means[0]), _all_averages(means[1]), _all_averages(means[2]))
        except KeyError:  # a quantity not measured yet, or statistics stored before the baseline existed
            self._averages = None
        self._means = self._layout = means
        self._read = None

    def _moved(
        self,
        last_ts_ms: int,
        operating_s: float,
        interval_s: float | None,
        last_running: bool,
        advanced: tuple[Averages, _Read] | None,
    ) -> RunningStats:
        """These statistics at a later reading, with new averages and what the features read from them (None: same)."""
        stats = RunningStats.__new__(RunningStats)
        stats._last_ts_ms = last_ts_ms
        stats._operating_s = operating_s
        stats._interval_s = interval_s
        stats._last_running = last_running
        if advanced is None:
            stats._averages, stats._means, stats._read = self._averages, self._means, self._read
        else:
            (stats._averages, stats._read), stats._means = advanced, None
        stats._layout = self._layout
        return stats

    @property
    def last_ts_ms(self) -> int | None:
        return self._last_ts_ms

    @property
    def operating_s(self) -> float:
        """Operating time counted so far (seconds): the steps of the running readings."""
        return self._operating_s

    @property
    def interval_s(self) -> float | None:
        """The motor's reporting interval (seconds) as learnt from its gaps; None before its second reading."""
        return self._interval_s

    @property
    def last_running(self) -> bool:
        """Whether the previous reading said the motor was running (True before the first)."""
        return self._last_running

    @property
    def averages(self) -> Averages | None:
        """The fast, slow and baseline means in _TRACKED_AND_DERIVED order; None until each one has started."""
        return self._averages

    @property
    def fast(self) -> Means:
        return self._built()[0]

    @property
    def slow(self) -> Means:
        return self._built()[1]

    @property
    def baseline(self) -> Means:
        return self._built()[2]

    def _features_read(self) -> _Read:
        """What the features read from the averages, NaN where a mean has not started: worked out once."""
        read = self._read
        if read is None:
            fast, slow, baseline = self._averages or _started(self)
            read = self._read = (fast, slow, [*map(operator.sub, fast, slow)], [*map(operator.sub, fast, baseline)])
        return read

    def _built(self) -> tuple[Means, Means, Means]:
        means = self._means
        if means is None:
            averages = self._averages
            assert averages is not None  # noqa: S101 - statistics made without means have averages
            # What updating a copy of the layout's means name by name makes: the same names in the same order.
            means = (dict(self._layout[0]), dict(self._layout[1]), dict(self._layout[2]))
            for named, values in zip(means, averages, strict=True):
                named.update(zip(_TRACKED_AND_DERIVED, values, strict=True))
            self._means = means
        return means

    def _fields(self) -> _Fields:
        fields = self.last_ts_ms, self.fast, self.slow, self.operating_s, self.baseline
        return (*fields, self.interval_s, self.last_running)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunningStats):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # it holds dicts

    def __repr__(self) -> str:
        return (
            f"RunningStats(last_ts_ms={self.last_ts_ms!r}, fast={self.fast!r}, slow={self.slow!r}, "
            f"operating_s={self.operating_s!r}, baseline={self.baseline!r}, interval_s={self.interval_s!r}, "
            f"last_running={self.last_running!r})"
        )

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return RunningStats.from_dict, (self.to_dict(),)

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_ts_ms": self.last_ts_ms,
            "fast": self.fast,
            "slow": self.slow,
            "baseline": self.baseline,
            "operating_s": self.operating_s,
            "interval_s": self.interval_s,
            "last_running": self.last_running,
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
            # Statistics stored before the interval was learnt learn it again from the next gap.
            interval_s=None if data.get("interval_s") is None else float(data["interval_s"]),
            last_running=bool(data.get("last_running", True)),
        )


_NO_STATS = RunningStats()
"""The statistics before a motor's first reading: shared, as compute_features copies the means it changes."""


def compute_features(reading: Telemetry, stats: RunningStats | None) -> tuple[list[float], RunningStats]:
    """Feature vector (in FEATURE_NAMES order, NaN where unknown) and the updated statistics.

    Averages advance only while the motor runs: a stopped pump cools down, which says nothing
    about its wear. A running reading advances them by the time since the previous reading (one
    reporting interval after a silence, see `operating_step`). The first reading seeds the averages with its
    own values.
    """
    stats = stats or _NO_STATS
    ts_ms = reading.ts_ms
    running = reading.running
    signals = reading.signal_values()
    physics = _physics(reading)
    last_ts_ms, interval_s, last_running = stats._last_ts_ms, stats._interval_s, stats._last_running
    if last_ts_ms is None:
        step_s = 0.0
    else:
        gap_s = (ts_ms - last_ts_ms) / 1000
        if interval_s is not None and 0 < gap_s <= SILENCE_INTERVALS * interval_s:  # operating_step's usual case
            step_s = gap_s
            if gap_s != interval_s:
                interval_s = min(interval_s + INTERVAL_WEIGHT * (gap_s - interval_s), LONGEST_INTERVAL_S)
        else:
            step_s, interval_s = operating_step(gap_s, interval_s)
    if running:
        if not last_running:  # started somewhere in the gap: on average half of it ran
            step_s /= 2
        values = (*_tracked_signals(signals), *physics[_N_RISES:])
        averages = stats.averages
        if averages is not None and not math.isnan(sum(values)):  # every mean started, every value known
            advanced = _advanced(averages, values, step_s)
            new_stats = stats._moved(ts_ms, stats.operating_s + step_s, interval_s, True, advanced)
        else:
            new_stats = _advanced_by_name(stats, ts_ms, step_s, values, interval_s)
    else:
        # Stopped somewhere in the gap: half of it ran, though no value of that time is known to average.
        operating_s = stats._operating_s + (step_s / 2 if last_running else 0.0)
        new_stats = stats._moved(ts_ms, operating_s, interval_s, False, None)

    # An average not started yet is NaN, and so is a difference with it (the three start together).
    ewm_fast, ewm_slow, trend, drift = new_stats._features_read()
    hydraulic_fast, hydraulic_drift = ewm_fast[_HYDRAULIC], drift[_HYDRAULIC]
    vector: list[float] = [
        1.0 if running else 0.0,
        *signals,
        *ewm_fast[:_N_TRACKED],
        *ewm_slow[:_N_TRACKED],
        *trend[:_N_TRACKED],
        *physics,
        *ewm_fast[_N_TRACKED:],
        *trend[_N_TRACKED:],
        *drift,
        _against_normal(hydraulic_fast, hydraulic_drift),
        # The 24 h mean's drift from the baseline: the 1 h mean's, less the trend (1 h - 24 h).
        _against_normal(ewm_slow[_HYDRAULIC], hydraulic_drift - trend[_HYDRAULIC]),
    ]
    return vector, new_stats


def operating_step(gap_s: float, interval_s: float | None) -> tuple[float, float | None]:
    """The operating time a reading `gap_s` after the previous one stands for if running, and the interval learnt.

    A gap up to SILENCE_INTERVALS reporting intervals counts in full, whatever the interval: that is what
    makes an average cover the same operating time at any rate. A longer gap is a silence and counts as
    one interval. A gap of zero or less (a reading stamped at or before the previous one) counts nothing.
    """
    if not gap_s > 0:
        return 0.0, interval_s
    if interval_s is None:  # the motor's second reading: no interval to compare with yet
        first = min(gap_s, LONGEST_INTERVAL_S)
        return first, first
    if gap_s > SILENCE_INTERVALS * interval_s:
        # A longer interval than learnt may also be a new reporting rate: each silence moves towards it.
        return interval_s, min(interval_s + INTERVAL_WEIGHT * (SILENCE_INTERVALS - 1) * interval_s, LONGEST_INTERVAL_S)
    return gap_s, min(interval_s + INTERVAL_WEIGHT * (gap_s - interval_s), LONGEST_INTERVAL_S)


def _weights(step_s: float) -> tuple[float, float, float]:
    """How far a step of `step_s` moves the fast, slow and baseline means towards a new value."""
    return (
        1.0 - math.exp(-step_s / FAST_TAU_S),
        1.0 - math.exp(-step_s / SLOW_TAU_S),
        1.0 - math.exp(-step_s / BASELINE_TAU_S),
    )


def _advanced(averages: Averages, values: Sequence[float], step_s: float) -> tuple[Averages, _Read]:
    """`averages` moved towards `values` (all known) by a step of `step_s`, as `_advanced_by_name` does, and the
    trend and drift the features read from them."""
    a_fast, a_slow, a_baseline = _weights(step_s)
    fast: list[float] = []
    slow: list[float] = []
    baseline: list[float] = []
    trend: list[float] = []
    drift: list[float] = []
    # One loop for all: a comprehension or a `map` each costs half as much again.
    for value, old_fast, old_slow, old_baseline in zip(values, *averages, strict=False):
        new_fast = old_fast + a_fast * (value - old_fast)
        new_slow = old_slow + a_slow * (value - old_slow)
        new_baseline = old_baseline + a_baseline * (value - old_baseline)
        fast.append(new_fast)
        slow.append(new_slow)
        baseline.append(new_baseline)
        trend.append(new_fast - new_slow)
        drift.append(new_fast - new_baseline)
    return (fast, slow, baseline), (fast, slow, trend, drift)


def _advanced_by_name(
    stats: RunningStats, ts_ms: int, step_s: float, values: Sequence[float], interval_s: float | None
) -> RunningStats:
    """The statistics after a running motor's reading with a value missing, or a mean not started yet."""
    fast, slow, baseline = dict(stats.fast), dict(stats.slow), dict(stats.baseline)
    a_fast, a_slow, a_baseline = _weights(step_s)
    for name, value in zip(_TRACKED_AND_DERIVED, values, strict=True):
        if math.isnan(value):
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
    return RunningStats(ts_ms, fast, slow, stats.operating_s + step_s, baseline, interval_s=interval_s)


def _started(stats: RunningStats) -> Averages:
    """The means of _TRACKED_AND_DERIVED in that order, NaN for one not started yet."""

    def in_order(means: Means) -> list[float]:
        return [means.get(name, NAN) for name in _TRACKED_AND_DERIVED]

    return in_order(stats.fast), in_order(stats.slow), in_order(stats.baseline)


_N_RISES = 3
"""The quantities of `_physics` before the DERIVED ratios."""


def _physics(reading: Telemetry) -> tuple[float, float, float, float, float, float]:
    """winding_rise_c, bearing_rise_c, hydraulic_efficiency and the DERIVED ratios, NaN where a signal is missing.

    The six follow each other in the vector.
    """
    ambient, current = reading.ambient_temp_c, reading.current_a
    winding, bearing = reading.winding_temp_c, reading.bearing_temp_c
    torque, speed = reading.torque_nm, reading.speed_rpm
    pressure, flow = reading.pressure_bar, reading.flow_m3h
    winding_rise_c = NAN if winding is None or ambient is None else winding - ambient
    bearing_rise_c = NAN if bearing is None or ambient is None else bearing - ambient
    # Mechanical power at the shaft, torque times angular speed.
    shaft_w = NAN if torque is None or speed is None else torque * speed * 2 * math.pi / 60
    # Hydraulic power over shaft power: falls as an impeller wears or cavitates; idling or stopped, it is noise.
    if pressure is None or flow is None or math.isnan(shaft_w) or shaft_w < 100.0:
        hydraulic_efficiency = NAN
    else:
        hydraulic_efficiency = pressure * 1e5 * flow / 3600 / shaft_w
    heating = NAN if current is None or current < 1.0 else winding_rise_c / (current / 100.0) ** 2
    shaft_kw = shaft_w / 1000
    per_kw = NAN if current is None or math.isnan(shaft_kw) or shaft_kw < 0.5 else current / shaft_kw
    # Hydraulic power (kW) delivered per ampere drawn: needs no torque, which few plants measure.
    if pressure is None or flow is None or current is None or current < 1.0:
        hydraulic_kw_per_a = NAN
    else:
        hydraulic_kw_per_a = pressure * 1e5 * flow / 3600 / 1000 / current
    return winding_rise_c, bearing_rise_c, hydraulic_efficiency, heating, per_kw, hydraulic_kw_per_a


def _against_normal(mean: float, drift: float) -> float:
    """A mean of hydraulic_kw_per_a as a share (%) above (+) or below (-) its one-week baseline, `mean - drift`."""
    baseline = mean - drift
    return 100.0 * (mean / baseline - 1.0) if baseline > 0.0 else NAN


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
