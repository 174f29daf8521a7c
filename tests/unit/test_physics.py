"""The simulated fleet behaves like real pump motors: healthy ones stay in range, worn ones warn, then fail."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from device.history import History, generate
from device.physics import DAY_S, HOUR_S, FailureMode, Fleet, FleetConfig
from motor_maintenance.telemetry import Telemetry

YEAR_S = 365 * DAY_S
ALWAYS_ON = FleetConfig(motors=4, seed=11, continuous_fraction=1.0, random_failures_per_year=0.0, wear_scale=1e-6)
"""Motors that run around the clock and (left alone) practically never wear out."""


def test_the_same_seed_gives_the_same_history_and_another_seed_another() -> None:
    config = FleetConfig(motors=3, seed=5)
    first = generate(config, duration_s=3 * DAY_S)
    again = generate(config, duration_s=3 * DAY_S)
    other = generate(replace(config, seed=6), duration_s=3 * DAY_S)

    for name, column in first.signals.items():
        np.testing.assert_array_equal(column, again.signals[name])
    np.testing.assert_array_equal(first.running, again.running)
    assert not np.array_equal(first.signals["vibration_mm_s"], other.signals["vibration_mm_s"])


def test_live_steps_and_fast_forward_history_are_the_same_readings() -> None:
    config = FleetConfig(motors=2, seed=9)
    history = generate(config, duration_s=DAY_S)
    fleet = Fleet(config)
    for _ in range(history.steps):
        samples = fleet.step(600.0)
    assert [sample.reading for sample in samples] == [history.reading(history.steps - 1, column) for column in (0, 1)]


def test_every_reading_round_trips_through_the_telemetry_model_as_json() -> None:
    fleet = Fleet(FleetConfig(motors=5, seed=3, wear_scale=50.0, random_failures_per_year=20.0))
    seen_fault = seen_running = False
    for _ in range(2000):
        for sample in fleet.step(600.0):
            published = json.dumps(sample.payload())
            assert Telemetry.model_validate_json(published) == sample.reading
            seen_fault |= sample.reading.fault is not None
            seen_running |= sample.reading.running
    assert seen_fault, "the run should cover failed motors"
    assert seen_running, "the run should cover running motors"


def test_a_healthy_motor_stays_inside_normal_ranges_for_a_simulated_year() -> None:
    history = generate(replace(ALWAYS_ON, continuous_fraction=0.5), duration_s=YEAR_S)
    running = history.running
    signals = history.signals

    assert running.mean() > 0.5
    # ISO 10816 class II (15-75 kW): zone A/B, well below the 7.1 mm/s of zone D.
    assert signals["vibration_mm_s"][running].max() < 4.5
    # Insulation class F allows 155 degC; bearings are fine below 90 degC.
    assert signals["winding_temp_c"].max() < 130
    assert signals["bearing_temp_c"].max() < 90
    assert signals["fluid_temp_c"].max() < 100
    assert signals["current_a"].max() <= 68.0 * 1.05
    assert signals["flow_m3h"][running].min() > 0
    assert signals["flow_m3h"].max() <= 1.1 * 180.0  # rated flow is the best-efficiency point, not a limit
    assert signals["pressure_bar"][running].min() > 0
    assert signals["pressure_bar"].max() < 7.5
    assert signals["ambient_temp_c"].min() > -25
    assert signals["ambient_temp_c"].max() < 45
    stopped = ~running
    assert (signals["speed_rpm"][stopped] == 0).all()
    assert (signals["current_a"][stopped] == 0).all()


def _inject_and_run(mode: FailureMode, after_h: float = 300.0) -> tuple[History, int]:
    """One always-on motor told to fail by `mode` after `after_h` hours; its history and failure step."""
    config = replace(ALWAYS_ON, motors=1, seed=21)

    def inject_once(fleet: Fleet, t: int) -> None:
        if t == 0:
            fleet.inject(fleet.motor_ids[0], mode, after_s=after_h * HOUR_S)

    history = generate(config, duration_s=(after_h + 150) * HOUR_S, on_step=inject_once)
    failures = history.failures()
    assert [failed_mode for _, _, failed_mode in failures][:1] == [mode], f"{mode} did not fail as injected"
    step = int(np.searchsorted(history.ts_ms, failures[0][1]))
    return history, step


def _mean_before(history: History, step: int, name: str, hours: tuple[float, float]) -> float:
    """Mean of a signal over the running readings between hours[0] and hours[1] before the failure."""
    to_failure_h = history.operating_to_failure_s[:step, 0] / HOUR_S
    window = history.running[:step, 0] & (to_failure_h <= hours[0]) & (to_failure_h > hours[1])
    assert window.sum() > 10
    return float(history.signals[name][:step, 0][window].mean())


EARLY, LATE = (120.0, 96.0), (12.0, 0.0)

DRIFTS = {
    FailureMode.BEARING_WEAR: {"vibration_mm_s": +1, "bearing_temp_c": +1},
    FailureMode.WINDING_INSULATION: {"winding_temp_c": +1, "current_a": +1},
    FailureMode.COOLING_LOSS: {"fluid_temp_c": +1, "winding_temp_c": +1},
    FailureMode.IMPELLER_WEAR: {"flow_m3h": -1, "pressure_bar": -1, "vibration_mm_s": +1},
}


@pytest.mark.parametrize("mode", list(DRIFTS))
def test_each_wear_mode_drifts_its_signals_the_right_way_before_the_failure(mode: FailureMode) -> None:
    history, step = _inject_and_run(mode)
    for name, direction in DRIFTS[mode].items():
        early = _mean_before(history, step, name, EARLY)
        late = _mean_before(history, step, name, LATE)
        change = (late - early) / abs(early)
        assert change * direction > 0.03, f"{mode}: {name} went {early:.2f} -> {late:.2f}"
    # Signals the mode does not touch stay put (within what load and weather do).
    untouched = {"bearing_temp_c", "fluid_temp_c", "vibration_mm_s", "flow_m3h"} - set(DRIFTS[mode])
    for name in untouched - ({"vibration_mm_s"} if mode is FailureMode.COOLING_LOSS else set()):
        early = _mean_before(history, step, name, EARLY)
        late = _mean_before(history, step, name, LATE)
        assert abs(late - early) / abs(early) < 0.15, f"{mode}: {name} went {early:.2f} -> {late:.2f}"


def test_a_random_failure_gives_no_warning() -> None:
    history, step = _inject_and_run(FailureMode.RANDOM)
    for name in ("vibration_mm_s", "bearing_temp_c", "winding_temp_c", "fluid_temp_c", "flow_m3h"):
        early = _mean_before(history, step, name, EARLY)
        late = _mean_before(history, step, name, LATE)
        assert abs(late - early) / abs(early) < 0.15, f"{name} went {early:.2f} -> {late:.2f}"


def test_at_failure_the_motor_stops_reports_the_fault_and_after_repair_runs_again_as_new() -> None:
    config = replace(ALWAYS_ON, motors=1, repair_hours=(10.0, 10.0))
    fleet = Fleet(config)
    motor = fleet.motor_ids[0]
    fleet.inject(motor, "bearing_wear", after_s=100 * HOUR_S)
    samples = [fleet.step(600.0)[0] for _ in range(6 * 140)]

    failed_at = next(i for i, sample in enumerate(samples) if sample.reading.fault)
    failure = samples[failed_at]
    assert failure.reading.fault == "bearing_failure"
    assert not failure.reading.running
    assert failure.truth.failed_mode is FailureMode.BEARING_WEAR
    assert failure.truth.health["bearing_wear"] == pytest.approx(1.0, abs=1e-9)
    assert 80 * HOUR_S < failure.truth.operating_s < 130 * HOUR_S
    down = samples[failed_at : failed_at + 60]
    assert all(s.reading.fault == "bearing_failure" and s.reading.speed_rpm == 0 for s in down)
    after = samples[failed_at + 61 :]
    assert all(s.reading.fault is None for s in after)
    assert any(s.reading.running for s in after)
    assert after[-1].truth.health["bearing_wear"] < 1e-6


def test_service_complete_resets_wear_and_restarts_a_failed_motor() -> None:
    fleet = Fleet(replace(ALWAYS_ON, motors=2, repair_hours=(1000.0, 1000.0)))
    worn, other = fleet.motor_ids
    fleet.inject(worn, "impeller_wear", after_s=50 * HOUR_S)
    fleet.inject(other, "cooling_loss", after_s=40 * HOUR_S)
    for _ in range(6 * 45):
        fleet.step(600.0)
    assert fleet.step(600.0)[1].reading.fault == "overheating"
    impeller_before = fleet.step(600.0)[0].truth.health["impeller_wear"]
    assert impeller_before > 0.2

    fleet.service(worn)
    fleet.service(other)
    later = [fleet.step(600.0) for _ in range(48)]  # a stopped always-on motor restarts within the hour, mostly
    assert later[-1][0].truth.health["impeller_wear"] < impeller_before / 100
    assert all(s.reading.fault is None for step in later for s in step)
    assert any(step[1].reading.running for step in later)


def test_ground_truth_counts_down_to_each_failure_and_names_its_mode() -> None:
    history = generate(FleetConfig(motors=6, seed=4, wear_scale=8.0), duration_s=60 * DAY_S)
    failures = history.failures()
    assert len(failures) >= 3
    for motor_id, failed_ms, mode in failures:
        column = history.motor_ids.index(motor_id)
        step = int(np.searchsorted(history.ts_ms, failed_ms))
        assert history.time_to_failure_s[step, column] == 0
        before = history.time_to_failure_s[step - 3 : step, column]
        np.testing.assert_allclose(before, [1800.0, 1200.0, 600.0])
        assert history.label(step - 1, column)["failure_mode"] == mode.value
        # Operating time to failure never exceeds calendar time to failure.
        assert (history.operating_to_failure_s[:step, column] <= history.time_to_failure_s[:step, column] + 1e-6).all()
    # After a motor's last failure and repair there is nothing ahead of it.
    last_motor, _, _ = failures[-1]
    column = history.motor_ids.index(last_motor)
    assert math.isinf(history.time_to_failure_s[-1, column]) or history.failed_mode[-1, column] >= 0


@pytest.mark.parametrize(
    ("motor", "mode", "after_s", "error"),
    [
        ("motor-404", "bearing_wear", 10.0, KeyError),
        ("motor-001", "rust", 10.0, ValueError),
        ("motor-001", "bearing_wear", -1.0, ValueError),
        ("motor-001", "bearing_wear", math.nan, ValueError),
    ],
)
def test_an_impossible_injection_is_refused(motor: str, mode: str, after_s: float, error: type[Exception]) -> None:
    with pytest.raises(error):
        Fleet(FleetConfig(motors=1)).inject(motor, mode, after_s)


def test_a_fleet_can_be_named_after_iot_things() -> None:
    fleet = Fleet(FleetConfig(motors=2, motor_ids=("pump-a", "pump-b")))
    assert [s.reading.motor_id for s in fleet.step(60.0)] == ["pump-a", "pump-b"]
    with pytest.raises(ValueError, match="3 motor ids given for 2 motors"):
        FleetConfig(motors=2, motor_ids=("a", "b", "c")).ids()


def test_servicing_one_motor_leaves_every_other_motors_history_unchanged() -> None:
    config = FleetConfig(motors=3, seed=8, wear_scale=5.0)
    untouched, serviced = Fleet(config), Fleet(config)
    for step in range(400):
        if step % 50 == 10:
            serviced.service("motor-002")
        left, right = untouched.step(600.0), serviced.step(600.0)
        assert left[0].reading == right[0].reading
        assert left[2].reading == right[2].reading
    assert left[1].truth.health != right[1].truth.health


def test_a_failure_right_after_a_repair_is_a_failure_of_its_own() -> None:
    config = replace(ALWAYS_ON, motors=1, repair_hours=(5.0, 5.0))

    def fail_twice(fleet: Fleet, t: int) -> None:
        motor = fleet.motor_ids[0]
        if t == 0:
            fleet.inject(motor, "bearing_wear", after_s=20 * HOUR_S)
        elif fleet.failed[0] >= 0 and fleet.random_due_s[0] == math.inf and fleet.failure_count[0] == 1:
            fleet.inject(motor, "random", after_s=0.0)  # strikes the moment it runs again

    # Six-hour steps: the repair (5 h) is over by the next step, where the motor restarts at once.
    history = generate(config, duration_s=10 * DAY_S, interval_s=6 * HOUR_S, on_step=fail_twice)

    modes = [mode for _, _, mode in history.failures()]
    assert modes == [FailureMode.BEARING_WEAR, FailureMode.RANDOM]
    second = int(np.searchsorted(history.ts_ms, history.failures()[1][1]))
    assert history.failed_mode[second - 1, 0] == list(FailureMode).index(FailureMode.BEARING_WEAR)
    assert history.label(second - 1, 0)["failure_mode"] == "bearing_wear"
    assert history.label(second, 0)["failure_mode"] == "random"


def test_a_failure_injected_while_the_motor_is_down_survives_the_repair() -> None:
    fleet = Fleet(replace(ALWAYS_ON, motors=1, repair_hours=(5.0, 5.0)))
    motor = fleet.motor_ids[0]
    fleet.inject(motor, "bearing_wear", after_s=10 * HOUR_S)
    while not fleet.step(600.0)[0].reading.fault:
        pass
    fleet.inject(motor, "bearing_wear", after_s=30 * HOUR_S)
    faults = [fleet.step(600.0)[0].reading.fault for _ in range(6 * 45)]
    first_down = faults.index(None)
    assert "bearing_failure" in faults[first_down:], "the second injected failure was lost in the repair"


def test_the_coldest_day_of_the_year_stays_in_mid_january_over_decades() -> None:
    fleet = Fleet(FleetConfig(motors=1))
    for year in (2026, 2040):
        start = datetime(year, 1, 1, tzinfo=UTC).timestamp() * 1000
        days = [start + day * DAY_S * 1000 for day in range(365)]
        coldest = min(days, key=lambda ms: float(fleet._ambient_c(int(ms))[0]))
        assert 10 <= datetime.fromtimestamp(coldest / 1000, tz=UTC).timetuple().tm_yday <= 20


def test_a_worn_out_part_is_renewed_at_its_repair_while_other_motors_run() -> None:
    """Regression: a stopped motor's health went through (h + offset) - offset and rounded 1.0 down to
    0.9999999999999999, so its repair kept the worn part and it failed again at every start (seed 1,
    motor-056: 272 bearing failures in a year)."""
    history = generate(FleetConfig(motors=60, seed=1), duration_s=60 * DAY_S)

    assert history.failure_count[-1].max() <= 3  # failures of each motor in 60 days
