"""Replay a recorded telemetry file (device/simulate.py --record) through the detector, offline.

    python model/replay.py recording.jsonl --detector-config '{"predictive": {"raise_threshold": 0.6}}'

Each motor's readings are sorted by (ts, seq) as recorded, their features computed with the
Lambda's own `compute_features`, their probabilities predicted in one batch with the model
artifact, and the detector stepped with `now` = the reading's own time. It prints every alarm
transition and a count per alarm, so thresholds can be tuned before they change in production.
Same recording, same configuration, same model: the same output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make `model` and `device` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

with setup_needed("model/replay.py"):
    import numpy as np
    import xgboost as xgb

    from model.artifact import load_booster
    from motor_maintenance.config import DetectorConfig
    from motor_maintenance.detector import ReadingInput, step
    from motor_maintenance.features import FEATURE_NAMES, RunningStats, compute_features
    from motor_maintenance.state import MotorState
    from motor_maintenance.telemetry import Telemetry

DEFAULT_MODEL = Path("model/output/model.tar.gz")
NO_TRUTH = "no-truth"
"""The failed_mode of a record that carries no ground truth."""


@dataclass(frozen=True)
class Recorded:
    """One recorded reading and, if the recording carries it, the mode the motor was down with."""

    reading: Telemetry
    failed_mode: str | None
    """The simulator's truth: the failure mode the motor is down with, None if up, NO_TRUTH if unknown."""


@dataclass(frozen=True)
class AlarmTransition:
    """One line of the replay's output."""

    at: str
    motor_id: str
    alarm: str
    transition: str
    value: float | None

    def line(self) -> str:
        value = "" if self.value is None else f"{self.value:.4g}"
        return f"{self.at}  {self.motor_id}  {self.alarm}  {self.transition}  {value}".rstrip()


def load_recording(path: Path) -> dict[str, list[Recorded]]:
    """A recording's readings per motor (motors in id order), each sorted by (ts, seq)."""
    motors: dict[str, list[Recorded]] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                reading = Telemetry.model_validate(record.get("payload", record))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a recorded reading: {exc}") from exc
            truth = record.get("truth")
            failed = truth.get("failed_mode") if isinstance(truth, dict) else NO_TRUTH
            motors.setdefault(reading.motor_id, []).append(Recorded(reading, failed))
    return {
        motor: sorted(rows, key=lambda r: (r.reading.ts_ms, r.reading.seq)) for motor, rows in sorted(motors.items())
    }


def probabilities(readings: Sequence[Telemetry], booster: xgb.Booster | None) -> list[float | None]:
    """The model's probability for each reading of one motor in order; None for a stopped motor (as the Lambda)."""
    if booster is None:
        return [None] * len(readings)
    rows: list[list[float]] = []
    running: list[int] = []
    stats: RunningStats | None = None
    for index, reading in enumerate(readings):
        vector, stats = compute_features(reading, stats)
        if reading.running:
            rows.append(vector)
            running.append(index)
    result: list[float | None] = [None] * len(readings)
    if rows:
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))
        predicted = np.asarray(booster.inplace_predict(matrix, missing=np.nan), dtype=np.float64)
        for index, probability in zip(running, predicted.tolist(), strict=True):
            result[index] = float(probability)
    return result


def replay_motor(
    readings: Sequence[Telemetry], chances: Sequence[float | None], config: DetectorConfig
) -> list[AlarmTransition]:
    """Step the detector through one motor's readings, `now` = each reading's time; every transition."""
    state: MotorState | None = None
    found: list[AlarmTransition] = []
    for reading, chance in zip(readings, chances, strict=True):
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        decision = step(state, ReadingInput(reading, failure_probability=chance), now, config)
        state = decision.state
        found.extend(
            AlarmTransition(now.isoformat(timespec="seconds"), reading.motor_id, e.alarm, e.transition.value, e.value)
            for e in decision.events
        )
    return found


def replay_recording(
    recording: dict[str, list[Recorded]], booster: xgb.Booster | None, config: DetectorConfig
) -> list[AlarmTransition]:
    """Every motor's transitions, motors in id order, each motor's in time order."""
    found: list[AlarmTransition] = []
    for rows in recording.values():
        readings = [r.reading for r in rows]
        found.extend(replay_motor(readings, probabilities(readings, booster), config))
    return found


def report(transitions: Sequence[AlarmTransition]) -> str:
    """The transitions, one per line, then the count per alarm and transition."""
    lines = [t.line() for t in transitions]
    counts = Counter((t.alarm, t.transition) for t in transitions)
    lines.append(f"{len(transitions)} transitions")
    lines.extend(f"  {alarm} {transition}: {n}" for (alarm, transition), n in sorted(counts.items()))
    return "\n".join(lines)


def detector_config(text: str | None) -> DetectorConfig:
    """Defaults with overrides given as JSON text or a JSON file (the SSM parameter's document)."""
    if text is None:
        return DetectorConfig()
    path = Path(text)
    document: Any = json.loads(path.read_text(encoding="utf-8") if path.is_file() else text)
    return DetectorConfig.with_overrides(document)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Replay a recording (device/simulate.py --record) through the detector and print its alarms.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("recording", type=Path, metavar="FILE", help="JSON lines written by device/simulate.py --record")
    p.add_argument("--detector-config", metavar="JSON|FILE", help="detector overrides, as in the SSM parameter")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model artifact for the probabilities")
    p.add_argument("--no-model", action="store_true", help="no probabilities (as a stack without an endpoint)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = detector_config(args.detector_config)
        recording = load_recording(args.recording)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    booster = None if args.no_model else load_booster(args.model)
    print(report(replay_recording(recording, booster, config)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
