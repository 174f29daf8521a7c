"""Steps 3 to 5 of every training run, simulated or archived: fit, replay the held-out motors, write it all.

`fit_and_evaluate` trains XGBoost on the training motors (model/artifact.py), scores the held-out motors
and replays them through the detector (model/evaluate.py), then writes model.tar.gz, metrics.json, the
plots and the model card; `report` turns the metrics into the lines `python model/train.py` prints.
model/train.py (a simulated fleet) and model/train_archive.py (an archive) each prepare the data and the
replay of their held-out motors, and hand both here.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from model import artifact, card, plots
from model.dataset import HORIZON_OPERATING_S, Dataset
from model.evaluate import (
    MIN_LEAD_H,
    WARNING_WINDOW_H,
    across_seeds,
    forewarned_key,
    format_seeds,
    lead_times,
    row_metrics,
    summarise,
)
from motor_maintenance.config import DetectorConfig
from motor_maintenance.features import FEATURE_NAMES

INFERENCE_SCRIPT = Path(__file__).resolve().parent / "inference.py"
"""The endpoint's script-mode code, packed into the artifact's code/."""
TARGET_FOREWARNED = 0.9
TARGET_FALSE_PER_MOTOR_YEAR = 0.5


def fit_and_evaluate(
    *,
    data: Dataset,
    split: dict[str, list[int]],
    replay_test: Any,
    history_summary: dict[str, Any],
    rounds: int,
    workers: int | None,
    seed: int,
    out: Path,
    card_path: Path | None,
    export_dataset: Path | None,
    config: DetectorConfig,
    log: Any,
    timings: dict[str, float],
    started: float,
    horizon_s: float = HORIZON_OPERATING_S,
    label: str | None = None,
    summarise_replay: Any = None,
    lead_times_of: Any = lead_times,
    card_edit: Any = None,
    manifest_of: Any = None,
    other_seeds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Steps 3 to 5 of any run: train on the training motors, replay the test motors, write everything.

    `replay_test(test_rows, probabilities)` replays the held-out motors through the detector;
    `summarise_replay(replayed)` and `lead_times_of(replayed)` replace the evaluation's own summary and
    lead times (an archive's failures go by the modes reported); `card_edit(markdown, metrics)`, if
    given, rewrites the model card before it is written. `manifest_of(split, rows, summary)` says what the
    artifact's manifest records of the data (`model.train.manifest_metadata` for a simulated fleet). `other_seeds`: the
    metrics of runs with other seeds, summarised with this one's under "seeds".
    """
    parts = {name: data.of_motors(columns) for name, columns in split.items()}
    train_rows = parts["train"].select(parts["train"].trainable)
    log(
        f"  {len(data):,} rows of running motors, {int(data.labels.sum()):,} labelled positive; "
        f"motors: {len(split['train'])} train, {len(split['validation'])} validation, {len(split['test'])} test"
    )
    if export_dataset is not None:
        export_csv(export_dataset, parts, log)

    positives = int(train_rows.labels.sum())
    log(
        f"3/5 training XGBoost ({rounds} rounds; {positives:,} positive rows and "
        f"{artifact.NEGATIVE_FRACTION:.0%} of {len(train_rows) - positives:,} negative ones)..."
    )
    validation = parts["validation"].select(parts["validation"].trainable)
    booster = artifact.fit(
        train_rows.features,
        train_rows.labels,
        feature_names=FEATURE_NAMES,
        num_boost_round=rounds,
        validation=(validation.features, validation.labels) if len(validation) else None,
        nthread=workers,
        log=log,
        seed=seed,
    )
    timings["train"] = lap(started, timings)

    log("4/5 replaying the held-out motors through the detector...")
    test = parts["test"]
    probabilities = np.asarray(booster.inplace_predict(test.features, missing=np.nan), dtype=np.float64)
    rows = row_metrics(test.labels[test.trainable], probabilities[test.trainable])
    replayed = replay_test(test, probabilities)
    summary = summarise(replayed, min_lead_h=MIN_LEAD_H) if summarise_replay is None else summarise_replay(replayed)
    timings["evaluate"] = lap(started, timings)

    log(f"5/5 writing the artifact, metrics and plots to {out}...")
    out.mkdir(parents=True, exist_ok=True)
    tar = artifact.write_model_tar(
        booster,
        out / "model.tar.gz",
        inference_script=INFERENCE_SCRIPT,
        metadata=None if manifest_of is None else manifest_of(split, rows, summary),
    )
    predictive = config.predictive
    plots.pr_curve(
        test.labels[test.trainable],
        probabilities[test.trainable],
        out / "pr-curve.svg",
        threshold=predictive.raise_threshold,
        pr_auc=rows["pr_auc"],
    )
    plots.lead_time_histogram(lead_times_of(replayed), out / "lead-time.svg", min_lead_h=MIN_LEAD_H)
    plots.feature_importance(booster, FEATURE_NAMES, out / "feature-importance.svg")
    metrics = _metrics(
        history_summary=history_summary,
        data=data,
        split=split,
        rounds=rounds,
        booster=booster,
        tar=tar,
        config=config,
        rows=rows,
        summary=summary,
        label=label or f"a wear-mode failure within {horizon_s / 3600:g} operating hours",
    )
    timings["write"] = lap(started, timings)
    metrics["timings_s"] = {name: round(value, 1) for name, value in timings.items()}
    metrics["timings_s"]["total"] = round(time.perf_counter() - started, 1)
    metrics["seeds"] = across_seeds([metrics, *(other_seeds or [])])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if card_path is not None:
        card_path.parent.mkdir(parents=True, exist_ok=True)
        markdown = card.render(metrics)
        card_path.write_text(card_edit(markdown, metrics) if card_edit is not None else markdown)
        log(f"  model card: {card_path}")
    return metrics


def _metrics(
    *,
    history_summary: dict[str, Any],
    data: Dataset,
    split: dict[str, list[int]],
    rounds: int,
    booster: xgb.Booster,
    tar: Path,
    config: DetectorConfig,
    rows: dict[str, Any],
    summary: dict[str, Any],
    label: str,
) -> dict[str, Any]:
    predictable = summary["predictable"]
    early = predictable.get(f"{forewarned_key(MIN_LEAD_H)}_fraction")
    false_rate = summary["false_alarms_per_motor_year"]
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python model/train.py", *sys.argv[1:]]) if sys.argv[0].endswith("train.py") else None,
        "versions": {"xgboost": xgb.__version__, "python": platform.python_version()},
        "data": {
            **history_summary,
            "rows": len(data),
            "positive_rows": int(data.labels.sum()),
            "unpredictable_rows": int(data.unpredictable.sum()),
            "label": label,
            "split": {name: len(columns) for name, columns in split.items()},
            "test_motors": split["test"],
        },
        "model": {
            "features": list(FEATURE_NAMES),
            "hyperparameters": artifact.HYPERPARAMETERS,
            "rounds": rounds,
            "sagemaker_image": f"sagemaker-xgboost:{artifact.IMAGE_VERSION}",
            "artifact": str(tar),
            "artifact_bytes": tar.stat().st_size,
            "artifact_sha256": hashlib.sha256(tar.read_bytes()).hexdigest(),
            "trees": booster.num_boosted_rounds(),
        },
        "detector": {
            "raise_threshold": config.predictive.raise_threshold,
            "clear_threshold": config.predictive.clear_threshold,
            "consecutive": config.predictive.consecutive,
            "latch": config.latch,
            "warning_window_h": WARNING_WINDOW_H,
        },
        "rows": rows,
        "replay": summary,
        "targets": {
            f"{forewarned_key(MIN_LEAD_H)}_fraction": {
                "target": f">= {TARGET_FOREWARNED}",
                "value": early,
                "met": bool(early is not None and early >= TARGET_FOREWARNED),
            },
            "false_alarms_per_motor_year": {
                "target": f"<= {TARGET_FALSE_PER_MOTOR_YEAR}",
                "value": false_rate,
                "met": bool(false_rate is not None and false_rate <= TARGET_FALSE_PER_MOTOR_YEAR),
            },
        },
    }


def report(metrics: dict[str, Any]) -> str:
    """The figures a maintenance manager asks for, as a few lines of text."""
    replayed, rows, data = metrics["replay"], metrics["rows"], metrics["data"]
    predictable = replayed["predictable"]
    key = forewarned_key(replayed["min_lead_h"])
    width = max([20, *(len(mode) + 2 for mode in replayed["per_mode"])])  # an archive's modes are the names reported
    lines = [
        "",
        f"Held-out motors: {data['split']['test']} ({replayed['motor_years']} motor-years), "
        f"detector threshold {metrics['detector']['raise_threshold']:g} x{metrics['detector']['consecutive']}",
        f"{'failure mode':<{width}}{'failures':>9}{'warned':>8}{'>=12 h':>8}{'lead p50':>10}{'lead p10':>10}",
    ]
    for mode, stats in [*replayed["per_mode"].items(), ("all predictable", predictable)]:
        lines.append(
            f"{mode:<{width}}{stats['failures']:>9}{stats['forewarned']:>8}{stats[key]:>8}"
            f"{_hours(stats['lead_h_median']):>10}{_hours(stats['lead_h_p10']):>10}"
        )
    random_part = replayed["random"]
    lines += [
        f"{'random (no warning)':<{width}}{random_part['failures']:>9}{random_part['alarm_before']:>8}"
        "      (not counted as misses)",
        f"False predictive alarms: {replayed['false_alarms']}"
        f" = {replayed['false_alarms_per_motor_year']} per motor-year",
        f"Per reading: PR-AUC {rows['pr_auc']}, recall at precision 0.9: {rows['recall_at_precision_0.9']}",
    ]
    for name, target in metrics["targets"].items():
        lines.append(f"Target {name} {target['target']}: {target['value']} -> {'met' if target['met'] else 'NOT MET'}")
    lines.append(f"Artifact: {metrics['model']['artifact']} ({metrics['model']['artifact_bytes']:,} bytes)")
    lines.append(format_seeds(metrics["seeds"]))
    timings = metrics.get("timings_s", {})
    if timings:
        lines.append("Time: " + ", ".join(f"{name} {seconds:g} s" for name, seconds in timings.items()))
    return "\n".join(lines)


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} h"


def export_csv(directory: Path, parts: dict[str, Dataset], log: Any) -> None:
    """train.csv and validation.csv as SageMaker's XGBoost reads text/csv: label first, no header."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("train", "validation"):
        part = parts[name].select(parts[name].trainable)
        if name == "validation" and not len(part):
            part = parts["test"].select(parts["test"].trainable)
        path = directory / f"{name}.csv"
        with path.open("w") as out:
            for start in range(0, len(part), 50_000):  # bounded memory: a million rows are ~500 MB of text
                table = np.column_stack([part.labels[start : start + 50_000], part.features[start : start + 50_000]])
                chunk = io.StringIO()
                np.savetxt(chunk, table, delimiter=",", fmt="%.7g")
                out.write(chunk.getvalue().replace("nan", ""))  # an empty field is XGBoost's missing value
        log(f"  exported {len(part):,} rows to {path}")
    (directory / "feature_names.json").write_text(json.dumps(list(FEATURE_NAMES)) + "\n")


def lap(started: float, timings: dict[str, float] | None = None) -> float:
    return time.perf_counter() - started - sum((timings or {}).values())
