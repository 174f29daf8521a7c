"""The local Firehose: the template's delivery streams, buffering by size and interval, Parquet, error records.

The streams come from template.yaml itself, so a change there (a prefix, a column, a buffer) is what
these tests exercise. The rules engine's Firehose actions put every message a rule matched, invalid
readings included, into its stream exactly once.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from device.archive_layout import TELEMETRY_COLUMNS
from device.columnar import connect, parquet_columns, read_parquet
from local.cfn import TemplateError
from local.delivery import expand_prefix
from local.firehose import CONVERSION_FAILED, ArchiveTally, DeliveryStream, marks, tally
from local.mqtt_client import Message
from local.router import Router
from local.template import load, loads
from model.archive import Archive
from motor_adapters.firehose_archive import pack
from motor_maintenance.telemetry import TelemetryEvent
from tests.support import ROOT, load_event

TEMPLATE = load(ROOT / "template.yaml")
STREAMS = {spec.logical_id: spec for spec in TEMPLATE.delivery_streams}
T0_MS = 1_796_637_600_000  # 2026-12-07T10:00:00Z


class Clock:
    def __init__(self, now_ms: int = T0_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def reading(seq: int, **changes: Any) -> dict[str, Any]:
    """A device's reading (without what the rule adds)."""
    sent = {k: v for k, v in load_event("telemetry-normal").items() if k not in ("topic_motor_id", "received_at")}
    return {**sent, "seq": seq, **changes}


def line(record: Any) -> bytes:
    return (json.dumps(record) + "\n").encode()


def stream(name: str, root: Path, clock: Clock, **changes: Any) -> DeliveryStream:
    return DeliveryStream(replace(STREAMS[name], **changes), root, clock_ms=clock, timer=False)


def files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


# ---------------------------------------------------------------- the template's streams


def test_the_template_archives_readings_alarms_and_actions_in_the_documented_layout() -> None:
    telemetry = STREAMS["TelemetryArchiveStream"]
    assert telemetry.prefix == "telemetry/dt=!{timestamp:yyyy-MM-dd}/"
    assert telemetry.error_prefix.startswith("errors/telemetry/!{firehose:error-output-type}/dt=")
    assert (telemetry.extension, telemetry.columns) == (".parquet", TELEMETRY_COLUMNS)
    assert STREAMS["AlarmArchiveStream"].prefix.startswith("alarms/dt=")
    assert STREAMS["ActionArchiveStream"].prefix.startswith("actions/dt=")
    assert {spec.extension for spec in (STREAMS["AlarmArchiveStream"], STREAMS["ActionArchiveStream"])} == {".jsonl"}


def test_the_archive_columns_are_the_fields_of_the_telemetry_model_the_rules_deliver() -> None:
    assert [name for name, _ in TELEMETRY_COLUMNS] == list(TelemetryEvent.model_fields)


def test_every_telemetry_rule_and_the_alarm_and_action_rules_have_a_firehose_action() -> None:
    archived = {rule.name: [action.stream for action in rule.firehose] for rule in TEMPLATE.rules}
    assert archived["TelemetryRule"] == archived["LegacyTelemetryRule"] == ["TelemetryArchiveStream"]
    batched = {rule.name: rule.for_conditions(lambda name: name == "Batched").firehose for rule in TEMPLATE.rules}
    assert batched["TelemetryRule"] == batched["LegacyTelemetryRule"] == ()  # ArchiveFunction archives the batches
    assert archived["AlarmRule"] == ["AlarmArchiveStream"]
    assert archived["ActionRule"] == ["ActionArchiveStream"]
    assert {action.separator for rule in TEMPLATE.rules for action in rule.firehose} == {"\n"}


def test_prefixes_expand_the_arrival_day_and_the_error_type() -> None:
    from datetime import UTC, datetime

    arrived = datetime(2026, 3, 9, 23, 59, tzinfo=UTC)
    assert expand_prefix("telemetry/dt=!{timestamp:yyyy-MM-dd}/", arrived) == "telemetry/dt=2026-03-09/"
    error = expand_prefix("errors/x/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/", arrived, "e")
    assert error == "errors/x/e/2026/03/09/23/"


def test_a_firehose_action_on_a_missing_stream_is_refused_naming_it() -> None:
    text = (
        (ROOT / "template.yaml")
        .read_text()
        .replace("DeliveryStreamName: !Ref AlarmArchiveStream", "DeliveryStreamName: !Ref NoSuchStream")
    )
    with pytest.raises(TemplateError, match=r"Firehose.*NoSuchStream"):
        loads(text, path=ROOT / "template.yaml")


# ---------------------------------------------------------------- buffering


def test_nothing_is_written_until_the_interval_passes_then_one_object_holds_the_buffer(tmp_path: Path) -> None:
    clock = Clock()
    alarms = stream("AlarmArchiveStream", tmp_path, clock, buffer_interval_s=60)
    alarms.put(line({"event_id": "a"}))
    clock.now_ms += 59_000
    alarms.put(line({"event_id": "b"}))
    alarms.flush_due()
    assert files(tmp_path) == []
    clock.now_ms += 1_000  # 60 s after the first record
    alarms.flush_due()
    (written,) = files(tmp_path)
    assert written.parent.name == "dt=2026-12-07"
    assert written.suffix == ".jsonl"
    assert written.name.startswith("AlarmArchiveStream-1-2026-12-07-10-00-00-")
    assert [json.loads(text)["event_id"] for text in written.read_text().splitlines()] == ["a", "b"]


def test_the_streams_own_timer_delivers_once_the_interval_passed(tmp_path: Path) -> None:
    actions = DeliveryStream(replace(STREAMS["ActionArchiveStream"], buffer_interval_s=1), tmp_path)
    try:
        actions.put(line({"action_id": "x"}))
        deadline = time.monotonic() + 10
        while not files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(files(tmp_path)) == 1
    finally:
        actions.close()


def test_a_full_buffer_is_written_at_once_without_waiting_for_the_interval(tmp_path: Path) -> None:
    clock = Clock()
    actions = stream("ActionArchiveStream", tmp_path, clock, buffer_size_mb=1)
    record = line({"action_id": "x", "note": "n" * 1000})
    per_mb = 1024 * 1024 // len(record) + 1
    for _ in range(per_mb - 1):
        actions.put(record)
    assert files(tmp_path) == []
    actions.put(record)
    (written,) = files(tmp_path)
    assert len(written.read_text().splitlines()) == per_mb
    assert actions.pending() == 0


def test_closing_the_stream_delivers_what_is_buffered(tmp_path: Path) -> None:
    actions = stream("ActionArchiveStream", tmp_path, Clock())
    actions.put(line({"action_id": "x"}))
    actions.close()
    assert len(files(tmp_path)) == 1
    with pytest.raises(RuntimeError, match="closed"):
        actions.put(line({"action_id": "y"}))


def test_an_object_lands_in_the_partition_of_its_oldest_record(tmp_path: Path) -> None:
    clock = Clock(T0_MS + 14 * 3600 * 1000 - 1000)  # 23:59:59
    readings = stream("TelemetryArchiveStream", tmp_path, clock)
    readings.put(line(reading(1)))
    clock.now_ms += 2000  # the next day
    readings.put(line(reading(2)))
    readings.flush()
    (written,) = files(tmp_path)
    assert written.parent.name == "dt=2026-12-07"


# ---------------------------------------------------------------- conversion


def test_readings_become_parquet_rows_with_the_glue_tables_columns(tmp_path: Path) -> None:
    readings = stream("TelemetryArchiveStream", tmp_path, Clock())
    readings.put(line(reading(1)))
    readings.put(line({**load_event("telemetry-legacy"), "extra_field": 1}))
    readings.flush()
    (written,) = files(tmp_path)
    assert list(parquet_columns(connect(), written).items()) == [  # a plain Parquet reader, no partitioning
        (name, {"string": "VARCHAR", "bigint": "BIGINT", "boolean": "BOOLEAN", "double": "DOUBLE"}[kind])
        for name, kind in TELEMETRY_COLUMNS
    ]
    table = read_parquet(written)
    assert table.num_rows == 2
    assert table.values("seq")[0] == 1


def test_a_value_of_the_wrong_type_goes_whole_to_the_error_prefix_never_dropped(tmp_path: Path) -> None:
    clock = Clock()
    readings = stream("TelemetryArchiveStream", tmp_path, clock)
    bad = line(reading(2, speed_rpm="fast"))
    readings.put(line(reading(1)))
    readings.put(bad)
    readings.put(b"not json\n")
    readings.flush()
    errors = [path for path in files(tmp_path) if CONVERSION_FAILED in path.parts]
    (error_object,) = errors
    assert error_object.relative_to(tmp_path).parts[:3] == ("errors", "telemetry", CONVERSION_FAILED)
    records = [json.loads(text) for text in error_object.read_text().splitlines()]
    assert [base64.b64decode(record["rawData"]) for record in records] == [bad, b"not json\n"]
    assert {record["arrivalTimestamp"] for record in records} == {T0_MS}
    assert "speed_rpm" in records[0]["ErrorMessage"]
    assert (readings.records_delivered, readings.records_failed) == (1, 2)
    assert Archive.open(tmp_path).errors() == {f"telemetry/{CONVERSION_FAILED}": 2}


def test_a_lone_surrogate_in_a_text_column_goes_to_the_error_prefix_and_the_rest_is_written(tmp_path: Path) -> None:
    """JSON may spell "\\ud800", which no UTF-8 writer accepts: found by the hostile client's payloads."""
    readings = stream("TelemetryArchiveStream", tmp_path, Clock())
    bad = line(reading(2)).replace(b'"pump-37kw"', b'"\\ud800"')
    readings.put(line(reading(1)))
    readings.put(bad)

    readings.flush()

    (error_object,) = [path for path in files(tmp_path) if CONVERSION_FAILED in path.parts]
    (record,) = [json.loads(text) for text in error_object.read_text().splitlines()]
    assert base64.b64decode(record["rawData"]) == bad
    assert "motor_type is not valid Unicode" in record["ErrorMessage"]
    assert (readings.records_delivered, readings.records_failed) == (1, 1)


def test_numbers_are_kept_as_text_in_a_text_column_as_the_json_deserializer_does(tmp_path: Path) -> None:
    readings = stream("TelemetryArchiveStream", tmp_path, Clock())
    readings.put(line(reading(1, ts=1_796_637_600_000)))
    readings.flush()
    (written,) = files(tmp_path)
    assert read_parquet(written).values("ts")[0] == "1796637600000"


def test_numeric_text_in_a_number_column_and_an_object_in_a_text_column_convert_as_openx_does(tmp_path: Path) -> None:
    # The OpenX JSON SerDe parses numeric text into a numeric column and takes an object's JSON text for a
    # string column: such readings, refused live by the strict model, are converted, not errors
    readings = stream("TelemetryArchiveStream", tmp_path, Clock())
    readings.put(line({**reading(1, speed_rpm="1500", fault={"code": 3}), "seq": "7"}))
    readings.flush()
    (written,) = files(tmp_path)
    row = read_parquet(written).to_pylist()[0]
    assert (row["speed_rpm"], row["seq"], row["fault"]) == (1500.0, 7, '{"code":3}')
    assert readings.records_failed == 0


# ---------------------------------------------------------------- the rules engine


def test_every_message_the_telemetry_rules_match_is_archived_once_invalid_ones_included(tmp_path: Path) -> None:
    clock = Clock()
    rules = [rule.for_conditions(lambda name: name != "Batched") for rule in TEMPLATE.rules if rule.firehose]
    archive = {name: stream(name, tmp_path, clock) for name in STREAMS}
    router = Router(
        [replace(rule, actions=(), kinesis=()) for rule in rules],  # only the archive matters here
        {},
        park=lambda queue, record: pytest.fail(f"parked {record}"),
        delivery_streams={name: s.put for name, s in archive.items()},
    )
    before = marks(archive)
    # Given a valid reading, one out of range, one of the wrong type and the first one resent
    payloads = [reading(1), reading(2, speed_rpm=-5.0), reading(3, speed_rpm="fast"), reading(1)]
    for payload in payloads:
        router.handle(Message("motors/motor-001/telemetry", json.dumps(payload).encode(), 1, "motor-001"))
    action = {k: v for k, v in load_event("action-reset").items() if k != "topic_motor_id"}
    router.handle(Message("motors/motor-001/actions", json.dumps(action).encode(), 1, "operator"))
    # Then each is in the archive once: as a row, or as an error record
    counted = tally(archive, before, tmp_path)
    assert counted.readings + counted.errors == len(payloads)
    assert (counted.readings, counted.errors, counted.lines) == (3, 1, {"actions": 1})
    # And the reader keeps the valid one once, counting the invalid one and the duplicate
    read = Archive.open(tmp_path).readings()
    assert (read.counts.read, read.counts.invalid_total, read.counts.duplicates, read.counts.kept) == (3, 1, 1, 1)
    (row,) = read.table.to_pylist()
    assert (row["seq"], row["topic_motor_id"]) == (1, "motor-001")
    assert isinstance(row["received_at"], int)


def test_the_runs_report_says_where_the_archive_is_and_flags_a_reading_missing_from_it(tmp_path: Path) -> None:
    from local.report import archive_lines

    whole = archive_lines(ArchiveTally(tmp_path, readings=9, errors=1, lines={"alarms": 2}), sent=10)
    assert f"archive: {tmp_path} took 10 readings of 10 the devices published" in whole[0]
    assert "MISMATCH" not in whole[0]
    assert "2 alarm events, 0 operator actions" in whole[1]
    assert "MISMATCH: -1" in archive_lines(ArchiveTally(tmp_path, readings=9), sent=10)[0]


def test_readings_packed_several_to_a_record_are_archived_as_the_rule_archives_them_one_by_one(tmp_path: Path) -> None:
    """Given the same readings, valid and not, archived one record each (the rule's Firehose action, direct) and
    packed several to a record by the batched function, then both archives hold the same rows and errors."""
    payloads = [reading(n) | {"topic_motor_id": "motor-001", "received_at": 1_796_637_600_000 + n} for n in range(40)]
    payloads[7] = payloads[7] | {"speed_rpm": "fast"}  # the schema refuses it, and so does the conversion
    payloads[9] = payloads[9] | {"speed_rpm": -5.0}  # the schema refuses it; it converts
    raw = [json.dumps(payload).encode() for payload in payloads]
    direct = stream("TelemetryArchiveStream", tmp_path / "direct", Clock())
    for data in raw:
        direct.put(data + b"\n")
    batched = stream("TelemetryArchiveStream", tmp_path / "batched", Clock())
    records = pack([d for n, d in enumerate(raw) if n not in (7, 9)], [raw[7], raw[9]])
    for record in records:
        batched.put(record)

    direct.flush()
    batched.flush()

    assert len(records) < len(raw) / 5
    for kind in (direct, batched):
        assert (kind.records_delivered, kind.records_failed) == (39, 1)
    (direct_rows,) = [read_parquet(p).to_pylist() for p in files(tmp_path / "direct") if p.suffix == ".parquet"]
    (batched_rows,) = [read_parquet(p).to_pylist() for p in files(tmp_path / "batched") if p.suffix == ".parquet"]
    assert sorted(batched_rows, key=lambda row: row["seq"]) == sorted(direct_rows, key=lambda row: row["seq"])
    direct_errors, batched_errors = (
        [
            json.loads(line)
            for p in files(tmp_path / kind)
            if CONVERSION_FAILED in p.parts
            for line in p.read_text().splitlines()
        ]
        for kind in ("direct", "batched")
    )
    assert [base64.b64decode(e["rawData"]) for e in batched_errors] == [raw[7] + b"\n"]
    assert [base64.b64decode(e["rawData"]) for e in direct_errors] == [raw[7] + b"\n"]


def test_a_record_of_several_documents_one_of_which_cannot_be_converted_fails_whole(tmp_path: Path) -> None:
    readings = stream("TelemetryArchiveStream", tmp_path, Clock())
    readings.put(line(reading(1)) + line(reading(2, speed_rpm="fast")))
    readings.put(b'{"motor_id": "m"} [1, 2]')
    readings.put(b'{"motor_id": "m"} {')
    readings.flush()
    assert (readings.records_delivered, readings.records_failed) == (0, 3)
