"""What the archive holds, from the command line: the local stack's folder, any folder, or an s3:// archive.

    python scripts/archive.py summary                        # the local stack's archive (.local-stack/archive)
    python scripts/archive.py summary s3://my-archive-bucket  # a deployed stack's ArchiveBucket
    python scripts/archive.py readings motor-002 --since 2h   # a table of one motor's readings
    python scripts/archive.py sql "SELECT motor_id, count(*) FROM telemetry GROUP BY 1"

Everything is read through model/archive.py: readings validated with the telemetry model (invalid ones
counted by reason), every kind deduplicated on its key (docs/archive.md). An s3:// location uses your
AWS credentials and region; AWS_ENDPOINT_URL points it at another endpoint.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

if not __package__:  # run as a script: make the repository's packages importable
    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "layers" / "shared")]

from device.requirements_check import setup_needed

with setup_needed("scripts/archive.py"):
    import numpy as np

    from device.archive_layout import ACTIONS, ALARMS, LOCAL_ARCHIVE, TELEMETRY
    from model.archive import Archive, ArchiveError, ReadCounts
    from motor_maintenance.telemetry import parse_timestamp

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SHOWN_COLUMNS = (
    ("ts", "ts"),
    ("seq", "seq"),
    ("running", "run"),
    ("speed_rpm", "rpm"),
    ("current_a", "A"),
    ("winding_temp_c", "wind C"),
    ("bearing_temp_c", "bear C"),
    ("fluid_temp_c", "fluid C"),
    ("vibration_mm_s", "vib mm/s"),
    ("pressure_bar", "bar"),
    ("fault", "fault"),
)


def moment(text: str, now: datetime | None = None) -> datetime:
    """`2h`, `30m`, `7d` (that long before now) or a timestamp (ISO-8601 with offset, or epoch ms)."""
    found = _DURATION.match(text.strip())
    if found:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(found.group(1)) * _UNIT_S[found.group(2)])
    try:
        return parse_timestamp(int(text) if text.isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 2h, 30m, 7d or a timestamp ({exc})") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/archive.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    where_help = "folder or s3://bucket/prefix (default: %(default)s)"
    summary = commands.add_parser("summary", help="days, motors, records of each kind, invalid, duplicates, errors")
    summary.add_argument("location", nargs="?", default=str(LOCAL_ARCHIVE), help=where_help)
    readings = commands.add_parser("readings", help="a table of one motor's valid readings")
    readings.add_argument("motor_id")
    readings.add_argument("location", nargs="?", default=str(LOCAL_ARCHIVE), help=where_help)
    readings.add_argument("--since", type=moment, default="1d", help="2h, 30m, 7d or a timestamp (default: 1d)")
    readings.add_argument("--until", type=moment, help="2h, 30m, 7d or a timestamp (default: now)")
    readings.add_argument("--limit", type=int, default=100, help="show the last N readings (default: 100)")
    sql = commands.add_parser("sql", help="a DuckDB query over the views telemetry, alarms and actions")
    sql.add_argument("query")
    sql.add_argument("location", nargs="?", default=str(LOCAL_ARCHIVE), help=where_help)
    sql.add_argument("--since", type=moment, help="read records from this moment on (default: all)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    try:
        archive = Archive.open(args.location)
        if args.command == "summary":
            show_summary(archive, out)
        elif args.command == "readings":
            show_readings(archive, args.motor_id, args.since, args.until, limit=args.limit, out=out)
        else:
            with archive.connect(since=args.since) as db:
                result = db.sql(args.query)
                if result is not None:
                    print(result, file=out)
    except ArchiveError as exc:
        print(f"archive: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a query DuckDB refuses, a bucket that denies access: one line, not a traceback
        if type(exc).__module__.split(".")[0] not in ("duckdb", "botocore") and not isinstance(exc, OSError):
            raise
        print(f"archive: {exc}", file=sys.stderr)
        return 1
    return 0


def show_summary(archive: Archive, out: TextIO) -> None:
    print(f"archive {archive.location}", file=out)
    readings = archive.readings()
    days = archive.days(TELEMETRY)
    span = f"{days[0]} .. {days[-1]}" if days else "none"
    motors = len(set(readings.table.values("motor_id")))
    print(f"  days with readings: {len(days)} ({span}); motors: {motors}", file=out)
    _counts("readings", readings.counts, out)
    for kind in (ALARMS, ACTIONS):
        events = archive.events(kind)
        _counts("alarm events" if kind == ALARMS else "operator actions", events.counts, out)
        if kind == ACTIONS and events.records:
            by_action: dict[str, int] = {}
            for record in events.records:
                by_action[str(record.get("action"))] = by_action.get(str(record.get("action")), 0) + 1
            print("    " + ", ".join(f"{name} {count}" for name, count in sorted(by_action.items())), file=out)
    errors = archive.errors()
    total = sum(errors.values())
    print(f"  errors (records Firehose could not convert or deliver): {total}", file=out)
    for where, count in sorted(errors.items()):
        print(f"    {where}: {count}", file=out)


def _counts(what: str, counts: ReadCounts, out: TextIO) -> None:
    print(
        f"  {what}: {counts.read} stored, {counts.kept} kept, {counts.duplicates} duplicates, "
        f"{counts.invalid_total} invalid",
        file=out,
    )
    for reason, count in counts.invalid.most_common():
        print(f"    invalid: {reason}: {count}", file=out)


def show_readings(
    archive: Archive, motor_id: str, since: datetime, until: datetime | None, *, limit: int, out: TextIO
) -> None:
    readings = archive.readings(motor_id=motor_id, since=since, until=until)
    table = readings.table
    period = f"{since.isoformat()} .. {until.isoformat() if until else 'now'}"
    if table.num_rows == 0:
        print(f"no readings of {motor_id} in {period}", file=out)
    else:
        shown = table.take(np.arange(max(0, table.num_rows - limit), table.num_rows))
        rows = [[_cell(row[name]) for name, _ in SHOWN_COLUMNS] for row in shown.to_pylist()]
        header = [title for _, title in SHOWN_COLUMNS]
        widths = [max(len(header[c]), *(len(row[c]) for row in rows)) for c in range(len(header))]
        print("  ".join(title.rjust(width) for title, width in zip(header, widths, strict=True)), file=out)
        for row in rows:
            print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)), file=out)
        more = f"the last {shown.num_rows} of " if shown.num_rows < table.num_rows else ""
        print(f"{more}{table.num_rows} readings of {motor_id} in {period}", file=out)
    if readings.counts.invalid_total or readings.counts.duplicates:
        print(
            f"left out: {readings.counts.invalid_total} invalid, {readings.counts.duplicates} duplicates "
            "(scripts/archive.py summary says why)",
            file=out,
        )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
