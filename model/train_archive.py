"""`python model/train.py --archive DIR_OR_S3_URL`: the training run on a fleet's own archived history.

Reads the archive once into per-motor files (model/archive_dataset.py), computes each motor's
features and labels in parallel processes, checks there are enough failures to learn from, then
runs the same steps as the simulated run (`model.fit_evaluate.fit_and_evaluate`): split by motor, XGBoost,
the held-out motors replayed through the detector (`model.evaluate.replay`, one archived motor at a
time), metrics, plots and the model card. Besides them it writes `held-out-failures.json`: each
held-out failure, its mode as reported and the lead time of the alarm that announced it; and
`held-out-alarms.json`: the held-out motors, their motor-years and every predictive alarm's raise and
clear times, for evaluations by other definitions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.archive import Archive, ArchiveError
from model.archive_dataset import ArchiveData, ArchivedMotor, build_from_archive
from model.dataset import Dataset, split_motors
from model.evaluate import MIN_LEAD_H, FailureOutcome, Replay, failure_stats, replay, summarise
from model.fit_evaluate import fit_and_evaluate, report
from motor_maintenance.config import DetectorConfig


def run_archive(args: argparse.Namespace, config: DetectorConfig) -> int:
    """The run; 2 with one line on stderr for an archive that cannot be read or holds too few failures."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    horizon_s = args.horizon * 3600
    print(f"1/5 reading {args.archive}: the readings split by motor, the operators' failure and repair reports...")
    with tempfile.TemporaryDirectory(prefix="train-archive-") as scratch:
        try:
            archive = Archive.open(args.archive)
            print("2/5 features through motor_maintenance.features.compute_features (the Lambda's function)...")
            data = build_from_archive(
                archive,
                scratch=Path(scratch),
                horizon_s=horizon_s,
                no_warning_modes=args.no_warning_mode,
                workers=args.workers,
                log=print,
            )
        except (ArchiveError, OSError) as exc:
            print(f"error: --archive: {exc}", file=sys.stderr)
            return 2
        timings["features"] = time.perf_counter() - started
        problem = _too_little(data, args)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        split = split_motors(
            len(data.motors),
            test_fraction=args.test_fraction,
            validation_fraction=args.validation_fraction,
            seed=args.seed,
        )
        trained_on = data.failures_of(split["train"])
        if trained_on < args.min_failures:
            print(
                f"error: the {len(split['train'])} training motors have {trained_on} failures with warning; "
                f"training needs at least {args.min_failures} (--min-failures): archive more history or more "
                "motors, or report the failures that are missing",
                file=sys.stderr,
            )
            return 2
        held_out = _HeldOut(data, split["test"], config)
        out = args.out
        metrics = fit_and_evaluate(
            data=data.dataset,
            split=split,
            replay_test=held_out.replay,
            summarise_replay=held_out.summarise,
            lead_times_of=held_out.lead_times,
            history_summary=_summary(data, args),
            rounds=args.rounds,
            workers=args.workers,
            seed=args.seed,
            out=out,
            card_path=None if args.no_model_card else (args.model_card or out / "model-card.md"),
            export_dataset=args.export_dataset,
            config=config,
            log=print,
            timings=timings,
            started=started,
            horizon_s=horizon_s,
            label=f"a reported failure within {args.horizon:g} operating hours",
            card_edit=_card_for_archive,
            manifest_of=lambda split, rows, summary: _manifest(data, args, split, rows=rows, summary=summary),
        )
    (out / "held-out-failures.json").write_text(json.dumps(held_out.failures(), indent=2) + "\n")
    (out / "held-out-alarms.json").write_text(json.dumps(held_out.alarms(), indent=2) + "\n")
    print(report(metrics))
    return 0


def _too_little(data: ArchiveData, args: argparse.Namespace) -> str | None:
    """Why no model can be trained on `data` before splitting it, if so."""
    if not data.motors:
        return f"--archive {args.archive}: no valid reading in it"
    if len(data.motors) < 3:
        return f"--archive {args.archive}: {len(data.motors)} motors; a split by motor needs at least 3"
    return None


class _HeldOut:
    """The held-out motors' replay, one archived motor at a time, and their failures by reported mode."""

    def __init__(self, data: ArchiveData, columns: list[int], config: DetectorConfig) -> None:
        self.data, self.columns, self.config = data, columns, config
        self.named: list[tuple[str, str, int, FailureOutcome]] = []
        """(motor id, mode as reported, failure time in epoch ms, outcome) of each held-out failure."""
        self.episodes: list[tuple[str, int, int | None]] = []
        """(motor id, raise, clear or None) of each predictive alarm, in epoch ms."""
        self.motor_years = 0.0

    def replay(self, test: Dataset, probabilities: np.ndarray) -> Replay:
        merged = Replay(motor_years=0.0)
        self.named, self.episodes = [], []
        for column in self.columns:
            rows = self.data.motors[column]
            motor = ArchivedMotor(rows, self.data.shards[rows.motor_id])
            mine = test.column == column
            one = replay(
                motor,
                [0],
                steps=test.step[mine],
                column_of_row=np.zeros(int(mine.sum()), dtype=np.int32),
                probabilities=probabilities[mine],
                config=self.config,
            )
            merged.motor_years += one.motor_years
            merged.false_alarms += one.false_alarms
            merged.episodes += [replace(episode, column=column) for episode in one.episodes]
            self.episodes += [
                (rows.motor_id, int(rows.ts_ms[e.raised]), None if e.cleared is None else int(rows.ts_ms[e.cleared]))
                for e in one.episodes
            ]
            for outcome, mode, onset in zip(one.failures, rows.failure_modes, rows.onsets.tolist(), strict=True):
                outcome.column = column
                merged.failures.append(outcome)
                self.named.append((rows.motor_id, mode, int(rows.ts_ms[onset]), outcome))
        self.motor_years = merged.motor_years
        return merged

    def summarise(self, replayed: Replay) -> dict[str, Any]:
        """The evaluation's summary, with the failures per mode by the modes the operators reported."""
        summary = summarise(replayed, min_lead_h=MIN_LEAD_H)
        by_mode: dict[str, list[FailureOutcome]] = {}
        for _, mode, _, outcome in self.named:
            if outcome.mode.value != "random":
                by_mode.setdefault(mode, []).append(outcome)
        summary["per_mode"] = {mode: failure_stats(found, MIN_LEAD_H) for mode, found in sorted(by_mode.items())}
        return summary

    def lead_times(self, replayed: Replay) -> dict[str, list[float]]:
        leads: dict[str, list[float]] = {}
        for _, mode, _, outcome in self.named:
            if outcome.mode.value != "random" and outcome.lead_h is not None:
                leads.setdefault(mode, []).append(outcome.lead_h)
        return leads

    def failures(self) -> list[dict[str, Any]]:
        return [
            {
                "motor_id": motor_id,
                "first_reading_down": datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(),
                "mode": mode,
                "warns": outcome.mode.value != "random",
                "lead_h": None if outcome.lead_h is None else round(outcome.lead_h, 2),
            }
            for motor_id, mode, at_ms, outcome in self.named
        ]

    def alarms(self) -> dict[str, Any]:
        """The held-out motors and their predictive alarms (UTC ISO 8601 times; cleared None: up at the end)."""

        def iso(ms: int | None) -> str | None:
            return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()

        return {
            "motors": [self.data.motors[column].motor_id for column in self.columns],
            "motor_years": round(self.motor_years, 4),
            "alarms": [{"motor_id": m, "raised": iso(r), "cleared": iso(c)} for m, r, c in self.episodes],
        }


def _manifest(
    data: ArchiveData,
    args: argparse.Namespace,
    split: dict[str, list[int]],
    *,
    rows: dict[str, Any],
    summary: dict[str, Any],
) -> dict[str, Any]:
    """What the artifact's manifest records of an archive run (model/artifact.py adds version and features)."""
    described = _summary(data, args)
    failures: dict[str, int] = {}
    for column in split["train"]:
        for mode in data.motors[column].failure_modes:
            failures[mode] = failures.get(mode, 0) + 1
    return {
        "trained_at": datetime.now(UTC).replace(microsecond=0),
        "data": {
            "source": f"archive {args.archive}",
            "first_reading": described["first_reading"],
            "last_reading": described["last_reading"],
        },
        "motors": {part: [data.motors[column].motor_id for column in columns] for part, columns in split.items()},
        "failures": dict(sorted(failures.items())),
        "metrics": {"rows": rows, "replay": summary},
    }


def _summary(data: ArchiveData, args: argparse.Namespace) -> dict[str, Any]:
    """The data part of the metrics (and of the card) for an archive."""
    first = min(int(m.ts_ms[0]) for m in data.motors if len(m.ts_ms))
    last = max(int(m.ts_ms[-1]) for m in data.motors if len(m.ts_ms))
    gaps = np.concatenate([np.diff(m.ts_ms) for m in data.motors if len(m.ts_ms) > 1] or [np.zeros(1)])
    return {
        "source": "archive",
        "archive": str(args.archive),
        "motors": len(data.motors),
        "motor_types": sorted({m.motor_type for m in data.motors}),
        "days": round((last - first) / 86_400_000, 1),
        "first_reading": datetime.fromtimestamp(first / 1000, UTC).isoformat(),
        "last_reading": datetime.fromtimestamp(last / 1000, UTC).isoformat(),
        "seed": args.seed,
        "interval_s": int(np.median(gaps) / 1000),
        "readings": data.readings.kept,
        "invalid_readings": dict(data.readings.invalid.most_common()),
        "duplicate_readings": data.readings.duplicates,
        "motor_years": round(data.motor_years, 2),
        "failures": data.failures_by_mode,
        "failures_without_readings": data.failures_without_readings,
        "no_warning_modes": list(args.no_warning_mode),
        "left_out_repair_rows": data.left_out,
    }


def _card_for_archive(markdown: str, metrics: dict[str, Any]) -> str:
    """The card with its Data and Limits sections about the archive instead of the simulator."""
    data = metrics["data"]
    failures = ", ".join(f"{mode.replace('_', ' ')} {count}" for mode, count in data["failures"].items()) or "none"
    unwarned = ", ".join(data["no_warning_modes"]) or "none named"
    section = f"""The fleet's own history, read from the archive `{data["archive"]}` by `model/archive.py`:
{data["motors"]} motors ({", ".join(data["motor_types"])}), {data["first_reading"][:10]} to
{data["last_reading"][:10]}, a reading every {data["interval_s"] // 60} minutes (median): {data["readings"]:,}
valid readings ({sum(data["invalid_readings"].values()):,} invalid, {data["duplicate_readings"]:,} duplicates),
{data["motor_years"]} motor-years. Failures as the operators reported them (`report_failure`): {failures};
modes that give no warning: {unwarned}. Readings between a failure and its repair (`service_complete`)
are left out ({data["left_out_repair_rows"]:,} rows)."""
    limits = f"""- The labels are the failure reports: a failure nobody reported is a motor that ran well, and a
  report with the wrong time moves its label window.
- The figures come from {data["split"]["test"]} held-out motors: a handful of failures, so a single
  miss moves a percentage by several points.
- A failure of a mode that gives warning but whose warning the sensors do not see counts as a miss.
- The model sees one reading and running averages; a sensor that drifts slowly can look like wear."""
    return _with_section(_with_section(markdown, "Data", section), "Limits", limits)


def _with_section(markdown: str, title: str, body: str) -> str:
    """`markdown` with the body of its `## title` section replaced (unchanged if it has none)."""
    head = f"\n## {title}\n"
    start = markdown.find(head)
    if start < 0:
        return markdown
    begin = start + len(head)
    end = markdown.find("\n## ", begin)
    return markdown[:begin] + "\n" + body + "\n" + (markdown[end:] if end >= 0 else "")
