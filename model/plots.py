"""The evaluation's plots (PNG): precision-recall curve, lead-time histogram, feature importance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xgboost as xgb
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray
from sklearn.metrics import precision_recall_curve

DPI = 110


def pr_curve(
    labels: NDArray[np.int8], probabilities: NDArray[np.float64], path: Path, *, threshold: float, pr_auc: float | None
) -> Path:
    """Precision against recall over the held-out readings, with the alarm threshold marked."""
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    fig, ax = new_figure(6, 4.5)
    ax.plot(recall, precision, color="tab:blue", label=f"model (PR-AUC {pr_auc:.3f})" if pr_auc else "model")
    ax.axhline(labels.mean(), color="grey", linestyle=":", label=f"no skill ({labels.mean():.3f})")
    at = int(np.searchsorted(thresholds, threshold, side="left"))
    if at < len(thresholds):
        ax.plot(recall[at], precision[at], "o", color="tab:red", label=f"threshold {threshold:g}")
    ax.set(
        xlabel="recall (readings within 24 operating h of a failure)", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02)
    )
    ax.set_title("Held-out motors: precision-recall per reading")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return save(fig, path)


def lead_time_histogram(leads: Mapping[str, Sequence[float]], path: Path, *, min_lead_h: float) -> Path:
    """Hours from the first predictive alarm to the failure, stacked by failure mode."""
    fig, ax = new_figure(6.5, 4.5)
    everything = [lead for values in leads.values() for lead in values]
    top = max([*everything, min_lead_h * 2, 48.0])
    bins = np.linspace(0, top, 25)
    if everything:
        ax.hist(list(leads.values()), bins=bins.tolist(), stacked=True, label=[m.replace("_", " ") for m in leads])
    ax.axvline(min_lead_h, color="tab:red", linestyle="--", label=f"{min_lead_h:g} h")
    ax.set(xlabel="lead time, hours from first alarm to failure", ylabel="failures")
    ax.set_title("Held-out motors: how early the predictive alarm came")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def feature_importance(booster: xgb.Booster, names: Sequence[str], path: Path, *, top: int = 20) -> Path:
    """Total gain per feature (how much each feature's splits improved the fit), the top ones."""
    scores = {key: float(value) for key, value in booster.get_score(importance_type="total_gain").items()}  # type: ignore[arg-type]
    named = {
        names[int(key[1:])] if key.startswith("f") and key[1:].isdigit() else key: value
        for key, value in scores.items()
    }
    ranked = sorted(named.items(), key=lambda item: item[1], reverse=True)[:top][::-1]
    fig, ax = new_figure(6.5, 0.28 * max(len(ranked), 4) + 1.2)
    if ranked:
        total = sum(named.values())
        ax.barh([name for name, _ in ranked], [value / total for _, value in ranked], color="tab:blue")
    ax.set(xlabel="share of total gain")
    ax.set_title(f"Feature importance (top {len(ranked)})")
    ax.grid(alpha=0.3, axis="x")
    return save(fig, path)


def new_figure(width_in: float, height_in: float) -> tuple[Figure, Axes]:
    """A figure drawn by Agg, whatever backend pyplot is set to: files only, no display, no global state."""
    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def save(figure: Figure, path: Path) -> Path:
    """Lay out and write the figure as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
