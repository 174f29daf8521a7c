"""Train and evaluate the failure-prediction model; write the artifact SageMaker serves.

    python model/train.py                         # simulated fleet, a couple of minutes on 2 cores
    python model/train.py --motors 200 --days 730 # a bigger run
    python model/train.py --ai4i ai4i2020.csv     # the public AI4I 2020 dataset instead
    python model/train.py --archive DIR_OR_S3_URL  # the fleet's own history: readings and failure reports

Steps: simulate the fleet's history in fast-forward (device/history.py), compute each reading's
features with the Lambda's own feature function, label "fails within 24 operating hours", split
by motor, train XGBoost, replay the held-out motors through the detector, then write
model.tar.gz, metrics.json, three plots and the model card. With --archive the history comes from
an archive (model/archive_dataset.py) instead of the simulator; every later step is the same.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python model/train.py): make `model` and `device` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

with setup_needed("model/train.py"):
    import numpy as np
    import xgboost as xgb

    from device.history import generate
    from device.physics import DAY_S, FleetConfig
    from model import artifact, card, plots
    from model.dataset import HORIZON_OPERATING_S, Dataset, build, split_motors
    from model.evaluate import (
        MIN_LEAD_H,
        WARNING_WINDOW_OPERATING_H,
        Replay,
        forewarned_key,
        lead_times,
        replay,
        row_metrics,
        summarise,
    )
    from motor_maintenance.config import DetectorConfig
    from motor_maintenance.features import FEATURE_NAMES

MODEL_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = MODEL_DIR / "output"
DEFAULT_CARD = MODEL_DIR.parent / "docs" / "model-card.md"
TARGET_FOREWARNED = 0.9
TARGET_FALSE_PER_MOTOR_YEAR = 0.5


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.ai4i is not None:
        return _run_ai4i(args)
    try:
        config = _detector_config(args.detector_config)
    except (OSError, ValueError) as exc:
        print(f"error: --detector-config: {exc}", file=sys.stderr)
        return 2
    if args.archive is not None:
        from model.train_archive import run_archive  # noqa: PLC0415 - only this mode needs pyarrow and DuckDB

        return run_archive(args, config)
    metrics = train(
        motors=args.motors,
        days=args.days,
        seed=args.seed,
        test_fraction=args.test_fraction,
        validation_fraction=args.validation_fraction,
        rounds=args.rounds,
        workers=args.workers,
        out=args.out,
        card_path=None if args.no_model_card else (args.model_card or DEFAULT_CARD),
        export_dataset=args.export_dataset,
        config=config,
        wear_scale=args.wear_scale,
    )
    print(report(metrics))
    return 0


def train(
    *,
    motors: int,
    days: float,
    seed: int,
    test_fraction: float,
    validation_fraction: float,
    rounds: int,
    workers: int | None,
    out: Path,
    card_path: Path | None,
    export_dataset: Path | None = None,
    config: DetectorConfig | None = None,
    wear_scale: float = 1.0,
    log: Any = print,
) -> dict[str, Any]:
    """The whole run; returns the metrics it also writes to out/metrics.json."""
    config = config or DetectorConfig()
    timings: dict[str, float] = {}
    started = time.perf_counter()

    log(f"1/5 simulating {motors} motors for {days:g} days (one reading per 10 minutes)...")
    fleet = FleetConfig(motors=motors, seed=seed, wear_scale=wear_scale)
    history = generate(fleet, duration_s=days * DAY_S, progress=_fraction_printer(log, "  simulated"))
    timings["simulate"] = _lap(started)
    failures = history.failures_by_mode()
    log(
        f"  {history.steps * motors:,} readings, {sum(failures.values())} failures "
        f"in {history.motor_years:.1f} motor-years"
    )

    log("2/5 features through motor_maintenance.features.compute_features (the Lambda's function)...")
    data = build(history, workers=workers, log=log)
    timings["features"] = _lap(started, timings)
    split = split_motors(motors, test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed)
    if data.of_motors(split["train"]).labels.sum() == 0:
        raise SystemExit("error: no failure in the training motors' history; simulate more motors or days")

    def replay_test(test: Dataset, probabilities: np.ndarray) -> Replay:
        return replay(
            history,
            split["test"],
            steps=test.step,
            column_of_row=test.column,
            probabilities=probabilities,
            config=config,
        )

    return fit_and_evaluate(
        data=data,
        split=split,
        replay_test=replay_test,
        history_summary={
            "motors": motors,
            "days": days,
            "seed": seed,
            "wear_scale": wear_scale,
            "interval_s": 600,
            "readings": history.steps * motors,
            "motor_years": round(history.motor_years, 2),
            "failures": failures,
        },
        rounds=rounds,
        workers=workers,
        seed=seed,
        out=out,
        card_path=card_path,
        export_dataset=export_dataset,
        config=config,
        log=log,
        timings=timings,
        started=started,
        manifest_of=lambda split, rows, summary: manifest_metadata(history, split, rows=rows, summary=summary),
    )


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
) -> dict[str, Any]:
    """Steps 3 to 5 of any run: train on the training motors, replay the test motors, write everything.

    `replay_test(test_rows, probabilities)` replays the held-out motors through the detector;
    `summarise_replay(replayed)` and `lead_times_of(replayed)` replace the evaluation's own summary and
    lead times (an archive's failures go by the modes reported); `card_edit(markdown, metrics)`, if
    given, rewrites the model card before it is written. `manifest_of(split, rows, summary)` says what the
    artifact's manifest records of the data (`manifest_metadata` for a simulated fleet).
    """
    parts = {name: data.of_motors(columns) for name, columns in split.items()}
    train_rows = parts["train"].select(parts["train"].trainable)
    log(
        f"  {len(data):,} rows of running motors, {int(data.labels.sum()):,} labelled positive; "
        f"motors: {len(split['train'])} train, {len(split['validation'])} validation, {len(split['test'])} test"
    )
    if export_dataset is not None:
        _export(export_dataset, parts, log)

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
    timings["train"] = _lap(started, timings)

    log("4/5 replaying the held-out motors through the detector...")
    test = parts["test"]
    probabilities = np.asarray(booster.inplace_predict(test.features, missing=np.nan), dtype=np.float64)
    rows = row_metrics(test.labels[test.trainable], probabilities[test.trainable])
    replayed = replay_test(test, probabilities)
    summary = summarise(replayed, min_lead_h=MIN_LEAD_H) if summarise_replay is None else summarise_replay(replayed)
    timings["evaluate"] = _lap(started, timings)

    log(f"5/5 writing the artifact, metrics and plots to {out}...")
    out.mkdir(parents=True, exist_ok=True)
    tar = artifact.write_model_tar(
        booster,
        out / "model.tar.gz",
        inference_script=MODEL_DIR / "inference.py",
        metadata=None if manifest_of is None else manifest_of(split, rows, summary),
    )
    predictive = config.predictive
    plots.pr_curve(
        test.labels[test.trainable],
        probabilities[test.trainable],
        out / "pr-curve.png",
        threshold=predictive.raise_threshold,
        pr_auc=rows["pr_auc"],
    )
    plots.lead_time_histogram(lead_times_of(replayed), out / "lead-time.png", min_lead_h=MIN_LEAD_H)
    plots.feature_importance(booster, FEATURE_NAMES, out / "feature-importance.png")
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
    timings["write"] = _lap(started, timings)
    metrics["timings_s"] = {name: round(value, 1) for name, value in timings.items()}
    metrics["timings_s"]["total"] = round(time.perf_counter() - started, 1)
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
            "warning_window_operating_h": WARNING_WINDOW_OPERATING_H,
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


def manifest_metadata(
    history: Any, split: dict[str, list[int]], *, rows: dict[str, Any], summary: dict[str, Any]
) -> dict[str, Any]:
    """What the artifact's manifest says about the training run (model/artifact.py adds version and features)."""
    ids = history.motor_ids
    trained = {ids[column] for column in split["train"]}
    failures: dict[str, int] = {}
    for motor_id, _at_ms, mode in history.failures():
        if motor_id in trained:
            failures[mode.value] = failures.get(mode.value, 0) + 1
    return {
        "trained_at": datetime.now(UTC).replace(microsecond=0),
        "data": {
            "source": "simulated fleet (device/history.py)",
            "first_reading": _iso_ms(int(history.ts_ms[0])),
            "last_reading": _iso_ms(int(history.ts_ms[-1])),
        },
        "motors": {part: [ids[column] for column in columns] for part, columns in split.items()},
        "failures": dict(sorted(failures.items())),
        "metrics": {"rows": rows, "replay": summary},
    }


def _iso_ms(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


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
    timings = metrics.get("timings_s", {})
    if timings:
        lines.append("Time: " + ", ".join(f"{name} {seconds:g} s" for name, seconds in timings.items()))
    return "\n".join(lines)


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} h"


def _export(directory: Path, parts: dict[str, Dataset], log: Any) -> None:
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


def _detector_config(path: Path | None) -> DetectorConfig:
    if path is None:
        return DetectorConfig()
    return DetectorConfig.with_overrides(json.loads(path.read_text()))


def _fraction_printer(log: Any, label: str) -> Any:
    shown = [-1]

    def show(fraction: float) -> None:
        tenth = int(fraction * 10)
        if tenth != shown[0] and tenth and tenth % 2 == 0:
            shown[0] = tenth
            log(f"{label} {fraction:.0%}")

    return show


def _lap(started: float, timings: dict[str, float] | None = None) -> float:
    return time.perf_counter() - started - sum((timings or {}).values())


def _run_ai4i(args: argparse.Namespace) -> int:
    from model import ai4i  # noqa: PLC0415 - only this mode needs it

    if not args.ai4i.is_file():
        print(f"error: {args.ai4i} is not a file; download ai4i2020.csv from the UCI repository", file=sys.stderr)
        return 2
    try:
        result = ai4i.run(args.ai4i, out_dir=args.out, folds=args.folds, seed=args.seed, progress=print)
    except ValueError as exc:
        print(f"error: {args.ai4i}: {exc}", file=sys.stderr)
        return 2
    print(ai4i.format_report(result))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    fleet = parser.add_argument_group("simulated fleet")
    fleet.add_argument("--motors", type=int, default=60, help="motors to simulate (split by motor)")
    fleet.add_argument("--days", type=float, default=365.0, help="simulated days of history per motor")
    fleet.add_argument("--seed", type=int, default=1, help="seed of the simulation, the split and training")
    fleet.add_argument(
        "--wear-scale", type=float, default=1.0, help="multiplies every wear rate: more failures in a shorter history"
    )
    split = parser.add_argument_group("split and training")
    split.add_argument("--test-fraction", type=float, default=0.25, help="share of motors held out for evaluation")
    split.add_argument(
        "--validation-fraction", type=float, default=0.1, help="share of motors whose PR-AUC is logged while training"
    )
    split.add_argument("--rounds", type=int, default=artifact.NUM_BOOST_ROUND, help="boosting rounds")
    split.add_argument("--workers", type=int, default=None, help="processes and threads (default: all cores)")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument(
        "--detector-config",
        type=Path,
        default=None,
        help="JSON of detector overrides (as in the SSM parameter) whose predictive rule the replay uses",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for model.tar.gz, metrics, plots")
    output.add_argument(
        "--model-card",
        type=Path,
        default=None,
        help=f"where to write the model card (default: {DEFAULT_CARD.relative_to(MODEL_DIR.parent)}; "
        "with --archive, model-card.md in --out)",
    )
    output.add_argument("--no-model-card", action="store_true", help="do not write the model card")
    output.add_argument(
        "--export-dataset",
        type=Path,
        default=None,
        help="also write train.csv/validation.csv (label first) for model/sagemaker_train.py",
    )
    archived = parser.add_argument_group("the fleet's own history (docs/model.md)")
    archived.add_argument(
        "--archive",
        default=None,
        metavar="DIR_OR_S3_URL",
        help="train on an archive's readings and failure reports (the local stack's, device/history.py's, "
        "model/import_history.py's, or s3://bucket/prefix) instead of the simulator",
    )
    archived.add_argument(
        "--horizon",
        type=float,
        default=HORIZON_OPERATING_S / 3600,
        help="label: fails within this many operating hours",
    )
    archived.add_argument(
        "--no-warning-mode",
        action="append",
        default=[],
        metavar="MODE",
        help="a reported failure mode that gives no warning in the signals (repeatable): like the simulator's "
        "random failures, left out of training and not counted as misses",
    )
    archived.add_argument(
        "--min-failures",
        type=int,
        default=10,
        help="failures with warning the training motors need before a model is trained",
    )
    public = parser.add_argument_group("public dataset")
    public.add_argument(
        "--ai4i", type=Path, default=None, help="train and cross-validate on the AI4I 2020 CSV instead (UCI)"
    )
    public.add_argument("--folds", type=int, default=5, help="folds of the AI4I stratified cross-validation")
    return parser


if __name__ == "__main__":
    sys.exit(main())
