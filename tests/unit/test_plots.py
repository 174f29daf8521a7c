"""The evaluation's SVG plots show the data they are given: read back with xml.etree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from model import backtest, plots, scoring, svg
from tests.support import svg_elements


def texts(path: Path) -> list[str]:
    return [element.text or "" for element in svg_elements(path) if element.tag == "{http://www.w3.org/2000/svg}text"]


def test_the_pr_curve_draws_every_point_of_the_curve_the_no_skill_line_and_the_threshold(tmp_path: Path) -> None:
    labels = np.array([0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0], dtype=np.int8)
    probabilities = np.linspace(0.05, 0.95, len(labels))[np.random.RandomState(3).permutation(len(labels))]
    precision, recall, thresholds = scoring.precision_recall_curve(labels, probabilities)

    path = plots.pr_curve(labels, probabilities, tmp_path / "pr.svg", threshold=0.5, pr_auc=0.61)

    (line,) = svg_elements(path, "line")
    curve = np.column_stack([recall, precision])
    distinct = 1 + int(np.any(np.diff(curve, axis=0) != 0, axis=1).sum())  # a repeated point is drawn once
    assert len(line.get("points", "").split()) == distinct == 19
    (no_skill,) = svg_elements(path, "reference")
    assert float(no_skill.get("data-value", "nan")) == pytest.approx(labels.mean())
    (point,) = svg_elements(path, "point")
    at = int(np.searchsorted(thresholds, 0.5))
    assert float(point.get("data-x", "nan")) == pytest.approx(recall[at], abs=1e-6)
    assert float(point.get("data-y", "nan")) == pytest.approx(precision[at], abs=1e-6)
    shown = texts(path)
    assert "Held-out motors: precision-recall per reading" in shown
    assert "model (PR-AUC 0.610)" in shown
    assert "precision" in shown


def test_the_lead_time_histogram_stacks_every_failure_by_mode_with_the_dashed_target(tmp_path: Path) -> None:
    leads = {"bearing_wear": [3.0, 13.0, 14.0, 30.0], "cooling_loss": [13.5, 40.0], "impeller_wear": [60.0]}

    path = plots.lead_time_histogram(leads, tmp_path / "lead.svg", min_lead_h=12.0)

    bars = svg_elements(path, "bar")
    assert sum(float(bar.get("data-value", "0")) for bar in bars) == 7
    assert {bar.get("fill") for bar in bars} == set(svg.PALETTE[:3])  # one colour per mode
    (target,) = svg_elements(path, "reference")
    assert target.get("data-value") == "12"
    assert target.get("stroke-dasharray")
    assert {"bearing wear", "cooling loss", "impeller wear", "12 h"} <= set(texts(path))
    # The bin holding 13.0, 13.5 and 14.0 h (bins 2.5 h wide up to 60 h) stacks two modes.
    stacked = [bar for bar in bars if float(bar.get("x", "0")) == float(bars[1].get("x", "0"))]
    assert sorted(float(bar.get("data-value", "0")) for bar in stacked) == [1.0, 2.0]


def test_no_lead_times_draw_no_bars_but_still_the_target(tmp_path: Path) -> None:
    path = plots.lead_time_histogram({}, tmp_path / "lead.svg", min_lead_h=12.0)

    assert svg_elements(path, "bar") == []
    assert len(svg_elements(path, "reference")) == 1


def test_feature_importance_draws_one_bar_per_feature_used_as_shares_of_the_gain(tmp_path: Path) -> None:
    rng = np.random.RandomState(0)
    x = rng.rand(400, 4)
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=(x[:, 0] + 0.2 * x[:, 2] > 0.7)), 10)
    used = len(booster.get_score(importance_type="total_gain"))

    path = plots.feature_importance(booster, ["a_c", "b_c", "c_c", "d_c"], tmp_path / "fi.svg")

    bars = svg_elements(path, "bar")
    assert len(bars) == used
    assert sum(float(bar.get("data-value", "0")) for bar in bars) == pytest.approx(1.0, abs=1e-5)
    assert "a_c" in texts(path)


def test_the_backtest_plot_shows_cost_failures_and_caught_per_strategy(tmp_path: Path) -> None:
    summaries = {
        "schedule": {"cost": 1_155_000, "failures": 55, "caught": 2},
        "condition": {"cost": 513_000, "failures": 55, "caught": 24},
        "predictive": {"cost": 187_000, "failures": 55, "caught": 51},
    }

    path = backtest.plot(summaries, tmp_path / "backtest.svg")

    values = [float(bar.get("data-value", "0")) for bar in svg_elements(path, "bar")]
    assert values == [1_155_000, 513_000, 187_000, 55, 55, 55, 2, 24, 51]
    assert {"schedule", "condition", "predictive", "Cost per strategy", "caught"} <= set(texts(path))


def test_ticks_are_round_numbers_covering_the_range() -> None:
    assert svg.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.nice_ticks(0.0, 1_212_750.0) == [0.0, 250_000.0, 500_000.0, 750_000.0, 1_000_000.0]
    assert svg.nice_ticks(-0.5, 0.5, count=3) == [-0.5, 0.0, 0.5]


def test_a_value_that_is_not_a_number_is_a_gap_in_a_line_and_no_mark_elsewhere(tmp_path: Path) -> None:
    nan = float("nan")
    chart = svg.Chart(title="gaps", x_label="hour", y_label="value")
    chart.line([0, 1, 2, 3, 4, 5], [1.0, 2.0, nan, 4.0, 5.0, 60.0], color="#000000", label="readings")
    chart.line([0, 1], [nan, nan], color="#111111", label="nothing")
    chart.point(nan, 1.0, color="#222222", label="no point")
    chart.bars([1.0, nan, 2.0], color="#333333", label="counts")

    path = svg.save(tmp_path / "gaps.svg", chart)

    assert not re.search(r"\bnan\b", path.read_text(encoding="utf-8"), re.IGNORECASE)
    lines = svg_elements(path, "line")
    assert [len(line.get("points", "").split()) for line in lines] == [2, 3]  # the NaN splits the readings in two
    assert not svg_elements(path, "point")
    assert [bar.get("data-value") for bar in svg_elements(path, "bar")] == ["1", "2"]
    # The axis still spans the finite values: 60 is the highest tick's neighbourhood.
    ticks = [float(text.replace(",", "")) for text in texts(path) if text.replace(",", "").replace(".", "").isdigit()]
    assert max(ticks) >= 60
