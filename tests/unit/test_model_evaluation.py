"""The evaluation: features as the Lambda computes them, labels, the split, and the detector replay."""

from __future__ import annotations

import numpy as np
import pytest

from device.history import History, generate
from device.physics import DAY_S, FailureMode, FleetConfig
from model.dataset import HORIZON_OPERATING_S, build, split_motors
from model.evaluate import replay, replay_motor, row_metrics, summarise
from motor_maintenance.config import DetectorConfig
from motor_maintenance.features import RunningStats, compute_features


@pytest.fixture(scope="module")
def history() -> History:
    """Four motors wearing five times as fast for 60 days: several failures of several modes."""
    return generate(
        FleetConfig(motors=4, seed=11, wear_scale=5.0, random_failures_per_year=12.0), duration_s=60 * DAY_S
    )


def test_rows_are_the_lambdas_features_of_running_readings_in_time_order(history: History) -> None:
    data = build(history, workers=2)

    column = 2
    expected: list[list[float]] = []
    stats: RunningStats | None = None
    for reading in history.readings(column):
        row, stats = compute_features(reading, stats)
        if reading.running:
            expected.append(row)
    mine = data.column == column
    np.testing.assert_array_equal(data.features[mine], np.asarray(expected, dtype=np.float32))
    assert np.all(np.diff(data.step[mine]) > 0)


def test_a_row_is_positive_when_a_wear_failure_comes_within_24_operating_hours(history: History) -> None:
    data = build(history, workers=1)

    otf = history.operating_to_failure_s[data.step, data.column]
    mode = history.next_failure_mode[data.step, data.column]
    random_mode = list(FailureMode).index(FailureMode.RANDOM)
    assert data.labels.sum() > 0
    assert np.all(otf[data.labels == 1] <= HORIZON_OPERATING_S)
    assert np.all(mode[data.labels == 1] != random_mode)
    assert np.all((otf[data.labels == 0] > HORIZON_OPERATING_S) | (mode[data.labels == 0] == random_mode))
    # Before a random failure: neither positive nor negative, out of training.
    assert np.all(data.labels[data.unpredictable] == 0)
    assert np.all(otf[data.unpredictable] <= HORIZON_OPERATING_S)


def test_the_split_is_by_motor_and_covers_every_motor_once() -> None:
    split = split_motors(20, test_fraction=0.25, validation_fraction=0.1, seed=4)

    everyone = split["train"] + split["validation"] + split["test"]
    assert sorted(everyone) == list(range(20))
    assert len(split["test"]) == 5
    assert len(split["validation"]) == 2
    assert split == split_motors(20, test_fraction=0.25, validation_fraction=0.1, seed=4)
    with pytest.raises(ValueError, match="none to train"):
        split_motors(2, test_fraction=0.5, validation_fraction=0.4, seed=0)


def _oracle(history: History, data_steps: np.ndarray, data_columns: np.ndarray, lead_op_h: float) -> np.ndarray:
    """A perfect model: 0.95 within `lead_op_h` operating hours of a wear failure, 0.01 otherwise."""
    otf = history.operating_to_failure_s[data_steps, data_columns]
    mode = history.next_failure_mode[data_steps, data_columns]
    random_mode = list(FailureMode).index(FailureMode.RANDOM)
    return np.where((otf <= lead_op_h * 3600) & (mode >= 0) & (mode != random_mode), 0.95, 0.01)


def test_skipping_quiet_predictions_gives_the_same_alarm_episodes_as_a_full_replay(history: History) -> None:
    data = build(history, workers=1)
    rng = np.random.default_rng(0)
    noisy = np.clip(_oracle(history, data.step, data.column, 30) + rng.normal(0, 0.25, len(data)), 0, 1)
    config = DetectorConfig()

    for column in range(4):
        mine = data.column == column
        args = (history, column, data.step[mine], noisy[mine], config)
        full = replay_motor(*args, skip_quiet=False)
        assert replay_motor(*args, skip_quiet=True) == full
        assert full  # the noise raises alarms: the comparison is not vacuous


def test_a_perfect_model_forewarns_every_wear_failure_and_never_cries_wolf(history: History) -> None:
    data = build(history, workers=1)
    probabilities = _oracle(history, data.step, data.column, 30)

    result = replay(
        history,
        range(4),
        steps=data.step,
        column_of_row=data.column,
        probabilities=probabilities,
        config=DetectorConfig(),
    )
    summary = summarise(result, min_lead_h=12)

    predictable = summary["predictable"]
    assert predictable["failures"] >= 3
    assert predictable["forewarned"] == predictable["failures"]
    assert predictable["forewarned_12h"] == predictable["failures"]  # 30 operating hours is at least 12 calendar
    assert summary["false_alarms"] == 0
    assert summary["random"]["failures"] >= 1
    assert summary["random"]["alarm_before"] == 0
    assert sum(stats["failures"] for stats in summary["per_mode"].values()) == predictable["failures"]


def test_an_alarm_far_from_any_failure_is_false_and_a_silent_model_forewarns_nothing(history: History) -> None:
    data = build(history, workers=1)
    config = DetectorConfig()
    silent = np.full(len(data), 0.01)
    wolf = silent.copy()
    # Three confident predictions in a row on a motor's first running day: nowhere near a failure.
    first = np.flatnonzero(data.column == 0)[:3]
    assert history.operating_to_failure_s[data.step[first], 0].min() > 200 * 3600
    wolf[first] = 0.9

    quiet = summarise(
        replay(history, range(4), steps=data.step, column_of_row=data.column, probabilities=silent, config=config)
    )
    crying = summarise(
        replay(history, range(4), steps=data.step, column_of_row=data.column, probabilities=wolf, config=config)
    )

    assert quiet["predictable"]["forewarned"] == 0
    assert quiet["false_alarms"] == 0
    assert crying["false_alarms"] == 1
    assert crying["false_alarms_per_motor_year"] == pytest.approx(1 / crying["motor_years"], rel=0.01)


def test_row_metrics_report_pr_auc_and_recall_at_precision_point_nine() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=np.int8)
    perfect = row_metrics(labels, np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]))
    assert perfect["pr_auc"] == 1.0
    assert perfect["recall_at_precision_0.9"] == 1.0
    # The top-ranked row is a negative: precision never reaches 0.9 until recall drops to nothing useful.
    confused = row_metrics(labels, np.array([0.95, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]))
    assert confused["pr_auc"] < 1.0
    assert confused["recall_at_precision_0.9"] < 1.0
    assert row_metrics(np.zeros(3, dtype=np.int8), np.zeros(3))["pr_auc"] is None
