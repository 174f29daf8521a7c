"""model/sagemaker_archive.py: the archive pipeline's processing steps, run as SageMaker would run them.

The split step runs once on the whole archive; the features step runs on two "instances", each with
the share of the per-motor files that ShardedByS3Key would give it. Together they must give the rows
and labels `model/train.py --archive` computes on one machine, each motor in its part of the split.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.history import generate
from device.history_archive import write_archive
from device.physics import DAY_S, FleetConfig
from model import sagemaker_archive, sagemaker_pipeline
from model.archive import Archive, ArchiveError
from model.archive_dataset import build_from_archive

HORIZON_S = 24 * 3600.0


def _instance(job: Path, host: str, motors: list[Path]) -> Path:
    """One processing instance's /opt/ml/processing: its share of the motors, the replicated meta."""
    base = job / host
    (base / "input" / "motors").mkdir(parents=True)
    for path in motors:
        shutil.copyfile(path, base / "input" / "motors" / path.name)
    shutil.copytree(job / "split" / "output" / "meta", base / "input" / "meta")
    return base


def _rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("processing")
    history = generate(FleetConfig(motors=6, seed=2, wear_scale=8.0), duration_s=20 * DAY_S)
    write_archive(history, root / "split" / "input" / "archive", seed=2)
    return root


def test_split_writes_one_file_per_motor_the_maintenance_logs_and_a_split_by_motor(job: Path) -> None:
    meta = sagemaker_archive.split(job / "split", seed=1, test_fraction=0.25, validation_fraction=0.1)

    files = sorted(path.stem for path in (job / "split" / "output" / "motors").glob("*.parquet"))
    assert files == meta["motors"] == [f"motor-{m:03d}" for m in range(1, 7)]
    parts = meta["split"]
    assert sorted(m for part in parts.values() for m in part) == files
    assert not set(parts["train"]) & set(parts["test"])
    maintenance = json.loads((job / "split" / "output" / "meta" / "maintenance.json").read_text())
    assert sum(len(log["failures"]) for log in maintenance.values()) > 0


def test_features_on_two_instances_give_the_rows_and_labels_of_the_local_pipeline(job: Path) -> None:
    if not (job / "split" / "output" / "meta").is_dir():
        sagemaker_archive.split(job / "split", seed=1, test_fraction=0.25, validation_fraction=0.1)
    shards = sorted((job / "split" / "output" / "motors").glob("*.parquet"))
    # ShardedByS3Key: each instance a part of the objects, each object (a motor) whole on one instance.
    hosts = {"algo-1": shards[0::2], "algo-2": shards[1::2]}
    for host, motors in hosts.items():
        base = _instance(job, host, motors)
        sagemaker_archive.features(base, host=host, horizon_s=HORIZON_S, no_warning_modes=(), workers=1)

    meta = json.loads((job / "split" / "output" / "meta" / "motors.json").read_text())
    local = build_from_archive(
        Archive.open(job / "split" / "input" / "archive"), scratch=job / "local", horizon_s=HORIZON_S, workers=1
    )
    by_motor = {motor.motor_id: motor for motor in local.motors}
    for part, motors in meta["split"].items():
        written = sorted(
            line
            for host in hosts
            for line in (job / host / "output" / "features" / part / f"{host}.csv").read_text().splitlines()
        )
        expected_file = job / f"expected-{part}.csv"
        sagemaker_archive.write_csv(expected_file, [by_motor[m] for m in sorted(motors)])
        assert written == sorted(expected_file.read_text().splitlines()), part
        assert all(len(line.split(",")) == 1 + local.dataset.features.shape[1] for line in written)
    train = [row for host in hosts for row in _rows(job / host / "output" / "features" / "train" / f"{host}.csv")]
    assert {row[0] for row in train} == {"0", "1"}, "the training rows hold failures and normal rows"


def test_a_shard_of_motors_from_another_split_is_refused(job: Path, tmp_path: Path) -> None:
    base = tmp_path / "algo-1"
    (base / "input" / "motors").mkdir(parents=True)
    (base / "input" / "motors" / "motor-999.parquet").write_bytes(b"")
    if not (job / "split" / "output" / "meta").is_dir():
        sagemaker_archive.split(job / "split", seed=1, test_fraction=0.25, validation_fraction=0.1)
    shutil.copytree(job / "split" / "output" / "meta", base / "input" / "meta")

    with pytest.raises(ArchiveError, match="motor-999"):
        sagemaker_archive.features(base, host="algo-1", horizon_s=HORIZON_S, no_warning_modes=(), workers=1)


def test_the_staged_code_channel_runs_the_split_on_its_own(job: Path, tmp_path: Path) -> None:
    """As the processing container runs it: the code channel only, no project checkout, no PYTHONPATH."""
    code = sagemaker_pipeline.stage_code(tmp_path / "code")
    base = tmp_path / "processing"
    shutil.copytree(job / "split" / "input", base / "input")
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["PROCESSING_ROOT"] = str(base)

    done = subprocess.run(  # noqa: S603 - our own interpreter and staged script
        [sys.executable, str(code / "model" / "sagemaker_archive.py"), "split"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "split: " in done.stdout
    assert len(list((base / "output" / "motors").glob("*.parquet"))) == 6
    assert not [path for path in code.rglob("*") if path.is_file() and path.suffix != ".py"]
