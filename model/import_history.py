"""Import a plant historian's export (CSV or Parquet) into the archive's layout, to train on a fleet's own history.

    python model/import_history.py MAPPING.yaml --out DIR

The mapping (docs/import.md) says which files hold the readings, the failure log and the service
log, and which of their columns hold the motor, the time, the run status and each signal, in which
unit. Readings are streamed a block at a time, converted (units through pint), validated with the
telemetry schema and written as the archive's daily Parquet objects (device/archive_writer.py);
failures and services become `report_failure` and `service_complete` actions. Rows that cannot be
readings or actions are counted by reason and reported. The result reads back through
model/archive.py like any archive: `python scripts/archive.py summary DIR`, `python model/train.py
--archive DIR`.

A mapping that cannot be followed stops the import before any row is read, with one line naming what
is wrong, and exit status 2. An import that stops half-way leaves no object behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

if not __package__:  # run as a script: make the repository's packages importable
    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "layers" / "shared")]

from device.requirements_check import setup_needed

with setup_needed("model/import_history.py"):
    import duckdb
    import numpy as np

    from device.archive_writer import ArchiveWriter
    from model.import_convert import TelemetryConverter
    from model.import_logs import LogConverter
    from model.import_mapping import LogSpec, Mapping, MappingError, TelemetrySpec, load_mapping
    from model.import_sources import BATCH_ROWS, BLOCK_BYTES, batches, check_columns

WRITER = "import"
"""The stream name in the archive objects' names."""
PROGRESS_EVERY_S = 5.0
MAPPING_ERROR_STATUS = 2
SHOWN_REASONS = 12


@dataclass
class SectionReport:
    """What one section of the mapping (telemetry, failures, services) read and kept."""

    files: int = 0
    rows: int = 0
    kept: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    motors: set[str] = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None
    largest_batch: int = 0
    """The most rows held at once: a file is streamed, never read whole."""
    modes: Counter[str] = field(default_factory=Counter)

    def seen(self, motors: Any, ms: Sequence[int] | Any) -> None:
        if len(ms) == 0:
            return
        self.motors.update(np.unique(np.asarray(motors, dtype=object).astype(str)).tolist())
        low, high = int(min(ms)), int(max(ms))
        self.first_ms = low if self.first_ms is None else min(self.first_ms, low)
        self.last_ms = high if self.last_ms is None else max(self.last_ms, high)


@dataclass
class ImportReport:
    """What an import read, kept and refused, and the archive objects it wrote."""

    telemetry: SectionReport | None = None
    failures: SectionReport | None = None
    services: SectionReport | None = None
    objects: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Reading:
    """How files are read: CSV bytes parsed at a time, rows converted at a time."""

    block_bytes: int
    batch_rows: int

    def options(self) -> dict[str, int]:
        return {"block_bytes": self.block_bytes, "batch_rows": self.batch_rows}


class Progress:
    """A line on stderr every few seconds of a long import: the file, rows so far, how far through, rows/s."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream, self.started = stream, time.monotonic()
        self._last = self.started

    def say(self, line: str) -> None:
        if self.stream is not None:
            print(f"  {line}", file=self.stream, flush=True)

    def update(self, where: str, rows: int, fraction: float) -> None:
        now = time.monotonic()
        if self.stream is None or now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        rate = rows / max(now - self.started, 1e-9)
        self.say(f"{where}: {rows:,} rows, {fraction:.0%} of the file, {rate:,.0f} rows/s")


def import_history(
    mapping: Mapping,
    out: Path,
    *,
    block_bytes: int = BLOCK_BYTES,
    batch_rows: int = BATCH_ROWS,
    progress: TextIO | None = None,
) -> ImportReport:
    """Import what `mapping` names into the archive folder `out`; MappingError before any row if it cannot."""
    started = time.monotonic()
    _check_columns(mapping)
    out.mkdir(parents=True, exist_ok=True)
    report = ImportReport()
    show = Progress(progress)
    with ArchiveWriter(out, WRITER) as writer:
        if mapping.telemetry is not None:
            report.telemetry = _telemetry(mapping.telemetry, writer, Reading(block_bytes, batch_rows), show)
        actions: list[tuple[dict[str, Any], int]] = []
        for spec in (mapping.failures, mapping.services):
            if spec is not None:
                section, found = _log(spec, Reading(block_bytes, batch_rows))
                setattr(report, spec.section, section)
                actions += found
        writer.write_actions([action for action, _ in actions], [at_ms for _, at_ms in actions])
    report.objects = writer.objects
    report.seconds = time.monotonic() - started
    return report


def _check_columns(mapping: Mapping) -> None:
    """Every column the mapping names, in every file it names: MappingError for the first one missing."""
    if mapping.telemetry is not None:
        for path in mapping.telemetry.files:
            check_columns(path, mapping.telemetry.delimiter, mapping.telemetry.columns())
    for spec in (mapping.failures, mapping.services):
        if spec is not None:
            for path in spec.files:
                check_columns(path, spec.delimiter, spec.columns())


def _telemetry(spec: TelemetrySpec, writer: ArchiveWriter, reading: Reading, show: Progress) -> SectionReport:
    size_mb = sum(path.stat().st_size for path in spec.files) / 1e6
    show.say(f"importing {len(spec.files)} telemetry file{'s' if len(spec.files) != 1 else ''} ({size_mb:,.0f} MB)")
    converter = TelemetryConverter(spec)
    section = SectionReport(files=len(spec.files))
    columns = list(spec.columns())
    for number, path in enumerate(spec.files, start=1):
        for batch in batches(path, columns, spec.delimiter, converter.refused, **reading.options()):
            section.rows += batch.rows.num_rows
            section.largest_batch = max(section.largest_batch, batch.rows.num_rows)
            readings, ms = converter.convert(batch.rows)
            writer.add_readings(readings, ms)
            section.kept += readings.num_rows
            section.seen(readings["motor_id"], ms)
            where = f"{path.name} ({number} of {len(spec.files)})"
            show.update(where, section.rows, batch.done_bytes / max(batch.total_bytes, 1))
    section.rows += sum(count for reason, count in converter.refused.items() if reason.startswith("a CSV line"))
    section.refused = converter.refused
    return section


def _log(spec: LogSpec, reading: Reading) -> tuple[SectionReport, list[tuple[dict[str, Any], int]]]:
    converter = LogConverter(spec)
    section = SectionReport(files=len(spec.files))
    found: list[tuple[dict[str, Any], int]] = []
    for path in spec.files:
        for batch in batches(path, list(spec.columns()), spec.delimiter, converter.refused, **reading.options()):
            section.rows += batch.rows.num_rows
            section.largest_batch = max(section.largest_batch, batch.rows.num_rows)
            actions = converter.convert(batch.rows, path.name)
            found += actions
            section.kept += len(actions)
            section.motors.update(action["motor_id"] for action, _ in actions)
            section.modes.update(str(action.get("failure_mode")) for action, _ in actions if "failure_mode" in action)
            for _, at_ms in actions:
                section.first_ms = at_ms if section.first_ms is None else min(section.first_ms, at_ms)
                section.last_ms = at_ms if section.last_ms is None else max(section.last_ms, at_ms)
    section.rows += sum(count for reason, count in converter.refused.items() if reason.startswith("a CSV line"))
    section.refused = converter.refused
    return section, found


# -- the report


def describe(report: ImportReport, out: Path) -> list[str]:
    """The import's report: per section what was read, kept and refused (by reason), then the archive."""
    lines = []
    rate = report.telemetry.rows / report.seconds if report.telemetry and report.seconds else 0.0
    lines.append(f"imported into {out} in {report.seconds:.1f} s" + (f" ({rate:,.0f} rows/s)" if rate else ""))
    if report.telemetry is not None:
        lines += _section("telemetry", "readings", report.telemetry)
    if report.failures is not None:
        lines += _section("failures", "report_failure actions", report.failures)
        modes = ", ".join(f"{mode} {count}" for mode, count in report.failures.modes.most_common())
        if modes:
            lines.append(f"    failure modes: {modes}")
    if report.services is not None:
        lines += _section("services", "service_complete actions", report.services)
    if report.telemetry is not None:
        for name, section in (("failures", report.failures), ("services", report.services)):
            unknown = sorted(section.motors - report.telemetry.motors) if section is not None else []
            if unknown:
                shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
                lines.append(f"  note: {len(unknown)} motors in the {name} have no readings: {shown}")
    lines.append(f"  archive: {report.objects} objects; `python scripts/archive.py summary {out}` shows what it holds")
    return lines


def _section(name: str, what: str, section: SectionReport) -> list[str]:
    span = ""
    if section.first_ms is not None and section.last_ms is not None:
        span = f", {_day(section.first_ms)} to {_day(section.last_ms)}"
    refused = sum(section.refused.values())
    files = f"{section.files} file{'s' if section.files != 1 else ''}"
    motors = f"{len(section.motors)} motor{'s' if len(section.motors) != 1 else ''}"
    lines = [
        f"  {name}: {section.rows:,} rows in {files}: {section.kept:,} {what} of {motors}{span}; "
        f"{refused:,} refused{':' if refused else ''}"
    ]
    for reason, count in section.refused.most_common(SHOWN_REASONS):
        lines.append(f"    {count:>10,}  {reason}")
    if len(section.refused) > SHOWN_REASONS:
        rest = sum(count for _, count in section.refused.most_common()[SHOWN_REASONS:])
        lines.append(f"    {rest:>10,}  for {len(section.refused) - SHOWN_REASONS} other reasons")
    return lines


def _day(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(
        prog="model/import_history.py",
        description="Import a plant historian's export (CSV or Parquet) into the archive's layout (docs/import.md).",
    )
    parser.add_argument("mapping", type=Path, help="the mapping file (YAML); its paths are relative to it")
    parser.add_argument("--out", type=Path, required=True, help="the archive folder to write (created if need be)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    try:
        mapping = load_mapping(args.mapping)
        report = import_history(mapping, args.out, progress=None if args.quiet else sys.stderr)
    except MappingError as exc:
        print(f"import_history: {exc}", file=sys.stderr)
        return MAPPING_ERROR_STATUS
    except (OSError, duckdb.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"import_history: stopped, nothing written: {first}", file=sys.stderr)
        return 1
    for line in describe(report, args.out):
        out(line)
    if report.telemetry is not None and report.telemetry.rows and not report.telemetry.kept:
        print("import_history: no row of telemetry could be imported (see the reasons above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
