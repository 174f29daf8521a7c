"""model/import_history.py: a mapping that cannot be followed stops with one line naming what is wrong, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import import_history
from model.import_mapping import PINT_SPELLING, SCHEMA_UNITS, units
from motor_maintenance.telemetry import SIGNALS

CSV = (
    "asset,time,Run_Status,Speed_rpm,Temp_Bearing_degF,Vib_RMS_in_s,Discharge_P_psi\n"
    "P-1,2025-03-09T01:45:00-06:00,RUN,1780,150.8,0.1,60\n"
)
MAPPING = """\
telemetry:
  files: [telemetry.csv]
  motor_id: asset
  timestamp: time
  running: {column: Run_Status, true_values: [RUN]}
  motor_type: pump-37kw
  signals:
    speed_rpm: Speed_rpm
    bearing_temp_c: {column: Temp_Bearing_degF, unit: degF}
    vibration_mm_s: {column: Vib_RMS_in_s, unit: in/s}
    pressure_bar: {column: Discharge_P_psi, unit: psi}
"""


def run(tmp_path: Path, mapping: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    (tmp_path / "telemetry.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "mapping.yaml").write_text(mapping, encoding="utf-8")
    status = import_history.main([str(tmp_path / "mapping.yaml"), "--out", str(tmp_path / "archive"), "--quiet"])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            ("column: Temp_Bearing_degF", "column: Temp_Bearing_F"),
            "telemetry.signals.bearing_temp_c: column 'Temp_Bearing_F' is not in telemetry.csv",
        ),
        (("  motor_id: asset", "  motor_id: Asset"), "telemetry.motor_id: column 'Asset' is not in telemetry.csv"),
        (
            ("speed_rpm: Speed_rpm", "speed: Speed_rpm"),
            "telemetry.signals.speed: 'speed' is not a signal of the telemetry schema",
        ),
        (("unit: degF", "unit: degX"), "telemetry.signals.bearing_temp_c.unit: 'degX' is not a unit pint knows"),
        (
            ("unit: psi", "unit: degF"),
            "telemetry.signals.pressure_bar.unit: 'degF' is a temperature, but pressure_bar is a pressure (bar)",
        ),
        (
            ("unit: in/s", "unit: in"),
            "telemetry.signals.vibration_mm_s.unit: 'in' is a length, but vibration_mm_s is a speed (mm/s)",
        ),
        (("[telemetry.csv]", "[telemetry-2025.csv]"), "telemetry.files: 'telemetry-2025.csv': no such file"),
        (("[telemetry.csv]", "['exports/*.csv']"), "telemetry.files: 'exports/*.csv': matches no file"),
        (
            ("timestamp: time", "timestamp: {column: time, timezone: Europe/Berln}"),
            "telemetry.timestamp.timezone: 'Europe/Berln' is not a timezone",
        ),
        (
            ("timestamp: time", "timestamp: {column: time, format: '%d/%m/%Y %H:%M'}"),
            "telemetry.timestamp: format '%d/%m/%Y %H:%M' has no UTC offset (%z): give a timezone",
        ),
        (
            ("timestamp: time", "timestamp: {column: time, format: dd/mm/yyyy}"),
            "telemetry.timestamp.format: 'dd/mm/yyyy' is not iso8601, epoch_s, epoch_ms",
        ),
        (("  motor_id: asset", "  motor_ids: asset"), "telemetry.motor_ids: unknown key"),
        (("motor_type: pump-37kw", "motor_type: pump 37 kW"), "telemetry.motor_type: 'pump 37 kW' does not match"),
    ],
)
def test_a_bad_mapping_stops_with_one_line_naming_it_and_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], named: str
) -> None:
    old, new = change
    assert old in MAPPING
    status, err = run(tmp_path, MAPPING.replace(old, new), capsys)
    assert status == 2
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith("import_history: ")
    assert named in err, err
    assert not (tmp_path / "archive").exists(), "nothing is written when the mapping is wrong"


def test_a_mapping_that_is_not_yaml_or_names_nothing_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run(tmp_path, "telemetry: [files\n", capsys)
    assert (status, err.count("\n")) == (2, 1)
    assert "not YAML" in err
    status, err = run(tmp_path, "# nothing\n", capsys)
    assert (status, err.count("\n")) == (2, 1)
    assert "nothing to import" in err


def test_a_missing_mapping_file_is_one_line_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = import_history.main([str(tmp_path / "nowhere.yaml"), "--out", str(tmp_path / "archive")])
    err = capsys.readouterr().err
    assert (status, err.count("\n")) == (2, 1)
    assert "nowhere.yaml: cannot be read" in err


def test_without_a_run_status_a_speed_or_current_signal_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = MAPPING.replace("  running: {column: Run_Status, true_values: [RUN]}\n", "").replace(
        "    speed_rpm: Speed_rpm\n", ""
    )
    status, err = run(tmp_path, mapping, capsys)
    assert status == 2
    assert "telemetry.running: missing, and no speed_rpm or current_a signal" in err


def test_every_schema_signal_has_a_unit_pint_reads() -> None:
    assert SCHEMA_UNITS["bearing_temp_c"] == "degC"
    assert SCHEMA_UNITS["flow_m3h"] == "m3/h"
    for name, unit in SCHEMA_UNITS.items():
        units().Unit(PINT_SPELLING.get(unit, unit))  # raises for a unit pint does not know
        assert name in SIGNALS
    assert set(SCHEMA_UNITS) == set(SIGNALS)
