"""The evaluation's plots (SVG): precision-recall curve, lead-time histogram, feature importance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from model import scoring, svg


def pr_curve(
    labels: NDArray[np.int8], probabilities: NDArray[np.float64], path: Path, *, threshold: float, pr_auc: float | None
) -> Path:
    """Precision against recall over the held-out readings, with the alarm threshold marked."""
    precision, recall, thresholds = scoring.precision_recall_curve(labels, probabilities)
    chart = svg.Chart(
        title="Held-out motors: precision-recall per reading",
        x_label="recall (readings within 24 operating h of a failure)",
        y_label="precision",
        x_limits=(0.0, 1.0),
        y_limits=(0.0, 1.02),
        legend_at="lower left",
    )
    chart.line(recall, precision, color=svg.BLUE, label=f"model (PR-AUC {pr_auc:.3f})" if pr_auc else "model")
    base_rate = float(labels.mean())
    chart.reference(y=base_rate, color=svg.GREY, label=f"no skill ({base_rate:.3f})")
    at = int(np.searchsorted(thresholds, threshold, side="left"))
    if at < len(thresholds):
        chart.point(recall[at], precision[at], color=svg.RED, label=f"threshold {threshold:g}")
    return svg.save(path, chart)


def lead_time_histogram(leads: Mapping[str, Sequence[float]], path: Path, *, min_lead_h: float) -> Path:
    """Hours from the first predictive alarm to the failure, stacked by failure mode."""
    everything = [lead for values in leads.values() for lead in values]
    top = max([*everything, min_lead_h * 2, 48.0])
    edges = np.linspace(0, top, 25)
    chart = svg.Chart(
        title="Held-out motors: how early the predictive alarm came",
        x_label="lead time, hours from first alarm to failure",
        y_label="failures",
        x_limits=(0.0, float(top)),
    )
    stacked = np.zeros(len(edges) - 1)
    for (mode, values), color in zip(leads.items(), svg.PALETTE, strict=False):
        counts, _ = np.histogram(values, bins=edges)
        chart.bars(counts, base=stacked, edges=edges, color=color, label=mode.replace("_", " "))
        stacked = stacked + counts
    chart.y_limits = (0.0, float(max(np.ceil(stacked.max() * 1.1), 5.0)))  # whole failures on the ticks
    chart.reference(x=min_lead_h, color=svg.RED, label=f"{min_lead_h:g} h")
    return svg.save(path, chart)


def feature_importance(booster: xgb.Booster, names: Sequence[str], path: Path, *, top: int = 20) -> Path:
    """Total gain per feature (how much each feature's splits improved the fit), the top ones."""
    scores = {key: float(value) for key, value in booster.get_score(importance_type="total_gain").items()}  # type: ignore[arg-type]
    named = {
        names[int(key[1:])] if key.startswith("f") and key[1:].isdigit() else key: value
        for key, value in scores.items()
    }
    ranked = sorted(named.items(), key=lambda item: item[1], reverse=True)[:top][::-1]
    total = sum(named.values())
    chart = svg.Chart(
        title=f"Feature importance (top {len(ranked)})",
        x_label="share of total gain",
        y_label="feature",
        height=22 * max(len(ranked), 4) + 90,
        categories=[name for name, _ in ranked],
        horizontal=True,
        grid="x",
    )
    chart.bars([value / total for _, value in ranked], color=svg.BLUE)
    return svg.save(path, chart)
