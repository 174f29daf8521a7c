"""`device/history.py --archive`: a fleet's history in the archive's layout, read back by the one reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device import history as history_cli
from device.archive_layout import TELEMETRY_TYPES
from device.columnar import connect, parquet_columns, parquet_source
from device.history import History, generate
from device.history_archive import ArchiveCounts, write_archive
from device.physics import DAY_S, FleetConfig
from model.archive import Archive
from motor_maintenance.alarms import OperatorAction

DAYS = 20
Archived = tuple[Path, tuple[History, ArchiveCounts]]
CONFIG = FleetConfig(motors=3, seed=4, wear_scale=30.0, random_failures_per_year=2.0)


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Archived:
    history = generate(CONFIG, duration_s=DAYS * DAY_S)
    root = tmp_path_factory.mktemp("archive")
    return root, (history, write_archive(history, root, seed=4))


def test_readings_land_as_parquet_by_day_with_the_telemetry_columns(archived: Archived) -> None:
    root, (history, counts) = archived
    days = sorted(path.name for path in (root / "telemetry").iterdir())
    assert days[0] == "dt=2026-01-01"
    assert len(days) == counts.days >= DAYS
    total = 0
    for path in (root / "telemetry").rglob("*.parquet"):
        assert path.name.startswith("history-1-")
        db = connect()
        assert parquet_columns(db, path) == TELEMETRY_TYPES
        total += db.execute(f"SELECT count(*) FROM {parquet_source([path])}").fetchall()[0][0]  # noqa: S608 - our own names; texts quoted
    assert total == counts.readings == history.steps * len(history.motor_ids)


def test_every_reading_reads_back_valid_and_equal_to_what_the_device_would_publish(
    archived: Archived,
) -> None:
    root, (history, _) = archived
    read = Archive.open(root).readings()
    assert (read.counts.invalid_total, read.counts.duplicates) == (0, 0)
    assert read.counts.kept == history.steps * len(history.motor_ids)
    first = read.table.take(np.arange(1)).to_pylist()[0]
    published = history.reading(0, 0).model_dump(mode="json", exclude_none=True)
    assert first["ts_ms"] == history.reading(0, 0).ts_ms
    for name, value in published.items():
        if name != "ts":
            assert first[name] == pytest.approx(value), name


def test_each_failure_is_reported_and_each_repair_is_a_service_complete(archived: Archived) -> None:
    root, (history, counts) = archived
    actions = Archive.open(root).events("actions")
    reports = [a for a in actions.records if a["action"] == "report_failure"]
    services = [a for a in actions.records if a["action"] == "service_complete"]
    failures = history.failures()
    assert len(failures) >= 2, "the fleet should fail in this test's time"
    assert len(reports) == counts.failures_reported == len(failures)
    assert len(services) == counts.services >= len(failures) - len(history.motor_ids)
    assert all(r["failed_at"] < r["ts"] for r in reports)
    modes = {"bearing_wear", "winding_insulation", "cooling_loss", "impeller_wear", "other"}
    assert {r["failure_mode"] for r in reports} <= modes
    assert len({a["action_id"] for a in actions.records}) == len(actions.records)
    for service in services:  # the same schema as an operator's (report_failure is B's addition to it)
        OperatorAction.model_validate(service)


def test_the_command_line_writes_the_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert history_cli.main(["--motors", "2", "--days", "2", "--archive", str(tmp_path)]) == 0
    assert "archived 576 readings" in capsys.readouterr().out
    assert Archive.open(tmp_path).readings().counts.kept == 576
