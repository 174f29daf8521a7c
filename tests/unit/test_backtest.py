"""The maintenance-strategy backtest, the recording replay and the simulator's --record option."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device import simulate
from device.history import History, generate
from device.physics import DAY_S, FleetConfig
from model import backtest, replay
from model.artifact import load_booster
from motor_maintenance.config import PREDICTIVE_ALARM, SCHEDULE_ALARM, DetectorConfig
from motor_maintenance.detector import ReadingInput, step
from motor_maintenance.state import MotorState
from tests.support import svg_elements

CONDITION_ALARMS = {"fluid_overtemperature", "vibration_zone_d"}


@pytest.fixture(scope="module")
def worn_history() -> History:
    """Two motors wearing eight times as fast for 40 days: failures within the history."""
    history = generate(FleetConfig(motors=2, seed=7, wear_scale=8.0), duration_s=40 * DAY_S)
    assert len(history.failures()) >= 1
    return history


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --stdout run recorded with --record: 2 motors, 200 readings each, 10 simulated minutes apart.

    It starts on a Monday at 06:00: motor-001 runs weekday shifts, and its wear (and so the injected
    failure) advances only while it runs, so a run started on a Friday evening saw no failure.
    """
    path = tmp_path_factory.mktemp("rec") / "recording.jsonl"
    argv = ["--stdout", "--progress-every", "0", "--motors", "2", "--count", "200", "--interval", "0.001"]
    argv += ["--speedup", "600000", "--fail", "motor-001:bearing_wear:12h", "--record", str(path)]
    argv += ["--start", "2026-11-16T06:00:00+00:00"]
    assert simulate.main(argv) == 0
    return path


def test_each_strategy_alone_raises_only_its_own_alarms(worn_history: History) -> None:
    # Given rules sensitive enough that every strategy would raise on this history
    base = DetectorConfig.with_overrides(
        {
            "schedule": {"service_interval_h": 50},
            "conditions": [
                {"name": "vibration_zone_d", "signal": "vibration_mm_s", "raise_threshold": 0.1, "clear_threshold": 0.0}
            ],
        }
    )
    configs = backtest.strategy_configs(base)
    readings = list(worn_history.readings(0))
    certain = [0.99] * len(readings)

    # When each strategy's configuration replays the motor
    raised = {name: {r.alarm for r in backtest.raises_of(readings, certain, c)} for name, c in configs.items()}

    # Then each alone raises only its own alarm, and all three raise all of them
    assert raised["schedule"] == {SCHEDULE_ALARM}
    assert raised["condition"] == {"vibration_zone_d"}
    assert raised["predictive"] == {PREDICTIVE_ALARM}
    assert raised["all"] == {SCHEDULE_ALARM, "vibration_zone_d", PREDICTIVE_ALARM}


def test_the_combined_strategy_catches_at_least_what_each_catches_alone(
    worn_history: History, small_model_run: tuple[dict[str, Any], Path]
) -> None:
    booster = load_booster(small_model_run[1] / "model.tar.gz")
    configs = backtest.strategy_configs(DetectorConfig())

    outcomes = backtest.backtest_history(worn_history, booster, configs, backtest.Costs(), log=lambda _: None)

    assert outcomes["all"].failures == len(worn_history.failures())
    for name in ("schedule", "condition", "predictive"):
        assert (outcomes["all"].caught or 0) >= (outcomes[name].caught or 0)


def test_costs_and_downtime_follow_the_documented_counts() -> None:
    # Given a motor failing at reading 10 (down for 2 readings, 10 minutes apart), warned at 5;
    # then a predictive raise at 50 and a schedule raise at 80 that no failure follows
    n = 100
    ts = np.arange(n, dtype=np.int64) * 600_000
    down = np.zeros(n, dtype=bool)
    down[10:12] = True
    track = backtest.Track("motor-001", ts, down, np.array([10]))
    outcome = backtest.Outcome()
    raised = [
        backtest.Raised(5, PREDICTIVE_ALARM),
        backtest.Raised(50, PREDICTIVE_ALARM),
        backtest.Raised(80, SCHEDULE_ALARM, ended=80),
        backtest.Raised(11, "vibration_zone_d"),
    ]

    backtest.tally(outcome, track, raised, window_h=24)
    costs = backtest.Costs(planned_service=2000, unplanned_failure=15000, false_alarm=500, planned_downtime_h=8)
    summary = backtest.score(outcome, costs)

    assert summary["caught"] == 1
    assert summary["missed"] == 0
    assert summary["lead_h_median"] == 0.8  # 5 readings of 10 minutes
    assert (summary["planned_services"], summary["false_alarms"], summary["raises_while_down"]) == (1, 1, 1)
    assert summary["cost"] == 2000 + 2000 + 500  # caught failure repaired as planned, a service, a false alarm
    assert summary["downtime_h"] == 8 + 8

    # A missed failure costs the unplanned failure and keeps its simulated downtime (2 readings: 20 minutes)
    missed = backtest.Outcome()
    backtest.tally(missed, track, [], window_h=24)
    assert backtest.score(missed, costs)["cost"] == 15000
    assert backtest.score(missed, costs)["downtime_h"] == pytest.approx(0.3, abs=0.05)


def _ten_minute_track(n: int, onset: int) -> backtest.Track:
    """A motor read every 10 minutes that fails at reading `onset` and stays down for an hour."""
    ts = np.arange(n, dtype=np.int64) * 600_000
    down = np.zeros(n, dtype=bool)
    down[onset : onset + 6] = True
    return backtest.Track("motor-001", ts, down, np.array([onset]))


def test_an_alarm_raised_before_the_window_and_up_into_it_catches_the_failure() -> None:
    # Given a failure at 40 h and an alarm raised 30 h before it (at 10 h), up until the failure
    track = _ten_minute_track(300, onset=240)
    raised = [backtest.Raised(60, PREDICTIVE_ALARM, ended=246)]
    outcome = backtest.Outcome()

    # When the backtest tallies it (model/forewarning.py's rule, as training's evaluation and the demo)
    backtest.tally(outcome, track, raised, window_h=24)

    # Then it caught the failure 30 h ahead: neither a miss nor a false alarm
    assert (outcome.failures, outcome.caught, outcome.false_alarms) == (1, 1, 0)
    assert outcome.lead_h == [30.0]


@pytest.mark.parametrize(
    ("cleared_h_before", "caught", "false_alarms"),
    [(23.0, 1, 0), (24.0, 0, 1), (25.0, 0, 1)],
)
def test_an_alarm_cleared_a_window_or_more_before_the_failure_is_a_false_alarm_and_a_miss(
    cleared_h_before: float, caught: int, false_alarms: int
) -> None:
    # Given a failure at 40 h and an alarm raised 30 h before it, cleared `cleared_h_before` hours before it
    track = _ten_minute_track(300, onset=240)
    raised = [backtest.Raised(60, PREDICTIVE_ALARM, ended=240 - round(cleared_h_before * 6))]
    outcome = backtest.Outcome()

    backtest.tally(outcome, track, raised, window_h=24)

    assert (outcome.caught, outcome.false_alarms) == (caught, false_alarms)


def test_a_schedule_episode_ends_with_the_service_that_follows_its_raise(worn_history: History) -> None:
    # Given a service interval the motor reaches several times
    configs = backtest.strategy_configs(DetectorConfig.with_overrides({"schedule": {"service_interval_h": 50}}))
    readings = list(worn_history.readings(0))

    raised = backtest.raises_of(readings, [None] * len(readings), configs["schedule"])

    # Then every schedule episode ends at its own raise (service_complete follows it at once)
    assert raised
    assert all(r.alarm == SCHEDULE_ALARM and r.ended == r.at for r in raised)


def test_the_json_and_the_plot_are_written(tmp_path: Path) -> None:
    outcome = backtest.Outcome(failures=2, caught=1, lead_h=[20.0], planned_services=1, false_alarms=0)
    summaries = {name: outcome.summary(backtest.Costs()) for name in backtest.STRATEGIES}

    json_path, plot_path = backtest.write(tmp_path, summaries, {"assumptions": ["x"]})

    document = json.loads(json_path.read_text())
    assert set(document["strategies"]) == set(backtest.STRATEGIES)
    assert document["strategies"]["all"]["cost"] == 2000 + 15000 + 2000
    assert len(svg_elements(plot_path, "bar")) == 3 * len(backtest.STRATEGIES)  # cost, failures, caught
    assert "schedule" in backtest.table(summaries)


def test_record_writes_one_line_per_reading_with_its_truth(recording: Path) -> None:
    lines = [json.loads(line) for line in recording.read_text().splitlines()]

    assert len(lines) == 2 * 200
    assert lines[0]["topic"] == f"motors/{lines[0]['payload']['motor_id']}/telemetry"
    assert all(set(line["truth"]) == {"failed_mode", "health"} for line in lines)
    assert any(line["truth"]["failed_mode"] == "bearing_wear" for line in lines)


def test_the_replay_is_deterministic_and_equals_the_detector_driven_directly(
    recording: Path, small_model_run: tuple[dict[str, Any], Path]
) -> None:
    booster = load_booster(small_model_run[1] / "model.tar.gz")
    config = replay.detector_config('{"predictive": {"raise_threshold": 0.2, "clear_threshold": 0.1}}')
    loaded = replay.load_recording(recording)

    first = replay.report(replay.replay_recording(loaded, booster, config))
    second = replay.report(replay.replay_recording(replay.load_recording(recording), booster, config))

    direct: list[tuple[str, str, str]] = []
    for rows in loaded.values():
        readings = [r.reading for r in rows]
        state: MotorState | None = None
        for reading, chance in zip(readings, replay.probabilities(readings, booster), strict=True):
            decision = step(
                state, ReadingInput(reading, chance), datetime.fromtimestamp(reading.ts_ms / 1000, UTC), config
            )
            state = decision.state
            direct.extend((e.motor_id, e.alarm, e.transition.value) for e in decision.events)
    replayed = [(t.motor_id, t.alarm, t.transition) for t in replay.replay_recording(loaded, booster, config)]
    assert first == second
    assert direct
    assert replayed == direct


def test_a_recording_backtests_with_its_truth_and_without_it(recording: Path, tmp_path: Path) -> None:
    configs = backtest.strategy_configs(DetectorConfig())
    outcomes = backtest.backtest_recording(recording, None, configs, backtest.Costs(), log=lambda _: None)
    assert outcomes["all"].failures == 1

    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        "".join(json.dumps(json.loads(line)["payload"]) + "\n" for line in recording.read_text().splitlines())
    )
    unknown = backtest.backtest_recording(bare, None, configs, backtest.Costs(), log=lambda _: None)
    assert "unknown" in unknown["all"].summary(backtest.Costs())["failures"]
