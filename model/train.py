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

    from device.history import generate
    from device.physics import DAY_S, FleetConfig
    from device.plant import PlantConfig
    from model import artifact
    from model.dataset import HORIZON_OPERATING_S, Dataset, build, split_motors
    from model.evaluate import Replay, detector_config, replay
    from model.fit_evaluate import fit_and_evaluate, lap, report
    from motor_maintenance.config import DetectorConfig

MODEL_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = MODEL_DIR / "output"
DEFAULT_CARD = MODEL_DIR.parent / "docs" / "model-card.md"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seeds < 1:
        print(f"error: --seeds {args.seeds}: at least one run is needed", file=sys.stderr)
        return 2
    if args.ai4i is not None:
        return _run_ai4i(args)
    try:
        config = detector_config(args.detector_config)
    except (OSError, ValueError) as exc:
        print(f"error: --detector-config: {exc}", file=sys.stderr)
        return 2
    if args.archive is not None:
        from model.train_archive import run_archive  # noqa: PLC0415 - only this mode needs DuckDB

        return run_archive(args, config)
    common: dict[str, Any] = {
        "motors": args.motors,
        "days": args.days,
        "test_fraction": args.test_fraction,
        "validation_fraction": args.validation_fraction,
        "rounds": args.rounds,
        "workers": args.workers,
        "config": config,
        "wear_scale": args.wear_scale,
        "plant": PlantConfig() if args.plant else None,
    }
    # Further seeds are evaluated only (their artifacts go to OUT/seeds/); the run of --seed is shipped.
    other_seeds = []
    for seed in range(args.seed + 1, args.seed + args.seeds):
        print(f"seed {seed}: a whole run for the intervals over seeds (its artifact is not shipped)")
        other_seeds.append(train(seed=seed, out=args.out / "seeds" / f"seed-{seed}", card_path=None, **common))
    metrics = train(
        seed=args.seed,
        out=args.out,
        card_path=None if args.no_model_card else (args.model_card or DEFAULT_CARD),
        export_dataset=args.export_dataset,
        other_seeds=other_seeds,
        **common,
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
    other_seeds: list[dict[str, Any]] | None = None,
    plant: PlantConfig | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """The whole run; returns the metrics it also writes to out/metrics.json.

    `other_seeds`: the metrics of runs with other seeds, summarised with this one's under "seeds".
    """
    config = config or DetectorConfig()
    timings: dict[str, float] = {}
    started = time.perf_counter()

    log(f"1/5 simulating {motors} motors for {days:g} days (one reading per 10 minutes)...")
    fleet = FleetConfig(motors=motors, seed=seed, wear_scale=wear_scale, plant=plant)
    history = generate(fleet, duration_s=days * DAY_S, progress=_fraction_printer(log, "  simulated"))
    timings["simulate"] = lap(started)
    failures = history.failures_by_mode()
    log(
        f"  {history.steps * motors:,} readings, {sum(failures.values())} failures "
        f"in {history.motor_years:.1f} motor-years"
    )

    log("2/5 features through motor_maintenance.features.compute_features (the Lambda's function)...")
    data = build(history, workers=workers, log=log)
    timings["features"] = lap(started, timings)
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
            "plant": plant is not None,
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
        other_seeds=other_seeds,
    )


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


def _fraction_printer(log: Any, label: str) -> Any:
    shown = [-1]

    def show(fraction: float) -> None:
        tenth = int(fraction * 10)
        if tenth != shown[0] and tenth and tenth % 2 == 0:
            shown[0] = tenth
            log(f"{label} {fraction:.0%}")

    return show


def _run_ai4i(args: argparse.Namespace) -> int:
    from model import ai4i  # noqa: PLC0415 - only this mode needs it

    if not args.ai4i.is_file():
        print(f"error: {args.ai4i} is not a file; download ai4i2020.csv from the UCI repository", file=sys.stderr)
        return 2
    try:
        result = ai4i.run(
            args.ai4i, out_dir=args.out, folds=args.folds, repeats=args.repeats, seed=args.seed, progress=print
        )
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
        "--seeds", type=int, default=3, help="whole runs (seed, seed+1, ...) behind the figures' 95 %% intervals"
    )
    fleet.add_argument(
        "--plant",
        action="store_true",
        help="a real plant's motors (device/plant.py): noisier drifting sensors that drop out, 15/37/90 kW, "
        "services when condition alarms are acted on",
    )
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
    public.add_argument(
        "--repeats", type=int, default=5, help="AI4I cross-validation repeats, each with its own shuffle (seed + r)"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
