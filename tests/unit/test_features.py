"""The one feature function shared by training and serving."""

from __future__ import annotations

import math

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
