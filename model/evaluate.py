"""Evaluation a maintenance manager understands: held-out motors replayed through the detector.

Each held-out motor's predictions go, in time order, through `motor_maintenance.detector.step`
with the detector configuration in force (raise threshold, consecutive predictions, clear
threshold, latching). Its predictive alarm raises and clears there exactly as it would in the
Lambda. The replay does not act on its own alarms: the history holds whatever maintenance was
done (none in the ideal simulator; services after condition alarms in a `--plant` history), and
every failure in it happened.

An alarm episode runs from a raise to the next clear. A failure is forewarned if the predictive
alarm was up at some moment of the 24 calendar hours before it (`WARNING_WINDOW_H`): an episode
raised before the failure and not cleared until less than 24 h before it. Such an episode counts
for the failure (two failures back to back can share one warning); an episode that counts for none
is a false alarm. The lead time is the calendar time from the earliest counting raise to the
failure. Calendar time, not operating time: a plant plans a repair by the clock, and 24 operating
hours of a two-shift motor can span three days. The rule is model/forewarning.py's, which the local
stack's end-of-run summary applies too. Failures of the random mode are tallied on their own: no
model can see them coming, so they are not misses.

Figures over several seeds (simulation, split and training) come with 95 % intervals: `across_seeds`.

Speed: the detector is only stepped on the readings that can change the predictive alarm. A
prediction below the clear threshold resets the rule's count and clears a held alarm, so after
the first of a run of them the rule's state no longer changes, and the rest of the run is skipped.
Readings of a stopped motor carry no prediction and are skipped too. The alarm's events are
those of a full replay (a test checks that on a motor).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from device.physics import FailureMode
from model import forewarning, intervals, scoring
from model.forewarning import Episode as Span
from model.forewarning import Verdict, judge
from motor_maintenance.alarms import Transition
from motor_maintenance.config import PREDICTIVE_ALARM, DetectorConfig
from motor_maintenance.detector import ReadingInput, step
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry

MODES: tuple[FailureMode, ...] = tuple(FailureMode)
WARNING_WINDOW_H = forewarning.WARNING_WINDOW_H
"""Calendar hours before a failure in which an alarm that was up forewarned it (model/forewarning.py)."""
MIN_LEAD_H = 12.0
"""The lead time a plant needs to plan a repair: the target is 90 % of failures forewarned this early."""
TARGET_PRECISION = 0.9


class Timeline(Protocol):
    """What a replay reads of a fleet's history: a simulated `device.history.History`, or an archived motor
    (`model.archive_dataset.ArchivedMotor`). Arrays are indexed [time step, column]."""

    @property
    def motor_ids(self) -> Sequence[str]: ...
    @property
    def motor_years(self) -> float: ...
    @property
    def ts_ms(self) -> NDArray[np.int64]: ...
    @property
    def failed_mode(self) -> NDArray[np.int8]: ...
    def failure_onsets(self, column: int) -> NDArray[np.intp]: ...
    def reading(self, t: int, column: int) -> Telemetry: ...


@dataclass(frozen=True)
class Episode:
    """A predictive alarm from its raise to its clear (None: still up at the end)."""

    column: int
    raised: int
    cleared: int | None


@dataclass
class FailureOutcome:
    column: int
    onset: int
    mode: FailureMode
    lead_h: float | None = None
    """Calendar hours from the first raise that counted for it to the failure; None: not forewarned."""


@dataclass
class Replay:
    """What the detector did with a set of held-out motors' predictions."""

    motor_years: float
    failures: list[FailureOutcome] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    false_alarms: int = 0


def detector_config(path: Path | None) -> DetectorConfig:
    """The detector configuration a replay runs with: the defaults, or a JSON file of overrides as in the SSM parameter.

    OSError or ValueError (pydantic's ValidationError is one) for a file that cannot be read or is no configuration.
    """
    if path is None:
        return DetectorConfig()
    return DetectorConfig.with_overrides(json.loads(path.read_text()))


def replay_motor(
    history: Timeline,
    column: int,
    steps: NDArray[np.int32],
    probabilities: NDArray[np.float64],
    config: DetectorConfig,
    *,
    skip_quiet: bool = True,
) -> list[Episode]:
    """Step the detector through one motor's predictions; its predictive alarm's episodes."""
    order = np.argsort(steps, kind="stable")
    steps, probabilities = steps[order], probabilities[order]
    if skip_quiet:
        quiet = probabilities < config.predictive.clear_threshold
        first_quiet = quiet & ~np.concatenate(([True], quiet[:-1]))
        keep = ~quiet | first_quiet
        steps, probabilities = steps[keep], probabilities[keep]
    state: MotorState | None = None
    episodes: list[Episode] = []
    raised: int | None = None
    for t, probability in zip(steps.tolist(), probabilities.tolist(), strict=True):
        reading = history.reading(t, column)
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        decision = step(state, ReadingInput(reading, failure_probability=probability), now, config)
        state = decision.state
        for event in decision.events:
            if event.alarm != PREDICTIVE_ALARM:
                continue
            if event.transition is Transition.RAISED and raised is None:
                raised = t
            elif event.transition is Transition.CLEARED and raised is not None:
                episodes.append(Episode(column, raised, t))
                raised = None
    if raised is not None:
        episodes.append(Episode(column, raised, None))
    return episodes


def replay(
    history: Timeline,
    columns: Sequence[int],
    *,
    steps: NDArray[np.int32],
    column_of_row: NDArray[np.int32],
    probabilities: NDArray[np.float64],
    config: DetectorConfig,
    warning_window_h: float = WARNING_WINDOW_H,
) -> Replay:
    """Replay every listed motor and attribute each alarm episode to a failure or call it false.

    `history` needs `motor_ids`, `motor_years`, `ts_ms`, `failed_mode`, `failure_onsets(column)` and
    `reading(t, column)`: a simulated history or one rebuilt from an archive.
    """
    result = Replay(motor_years=history.motor_years * len(columns) / len(history.motor_ids))
    ts_ms = history.ts_ms
    for column in columns:
        mine = column_of_row == column
        episodes = replay_motor(history, column, steps[mine], probabilities[mine], config)
        result.episodes.extend(episodes)
        onsets = history.failure_onsets(column)
        outcomes = [FailureOutcome(column, int(f), MODES[int(history.failed_mode[f, column])]) for f in onsets]
        result.failures.extend(outcomes)
        spans = [Span(int(ts_ms[e.raised]), None if e.cleared is None else int(ts_ms[e.cleared])) for e in episodes]
        failures_ms = [int(ts_ms[failure.onset]) for failure in outcomes]
        judged = judge(spans, failures_ms, window_h=warning_window_h)
        for failure, lead_h in zip(outcomes, judged.lead_h(spans, failures_ms), strict=True):
            failure.lead_h = lead_h
        result.false_alarms += judged.verdicts.count(Verdict.FALSE)
    return result


def summarise(result: Replay, *, min_lead_h: float = MIN_LEAD_H) -> dict[str, Any]:
    """The figures of the model card: forewarned, lead times per mode, false alarms per motor-year."""
    predictable = [f for f in result.failures if f.mode is not FailureMode.RANDOM]
    random_failures = [f for f in result.failures if f.mode is FailureMode.RANDOM]
    per_mode: dict[str, Any] = {}
    for mode in MODES:
        if mode is FailureMode.RANDOM:
            continue
        mine = [f for f in predictable if f.mode is mode]
        if mine:
            per_mode[mode.value] = failure_stats(mine, min_lead_h)
    return {
        "min_lead_h": min_lead_h,
        "motor_years": round(result.motor_years, 2),
        "failures": len(result.failures),
        "predictable": failure_stats(predictable, min_lead_h),
        "per_mode": per_mode,
        "random": {
            "failures": len(random_failures),
            "alarm_before": sum(f.lead_h is not None for f in random_failures),
            "note": "no warning in the signals; not counted as misses",
        },
        "alarm_episodes": len(result.episodes),
        "false_alarms": result.false_alarms,
        "false_alarms_per_motor_year": round(result.false_alarms / result.motor_years, 3)
        if result.motor_years
        else None,
    }


def failure_stats(failures: Sequence[FailureOutcome], min_lead_h: float) -> dict[str, Any]:
    """How many of `failures` were forewarned, how many by at least `min_lead_h`, and their lead times."""
    leads = [f.lead_h for f in failures if f.lead_h is not None]
    early = sum(lead >= min_lead_h for lead in leads)
    total = len(failures)
    return {
        "failures": total,
        "forewarned": len(leads),
        "forewarned_fraction": round(len(leads) / total, 4) if total else None,
        forewarned_key(min_lead_h): early,
        f"{forewarned_key(min_lead_h)}_fraction": round(early / total, 4) if total else None,
        "lead_h_median": round(float(np.median(leads)), 1) if leads else None,
        "lead_h_p10": round(float(np.percentile(leads, 10)), 1) if leads else None,
    }


def forewarned_key(min_lead_h: float) -> str:
    """The summary's key for the failures forewarned at least `min_lead_h` hours ahead, e.g. 'forewarned_12h'."""
    return f"forewarned_{min_lead_h:g}h"


def row_metrics(labels: NDArray[np.int8], probabilities: NDArray[np.float64]) -> dict[str, Any]:
    """PR-AUC (average precision) and the best recall at precision >= 0.9, over readings."""
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        return {"rows": len(labels), "positives": positives, "pr_auc": None, "recall_at_precision_0.9": None}
    precision, recall, thresholds = scoring.precision_recall_curve(labels, probabilities)
    ok = precision[:-1] >= TARGET_PRECISION
    best = int(np.argmax(np.where(ok, recall[:-1], -1.0))) if ok.any() else None
    return {
        "rows": len(labels),
        "positives": positives,
        "pr_auc": round(scoring.average_precision(labels, probabilities), 4),
        "recall_at_precision_0.9": round(float(recall[best]), 4) if best is not None else 0.0,
        "threshold_at_precision_0.9": round(float(thresholds[best]), 4) if best is not None else None,
    }


def lead_times(result: Replay) -> dict[str, list[float]]:
    """Lead times (hours) per predictable mode, for the histogram."""
    leads: dict[str, list[float]] = {}
    for failure in result.failures:
        if failure.mode is not FailureMode.RANDOM and failure.lead_h is not None:
            leads.setdefault(failure.mode.value, []).append(failure.lead_h)
    return leads


SEED_FIGURES: dict[str, tuple[str, ...]] = {
    "forewarned_fraction": ("replay", "predictable", "forewarned_fraction"),
    "forewarned_12h_fraction": ("replay", "predictable", f"{forewarned_key(MIN_LEAD_H)}_fraction"),
    "lead_h_median": ("replay", "predictable", "lead_h_median"),
    "lead_h_p10": ("replay", "predictable", "lead_h_p10"),
    "false_alarms_per_motor_year": ("replay", "false_alarms_per_motor_year"),
    "pr_auc": ("rows", "pr_auc"),
    "recall_at_precision_0.9": ("rows", "recall_at_precision_0.9"),
}
"""The figures the model card gives over seeds, and where each run's metrics keep them."""


def across_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each run's (one seed's) key figures, and their mean with a 95 % interval over the seeds.

    `runs` are the metrics of whole training runs (simulation, split, training and replay with one
    seed each), so their figures are independent draws. A figure a run could not compute (no
    forewarned failure: no lead time) leaves that run out of its interval, and `n` says so.
    """
    figures: dict[str, Any] = {}
    for name, path in SEED_FIGURES.items():
        values = [_dig(run, path) for run in runs]
        known = [float(value) for value in values if value is not None]
        figures[name] = {
            "per_seed": values,
            **(intervals.over_seeds(known).as_dict() if known else {"mean": None, "low": None, "high": None, "n": 0}),
        }
    return {
        "seeds": [run["data"]["seed"] for run in runs],
        "failures": sum(run["replay"]["predictable"]["failures"] for run in runs),
        "motor_years": round(sum(run["replay"]["motor_years"] for run in runs), 2),
        "figures": figures,
    }


def _dig(metrics: dict[str, Any], path: Sequence[str]) -> Any:
    value: Any = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def format_seeds(summary: dict[str, Any]) -> str:
    """The figures over seeds as text lines: mean, 95 % interval, and each seed's value."""
    lines = [
        f"Over {len(summary['seeds'])} seeds ({', '.join(map(str, summary['seeds']))}; "
        f"{summary['failures']} predictable failures in {summary['motor_years']} held-out motor-years):"
    ]
    for name, figure in summary["figures"].items():
        per_seed = ", ".join("-" if value is None else f"{value:g}" for value in figure["per_seed"])
        if figure["n"] >= 2:
            spread = f"{figure['mean']:.3f} (95 % interval {figure['low']:.3f} to {figure['high']:.3f})"
        else:
            spread = "-" if figure["mean"] is None else f"{figure['mean']:.3f} (no interval from one value)"
        lines.append(f"  {name:<30}{spread:<40} per seed: {per_seed}")
    return "\n".join(lines)
