"""The evaluation: features as the Lambda computes them, labels, the split, and the detector replay."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from device.history import History, generate
from device.physics import DAY_S, FailureMode, FleetConfig
from model import card
from model.dataset import HORIZON_OPERATING_S, build, split_motors
from model.evaluate import across_seeds, format_seeds, replay, replay_motor, row_metrics, summarise
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


# Forewarned: the predictive alarm up within the 24 calendar hours before the failure


def _alarm_between(
    history: History,
    data_steps: np.ndarray,
    data_columns: np.ndarray,
    column: int,
    hours: tuple[float, float],
    onset: int,
) -> np.ndarray:
    """0.9 on `column`'s readings from hours[0] to hours[1] calendar hours before step `onset`, 0.01 elsewhere."""
    before_h = (history.ts_ms[onset] - history.ts_ms[data_steps]) / 3.6e6
    inside = (data_columns == column) & (before_h <= hours[0]) & (before_h >= hours[1])
    return np.where(inside, 0.9, 0.01)


def _a_wear_failure_with_running_before_it(
    history: History, data_steps: np.ndarray, data_columns: np.ndarray
) -> tuple[int, int]:
    """(column, onset step) of a wear failure whose motor ran through the 40 calendar hours before it."""
    random_mode = list(FailureMode).index(FailureMode.RANDOM)
    for column in range(len(history.motor_ids)):
        for onset in history.failure_onsets(column).tolist():
            before_h = (history.ts_ms[onset] - history.ts_ms[data_steps]) / 3.6e6
            mine = (data_columns == column) & (before_h > 0) & (before_h <= 40)
            if history.failed_mode[onset, column] != random_mode and mine.sum() >= 200:  # 40 h of 10-minute readings
                return column, onset
    raise AssertionError("no wear failure after 40 running hours in the fixture")


@pytest.mark.parametrize(
    ("hours", "forewarned"),
    [((30.0, 20.0), True), ((40.0, 30.0), False)],
    ids=["cleared-20-h-before-counts", "cleared-30-h-before-is-false"],
)
def test_a_failure_is_forewarned_only_if_the_alarm_was_up_in_the_24_calendar_hours_before_it(
    history: History, hours: tuple[float, float], forewarned: bool
) -> None:
    # Given an alarm raised about hours[0] and cleared about hours[1] calendar hours before a wear failure
    data = build(history, workers=1)
    column, onset = _a_wear_failure_with_running_before_it(history, data.step, data.column)
    probabilities = _alarm_between(history, data.step, data.column, column, hours, onset)

    # When the motor is replayed
    result = replay(
        history,
        [column],
        steps=data.step,
        column_of_row=data.column,
        probabilities=probabilities,
        config=DetectorConfig(),
    )

    # Then the failure is forewarned, with the calendar lead time from the raise, if the alarm was up in its last day
    failure = next(f for f in result.failures if f.onset == onset)
    assert len(result.episodes) == 1
    if forewarned:
        assert failure.lead_h == pytest.approx(hours[0], abs=0.5)  # 3 predictions of 10 minutes to raise
        assert result.false_alarms == 0
    else:
        assert failure.lead_h is None
        assert result.false_alarms == 1


def test_figures_over_seeds_have_their_mean_and_a_95_percent_interval() -> None:
    def run(seed: int, forewarned: float, lead: float | None) -> dict[str, Any]:
        return {
            "data": {"seed": seed},
            "replay": {
                "motor_years": 15.0,
                "false_alarms_per_motor_year": 0.1 * seed,
                "predictable": {
                    "failures": 20,
                    "forewarned_fraction": forewarned,
                    "forewarned_12h_fraction": forewarned,
                    "lead_h_median": lead,
                    "lead_h_p10": lead,
                },
            },
            "rows": {"pr_auc": 0.9, "recall_at_precision_0.9": 0.8},
        }

    summary = across_seeds([run(1, 0.8, 20.0), run(2, 0.9, None), run(3, 1.0, 30.0)])

    assert summary["seeds"] == [1, 2, 3]
    assert summary["failures"] == 60
    assert summary["motor_years"] == 45.0
    forewarned = summary["figures"]["forewarned_fraction"]
    # mean 0.9, sample std 0.1, t(0.975, 2) = 4.3027: half-width 0.2484
    assert (forewarned["mean"], forewarned["low"], forewarned["high"], forewarned["n"]) == pytest.approx(
        (0.9, 0.6516, 1.1484, 3), abs=1e-4
    )
    lead = summary["figures"]["lead_h_median"]
    assert lead["per_seed"] == [20.0, None, 30.0]
    assert (lead["mean"], lead["n"]) == (25.0, 2)  # the seed without a forewarned failure has no lead time
    text = format_seeds(summary)
    assert "Over 3 seeds (1, 2, 3; 60 predictable failures in 45.0 held-out motor-years)" in text
    assert "0.900 (95 % interval 0.652 to 1.148)" in text
    table = card.seeds_section(summary)
    assert "| wear failures forewarned (alarm up in the 24 h before) | 0.9 | 0.652 to 1.15 | 0.8, 0.9, 1 |" in table
