"""The one feature function shared by training and serving."""

from __future__ import annotations

import math
from typing import Any

import pytest

from motor_maintenance.features import (
    FEATURE_LABELS,
    FEATURE_NAMES,
    RunningStats,
    compute_features,
    feature_label,
    to_csv_row,
)
from motor_maintenance.telemetry import Telemetry
from tests.support import reading_payload


def features_for(*payloads: dict) -> tuple[list[float], RunningStats]:
    stats = None
    vector: list[float] = []
    for payload in payloads:
        vector, stats = compute_features(Telemetry.model_validate(payload), stats)
    assert stats is not None
    return vector, stats


def feature(vector: list[float], name: str) -> float:
    return vector[FEATURE_NAMES.index(name)]


def test_the_vector_has_one_value_per_named_feature_in_order() -> None:
    vector, _ = features_for(reading_payload(1))

    assert len(vector) == len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert feature(vector, "vibration_mm_s") == 2.4
    assert feature(vector, "running") == 1.0


def test_a_rising_signal_shows_as_a_positive_trend() -> None:
    payloads = [reading_payload(i, at_s=i * 300, bearing_temp_c=60.0 + i) for i in range(1, 40)]

    vector, _ = features_for(*payloads)

    assert feature(vector, "bearing_temp_c_trend") > 0
    assert feature(vector, "bearing_temp_c_ewm_1h") > feature(vector, "bearing_temp_c_ewm_24h")
    assert feature(vector, "vibration_mm_s_trend") == pytest.approx(0.0)


def test_averages_do_not_move_while_the_motor_is_stopped() -> None:
    running, stats = features_for(reading_payload(1, at_s=0), reading_payload(2, at_s=300, winding_temp_c=90.0))
    stopped, stats_after = compute_features(
        Telemetry.model_validate(reading_payload(3, at_s=3600, running=False, winding_temp_c=30.0)), stats
    )

    assert stats_after.fast == stats.fast
    assert feature(stopped, "running") == 0.0
    assert feature(stopped, "winding_temp_c") == 30.0
    assert feature(stopped, "winding_temp_c_ewm_1h") == feature(running, "winding_temp_c_ewm_1h")


def test_a_long_silence_advances_the_averages_by_one_reporting_interval_only() -> None:
    _, stats = features_for(*(reading_payload(i + 1, at_s=i * 600, current_a=60.0) for i in range(4)))
    _, after_week = compute_features(
        Telemetry.model_validate(reading_payload(5, at_s=7 * 24 * 3600, current_a=100.0)), stats
    )
    _, after_10min = compute_features(Telemetry.model_validate(reading_payload(5, at_s=2400, current_a=100.0)), stats)

    assert after_week.fast["current_a"] == pytest.approx(after_10min.fast["current_a"])


def test_missing_signals_become_nan_and_empty_csv_fields() -> None:
    vector, _ = features_for(reading_payload(1, flow_m3h=None, pressure_bar=None))

    assert math.isnan(feature(vector, "flow_m3h"))
    assert math.isnan(feature(vector, "hydraulic_efficiency"))
    fields = to_csv_row(vector).split(",")
    assert len(fields) == len(FEATURE_NAMES)
    assert fields[FEATURE_NAMES.index("flow_m3h")] == ""
    assert float(fields[FEATURE_NAMES.index("vibration_mm_s")]) == 2.4


def test_hydraulic_efficiency_is_hydraulic_over_shaft_power() -> None:
    vector, _ = features_for(reading_payload(1, torque_nm=200.0, speed_rpm=1500.0, pressure_bar=5.0, flow_m3h=144.0))

    shaft_w = 200.0 * 1500.0 * 2 * math.pi / 60
    hydraulic_w = 5.0e5 * 144.0 / 3600
    assert feature(vector, "hydraulic_efficiency") == pytest.approx(hydraulic_w / shaft_w)


def test_hydraulic_power_per_ampere_is_pressure_times_flow_over_current() -> None:
    vector, _ = features_for(reading_payload(1, pressure_bar=5.0, flow_m3h=144.0, current_a=50.0, torque_nm=None))

    assert feature(vector, "hydraulic_kw_per_a") == pytest.approx(5.0e5 * 144.0 / 3600 / 1000 / 50.0)
    assert math.isnan(feature(vector, "hydraulic_efficiency")), "that one needs the torque"


def _pump_at(days: float, *, flow: float = 1.0, head: float = 1.0, current: float = 1.0) -> list[dict[str, Any]]:
    """A week of a healthy pump every 15 minutes, then `days` with flow, head and current scaled."""
    healthy = [reading_payload(i, at_s=i * 900.0) for i in range(1, 7 * 96 + 1)]
    scaled: dict[str, Any] = {"flow_m3h": 118.0 * flow, "pressure_bar": 6.1 * head, "current_a": 64.0 * current}
    changed = [reading_payload(7 * 96 + i, at_s=(7 * 96 + i) * 900.0, **scaled) for i in range(1, int(days * 96) + 1)]
    return healthy + changed


def test_a_worn_pump_delivers_less_hydraulic_power_per_ampere_than_its_normal() -> None:
    """Given a pump that ran normally for a week, when its impeller wears (less flow and less head for
    much the same current) for a day, then both its last hour and its last day read well below normal."""
    vector, _ = features_for(*_pump_at(1.0, flow=0.85, head=0.9, current=0.97))

    assert feature(vector, "hydraulic_kw_per_a_drift_pct") < -15.0
    assert feature(vector, "hydraulic_kw_per_a_drift_24h_pct") < -10.0


def test_a_throttled_pump_stays_near_its_normal_hydraulic_power_per_ampere() -> None:
    """Given the same pump, when a valve is throttled (less flow, more head along its curve, less current)."""
    vector, _ = features_for(*_pump_at(1.0, flow=0.85, head=1.08, current=0.94))

    assert abs(feature(vector, "hydraulic_kw_per_a_drift_pct")) < 5.0
    assert abs(feature(vector, "hydraulic_kw_per_a_drift_24h_pct")) < 5.0


def test_a_blank_flow_leaves_the_hydraulic_ratio_unknown_and_its_averages_where_they_were() -> None:
    before, stats = features_for(*_pump_at(0.0))
    vector, after = compute_features(
        Telemetry.model_validate(reading_payload(10_000, at_s=(7 * 96 + 1) * 900.0, flow_m3h=None)), stats
    )

    assert math.isnan(feature(vector, "hydraulic_kw_per_a"))
    assert after.fast["hydraulic_kw_per_a"] == stats.fast["hydraulic_kw_per_a"]
    assert feature(vector, "hydraulic_kw_per_a_drift_pct") == feature(before, "hydraulic_kw_per_a_drift_pct")
    assert feature(vector, "hydraulic_kw_per_a_ewm_1h") == pytest.approx(6.1e5 * 118.0 / 3.6e6 / 64.0)


def test_the_hydraulic_ratio_against_its_normal_is_unknown_until_the_ratio_is_known() -> None:
    vector, _ = features_for(reading_payload(1, current_a=None), reading_payload(2, at_s=900.0, current_a=None))

    assert math.isnan(feature(vector, "hydraulic_kw_per_a_drift_pct"))
    assert math.isnan(feature(vector, "hydraulic_kw_per_a_drift_24h_pct"))


def test_stats_survive_a_round_trip_through_storage() -> None:
    _, stats = features_for(reading_payload(1), reading_payload(2, at_s=60, vibration_mm_s=3.0))

    assert RunningStats.from_dict(stats.to_dict()) == stats


def test_stats_read_back_in_another_order_give_the_same_features_and_keep_their_order() -> None:
    """Given statistics stored with their names in reverse order and a name this code no longer tracks..."""
    _, stats = features_for(reading_payload(1), reading_payload(2, at_s=60, vibration_mm_s=3.0))
    stored = stats.to_dict()
    for part in ("fast", "slow", "baseline"):
        stored[part] = {"retired_signal": 1.5, **dict(reversed(stored[part].items()))}
    reading = Telemetry.model_validate(reading_payload(3, at_s=120, vibration_mm_s=3.5))

    # ...when the next reading arrives...
    vector, after = compute_features(reading, stats)
    vector_read_back, after_read_back = compute_features(reading, RunningStats.from_dict(stored))

    # ...the features and the means are the same, and the means keep the names, and the order, they were stored with.
    assert to_csv_row(vector_read_back) == to_csv_row(vector)
    for part in ("fast", "slow", "baseline"):
        means, means_read_back = after.to_dict()[part], after_read_back.to_dict()[part]
        assert list(means_read_back) == list(stored[part])
        assert means_read_back == {"retired_signal": 1.5, **means}


def test_stats_are_read_only() -> None:
    _, stats = features_for(reading_payload(1))

    with pytest.raises(AttributeError):
        stats.fast = {}  # type: ignore[misc]
    with pytest.raises(AttributeError):
        stats.last_ts_ms = 0  # type: ignore[misc]


def test_every_feature_has_its_own_label_in_words() -> None:
    assert set(FEATURE_LABELS) == set(FEATURE_NAMES)
    labels = [feature_label(name) for name in FEATURE_NAMES]
    assert len(set(labels)) == len(labels)  # an alert naming two drivers never names one twice
    assert all(label.isascii() and label.isprintable() and "_" not in label for label in labels)
    assert feature_label("bearing_temp_c_trend") == "bearing temperature trend (1 h vs 24 h)"
    assert feature_label("vibration_mm_s") == "vibration"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("f12", "f12"),  # XGBoost's name for a column of a model trained without names
        ("oil_particles_ppm", "oil_particles_ppm"),
        ("bad name\n\u202e\udcff" + "x" * 100, "badname" + "x" * 57),
        ("\u202e", "an unnamed feature"),
    ],
)
def test_a_feature_this_code_does_not_know_is_shown_by_its_name_made_safe(name: str, shown: str) -> None:
    assert feature_label(name) == shown
