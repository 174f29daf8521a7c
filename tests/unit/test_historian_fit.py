"""Issue 21's must-show: a foreign historian export, imported with a mapping, trains a model that forewarns.

Generates tests/historian_synth.py's export, imports it with model/import_history.py, trains with
`model/train.py --archive` (the detector's default configuration: no threshold is chosen here, and
none on the held-out motors), and scores the held-out motors by the issue's definition with
tests/historian_score.py: at least 80 % of the failures whose signature stood out at least 6 h ahead
forewarned (an alarm up within the 24 h before them), at most 1 false predictive alarm per motor-year.

The full fleet, 48 pumps x 365 days, generator seed 0: about 2.5 minutes on two cores. A
smaller one (32 pumps x 270 days) leaves the held-out motors only 6 failures with warning, too few
for a percentage. docs/import.md gives the figures over three seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model.import_history import import_history
from model.import_mapping import load_mapping
from model.train import main as train
from tests.historian_score import score
from tests.historian_synth import generate

MOTORS, DAYS, SEED = 48, 365, 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("historian-fit")
    export = folder / "export"
    report = import_history(load_mapping(generate(export, motors=MOTORS, days=DAYS, seed=SEED)), folder / "archive")
    assert report.telemetry is not None
    assert report.telemetry.kept > 0
    out = folder / "out"
    argv = ["--archive", str(folder / "archive"), "--out", str(out), "--no-model-card", "--workers", "2"]
    assert train([*argv, "--no-warning-mode", "coupling_sheared_no_prior_indication"]) == 0
    return export, out, score(export, out)


def test_the_held_out_motors_forewarn_most_failures_that_give_warning(trained: tuple[Path, Path, Any]) -> None:
    figures = trained[2]
    assert figures["warning_6h_failures"] >= 8, "too few failures with warning to measure anything"
    assert figures["forewarned_fraction"] >= 0.8, json.dumps(figures, indent=2)


def test_the_held_out_motors_raise_at_most_one_false_alarm_per_motor_year(trained: tuple[Path, Path, Any]) -> None:
    figures = trained[2]
    assert figures["motor_years"] > 3
    assert figures["false_alarms_per_motor_year"] <= 1.0, json.dumps(figures, indent=2)


def test_the_score_counts_an_alarm_only_within_the_24_hours_before_a_failure(tmp_path: Path) -> None:
    """The scorer itself: up within 24 h before counts, cleared 25 h before is false, raised after is false."""
    (tmp_path / "ground_truth.csv").write_text(
        "asset,failed_at,mode,warning_h,warning_running_h\n"
        "P-101A,2025-03-02T12:00:00Z,bearing,10.00,10.00\n"
        "P-101B,2025-03-02T12:00:00Z,bearing,12.00,12.00\n"
        "P-102A,2025-03-02T12:00:00Z,winding,2.00,2.00\n"
        "P-999A,2025-03-02T12:00:00Z,bearing,12.00,12.00\n",
        encoding="utf-8",
    )
    alarms = [
        {"motor_id": "P-101A", "raised": "2025-03-01T00:00:00+00:00", "cleared": "2025-03-01T12:00:00+00:00"},
        {"motor_id": "P-101A", "raised": "2025-03-02T02:00:00+00:00", "cleared": None},
        {"motor_id": "P-101B", "raised": "2025-02-28T00:00:00+00:00", "cleared": "2025-03-01T11:00:00+00:00"},
        {"motor_id": "P-101B", "raised": "2025-03-02T13:00:00+00:00", "cleared": None},
        {"motor_id": "P-102A", "raised": "2025-03-01T20:00:00+00:00", "cleared": "2025-03-02T00:00:00+00:00"},
    ]
    held = {"motors": ["P-101A", "P-101B", "P-102A"], "motor_years": 2.0, "alarms": alarms}
    (tmp_path / "held-out-alarms.json").write_text(json.dumps(held), encoding="utf-8")
    figures = score(tmp_path, tmp_path)
    assert figures["failures"] == 3, "P-999A is not a held-out motor"
    assert figures["warning_6h_failures"] == 2
    assert figures["forewarned"] == 1
    assert figures["lead_h_median"] == 36.0, "from the earliest raise that was up within the 24 h"
    assert figures["false_alarms"] == 2, "cleared 25 h before a failure, and raised after one"
    assert figures["false_alarms_per_motor_year"] == 1.0
    assert [m["asset"] for m in figures["missed"]] == ["P-101B"]
