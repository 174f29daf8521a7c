"""The promotion gate: replay a candidate model and the serving one on the same held-out motors of an archive.

    python model/compare.py candidate/model.tar.gz --against current/model.tar.gz --archive .local-stack/archive

The archive is read as `python model/train.py --archive` reads it (model/archive_dataset.py): each held-out
motor's readings in (`ts`, `seq`) order through `compute_features`, the Lambda's own function, its failures
from the `report_failure` actions, and its readings between a failure and its repair left out. Both models
score the same rows, and each model's predictions go through the detector as in model/evaluate.py (its
`replay` and `summarise`, the figures of the model card). A failure reported as `other` (no named mode)
counts as unforeseeable, as the simulator's random failures do: not a miss. The held-out motors are the
archive's motors that the candidate's manifest does not list as trained or validated on (or `--motors`).

Verdict: promote if the candidate forewarns at least as many failures as the current model (fewer by
at most `--forewarned-tolerance`) and raises no more false predictive alarms per motor-year (more by at
most `--false-alarm-tolerance`); keep otherwise. Exit code 0 promote, 1 keep, 2 error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python model/compare.py): make `model` and `device` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

with setup_needed("model/compare.py"):
    import numpy as np
    from numpy.typing import NDArray

    from model.archive import Archive, ArchiveError
    from model.archive_dataset import ArchivedFleet, ArchivedMotor, rows_of, split_by_motor
    from model.dataset import HORIZON_OPERATING_S
    from model.evaluate import MIN_LEAD_H, Replay, detector_config, forewarned_key, replay, summarise
    from model.versions import VersionedModel, load_versioned
    from motor_maintenance.config import DetectorConfig
    from motor_maintenance.features import FEATURE_NAMES
    from motor_model.artifact import check_features

UNFORESEEABLE_MODE = "other"
"""What an operator reports for a failure with no named mode (device/history_archive.py writes the simulator's
random failures so): no model can see it coming, so it is not counted as a miss."""
DEFAULT_FALSE_ALARM_TOLERANCE = 0.0
DEFAULT_FOREWARNED_TOLERANCE = 0
PROMOTE, KEEP, ERROR = 0, 1, 2
Log = Callable[[str], None]


class CompareError(Exception):
    """The comparison cannot be made as asked (a model, the archive or the motors); one line for the user."""


@dataclass(frozen=True)
class MotorScores:
    """A motor's history and, for each of its running readings (`steps`), each model's probability."""

    motor: ArchivedMotor
    steps: NDArray[np.int32]
    probabilities: dict[str, NDArray[np.float64]]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = detector_config(args.detector_config)
        candidate, current = _model(args.candidate, "candidate"), _model(args.against, "current")
        archive = Archive.open(args.archive)
        print(f"candidate {candidate.describe()}\ncurrent   {current.describe()}\nreading {args.archive}...")
        with tempfile.TemporaryDirectory(prefix="compare-") as scratch:
            fleet = split_by_motor(archive, scratch=Path(scratch), log=print)
            held_out = held_out_motors(sorted(fleet.shards), candidate, args.motors)
            print(f"replaying {len(held_out)} held-out motors of {args.archive}: {', '.join(held_out)}")
            seen = sorted(set(held_out) & set(candidate.training_motors))
            if seen:  # asked for with --motors: allowed, but the candidate has seen them and will look better
                print(f"warning: the candidate was trained on {', '.join(seen)}: its figures there flatter it")
            models = {"candidate": candidate, "current": current}
            scored = score_motors(fleet, held_out, models, workers=args.workers, log=print)
    except (CompareError, ArchiveError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR
    summaries = {
        name: summarise(replayed(scored, name, config), min_lead_h=MIN_LEAD_H) for name in ("candidate", "current")
    }
    promote, reasons = verdict(
        summaries["candidate"],
        summaries["current"],
        forewarned_tolerance=args.forewarned_tolerance,
        false_alarm_tolerance=args.false_alarm_tolerance,
    )
    print(table(summaries, {"candidate": candidate.version, "current": current.version}))
    print(f"verdict: {'PROMOTE' if promote else 'KEEP'} {candidate.version}: {reasons}")
    if args.json is not None:
        document = {
            "candidate": {"version": candidate.version, "summary": summaries["candidate"]},
            "current": {"version": current.version, "summary": summaries["current"]},
            "held_out_motors": held_out,
            "verdict": "promote" if promote else "keep",
            "reasons": reasons,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return PROMOTE if promote else KEEP


def _model(path: Path, role: str) -> VersionedModel:
    if not path.is_file():
        raise CompareError(f"{role} model {path}: no such file")
    try:
        model = load_versioned(path)
    except ValueError as exc:
        raise CompareError(f"{role} model: {exc}") from None
    try:
        check_features(model.version, model.feature_names, FEATURE_NAMES)
    except ValueError as exc:  # motor_model's ModelFormatError
        raise CompareError(f"{role} {exc}") from None
    if model.booster.num_features() != len(FEATURE_NAMES):
        raise CompareError(
            f"{role} model {model.version} takes {model.booster.num_features()} features, not {len(FEATURE_NAMES)}"
        )
    return model


def held_out_motors(present: Sequence[str], candidate: VersionedModel, asked: Sequence[str] | None) -> list[str]:
    """The motors to replay: those asked for, else the archive's (`present`) that the candidate was not trained on."""
    if not present:
        raise CompareError("the archive holds no valid readings")
    if asked:
        missing = sorted(set(asked) - set(present))
        if missing:
            raise CompareError(f"--motors: {', '.join(missing)} not in the archive (it holds {len(present)} motors)")
        return sorted(set(asked))
    if candidate.manifest is None:
        raise CompareError(
            "the candidate has no manifest listing the motors it was trained on: name the held-out motors with --motors"
        )
    trained = set(candidate.training_motors)
    held_out = [motor_id for motor_id in present if motor_id not in trained]
    if not held_out:
        raise CompareError("every motor of the archive was in the candidate's training data: name some with --motors")
    return held_out


def score_motors(
    fleet: ArchivedFleet,
    motor_ids: Sequence[str],
    models: dict[str, VersionedModel],
    *,
    workers: int | None = None,
    log: Log | None = None,
) -> list[MotorScores]:
    """Each motor's rows as training reads them (archive_dataset.rows_of), scored by every model.

    The motors' readings stay in `fleet`'s files, which must outlive the replay (`ArchivedMotor` reads them).
    """
    rows = rows_of(
        fleet,
        motor_ids,
        horizon_s=HORIZON_OPERATING_S,  # the labels, which the comparison does not use
        no_warning_modes=(UNFORESEEABLE_MODE,),
        workers=workers,
        log=log,
    )
    scored = []
    for motor in rows:
        probabilities = {
            name: np.asarray(model.booster.inplace_predict(motor.features, missing=np.nan), dtype=np.float64)
            for name, model in models.items()
        }
        scored.append(MotorScores(ArchivedMotor(motor, fleet.shards[motor.motor_id]), motor.steps, probabilities))
        if log is not None:
            log(f"  {motor.motor_id}: {len(motor.ts_ms):,} readings, {len(motor.failure_modes)} failures reported")
    return scored


def replayed(scored: Sequence[MotorScores], name: str, config: DetectorConfig) -> Replay:
    """Model `name`'s predictions replayed through the detector on every motor (evaluate.replay), merged."""
    merged = Replay(motor_years=0.0)
    for motor in scored:
        one = replay(
            motor.motor,
            [0],
            steps=motor.steps,
            column_of_row=np.zeros(len(motor.steps), dtype=np.int32),
            probabilities=motor.probabilities[name],
            config=config,
        )
        merged.motor_years += one.motor_years
        merged.failures.extend(one.failures)
        merged.episodes.extend(one.episodes)
        merged.false_alarms += one.false_alarms
    return merged


def verdict(
    candidate: dict[str, Any],
    current: dict[str, Any],
    *,
    forewarned_tolerance: int = DEFAULT_FOREWARNED_TOLERANCE,
    false_alarm_tolerance: float = DEFAULT_FALSE_ALARM_TOLERANCE,
) -> tuple[bool, str]:
    """Promote (True) only if the candidate forewarns at least as many failures and raises no more false alarms."""
    warned, warned_now = candidate["predictable"]["forewarned"], current["predictable"]["forewarned"]
    false, false_now = candidate["false_alarms_per_motor_year"] or 0.0, current["false_alarms_per_motor_year"] or 0.0
    reasons = []
    enough = warned >= warned_now - forewarned_tolerance
    reasons.append(f"forewarns {warned} failures against {warned_now}" + ("" if enough else " (fewer)"))
    quiet = false <= false_now + false_alarm_tolerance
    reasons.append(f"{false:g} false alarms per motor-year against {false_now:g}" + ("" if quiet else " (more)"))
    return enough and quiet, "; ".join(reasons)


def table(summaries: dict[str, dict[str, Any]], versions: dict[str, str]) -> str:
    """The figures side by side: one column per model."""
    names = list(summaries)
    key = forewarned_key(MIN_LEAD_H)

    def row(label: str, values: list[Any]) -> str:
        return f"{label:<34}" + "".join(f"{'-' if v is None else v!s:>18}" for v in values)

    rows = [
        row("", names),
        row("model version", [versions[name] for name in names]),
        row("motor-years replayed", [summaries[n]["motor_years"] for n in names]),
        row("failures (predictable)", [summaries[n]["predictable"]["failures"] for n in names]),
        row("forewarned", [summaries[n]["predictable"]["forewarned"] for n in names]),
        row(f"forewarned >= {MIN_LEAD_H:g} h", [summaries[n]["predictable"][key] for n in names]),
        row("lead time median (h)", [summaries[n]["predictable"]["lead_h_median"] for n in names]),
        row("lead time p10 (h)", [summaries[n]["predictable"]["lead_h_p10"] for n in names]),
        row("unforeseeable failures", [summaries[n]["random"]["failures"] for n in names]),
        row("false predictive alarms", [summaries[n]["false_alarms"] for n in names]),
        row("false alarms per motor-year", [summaries[n]["false_alarms_per_motor_year"] for n in names]),
    ]
    return "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("candidate", type=Path, help="the model.tar.gz that would replace the serving one")
    parser.add_argument("--against", type=Path, required=True, help="the serving model's model.tar.gz")
    parser.add_argument("--archive", required=True, help="the archive to replay: a folder or s3://bucket/prefix")
    parser.add_argument(
        "--motors",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=None,
        help="comma-separated motor ids to replay (default: the archive's motors the candidate was not trained on)",
    )
    parser.add_argument(
        "--forewarned-tolerance",
        type=int,
        default=DEFAULT_FOREWARNED_TOLERANCE,
        help="failures the candidate may forewarn fewer than the current model and still be promoted",
    )
    parser.add_argument(
        "--false-alarm-tolerance",
        type=float,
        default=DEFAULT_FALSE_ALARM_TOLERANCE,
        help="false alarms per motor-year the candidate may raise above the current model and still be promoted",
    )
    parser.add_argument(
        "--detector-config", type=Path, default=None, help="JSON of detector overrides (as in the SSM parameter)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes for the motors' features (default: all cores)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures and the verdict here")
    return parser


if __name__ == "__main__":
    sys.exit(main())
