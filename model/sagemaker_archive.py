"""The archive pipeline's steps inside SageMaker processing jobs: split the archive by motor, then features per shard.

    python model/sagemaker_archive.py split      # one instance: the archive -> one Parquet file per motor
    python model/sagemaker_archive.py features   # N instances: each its shard of the motors -> CSV parts

model/sagemaker_pipeline.py starts the jobs; this module runs in them from the code channel (this
package, `device`, `motor_maintenance`) and the job's channels under /opt/ml/processing
(`PROCESSING_ROOT` moves it, for tests). The steps are `model/train.py --archive`'s, cut where the
work can be shared out:

- **split** reads `input/archive/` (the archive's `telemetry/` and `actions/`) through
  `model.archive.Archive`: readings validated with the telemetry model, duplicates dropped. It writes
  `output/motors/<motor_id>.parquet` (each motor's readings) and `output/meta/maintenance.json` (each
  motor's failures and repairs from the operators' actions) with `motors.json` (every motor, and the
  split by motor: `model.dataset.split_motors` over the motors in id order).
- **features** gets its share of `motors/` (the job's input is ShardedByS3Key: each instance a part of
  the objects, so each motor whole on one instance) and `meta/` (replicated to every instance). Each
  motor's readings go through `compute_features` (`model.archive_dataset.motor_rows`, in as many
  processes as the instance has cores), and the rows go to
  `output/features/{train,validation,test}/<host>.csv`: label first, no header, an empty field for a
  missing value, which is what the training job's entry script (model/sagemaker_entry.py) reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as a script from the code channel: its folder holds model, device, motor_maintenance
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.archive_layout import ACTIONS
from model.archive import Archive, ArchiveError
from model.archive_dataset import MaintenanceLog, MotorRows, maintenance_logs, motor_rows
from model.dataset import HORIZON_OPERATING_S, in_processes, split_motors

PARTS = ("train", "validation", "test")
DEFAULT_ROOT = "/opt/ml/processing"


def root() -> Path:
    return Path(os.environ.get("PROCESSING_ROOT", DEFAULT_ROOT))


def current_host(config: Path) -> str:
    """This instance's name (`algo-1`, ...) from the job's resource configuration; `algo-1` without one."""
    try:
        return str(json.loads(config.read_text())["current_host"])
    except (OSError, ValueError, KeyError):
        return "algo-1"


def split(base: Path, *, seed: int, test_fraction: float, validation_fraction: float) -> dict[str, Any]:
    """The archive under base/input/archive as one file per motor, with the maintenance logs and the split."""
    archive = Archive.open(base / "input" / "archive")
    motors_dir = base / "output" / "motors"
    with tempfile.TemporaryDirectory(prefix="split-") as scratch:
        shards, counts = archive.shard_by_motor(Path(scratch))
        motors_dir.mkdir(parents=True, exist_ok=True)
        for motor_id, path in shards.items():
            path.replace(motors_dir / f"{motor_id}.parquet")
    actions = archive.events(ACTIONS)
    logs = maintenance_logs(actions.records)
    motors = sorted(shards)
    if len(motors) < 3:
        raise ArchiveError(f"{len(motors)} motors with valid readings; a split by motor needs at least 3")
    columns = split_motors(len(motors), test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed)
    meta = {
        "motors": motors,
        "split": {part: [motors[c] for c in columns[part]] for part in PARTS},
        "readings": {"read": counts.read, "invalid": dict(counts.invalid)},
        "actions": len(actions.records),
    }
    meta_dir = base / "output" / "meta"
    meta_dir.mkdir(parents=True, exist_ok=True)
    (meta_dir / "motors.json").write_text(json.dumps(meta, indent=2) + "\n")
    maintenance = {motor: {"failures": log.failures, "repairs": log.repairs} for motor, log in logs.items()}
    (meta_dir / "maintenance.json").write_text(json.dumps(maintenance) + "\n")
    print(f"split: {counts.read:,} readings read, {len(motors)} motors, {len(actions.records)} operator actions")
    return meta


def features(
    base: Path, *, host: str, horizon_s: float, no_warning_modes: Sequence[str], workers: int | None
) -> dict[str, int]:
    """This instance's motors as feature rows, one CSV per part of the split; rows written per part."""
    meta = json.loads((base / "input" / "meta" / "motors.json").read_text())
    logs = {
        motor: MaintenanceLog(tuple((int(at), str(mode)) for at, mode in log["failures"]), tuple(log["repairs"]))
        for motor, log in json.loads((base / "input" / "meta" / "maintenance.json").read_text()).items()
    }
    part_of = {motor: part for part, motors in meta["split"].items() for motor in motors}
    shards = sorted((base / "input" / "motors").glob("*.parquet"))
    unknown = [path.stem for path in shards if path.stem not in part_of]
    if unknown:
        raise ArchiveError(f"motors {', '.join(unknown[:5])} are not in motors.json: not this split's files")
    jobs = [(path, logs.get(path.stem, MaintenanceLog()), horizon_s, tuple(no_warning_modes)) for path in shards]
    rows = in_processes(motor_rows, jobs, workers=workers, log=print, unit="motors", readings=lambda m: len(m.ts_ms))
    written = dict.fromkeys(PARTS, 0)
    for part in PARTS:
        mine = [motor for motor in rows if part_of[motor.motor_id] == part]
        directory = base / "output" / "features" / part
        directory.mkdir(parents=True, exist_ok=True)
        written[part] = write_csv(directory / f"{host}.csv", mine)
    print(f"features on {host}: {len(shards)} motors, rows " + ", ".join(f"{p} {n:,}" for p, n in written.items()))
    return written


def write_csv(path: Path, motors: Sequence[MotorRows]) -> int:
    """Label first, then the features; an empty field for a missing value (XGBoost's CSV missing value)."""
    count = 0
    with path.open("w") as out:
        for motor in motors:
            table = np.column_stack([motor.labels.astype(np.float32), motor.features])
            for row in table:
                out.write(",".join("" if np.isnan(v) else f"{v:.7g}" for v in row.tolist()) + "\n")
            count += len(table)
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("split", "features"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--horizon-h", type=float, default=HORIZON_OPERATING_S / 3600)
    parser.add_argument("--no-warning-mode", action="append", default=[])
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    base = root()
    try:
        if args.step == "split":
            split(base, seed=args.seed, test_fraction=args.test_fraction, validation_fraction=args.validation_fraction)
        else:
            host = current_host(Path(os.environ.get("RESOURCE_CONFIG", "/opt/ml/config/resourceconfig.json")))
            features(
                base,
                host=host,
                horizon_s=args.horizon_h * 3600,
                no_warning_modes=args.no_warning_mode,
                workers=args.workers,
            )
    except (ArchiveError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        failure = Path(os.environ.get("FAILURE_FILE", "/opt/ml/output/message"))
        if failure.parent.is_dir():
            failure.write_text(str(exc)[:1000])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
