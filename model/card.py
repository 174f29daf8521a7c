"""The model card (docs/model-card.md), written by model/train.py from the run's own metrics."""

from __future__ import annotations

import math
from typing import Any

from model.evaluate import forewarned_key
from motor_maintenance.features import FAST_TAU_S, SLOW_TAU_S, TRACKED


def render(metrics: dict[str, Any]) -> str:
    """Markdown: data, features, label, split, metrics, limits. Every figure comes from `metrics`."""
    data, model, detector = metrics["data"], metrics["model"], metrics["detector"]
    replayed, rows, targets = metrics["replay"], metrics["rows"], metrics["targets"]
    predictable = replayed["predictable"]
    lead_key = forewarned_key(replayed["min_lead_h"])
    hours = f"{replayed['min_lead_h']:g}h"
    failures = ", ".join(f"{mode.replace('_', ' ')} {count}" for mode, count in data["failures"].items())
    mode_rows = "\n".join(
        f"| {mode.replace('_', ' ')} | {s['failures']} | {s['forewarned']} | {s[lead_key]} | "
        f"{_h(s['lead_h_median'])} | {_h(s['lead_h_p10'])} |"
        for mode, s in [*replayed["per_mode"].items(), ("**all predictable**", predictable)]
    )
    target_rows = "\n".join(
        f"| {name.replace('_', ' ')} | {t['target']} | {t['value']} | {'met' if t['met'] else '**not met**'} |"
        for name, t in targets.items()
    )
    params = ", ".join(f"{key} {value}" for key, value in model["hyperparameters"].items())
    plant = bool(data.get("plant"))
    motor = "pump motor (15, 37 or 90 kW)" if plant else "37 kW pump motor"
    ratings = (
        "Three pump-set ratings (15, 37, 90 kW); others" if plant else "One motor type (37 kW pump). Other ratings"
    )
    return f"""# Model card: motor failure within 24 operating hours

*Written by `{metrics.get("command") or "python model/train.py"}` on {metrics["generated_at"]}
(XGBoost {metrics["versions"]["xgboost"]}, Python {metrics["versions"]["python"]}). Run the command
again and this page is rewritten with that run's figures.*

## What it predicts

The probability that a {motor} fails, by wear, within its next 24 operating hours, from
one reading and the running statistics the inference Lambda keeps for the motor. The detector
raises the predictive alarm when the probability is at least {detector["raise_threshold"]:g} on
{detector["consecutive"]} predictions in a row and clears it below {detector["clear_threshold"]:g}.

## Data

Simulated with the project's motor physics (`device/physics.py`, documented in `docs/device.md`),
fast-forwarded by `device/history.py`: {data["motors"]} motors, {data["days"]:g} days each, a
reading every {data["interval_s"] // 60} minutes, seed {data["seed"]}: {data["readings"]:,}
readings, {data["motor_years"]} motor-years. Failures: {failures}. {_plant_text(plant)} Four wear modes (bearing wear,
winding insulation, cooling loss, impeller wear) build up hidden damage that shows in the signals;
the random mode gives no warning.

## Features

The {len(model["features"])} columns of `motor_maintenance.features.FEATURE_NAMES`, computed by
`compute_features`, the one function both this training and the inference Lambda call: the
reading's signals, exponentially weighted means of {len(TRACKED)} wear-sensitive signals over
{FAST_TAU_S / 3600:g} h and {SLOW_TAU_S / 3600:g} h of operation and their difference (the trend),
winding and bearing temperature rise over ambient, and the hydraulic efficiency. Only readings of
running motors are rows (the Lambda asks nothing of a stopped motor).

## Label and split

Label: {data["label"]}. The readings within 24 operating hours of a random failure
({data["unpredictable_rows"]:,} rows) are left out of training and of the per-reading metrics:
nothing announces such a failure. Rows: {data["rows"]:,}, of which {data["positive_rows"]:,}
positive. Split **by motor**, never by row: {data["split"]["train"]} motors train,
{data["split"]["validation"]} validate (PR-AUC logged while training), {data["split"]["test"]}
are held out for every figure below. The shipped artifact is the model these figures describe.

## Model

XGBoost binary classifier, {model["trees"]} trees ({params}). Served by SageMaker's built-in
XGBoost image `{model["sagemaker_image"]}` in script mode with `model/inference.py` (CSV rows
in, probabilities out, or JSON with each row's top three drivers). Artifact: `model.tar.gz`,
{model["artifact_bytes"]:,} bytes.

## Evaluation on the held-out motors

The held-out motors' predictions, replayed in time order through the detector
(`motor_maintenance.detector.step`) with the threshold and debounce above. A failure is
**forewarned** if the predictive alarm was up at some time in the {detector["warning_window_h"]:g}
calendar hours before it; an alarm that forewarned no failure is false. Lead time is calendar hours
from the first raise of such an alarm to the failure. The replay does not act on its own alarms;
the history already holds whatever maintenance the simulated plant did.

{seeds_section(metrics.get("seeds"))}

The run of seed {data["seed"]}, whose model is the shipped artifact:

| failure mode | failures | forewarned | forewarned >= {hours} | lead median | lead p10 |
|---|---|---|---|---|---|
{mode_rows}

Random failures: {replayed["random"]["failures"]} (an alarm happened to come before
{replayed["random"]["alarm_before"]}); not counted as misses.

False predictive alarms: **{replayed["false_alarms"]}** in {replayed["motor_years"]} motor-years,
**{replayed["false_alarms_per_motor_year"]} per motor-year**.

Per reading (held-out, {rows["rows"]:,} rows, {rows["positives"]:,} positive): PR-AUC
**{rows["pr_auc"]}**, recall at precision 0.9: **{rows["recall_at_precision_0.9"]}**.

| target | wanted | measured | |
|---|---|---|---|
{target_rows}

Plots beside the artifact: `pr-curve.svg`, `lead-time.svg`, `feature-importance.svg`. The shipped
model's lead times (`docs/img/lead-time.svg`, a copy of its run's `lead-time.svg`):

![How early the predictive alarm came before each failure of the held-out motors, by failure mode](img/lead-time.svg)

## Public data

`python model/train.py --ai4i ai4i2020.csv` cross-validates the same kind of model on the public
AI4I 2020 predictive-maintenance dataset (UCI): mean F1 0.895 over repeated 5 x 5 cross-validation
(95 % interval 0.872 to 0.919), on a par with the published leakage-free XGBoost (0.8952); see
[model.md](model.md#public-data-ai4i-2020) for the figures and why about 0.898 is the honest ceiling
there.

## Limits

- The data are simulated. The physics follows published motor and pump behaviour, but real
  motors have failure modes, sensors and duty cycles the simulation lacks. Retrain on your own
  fleet's history (recorded telemetry plus maintenance records) before trusting the thresholds.
- {ratings} shift the signals the model learned.
- The figures come from {data["split"]["test"]} held-out motors: a handful of failures per mode,
  so a single miss moves a percentage by several points. Bigger runs (`--motors`, `--days`)
  narrow that.
- Random failures (electrical faults, external damage) cannot be predicted from these signals.
- The model sees one reading and running averages; a sensor that drifts slowly can look like wear.
"""


SEED_LABELS = {
    "forewarned_fraction": "wear failures forewarned (alarm up in the 24 h before)",
    "forewarned_12h_fraction": "forewarned at least 12 h ahead",
    "lead_h_median": "lead time, median (calendar h)",
    "lead_h_p10": "lead time, 10th percentile (calendar h)",
    "false_alarms_per_motor_year": "false predictive alarms per motor-year",
    "pr_auc": "PR-AUC per reading",
    "recall_at_precision_0.9": "recall at precision 0.9 per reading",
}


def _plant_text(plant: bool) -> str:
    if plant:
        return (
            "The plant is a real one's (`--plant`, `device/plant.py`): sensor noise four times the ideal "
            "simulator's, slow sensor drift, sensors dropping out (missing values), motors of 15, 37 and 90 kW, "
            "and half of the condition alarms acted on by servicing the motor (those failures never happen)."
        )
    return "Ideal sensors (no drift, no dropouts) and one rating; `--plant` trains on a real plant's instead."


def seeds_section(seeds: dict[str, Any] | None) -> str:
    """The figures over whole runs with different seeds, with their 95 % intervals."""
    if not seeds or len(seeds["seeds"]) < 2:
        return "Figures over several seeds: run `python model/train.py --seeds 3` (one seed gives no interval)."
    rows = "\n".join(
        f"| {SEED_LABELS.get(name, name)} | {_num(f['mean'])} | {_num(f['low'])} to {_num(f['high'])} | "
        f"{', '.join(_num(value) for value in f['per_seed'])} |"
        for name, f in seeds["figures"].items()
    )
    return f"""Over {len(seeds["seeds"])} whole runs (simulation, split, training and replay with seeds
{", ".join(map(str, seeds["seeds"]))}; {seeds["failures"]} predictable failures in {seeds["motor_years"]}
held-out motor-years), mean and 95 % interval (Student t over the seeds):

| figure | mean | 95 % interval | per seed |
|---|---|---|---|
{rows}"""


def _num(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3g}"


def _h(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} h"
