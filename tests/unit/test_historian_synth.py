"""tests/historian_synth.py: a historian export in a foreign layout, imported and read back through the archive."""

from __future__ import annotations

import csv
import itertools
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from device.columnar import connect, literal
from model.archive import Archive
from model.import_history import ImportReport, import_history
from model.import_mapping import load_mapping
from tests import historian_synth
from tests.historian_synth import TELEMETRY_COLUMNS, generate

Generated = tuple[Path, ImportReport]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    folder = tmp_path_factory.mktemp("historian")
    mapping = generate(folder / "export", motors=10, days=75, seed=2)
    return folder, import_history(load_mapping(mapping), folder / "archive")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_export_is_in_a_layout_we_did_not_write(imported: Generated) -> None:
    export = imported[0] / "export"
    telemetry = [row for path in sorted((export / "telemetry").glob("*.csv")) for row in rows(path)]
    assert tuple(telemetry[0]) == TELEMETRY_COLUMNS
    stamps = {row["Timestamp"] for row in telemetry}
    assert "2025-03-09T01:45:00-06:00" in stamps
    assert "2025-03-09T03:00:00-05:00" in stamps, "daylight saving time: the offset changes"
    assert "2025-03-09T02:00:00-06:00" not in stamps
    assert {row["Run_Status"] for row in telemetry} == {"RUN", "STOP"}
    assert any(row["Temp_Bearing_degF"] == "" for row in telemetry), "blank cells"
    one = sorted(datetime.fromisoformat(row["Timestamp"]) for row in telemetry if row["Asset"] == "P-101A")
    steps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(one)}
    assert min(steps) == 900, "a 15-minute interval"
    assert tuple(rows(export / "failures.csv")[0]) == (
        "Work_Order",
        "Asset",
        "Failure_Time",
        "Failure_Description",
        "Downtime_h",
    )
    assert "/" in rows(export / "services.csv")[0]["Completed"], "local times without an offset"


def test_the_export_imports_and_reads_back_readings_failures_and_services(imported: Generated) -> None:
    folder, report = imported
    export = folder / "export"
    assert report.telemetry is not None
    csv_rows = sum(len(rows(path)) for path in (export / "telemetry").glob("*.csv"))
    assert report.telemetry.rows == csv_rows
    assert set(report.telemetry.refused) <= {
        "bearing_temp_c (Temp_Bearing_degF): Input should be greater than or equal to -60"
    }, "only the historian's bad-quality sentinel is refused"
    archive = Archive.open(folder / "archive")
    readings = archive.readings()
    assert readings.counts.kept == report.telemetry.kept == csv_rows - sum(report.telemetry.refused.values())
    assert readings.counts.duplicates == 0
    first = next(row for row in rows(export / "telemetry" / "2025-01.csv") if row["Temp_Bearing_degF"])
    first_ms = round(datetime.fromisoformat(first["Timestamp"]).timestamp() * 1000)
    same = (readings.table["motor_id"] == first["Asset"]) & (readings.table["ts_ms"] == first_ms)
    [stored] = readings.table.take(np.asarray(same, dtype=bool)).to_pylist()
    assert stored["bearing_temp_c"] == pytest.approx((float(first["Temp_Bearing_degF"]) - 32) / 1.8)
    assert stored["vibration_mm_s"] == pytest.approx(float(first["Vib_RMS_in_s"]) * 25.4)
    assert stored["running"] is (first["Run_Status"] == "RUN")

    actions = archive.events("actions").records
    logged = rows(export / "failures.csv")
    failures = [a for a in actions if a["action"] == "report_failure"]
    assert len(failures) == len(logged) >= 2
    assert sorted(a["failed_at"] for a in failures) == sorted(_utc_text(row["Failure_Time"]) for row in logged)
    services = [a for a in actions if a["action"] == "service_complete"]
    assert len(services) == len(rows(export / "services.csv"))


def _utc_text(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A year of 16 pumps."""
    folder = tmp_path_factory.mktemp("year")
    generate(folder, motors=16, days=365, seed=7)
    return folder


def test_a_year_has_enough_failures_most_with_a_developing_signature(year: Path) -> None:
    truth = rows(year / "ground_truth.csv")
    per_motor_year = len(truth) / 16
    assert 1.0 <= per_motor_year <= 2.6, "48 pumps give 60 to 120 failures a year"
    sudden = [row for row in truth if row["mode"] == "sudden"]
    assert 0.05 <= len(sudden) / len(truth) <= 0.45, "some failures give no warning"
    assert all(float(row["warning_h"]) == 0 for row in sudden)
    developing = [float(row["warning_h"]) for row in truth if row["mode"] != "sudden"]
    assert np.mean([h >= 6 for h in developing]) >= 0.5, "most developing faults stand out 6 h or more ahead"
    bearing = [float(row["warning_h"]) for row in truth if row["mode"] == "bearing"]
    assert np.mean([h >= 6 for h in bearing]) >= 0.9, "a bearing's vibration and temperature both rise"
    running_h = [float(row["warning_running_h"]) for row in truth]
    assert max(running_h) <= 120.25, "no warning before its fault starts (at most 120 running hours ahead)"


def test_bearing_failures_show_in_the_vibration_before_they_happen(year: Path) -> None:
    truth = [r for r in rows(year / "ground_truth.csv") if r["mode"] == "bearing" and float(r["warning_h"]) >= 6]
    assert len(truth) >= 5
    files = [literal(str(path)) for path in sorted((year / "telemetry").glob("*.csv"))]
    source = f"read_csv([{', '.join(files)}], header = true, all_varchar = true)"
    table = (
        connect()
        .execute(
            "SELECT Asset, epoch(CAST(Timestamp AS TIMESTAMPTZ)) AS at_s, Run_Status, "  # noqa: S608 - quoted paths
            f"CAST(Vib_RMS_in_s AS DOUBLE) AS vib FROM {source}"
        )
        .fetchnumpy()
    )
    asset = np.asarray(table["Asset"], dtype=object)
    at_s = np.asarray(table["at_s"], dtype=np.float64)
    running = np.ma.filled(table["Run_Status"], "") == "RUN"
    vibration = np.ma.filled(table["vib"], np.nan).astype(float)
    shown = 0
    for failure in truth:
        failed_s = datetime.fromisoformat(failure["failed_at"]).timestamp()
        mine = (asset == failure["asset"]) & running & ~np.isnan(vibration)
        week_before = vibration[mine & (at_s >= failed_s - 14 * 86400) & (at_s < failed_s - 7 * 86400)]
        last_hours = vibration[mine & (at_s >= failed_s - 3 * 3600) & (at_s < failed_s)]
        if len(week_before) and len(last_hours) and last_hours.mean() > 1.3 * np.median(week_before):
            shown += 1
    assert shown / len(truth) >= 0.8


def test_the_command_line_writes_the_export_and_says_how_to_import_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert historian_synth.main([str(tmp_path), "--motors", "2", "--days", "3"]) == 0
    out = capsys.readouterr().out
    assert "2 pumps, 3 days" in out
    assert f"python model/import_history.py {tmp_path / 'mapping.yaml'} --out ARCHIVE" in out
    assert (tmp_path / "telemetry" / "2025-01.csv").is_file()
