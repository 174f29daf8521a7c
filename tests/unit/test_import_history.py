"""model/import_history.py: a historian's export becomes archive readings and actions that model/archive.py reads."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device import archive_writer
from device.columnar import Table, write_parquet
from model import import_history
from model.archive import Archive
from model.import_history import ImportReport
from model.import_logs import failure_mode
from model.import_mapping import load_mapping

HEADER = "asset,time,status,rpm,bearing_F,vib_in_s,p_psi,flow\n"
MAPPING = """\
telemetry:
  files: [telemetry.csv]
  motor_id: asset
  timestamp: time
  running: {column: status, true_values: [RUN]}
  motor_type: pump-37kw
  signals:
    speed_rpm: rpm
    bearing_temp_c: {column: bearing_F, unit: degF}
    vibration_mm_s: {column: vib_in_s, unit: in/s}
    pressure_bar: {column: p_psi, unit: psi}
    flow_m3h: {column: flow, unit: L/min}
"""


def run_import(
    folder: Path, csv: str, mapping: str = MAPPING, **options: Any
) -> tuple[ImportReport, list[dict[str, Any]]]:
    (folder / "telemetry.csv").write_text(csv, encoding="utf-8")
    (folder / "mapping.yaml").write_text(mapping, encoding="utf-8")
    report = import_history.import_history(load_mapping(folder / "mapping.yaml"), folder / "archive", **options)
    readings = Archive.open(folder / "archive").readings()
    return report, readings.table.to_pylist()


def utc(text: str) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_us_units_convert_to_the_schemas_units_through_pint(tmp_path: Path) -> None:
    report, [reading] = run_import(tmp_path, HEADER + "P-1,2025-06-01T12:00:00-05:00,RUN,1780,212,0.1,14.5038,1000\n")
    assert report.telemetry is not None
    assert report.telemetry.kept == 1
    assert reading["bearing_temp_c"] == pytest.approx(100.0)  # degF
    assert reading["vibration_mm_s"] == pytest.approx(2.54)  # in/s
    assert reading["pressure_bar"] == pytest.approx(1.0, abs=1e-5)  # psi
    assert reading["flow_m3h"] == pytest.approx(60.0)  # L/min, a unit the issue never listed
    assert reading["speed_rpm"] == 1780.0
    assert reading["running"] is True
    assert reading["motor_type"] == "pump-37kw"


def test_other_units_pint_knows_convert_too(tmp_path: Path) -> None:
    mapping = (
        MAPPING.replace("unit: degF", "unit: K").replace("unit: psi", "unit: kPa").replace("unit: in/s", "unit: m/s")
    )
    _, [reading] = run_import(tmp_path, HEADER + "P-1,2025-06-01T12:00:00Z,RUN,1780,373.15,0.004,250,10\n", mapping)
    assert reading["bearing_temp_c"] == pytest.approx(100.0)
    assert reading["pressure_bar"] == pytest.approx(2.5)
    assert reading["vibration_mm_s"] == pytest.approx(4.0)


def test_blank_cells_are_missing_values_not_zeros(tmp_path: Path) -> None:
    report, [reading] = run_import(tmp_path, HEADER + "P-1,2025-06-01T12:00:00Z,RUN,1780,,  ,50,\n")
    assert report.telemetry is not None
    assert report.telemetry.refused == {}
    assert reading["bearing_temp_c"] is None
    assert reading["vibration_mm_s"] is None
    assert reading["flow_m3h"] is None
    assert reading["pressure_bar"] == pytest.approx(50 * 0.0689476)


def test_offsets_across_a_clock_change_give_moments_in_order(tmp_path: Path) -> None:
    rows = [
        "P-1,2025-03-09T01:45:00-06:00,RUN,1780,150,0.1,60,10",
        "P-1,2025-03-09T03:00:00-05:00,RUN,1780,150,0.1,60,10",  # 15 minutes later: clocks went forward
    ]
    _, readings = run_import(tmp_path, HEADER + "\n".join(rows) + "\n")
    assert [r["ts_ms"] for r in readings] == [utc("2025-03-09T07:45:00"), utc("2025-03-09T08:00:00")]
    assert readings[0]["ts"] == "2025-03-09T07:45:00.000Z"
    assert [r["seq"] for r in readings] == [r["ts_ms"] for r in readings], "seq follows time, per motor"


def test_local_times_in_a_timezone_resolve_the_repeated_hour_in_row_order(tmp_path: Path) -> None:
    mapping = MAPPING.replace(
        "timestamp: time", "timestamp: {column: time, format: '%m/%d/%Y %H:%M', timezone: America/Chicago}"
    )
    walls = ["11/02/2025 00:45", "11/02/2025 01:00", "11/02/2025 01:30", "11/02/2025 01:00", "11/02/2025 01:30"]
    walls += ["11/02/2025 02:00", "03/09/2025 02:30"]  # the last never happened in Chicago
    rows = [f"P-1,{wall},RUN,1780,150,0.1,60,10\n" for wall in walls]
    rows += [f"P-2,{wall},RUN,1780,150,0.1,60,10\n" for wall in walls[:3]]  # another motor's first pass
    report, readings = run_import(tmp_path, HEADER + "".join(rows), mapping)
    first = [r["ts_ms"] for r in readings if r["motor_id"] == "P-1"]
    assert first == [
        utc("2025-11-02T05:45:00"),
        utc("2025-11-02T06:00:00"),  # 01:00 CDT
        utc("2025-11-02T06:30:00"),
        utc("2025-11-02T07:00:00"),  # 01:00 CST, the second time round
        utc("2025-11-02T07:30:00"),
        utc("2025-11-02T08:00:00"),
    ]
    assert [r["ts_ms"] for r in readings if r["motor_id"] == "P-2"] == first[:3]
    assert report.telemetry is not None
    assert report.telemetry.refused == {
        "time: a local time that does not exist in America/Chicago (the clocks went forward)": 1
    }


def test_iso_times_without_an_offset_need_a_timezone(tmp_path: Path) -> None:
    csv = (
        HEADER
        + "P-1,2025-07-01T12:00:00,RUN,1780,150,0.1,60,10\nP-1,2025-07-01T12:15:00+02:00,RUN,1780,150,0.1,60,10\n"
    )
    report, readings = run_import(tmp_path / "no-zone", _mkdir(tmp_path / "no-zone", csv), MAPPING)
    assert report.telemetry is not None
    assert report.telemetry.refused == {"time: no UTC offset (and the mapping gives no timezone)": 1}
    assert [r["ts_ms"] for r in readings] == [utc("2025-07-01T10:15:00")]
    zoned = MAPPING.replace("timestamp: time", "timestamp: {column: time, timezone: Europe/Berlin}")
    _, readings = run_import(tmp_path / "zone", _mkdir(tmp_path / "zone", csv), zoned)
    assert [r["ts_ms"] for r in readings] == [utc("2025-07-01T10:00:00"), utc("2025-07-01T10:15:00")]


def _mkdir(folder: Path, csv: str) -> str:
    folder.mkdir()
    return csv


@pytest.mark.parametrize(("fmt", "value"), [("epoch_s", "1751371200"), ("epoch_ms", "1751371200000.0")])
def test_epoch_seconds_and_milliseconds(tmp_path: Path, fmt: str, value: str) -> None:
    mapping = MAPPING.replace("timestamp: time", f"timestamp: {{column: time, format: {fmt}}}")
    _, [reading] = run_import(tmp_path, HEADER + f"P-1,{value},RUN,1780,150,0.1,60,10\n", mapping)
    assert reading["ts_ms"] == utc("2025-07-01T12:00:00")


def test_without_a_run_status_a_motor_runs_while_its_speed_or_else_current_is_above_zero(tmp_path: Path) -> None:
    mapping = MAPPING.replace("  running: {column: status, true_values: [RUN]}\n", "").replace(
        "    flow_m3h: {column: flow, unit: L/min}", "    current_a: flow"
    )
    rows = [
        "P-1,2025-06-01T12:00:00Z,,1780,150,0.1,60,40",
        "P-1,2025-06-01T12:15:00Z,,0,150,0.1,60,0",
        "P-1,2025-06-01T12:30:00Z,,,150,0.1,60,35",  # speed blank: the current tells
        "P-1,2025-06-01T12:45:00Z,,,150,0.1,60,",  # neither: refused, counted
    ]
    report, readings = run_import(tmp_path, HEADER + "\n".join(rows) + "\n", mapping)
    assert [r["running"] for r in readings] == [True, False, True]
    assert report.telemetry is not None
    assert report.telemetry.refused == {"running: blank, and no speed or current to tell": 1}


def test_a_blank_run_status_falls_back_to_the_speed(tmp_path: Path) -> None:
    rows = ["P-1,2025-06-01T12:00:00Z,,1780,150,0.1,60,10", "P-1,2025-06-01T12:15:00Z,STOP,1780,150,0.1,60,10"]
    _, readings = run_import(tmp_path, HEADER + "\n".join(rows) + "\n")
    assert [r["running"] for r in readings] == [True, False]


def test_refused_rows_are_counted_by_reason_and_the_rest_kept(tmp_path: Path) -> None:
    rows = [
        "P-1,2025-06-01T12:00:00Z,RUN,1780,150,0.1,60,10",  # fine
        "P-1,2025-06-01T12:15:00Z,RUN,1780,Bad Input,0.1,60,10",  # historian's quality text
        "P-1,2025-06-01T12:30:00Z,RUN,1780,-999.9,0.1,60,10",  # a sentinel: -733 C, out of the schema's range
        "P-1,2025-06-01T12:45:00Z,RUN,-5,150,0.1,60,10",  # negative speed
        ",2025-06-01T13:00:00Z,RUN,1780,150,0.1,60,10",  # no motor
        "P 1,2025-06-01T13:15:00Z,RUN,1780,150,0.1,60,10",  # not a motor id
        "P-1,yesterday,RUN,1780,150,0.1,60,10",
        "P-1,2025-06-01T13:30:00,RUN,1780,150,0.1,60,10",  # local time, but where?
        "P-1,2025-13-01T12:00:00Z,RUN,1780,150,0.1,60,10",
        "P-1,2025-06-01T14:00:00Z,RUN,1780,150,0.1,60,10,extra",  # a broken line
        "P-1,2025-06-01T14:15:00Z,RUN,1780,150,0.1,60,10",  # fine
    ]
    report, readings = run_import(tmp_path, HEADER + "\n".join(rows) + "\n")
    assert report.telemetry is not None
    assert len(readings) == report.telemetry.kept == 2
    assert report.telemetry.refused == {
        "bearing_F: not a number": 1,
        "bearing_temp_c (bearing_F): Input should be greater than or equal to -60": 1,
        "speed_rpm (rpm): Input should be greater than or equal to 0": 1,
        "asset: blank": 1,
        "motor_id (asset): String should match pattern '^[A-Za-z0-9_-]{1,64}$'": 1,
        "time: no UTC offset (and the mapping gives no timezone)": 1,
        "time: not ISO 8601": 2,
        "a CSV line with 9 fields where the header has 8": 1,
    }
    assert report.telemetry.rows == len(rows) == report.telemetry.kept + sum(report.telemetry.refused.values())
    text = "\n".join(import_history.describe(report, tmp_path / "archive"))
    assert "9 refused:" in text
    assert "1  bearing_F: not a number" in text


def test_parquet_exports_with_typed_columns(tmp_path: Path) -> None:
    moments = [datetime(2025, 6, 1, 12, 0, tzinfo=UTC), datetime(2025, 6, 1, 12, 15, tzinfo=UTC)]
    rows = [
        {"asset": "P-1", "time": moments[0], "status": True, "rpm": 1780, "bearing_F": 212.0, "vib_in_s": 0.1},
        {"asset": "P-1", "time": moments[1], "status": False, "rpm": 0, "bearing_F": float("nan"), "vib_in_s": None},
    ]  # NaN in a float column: missing
    for row, (p_psi, flow) in zip(rows, [(14.5038, 1000.0), (0.0, 0.0)], strict=True):
        row.update(p_psi=p_psi, flow=flow)
    types = {"asset": "VARCHAR", "time": "TIMESTAMPTZ", "status": "BOOLEAN", "rpm": "INTEGER"}
    types |= dict.fromkeys(("bearing_F", "vib_in_s", "p_psi", "flow"), "DOUBLE")
    table = Table.from_rows(rows, types)
    table.columns["time"] = np.array([moment.replace(tzinfo=None) for moment in moments], dtype="datetime64[us]")
    write_parquet(tmp_path / "telemetry.parquet", table, types, row_group_rows=1000)
    mapping = MAPPING.replace("[telemetry.csv]", "[telemetry.parquet]").replace(
        "true_values: [RUN]", "true_values: [true]"
    )
    (tmp_path / "mapping.yaml").write_text(mapping, encoding="utf-8")
    report = import_history.import_history(load_mapping(tmp_path / "mapping.yaml"), tmp_path / "archive")
    readings = Archive.open(tmp_path / "archive").readings().table.to_pylist()
    assert report.telemetry is not None
    assert report.telemetry.refused == {}
    assert [r["ts_ms"] for r in readings] == [utc("2025-06-01T12:00:00"), utc("2025-06-01T12:15:00")]
    assert [r["running"] for r in readings] == [True, False]
    assert readings[0]["bearing_temp_c"] == pytest.approx(100.0)
    assert readings[1]["bearing_temp_c"] is None
    assert readings[1]["vibration_mm_s"] is None


def test_a_large_file_streams_in_blocks_and_every_row_arrives(tmp_path: Path) -> None:
    rows = 60_000
    start = utc("2025-01-01T00:00:00")
    lines = [f"P-{i % 7},{(start + i * 60_000) // 1000},RUN,1780,150,0.1,60,10\n" for i in range(rows)]
    mapping = MAPPING.replace("timestamp: time", "timestamp: {column: time, format: epoch_s}")
    report, readings = run_import(tmp_path, HEADER + "".join(lines), mapping, block_bytes=64 << 10, batch_rows=2000)
    assert report.telemetry is not None
    assert report.telemetry.kept == len(readings) == rows
    assert 0 < report.telemetry.largest_batch <= rows // 10, "some blocks at a time, never the whole file"
    per_motor = [r["ts_ms"] for r in readings if r["motor_id"] == "P-3"]
    assert per_motor == sorted(per_motor)
    assert len(per_motor) == len(set(per_motor))


def test_failures_and_services_become_the_archives_actions(tmp_path: Path) -> None:
    (tmp_path / "failures.csv").write_text(
        "asset,failed_at,failure_description\n"
        "P-1,2025-06-01T10:00:00-05:00,Bearing failure - drive end\n"
        "P-1,2025-08-01T10:00:00-05:00,\n"
        "P-1,not a date,Seal leak\n",
        encoding="utf-8",
    )
    (tmp_path / "services.csv").write_text("asset,completed_at\nP-1,06/02/2025 08:15 AM\n", encoding="utf-8")
    mapping = MAPPING + (
        "failures: {files: [failures.csv], motor_id: asset, timestamp: failed_at, mode: failure_description}\n"
        "services: {files: [services.csv], motor_id: asset,"
        " timestamp: {column: completed_at, format: '%m/%d/%Y %I:%M %p', timezone: America/Chicago}}\n"
    )
    report, _ = run_import(tmp_path, HEADER + "P-1,2025-06-01T12:00:00Z,RUN,1780,150,0.1,60,10\n", mapping)
    actions = Archive.open(tmp_path / "archive").events("actions")
    assert actions.counts.invalid_total == 0
    failures = [a for a in actions.records if a["action"] == "report_failure"]
    assert [(a["failed_at"], a["failure_mode"]) for a in failures] == [
        ("2025-06-01T15:00:00.000Z", "bearing_failure_drive_end"),
        ("2025-08-01T15:00:00.000Z", "other"),
    ]
    [service] = [a for a in actions.records if a["action"] == "service_complete"]
    assert service["ts"] == "2025-06-02T13:15:00.000Z"
    assert report.failures is not None
    assert report.failures.refused == {"failed_at: not ISO 8601": 1}
    run_import(tmp_path, HEADER, mapping)  # the same logs again: the same action ids
    assert Archive.open(tmp_path / "archive").events("actions").counts.duplicates == 3


def test_failure_descriptions_become_mode_names() -> None:
    assert failure_mode("Bearing failure - drive end") == "bearing_failure_drive_end"
    assert failure_mode("  ") == "other"
    assert failure_mode(None) == "other"
    assert failure_mode("3-phase fault") == "mode_3_phase_fault"
    assert len(failure_mode("x" * 80)) == 40


def test_the_command_line_reports_what_it_imported_and_one_line_when_it_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "telemetry.csv").write_text(
        HEADER + "P-1,2025-06-01T12:00:00Z,RUN,1780,150,0.1,60,10\n", encoding="utf-8"
    )
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    lines: list[str] = []
    status = import_history.main([str(tmp_path / "mapping.yaml"), "--out", str(tmp_path / "a")], out=lines.append)
    assert status == 0
    assert capsys.readouterr().err == "  importing 1 telemetry file (0 MB)\n", "progress on stderr"
    assert "  telemetry: 1 rows in 1 file: 1 readings of 1 motor, 2025-06-01 to 2025-06-01; 0 refused" in lines

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(import_history.TelemetryConverter, "convert", broken)
    status = import_history.main(
        [str(tmp_path / "mapping.yaml"), "--out", str(tmp_path / "b"), "--quiet"], out=lines.append
    )
    assert status == 1
    assert capsys.readouterr().err == "import_history: stopped, nothing written: disk full\n"


def test_an_import_that_stops_half_way_leaves_no_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_writer, "ROW_GROUP_ROWS", 10)  # so that the first batches are written at once
    convert = import_history.TelemetryConverter.convert
    calls = []

    def fails_third(self: Any, rows: Any) -> Any:
        calls.append(rows.num_rows)
        if len(calls) == 3:
            raise OSError("disk full")
        return convert(self, rows)

    monkeypatch.setattr(import_history.TelemetryConverter, "convert", fails_third)
    lines = [f"P-1,{1748779200 + i * 60},RUN,1780,150,0.1,60,10\n" for i in range(3000)]
    (tmp_path / "telemetry.csv").write_text(HEADER + "".join(lines), encoding="utf-8")
    (tmp_path / "mapping.yaml").write_text(
        MAPPING.replace("timestamp: time", "timestamp: {column: time, format: epoch_s}"), encoding="utf-8"
    )
    with pytest.raises(OSError, match="disk full"):
        import_history.import_history(
            load_mapping(tmp_path / "mapping.yaml"), tmp_path / "archive", block_bytes=8 << 10, batch_rows=100
        )
    assert len(calls) == 3
    assert not [path for path in (tmp_path / "archive").rglob("*") if path.is_file()]


def test_gzip_compressed_and_semicolon_separated_exports(tmp_path: Path) -> None:
    rows = HEADER.replace(",", ";") + "P-1;2025-06-01T12:00:00Z;RUN;1780;212;0.1;60;10\n"
    with gzip.open(tmp_path / "telemetry.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write(rows)
    mapping = MAPPING.replace("[telemetry.csv]", "[telemetry.csv.gz]") + '  delimiter: ";"\n'
    (tmp_path / "mapping.yaml").write_text(mapping, encoding="utf-8")
    import_history.import_history(load_mapping(tmp_path / "mapping.yaml"), tmp_path / "archive")
    [reading] = Archive.open(tmp_path / "archive").readings().table.to_pylist()
    assert reading["bearing_temp_c"] == pytest.approx(100.0)
