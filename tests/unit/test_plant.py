"""A real plant on top of the ideal physics: noisier drifting sensors that drop out, several ratings, maintenance."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from device.history import generate
from device.physics import DAY_S, HOUR_S, FailureMode, Fleet, FleetConfig
from device.plant import Plant, PlantConfig
from device.ratings import RATINGS, MotorRating
from motor_maintenance.telemetry import SIGNALS, Telemetry

QUIET = PlantConfig(
    noise_scale=1.0,
    drift_offset={},
    drift_gain={},
    dropouts_per_sensor_day=0.0,
    ratings=(MotorRating(),),
    act_on_alarm=0.0,
)
"""A plant that adds nothing: one 37 kW rating, the ideal noise, no drift, dropouts or maintenance."""
ALWAYS_ON = FleetConfig(motors=6, seed=4, continuous_fraction=1.0, random_failures_per_year=0.0, wear_scale=1e-6)


def _errors(config: FleetConfig, steps: int) -> np.ndarray:
    """The winding sensor's error (reading - true temperature) of every motor over `steps` steps."""
    fleet = Fleet(config)
    errors = []
    for _ in range(steps):
        fleet.advance(600.0)
        errors.append(fleet.signals["winding_temp_c"] - fleet.winding_c)
    return np.array(errors)


def test_the_sensor_noise_is_the_ideal_simulators_times_the_noise_scale() -> None:
    ideal = _errors(replace(ALWAYS_ON, plant=QUIET), 200)
    noisy = _errors(replace(ALWAYS_ON, plant=replace(QUIET, noise_scale=4.0)), 200)

    np.testing.assert_allclose(noisy, 4.0 * ideal, atol=1e-9)
    assert 0.25 < ideal.std() < 0.35  # the ideal winding sensor's 0.3 K


def test_a_plant_that_adds_nothing_reads_as_the_ideal_simulator() -> None:
    ideal = generate(ALWAYS_ON, duration_s=2 * DAY_S)
    quiet = generate(replace(ALWAYS_ON, plant=QUIET), duration_s=2 * DAY_S)

    for name in SIGNALS:
        np.testing.assert_array_equal(quiet.signals[name], ideal.signals[name])


def test_sensors_drift_as_a_random_walk_of_the_configured_size_per_year() -> None:
    plant = Plant(PlantConfig(dropouts_per_sensor_day=0.0), 4000, np.random.default_rng(1))
    zeros = {name: np.zeros(4000) for name in SIGNALS}

    for _ in range(365):
        plant.sense(zeros, DAY_S)

    assert plant.offset["bearing_temp_c"].std() == pytest.approx(3.0, rel=0.1)
    assert plant.gain["vibration_mm_s"].std() == pytest.approx(0.08, rel=0.1)
    assert abs(plant.offset["bearing_temp_c"].mean()) < 0.2


def test_sensors_drop_out_for_hours_at_the_configured_rate() -> None:
    config = PlantConfig(dropouts_per_sensor_day=0.5, dropout_mean_h=4.0)
    plant = Plant(config, 1000, np.random.default_rng(2))
    ones = {name: np.ones(1000) for name in SIGNALS}

    missing = np.array([np.isnan(plant.sense(ones, 600.0)["current_a"]) for _ in range(2000)])

    # Up 1 / (0.5 per day) = 48 h on average, down 4 h: missing 4 / 52 of the time.
    assert missing.mean() == pytest.approx(4 / 52, rel=0.15)
    starts = (missing[1:] & ~missing[:-1]).sum()
    mean_run_h = missing[1:].sum() / starts * 600 / HOUR_S
    assert mean_run_h == pytest.approx(4.0, rel=0.15)


def test_a_dropped_signal_is_left_out_of_the_reading_and_the_rest_is_reported() -> None:
    fleet = Fleet(replace(ALWAYS_ON, plant=PlantConfig(dropouts_per_sensor_day=2.0)))
    seen_missing = 0
    for _ in range(300):
        for sample in fleet.step(600.0):
            published = json.loads(json.dumps(sample.payload()))
            assert Telemetry.model_validate(published) == sample.reading
            missing = [name for name in SIGNALS if getattr(sample.reading, name) is None]
            seen_missing += len(missing)
    assert seen_missing > 0.1 * 300 * 6 * len(SIGNALS)  # about a quarter missing: 4 h down, 12 h up


def test_motors_get_the_three_ratings_and_report_their_type() -> None:
    history = generate(replace(ALWAYS_ON, motors=30, plant=PlantConfig()), duration_s=DAY_S)

    assert history.motor_types is not None
    assert set(history.motor_types) == set(RATINGS)
    for column in range(30):
        assert history.reading(10, column).motor_type == history.motor_types[column]
    # A 90 kW motor draws several times the current of a 15 kW one.
    current = {kind: [] for kind in RATINGS}
    for column, kind in enumerate(history.motor_types):
        current[kind].append(np.nanmedian(history.signals["current_a"][:, column]))
    assert min(current["pump-90kw"]) > 3 * max(current["pump-15kw"])


def _wearing_fleet(act_on_alarm: float) -> Fleet:
    plant = replace(QUIET, act_on_alarm=act_on_alarm, response_h=(0.2, 0.5))
    fleet = Fleet(replace(ALWAYS_ON, motors=2, plant=plant))
    fleet.inject("motor-001", FailureMode.BEARING_WEAR, after_s=200 * HOUR_S)
    return fleet


@pytest.mark.parametrize(("act_on_alarm", "serviced"), [(1.0, True), (0.0, False)])
def test_a_condition_alarm_acted_on_services_the_motor_before_it_fails(act_on_alarm: float, serviced: bool) -> None:
    # Given a bearing wearing out over 200 running hours, its vibration alarm acted on within half an hour (or never)
    fleet = _wearing_fleet(act_on_alarm)

    # When it runs past its bearing's life
    for _ in range(260 * 6):
        fleet.advance(600.0)

    # Then the service renews the bearing before it fails; left alone, it fails
    assert fleet.service_count[0] == (1 if serviced else 0)
    assert fleet.failure_count[0] == (0 if serviced else 1)
    assert fleet.service_count[1] == 0
    assert fleet.failure_count[1] == 0


def test_the_history_records_services_and_the_archive_writes_them_with_missing_values_as_nulls(tmp_path: Path) -> None:
    from device.columnar import read_parquet
    from device.history_archive import write_archive

    plant = replace(PlantConfig(), act_on_alarm=1.0, response_h=(0.2, 0.5), dropouts_per_sensor_day=5.0)
    history = generate(replace(ALWAYS_ON, motors=3, plant=plant), duration_s=6 * DAY_S, on_step=_inject_once)

    written = write_archive(history, tmp_path / "archive")

    assert history.service_steps(0).size == 1
    assert written.services >= 1
    actions = [
        json.loads(line) for path in (tmp_path / "archive").rglob("*.jsonl") for line in path.read_text().splitlines()
    ]
    assert any(a["action"] == "service_complete" and a["note"] == "serviced after a condition alarm" for a in actions)
    table = read_parquet(next((tmp_path / "archive").rglob("*.parquet")))
    assert table.nulls("current_a").sum() > 0
    types = set(table.values("motor_type"))
    assert types <= set(RATINGS)
    assert not any(math.isnan(value) for value in table.values("current_a") if value is not None)


def _inject_once(fleet: Fleet, t: int) -> None:
    if t == 0:
        fleet.inject("motor-001", FailureMode.BEARING_WEAR, after_s=100 * HOUR_S)
