"""model/train.py --archive: an archive's readings and failure reports -> labelled rows, split by motor, a model."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.archive_layout import ACTIONS, TELEMETRY, TELEMETRY_TYPES, object_name, partition_dir
from device.columnar import Table, write_parquet
from device.history import generate
from device.history_archive import write_archive
from device.physics import DAY_S, FleetConfig
from model.archive import Archive
from model.archive_dataset import MaintenanceLog, build_from_archive, maintenance_logs, motor_rows
from model.dataset import split_motors
from model.train import main
from model.versions import load_versioned

START = datetime(2026, 3, 2, tzinfo=UTC)
"""A Monday."""
STEP = timedelta(minutes=10)


def _reading(motor_id: str, at: datetime, seq: int, *, running: bool, vibration: float = 2.0) -> dict[str, Any]:
    return {
        "motor_id": motor_id,
        "motor_type": "pump-37kw",
        "ts": at.isoformat().replace("+00:00", "Z"),
        "seq": seq,
        "running": running,
        "speed_rpm": 1480.0 if running else 0.0,
        "current_a": 60.0 if running else 0.0,
        "winding_temp_c": 70.0,
        "bearing_temp_c": 55.0,
        "ambient_temp_c": 22.0,
        "vibration_mm_s": vibration if running else 0.1,
        "topic_motor_id": motor_id,
        "received_at": int(at.timestamp() * 1000) + 200,
    }


def _write(root: Path, readings: list[dict[str, Any]], actions: list[dict[str, Any]]) -> None:
    """Readings as one Parquet object per day, actions as JSON lines, in the archive's layout."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for reading in readings:
        by_day.setdefault(reading["ts"][:10], []).append(reading)
    for dt, rows in by_day.items():
        folder = partition_dir(root, TELEMETRY, dt)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / object_name("t", 0, ".parquet")
        write_parquet(path, Table.from_rows(rows, TELEMETRY_TYPES), TELEMETRY_TYPES, row_group_rows=100_000)
    folder = partition_dir(root, ACTIONS, START.date().isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / object_name("t", 0, ".jsonl")).write_text("".join(json.dumps(a) + "\n" for a in actions))


def _action(motor_id: str, name: str, at: datetime, number: int, **extra: Any) -> dict[str, Any]:
    iso = at.isoformat().replace("+00:00", "Z")
    return {"motor_id": motor_id, "action": name, "action_id": f"a-{motor_id}-{number}", "ts": iso, **extra}


def _shift_motor(motor_id: str, days: int) -> list[dict[str, Any]]:
    """A pump that runs 06:00-18:00 and reports every 10 minutes, day and night."""
    readings = []
    at = START
    for seq in range(1, days * 144 + 1):
        readings.append(_reading(motor_id, at, seq, running=6 <= at.hour < 18))
        at += STEP
    return readings


@pytest.fixture
def one_failure(tmp_path: Path) -> tuple[Path, datetime, datetime]:
    """motor-a runs shifts for 4 days, fails on day 3 at 12:00 and is repaired at 16:00, after a test run at 14:00."""
    readings = _shift_motor("motor-a", 4)
    failed_at = START + timedelta(days=2, hours=12)
    repaired_at = START + timedelta(days=2, hours=16)
    for reading in readings:
        at = datetime.fromisoformat(reading["ts"])
        if failed_at <= at < repaired_at:
            reading.update(running=14 <= at.hour < 15, speed_rpm=1480.0 if at.hour == 14 else 0.0)
    reported = failed_at + timedelta(hours=1)
    actions = [
        _action("motor-a", "report_failure", reported, 1, failed_at=failed_at.isoformat(), failure_mode="bearing_wear"),
        _action("motor-a", "report_failure", reported, 2, failed_at=failed_at.isoformat(), failure_mode="bearing_wear"),
        _action("motor-a", "service_complete", repaired_at, 3),
    ]
    _write(tmp_path / "archive", readings, actions)
    return tmp_path / "archive", failed_at, repaired_at


def test_rows_are_labelled_by_operating_hours_to_the_reported_failure(
    one_failure: tuple[Path, datetime, datetime], tmp_path: Path
) -> None:
    root, failed_at, _ = one_failure
    archive = Archive.open(root)
    shards, _ = archive.shard_by_motor(tmp_path / "shards")
    log = maintenance_logs(archive.events(ACTIONS).records)["motor-a"]
    assert len(log.failures) == 1  # reported twice, one failure

    rows = motor_rows(shards["motor-a"], log, 16 * 3600.0, ())

    ts = rows.ts_ms[rows.steps]
    positive = {datetime.fromtimestamp(t / 1000, UTC) for t in ts[rows.labels == 1]}
    # 16 operating hours before 12:00 on day 3: its 6 morning hours and the 10 last hours of day 2's shift
    # (a stop and a start count half a reading interval each).
    assert min(positive) == START + timedelta(days=1, hours=7, minutes=50)
    assert max(positive) == failed_at - STEP
    assert len(positive) == 61 + 36
    assert not rows.unpredictable.any()


def test_readings_between_a_failure_and_its_repair_are_left_out(
    one_failure: tuple[Path, datetime, datetime], tmp_path: Path
) -> None:
    root, failed_at, repaired_at = one_failure
    archive = Archive.open(root)
    shards, _ = archive.shard_by_motor(tmp_path / "shards")
    log = maintenance_logs(archive.events(ACTIONS).records)["motor-a"]

    rows = motor_rows(shards["motor-a"], log, 24 * 3600.0, ())

    times = [datetime.fromtimestamp(t / 1000, UTC) for t in rows.ts_ms[rows.steps]]
    assert not [t for t in times if failed_at <= t < repaired_at]
    assert rows.left_out == 6  # the test run at 14:00
    assert repaired_at in times  # running again after the repair: rows again
    assert rows.labels[np.array(times) >= repaired_at].sum() == 0


def test_a_failure_of_a_mode_named_as_giving_no_warning_is_unpredictable_not_positive(
    one_failure: tuple[Path, datetime, datetime], tmp_path: Path
) -> None:
    root, _, _ = one_failure
    shards, _ = Archive.open(root).shard_by_motor(tmp_path / "shards")
    log = MaintenanceLog(((int((START + timedelta(days=2, hours=12)).timestamp() * 1000), "coupling_sheared"),))

    rows = motor_rows(shards["motor-a"], log, 24 * 3600.0, ("coupling_sheared",))
    warned = motor_rows(shards["motor-a"], log, 24 * 3600.0, ())

    assert rows.labels.sum() == 0
    assert rows.unpredictable.sum() == warned.labels.sum() > 100
    assert rows.warns == (False,)
    assert warned.warns == (True,)


def test_sharding_by_motor_reads_each_motor_as_the_reader_does(tmp_path: Path) -> None:
    readings = _shift_motor("motor-a", 1) + _shift_motor("motor-b", 1)
    readings += readings[:30]  # delivered twice
    _write(tmp_path / "archive", readings, [])
    archive = Archive.open(tmp_path / "archive")

    data = build_from_archive(archive, scratch=tmp_path / "shards", horizon_s=86_400.0, workers=1)

    assert [motor.motor_id for motor in data.motors] == ["motor-a", "motor-b"]
    for motor in data.motors:
        direct = archive.readings(motor_id=motor.motor_id).table
        assert motor.ts_ms.tolist() == direct.values("ts_ms")
    assert data.readings.duplicates == 30
    assert data.readings.kept == 2 * 144


def test_the_split_is_by_motor(tmp_path: Path) -> None:
    readings = [r for m in range(8) for r in _shift_motor(f"motor-{m}", 1)]
    _write(tmp_path / "archive", readings, [])
    data = build_from_archive(
        Archive.open(tmp_path / "archive"), scratch=tmp_path / "shards", horizon_s=86_400.0, workers=1
    )

    split = split_motors(len(data.motors), test_fraction=0.25, validation_fraction=0.25, seed=1)
    parts = {name: data.dataset.of_motors(columns) for name, columns in split.items()}

    motors_of = {name: {data.motors[c].motor_id for c in set(part.column.tolist())} for name, part in parts.items()}
    assert set.union(*motors_of.values()) == {f"motor-{m}" for m in range(8)}
    assert not motors_of["train"] & motors_of["test"]
    assert not motors_of["train"] & motors_of["validation"]
    assert not motors_of["validation"] & motors_of["test"]
    assert sum(len(part) for part in parts.values()) == len(data.dataset)


def test_too_few_failures_is_one_clear_line_and_exit_2(
    one_failure: tuple[Path, datetime, datetime], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, _ = one_failure
    others = [r for m in range(4) for r in _shift_motor(f"motor-{m}", 1)]
    _write(root, others, [])

    status = main(["--archive", str(root), "--out", str(tmp_path / "out"), "--workers", "1", "--test-fraction", "0.2"])

    errors = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(errors) == 1
    assert errors[0].startswith("error: the ")
    assert "failures with warning; training needs at least 10" in errors[0]
    assert not (tmp_path / "out").exists()


def test_an_archive_that_is_not_there_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--archive", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])

    assert status == 2
    assert capsys.readouterr().err.strip().startswith("error: --archive: ")


def test_a_small_archive_trains_a_model_with_the_same_evaluation_and_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given history.py's archive of 8 motors wearing fast for 60 days..."""
    history = generate(FleetConfig(motors=8, seed=2, wear_scale=8.0), duration_s=60 * DAY_S)
    write_archive(history, tmp_path / "archive", seed=2)
    failures = history.failures_by_mode()
    out = tmp_path / "out"

    # ...when train.py trains on it...
    options = ["--rounds", "30", "--workers", "2", "--min-failures", "2", "--no-warning-mode", "other"]
    status = main(["--archive", str(tmp_path / "archive"), "--out", str(out), *options])

    # ...it writes the artifact, the evaluation of the held-out motors and a card about the archive.
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert (out / "model.tar.gz").stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["source"] == "archive"
    assert metrics["data"]["readings"] == history.steps * 8
    assert sum(metrics["data"]["failures"].values()) == sum(failures.values())
    assert metrics["data"]["interval_s"] == 600
    test_motors = {f"motor-{c + 1:03d}" for c in metrics["data"]["test_motors"]}
    held_out = json.loads((out / "held-out-failures.json").read_text())
    assert {failure["motor_id"] for failure in held_out} <= test_motors
    assert metrics["replay"]["failures"] == len(held_out)
    assert "4/5 replaying the held-out motors" in printed
    card = (out / "model-card.md").read_text()
    assert "The fleet's own history, read from the archive" in card
    # The manifest names the motors by their ids (compare.py holds out the others) and the archive's period.
    manifest = load_versioned(out / "model.tar.gz").manifest
    assert manifest is not None
    assert set(manifest["motors"]["test"]) == test_motors
    assert manifest["data"]["first_reading"] == metrics["data"]["first_reading"]
    assert "simulated" not in card.split("## Data")[1].split("## Features")[0].lower()
