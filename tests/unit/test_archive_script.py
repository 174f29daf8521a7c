"""scripts/archive.py: what an archive holds, one motor's readings and SQL, from the command line."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device.history import generate
from device.history_archive import write_archive
from device.physics import DAY_S, FleetConfig
from scripts import archive as cli
from tests.support import ROOT


@pytest.fixture(scope="module")
def fleet_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    history = generate(FleetConfig(motors=2, seed=3, wear_scale=40.0), duration_s=10 * DAY_S)
    write_archive(history, root, seed=3)
    return root


def run(*argv: str) -> str:
    out = io.StringIO()
    assert cli.main(list(argv), out=out) == 0
    return out.getvalue()


def test_summary_says_days_motors_and_records_of_each_kind(fleet_archive: Path) -> None:
    text = run("summary", str(fleet_archive))
    assert "days with readings: 11 (2026-01-01 .. 2026-01-11); motors: 2" in text
    assert "readings: 2880 stored, 2880 kept, 0 duplicates, 0 invalid" in text
    assert "report_failure" in text
    assert "errors (records Firehose could not convert or deliver): 0" in text


def test_readings_shows_the_last_readings_of_one_motor_in_the_period(fleet_archive: Path) -> None:
    text = run(
        "readings",
        "motor-002",
        str(fleet_archive),
        "--since",
        "2026-01-03T00:00:00Z",
        "--until",
        "2026-01-03T01:00:00Z",
        "--limit",
        "3",
    )
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["ts", "seq", "run"]
    assert [line.split()[0] for line in lines[1:4]] == [
        "2026-01-03T00:30:00.000Z",
        "2026-01-03T00:40:00.000Z",
        "2026-01-03T00:50:00.000Z",
    ]
    assert lines[4].startswith("the last 3 of 6 readings of motor-002")


def test_sql_runs_on_the_views(fleet_archive: Path) -> None:
    text = run("sql", "SELECT count(DISTINCT motor_id) AS motors FROM telemetry", str(fleet_archive))
    assert "motors" in text
    assert "2" in text


def test_a_duration_counts_back_from_now() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert cli.moment("2h", now) == datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert cli.moment("1795780800000") == datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_no_archive_is_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["summary", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_without_setup_it_says_what_to_run() -> None:
    # -S -I: an interpreter without the venv's packages, as on a fresh machine
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-S", "-I", str(ROOT / "scripts" / "archive.py"), "summary"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "make setup" in done.stderr
    assert "Traceback" not in done.stderr
