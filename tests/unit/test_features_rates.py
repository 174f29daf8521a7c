"""Features mean the same at any reporting interval: one history read every 10 s, 10 minutes and hour.

The history is made here, not by the simulator, so the test depends on nothing but the feature
function: a pump that runs from 06:00 to 22:00 and reports while stopped, whose load follows the
day, whose temperatures lag it by 20 minutes, and whose bearing and vibration start to wear after
three days of running, with sensor noise; it starts at noon, running warm. The 10 s readings are
the reference; the 10 minute and hourly readings are every 60th and 360th of them, from the same
first one (which seeds the averages), so the three see the same motor.

Stated tolerances, as root-mean-square differences over the running readings after the first two
days of the six, in fractions of the signal's own spread (its standard deviation while running):
- 24 h averages: 10 % at both rates (with the 600 s step cap they used to have, hourly readings
  were 25 to 48 % off);
- 1 h averages, trends (1 h - 24 h) and drifts (1 h - 1 week): 15 % at 10 minutes; 30 % at an
  hour, once the motor has run for two hours (one reading an hour can only sample the hour it
  averages, so its noise and the warm-up after a start are not averaged out).
The hydraulic power per ampere, a ratio tracked like the signals, is held to the same tolerances (its
shares against the pump's normal, in % of its own mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from motor_maintenance.features import FEATURE_NAMES, TRACKED, compute_features, operating_step
from motor_maintenance.telemetry import Telemetry
from tests.support import reading_payload

DAY_S = 86_400
T0_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z."""
BASE_INTERVAL_S = 10
RATES = {"10 min": 60, "1 h": 360}
"""Every how many 10 s readings each rate reads."""
Vectors = dict[int, list[float]]


Signals = dict[str, NDArray[np.float64]]


def _history(days: int = 6, seed: int = 3) -> tuple[NDArray[np.float64], NDArray[np.bool_], Signals]:
    """Times (s), running, and signals of one pump every 10 s."""
    rng = np.random.default_rng(seed)
    n = days * DAY_S // BASE_INTERVAL_S
    # From noon, running warm.
    t = DAY_S / 2 + np.arange(1, n + 1, dtype=np.float64) * BASE_INTERVAL_S
    hour = (t % DAY_S) / 3600
    running = (hour >= 6.1) & (hour < 22.1)
    load = 0.75 + 0.1 * np.sin(2 * np.pi * t / DAY_S) + 0.05 * np.sin(2 * np.pi * t / (5 * 3600))
    operating_s = np.cumsum(running) * BASE_INTERVAL_S
    wear = np.clip((operating_s - 3 * 16 * 3600) / (2 * 16 * 3600), 0, None)
    ambient = 20 + 3 * np.sin(2 * np.pi * (t / DAY_S - 0.3))
    winding_target = np.where(running, ambient + 45 * load**2 + 10 * wear, ambient)
    bearing_target = np.where(running, ambient + 25 * load + 15 * wear**2, ambient)
    winding, bearing = np.empty(n), np.empty(n)
    winding[0], bearing[0] = winding_target[0], bearing_target[0]
    lag = 1 - math.exp(-BASE_INTERVAL_S / 1200)
    for i in range(1, n):
        winding[i] = winding[i - 1] + lag * (winding_target[i] - winding[i - 1])
        bearing[i] = bearing[i - 1] + lag * (bearing_target[i] - bearing[i - 1])
    noise = rng.standard_normal((10, n))
    signals = {
        "speed_rpm": np.where(running, 1480 + 1.5 * noise[0], 0.0),
        "torque_nm": np.where(running, 240 * load * (1 + 0.01 * noise[1]), 0.0),
        "current_a": np.where(running, 70 * load * (1 + 0.1 * wear) * (1 + 0.005 * noise[2]), 0.0),
        "winding_temp_c": winding + 0.3 * noise[3],
        "bearing_temp_c": bearing + 0.3 * noise[4],
        "fluid_temp_c": np.where(running, 40 + 10 * load, 30) + 0.3 * noise[5],
        "ambient_temp_c": ambient + 0.2 * noise[6],
        "vibration_mm_s": np.where(running, (2.0 + 3 * wear**2) * np.exp(0.06 * noise[7]), 0.1),
        "pressure_bar": np.where(running, 6 * load + 0.01 * noise[8], 0.0),
        "flow_m3h": np.where(running, 120 * load, 0.0),
    }
    return t, running, signals


def _features(t: NDArray[np.float64], running: NDArray[np.bool_], signals: Signals, every: int) -> Vectors:
    """The feature vectors of every `every`-th reading, by the reading's index in the 10 s history."""
    stats = None
    vectors: dict[int, list[float]] = {}
    for i in range(0, len(t), every):
        payload = {name: round(float(values[i]), 3) for name, values in signals.items()}
        reading = Telemetry.model_validate(
            {"motor_id": "pump-1", "motor_type": "pump-37kw", "ts": T0_MS + int(t[i] * 1000), "seq": i + 1}
            | {"running": bool(running[i]), **payload}
        )
        vectors[i], stats = compute_features(reading, stats)
    return vectors


@dataclass(frozen=True)
class Rates:
    """The features of one history at each rate, and where to compare them."""

    vectors: dict[str, Vectors]
    """By rate ("10 s" is the reference), each reading's vector by its index in the 10 s history."""
    spread: dict[str, float]
    """Each tracked signal's standard deviation while running."""
    compared: list[int]
    """The hourly readings of the running motor after the first two and a half days."""
    settled: list[int]
    """Those of them after two hours of running."""

    def rms_share(self, rate: str, feature: str, signal: str, indices: list[int]) -> float:
        """Root-mean-square difference of `feature` from the 10 s reference, as a share of `signal`'s spread."""
        column = FEATURE_NAMES.index(feature)
        reference, other = self.vectors["10 s"], self.vectors[rate]
        differences = np.array([other[i][column] - reference[i][column] for i in indices])
        return float(np.sqrt(np.mean(differences**2)) / self.spread[signal])


@pytest.fixture(scope="module")
def rates() -> Rates:
    t, running, signals = _history()
    minutes_running = np.zeros(len(t))
    for i in range(1, len(t)):
        minutes_running[i] = minutes_running[i - 1] + BASE_INTERVAL_S / 60 if running[i] and running[i - 1] else 0
    compared = [i for i in range(0, len(t), RATES["1 h"]) if running[i] and t[i] > 2.5 * DAY_S]
    return Rates(
        vectors={"10 s": _features(t, running, signals, 1)}
        | {rate: _features(t, running, signals, every) for rate, every in RATES.items()},
        spread={name: float(np.std(signals[name][running])) for name in TRACKED},
        compared=compared,
        settled=[i for i in compared if minutes_running[i] >= 120],
    )


@pytest.mark.parametrize("rate", list(RATES))
@pytest.mark.parametrize("signal", TRACKED)
def test_24h_averages_agree_at_10_s_10_min_and_1_h(rates: Rates, rate: str, signal: str) -> None:
    assert len(rates.compared) > 50

    assert rates.rms_share(rate, f"{signal}_ewm_24h", signal, rates.compared) <= 0.10


@pytest.mark.parametrize("suffix", ["ewm_1h", "trend", "drift"])
@pytest.mark.parametrize("signal", TRACKED)
def test_1h_averages_trends_and_drifts_agree_at_10_s_10_min_and_1_h(rates: Rates, signal: str, suffix: str) -> None:
    assert len(rates.settled) > 30

    assert rates.rms_share("10 min", f"{signal}_{suffix}", signal, rates.compared) <= 0.15
    assert rates.rms_share("1 h", f"{signal}_{suffix}", signal, rates.settled) <= 0.30


HYDRAULIC = "hydraulic_kw_per_a"


@pytest.mark.parametrize(
    ("feature", "tolerance_10_min", "tolerance_1_h"),
    [
        ("hydraulic_kw_per_a_ewm_1h", 0.15, 0.30),
        ("hydraulic_kw_per_a_trend", 0.15, 0.30),
        ("hydraulic_kw_per_a_drift", 0.15, 0.30),
        ("hydraulic_kw_per_a_drift_pct", 0.15, 0.30),
        ("hydraulic_kw_per_a_drift_24h_pct", 0.10, 0.10),
    ],
)
def test_the_hydraulic_power_per_ampere_agrees_at_10_s_10_min_and_1_h(
    rates: Rates, feature: str, tolerance_10_min: float, tolerance_1_h: float
) -> None:
    """The ratio's spread while running is its own; for the shares (%) it is that spread in % of its mean."""
    column = FEATURE_NAMES.index(HYDRAULIC)
    ratio = np.array([vector[column] for vector in rates.vectors["10 s"].values() if vector[0] == 1.0])
    spread = float(np.std(ratio)) * (100 / float(np.mean(ratio)) if feature.endswith("_pct") else 1.0)
    shares = Rates(rates.vectors, rates.spread | {HYDRAULIC: spread}, rates.compared, rates.settled)

    assert shares.rms_share("10 min", feature, HYDRAULIC, rates.compared) <= tolerance_10_min
    assert shares.rms_share("1 h", feature, HYDRAULIC, rates.settled) <= tolerance_1_h


def test_an_hourly_gap_counts_in_full() -> None:
    readings = [reading_payload(i + 1, at_s=i * 3600.0, current_a=60.0) for i in range(4)]
    stats = None
    for payload in readings:
        _, stats = compute_features(Telemetry.model_validate(payload), stats)
    assert stats is not None

    assert stats.interval_s == 3600.0
    assert stats.operating_s == 3 * 3600.0


def test_a_silence_of_more_than_three_intervals_counts_as_one_interval() -> None:
    """Given a motor that reports every 10 minutes..."""
    stats = None
    for i in range(6):
        payload = reading_payload(i + 1, at_s=i * 600.0, current_a=60)
        _, stats = compute_features(Telemetry.model_validate(payload), stats)
    assert stats is not None
    assert stats.interval_s == 600.0

    # ...when it is silent for a week and comes back with another current...
    later = Telemetry.model_validate(reading_payload(7, at_s=5 * 600.0 + 7 * DAY_S, current_a=100))
    _, after_silence = compute_features(later, stats)
    soon = Telemetry.model_validate(reading_payload(7, at_s=6 * 600.0, current_a=100))
    _, after_interval = compute_features(soon, stats)

    # ...the week counts as one interval: the averages move as after one reading on time.
    assert after_silence.operating_s == stats.operating_s + 600.0
    assert after_silence.fast["current_a"] == pytest.approx(after_interval.fast["current_a"])
    assert after_silence.slow["current_a"] == pytest.approx(after_interval.slow["current_a"])


def test_a_new_reporting_rate_is_learnt_within_a_few_readings() -> None:
    stats = None
    at_s = 0.0
    for i in range(5):  # every minute...
        at_s += 60
        _, stats = compute_features(Telemetry.model_validate(reading_payload(i + 1, at_s=at_s)), stats)
    for i in range(12):  # ...then every 10 minutes
        at_s += 600
        _, stats = compute_features(Telemetry.model_validate(reading_payload(i + 6, at_s=at_s)), stats)
    assert stats is not None

    assert stats.interval_s == pytest.approx(600.0, rel=0.1)
    assert operating_step(600.0, stats.interval_s)[0] == 600.0


def test_a_start_counts_half_the_gap_and_a_stop_the_other_half() -> None:
    stats = None
    for i, running in enumerate([True, True, False, False, True]):
        payload = reading_payload(i + 1, at_s=i * 600.0, running=running)
        _, stats = compute_features(Telemetry.model_validate(payload), stats)
    assert stats is not None

    # running 0-600 s in full; stopping in 600-1200 s and starting in 1800-2400 s: half of each.
    assert stats.operating_s == 600.0 + 300.0 + 300.0


@pytest.mark.parametrize(("gap_s", "counted_s"), [(0.0, 0.0), (-5.0, 0.0), (1200.0, 1200.0), (1800.0, 1800.0)])
def test_the_step_of_a_gap_against_a_10_minute_interval(gap_s: float, counted_s: float) -> None:
    assert operating_step(gap_s, 600.0)[0] == counted_s
    assert operating_step(1801.0, 600.0)[0] == 600.0
