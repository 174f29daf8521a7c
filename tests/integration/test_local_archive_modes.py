"""The archive is the same whichever way readings come in, through the local stack.

Direct, the telemetry rule's Firehose action puts each reading as a record of its own; batched, the rule
only puts it into the Kinesis stream and ArchiveFunction, on a mapping of its own beside InferenceFunction's,
packs each batch's raw records several to a Firehose record (PutRecordBatch into the local Firehose, which
splits them as Firehose's deserializer does). Given the same readings published by a device, valid ones,
one the schema refuses but the conversion reads, and one the conversion cannot read, each run's archive is
compared: the same Parquet rows (but `received_at`, which the rule stamps on arrival), the same record under
errors/. And a Firehose that refuses records (the local API's fault switch) only delays the batch's archive:
the function sends them again or its mapping delivers the batch again, and nothing is lost. Seconds of
readings, no model.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from device.columnar import read_parquet
from local.firehose import CONVERSION_FAILED
from local.options import StackOptions
from local.stack import LocalStack
from tests.integration.conftest import device_client
from tests.support import load_event

MOTOR = "motor-001"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
VALID = 40


def _payloads() -> list[dict[str, Any]]:
    sent = {k: v for k, v in load_event("telemetry-normal").items() if k not in ("topic_motor_id", "received_at")}
    readings = [
        sent | {"seq": n, "ts": (START + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")}
        for n in range(1, VALID + 1)
    ]
    readings.insert(10, readings[9] | {"seq": 1000, "speed_rpm": -5.0})  # the schema refuses it; it converts
    readings.insert(20, readings[19] | {"seq": 1001, "vibration_mm_s": "high"})  # neither reads it
    return readings


PAYLOADS = _payloads()


@dataclass(frozen=True)
class Archived:
    rows: dict[int, dict[str, Any]]
    """The Parquet rows by seq, without received_at."""
    count: int
    """How many rows."""
    errors: list[bytes]
    """The error records' data."""
    redelivered: int
    """Batches ArchiveFunction failed because the archive did not take them (its mapping delivered them again)."""


def archive_of(mode: str, state_dir: Path, *, refuse: int = 0) -> Archived:
    """The run's archive, Firehose refusing every record of its first `refuse` calls."""
    options = StackOptions(
        state_dir=state_dir,
        model=None,
        broker="builtin",
        ingestion_mode=mode,
        batch_window_s=1.0 if mode == "batched" else None,
        detector_config={"offline": {"enabled": False}},
        devices=(MOTOR,),
        retry_delays_s=(0.2, 0.4),
        log=lambda line: print(line, flush=True),
    )
    with LocalStack(options) as stack:
        api = stack.pipeline.firehose_api
        assert api is not None
        api.fail_next(refuse)
        device = device_client(stack, MOTOR)
        device.start()
        try:
            for payload in PAYLOADS:
                device.publish(f"motors/{MOTOR}/telemetry", json.dumps(payload).encode())
        finally:
            device.stop()
        time.sleep(1.0)  # the last publishes reach the rules
        assert stack.settle(stall_s=30)
        for delivery in stack.pipeline.delivery_streams.values():
            delivery.flush()
        assert api.calls_refused == refuse
        # ArchiveFunction exists only with batched ingestion
        log = (stack.log_dir / "ArchiveFunction.log").read_text() if mode == "batched" else ""
        redelivered = log.count("batch not archived; delivered again")
        archive = stack.options.archive
        rows = [
            row for path in sorted((archive / "telemetry").rglob("*.parquet")) for row in read_parquet(path).to_pylist()
        ]
        errors = [
            base64.b64decode(json.loads(line)["rawData"])
            for path in sorted((archive / "errors" / "telemetry").rglob("*"))
            if path.is_file() and CONVERSION_FAILED in path.parts
            for line in path.read_text().splitlines()
        ]
    by_seq = {row["seq"]: {k: v for k, v in row.items() if k != "received_at"} for row in rows}
    return Archived(by_seq, len(rows), errors, redelivered)


def as_sent(errors: list[bytes]) -> list[dict[str, Any]]:
    """Error records' documents as the rule emitted them, but the arrival time it stamps (each run its own)."""
    return [{k: v for k, v in json.loads(e).items() if k != "received_at"} for e in errors]


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Archived:
    return archive_of("direct", tmp_path_factory.mktemp("archive-direct"))


def test_a_batched_run_archives_every_reading_exactly_as_a_direct_run_does(direct: Archived, tmp_path: Path) -> None:
    batched = archive_of("batched", tmp_path)

    assert batched.count == direct.count == len(PAYLOADS) - 1  # one row per reading, once each
    assert batched.rows == direct.rows
    assert as_sent(batched.errors) == as_sent(direct.errors) == [PAYLOADS[20] | {"topic_motor_id": MOTOR}]
    assert batched.redelivered == 0


def test_records_the_archive_refuses_twice_are_sent_again_and_none_is_lost(direct: Archived, tmp_path: Path) -> None:
    batched = archive_of("batched", tmp_path, refuse=2)

    assert batched.redelivered == 0  # the third attempt got them in
    assert batched.rows == direct.rows
    assert batched.count == direct.count


def test_a_batch_the_archive_refuses_three_times_is_delivered_again_and_none_is_lost(
    direct: Archived, tmp_path: Path
) -> None:
    """Then the first batch is handed back whole, delivered again and archived then (a reading of a call that
    got in before the refusal may be in it twice: the archive is at least once, its reader deduplicates)."""
    batched = archive_of("batched", tmp_path, refuse=3)

    assert batched.redelivered == 1
    assert batched.rows == direct.rows
    assert batched.count >= direct.count
    assert as_sent(sorted(set(batched.errors))) == [PAYLOADS[20] | {"topic_motor_id": MOTOR}]
