"""A batch's raw readings into the archive's Firehose stream (IngestionMode batched), several to a record.

Firehose bills ingestion and format conversion per record, each rounded up to 5 KB, so a 334-byte reading
put alone is billed as 5 KB twice. Firehose's record format conversion reads several JSON documents
concatenated in one record (`{"a":1}{"a":2}`, docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html),
so `pack` fills each record with readings up to the billing unit, each followed by a newline as the rules'
Firehose action writes it. A document that is not a reading the schema accepted travels alone: if Firehose
cannot convert it, it goes to the error prefix by itself, as it would from a rule, not with the readings
packed beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_maintenance.errors import ArchiveUnavailable

BILLING_UNIT_BYTES = 5 * 1024
"""Firehose rounds each record up to 5 KB for ingestion and conversion: records are filled up to it."""
MAX_RECORD_BYTES = 1_000 * 1024
"""PutRecordBatch: a record of at most 1,000 KiB (before base64)."""
MAX_CALL_RECORDS = 500
MAX_CALL_BYTES = 4 * 1024 * 1024
"""PutRecordBatch: at most 500 records and 4 MiB a call (these limits cannot be changed)."""
SEPARATOR = b"\n"
"""What ends each document, as the rules' Firehose action's Separator does."""
ATTEMPTS = 3
"""A record Firehose refused (FailedPutCount) is sent again up to twice, then its batch fails."""
BACKOFF_S = 0.1
"""Before the first resend; doubled before each next."""


def pack(readings: Sequence[bytes], alone: Sequence[bytes] = ()) -> list[bytes]:
    """Firehose records of `readings` concatenated up to BILLING_UNIT_BYTES each, then one per `alone` document.

    Each document is followed by SEPARATOR. A reading larger than the unit fills a record of its own.
    """
    records: list[bytes] = []
    current = bytearray()
    for document in readings:
        framed = document + SEPARATOR
        if current and len(current) + len(framed) > BILLING_UNIT_BYTES:
            records.append(bytes(current))
            current.clear()
        current += framed
    if current:
        records.append(bytes(current))
    records += [document + SEPARATOR for document in alone]
    for record in records:
        if len(record) > MAX_RECORD_BYTES:
            raise ValueError(f"a document of {len(record)} bytes: Firehose takes records of {MAX_RECORD_BYTES} at most")
    return records


def calls(records: Sequence[bytes]) -> Iterator[list[bytes]]:
    """The records in PutRecordBatch calls within its limits (500 records, 4 MiB)."""
    call: list[bytes] = []
    size = 0
    for record in records:
        if call and (len(call) == MAX_CALL_RECORDS or size + len(record) > MAX_CALL_BYTES):
            yield call
            call, size = [], 0
        call.append(record)
        size += len(record)
    if call:
        yield call


class FirehoseArchive:
    """PutRecordBatch into one delivery stream; a record refused is sent again, with backoff, ATTEMPTS times."""

    def __init__(self, stream_name: str, client: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._stream_name = stream_name
        self._client = client
        self._sleep = sleep

    def put_readings(self, readings: Sequence[bytes], alone: Sequence[bytes] = ()) -> int:
        """Archive the documents (`pack`); how many records were sent again. ArchiveUnavailable if some never got in."""
        try:
            records = pack(readings, alone)
        except ValueError as exc:  # a document too large for any record: the batch cannot be archived as it is
            raise ArchiveUnavailable(f"cannot archive into {self._stream_name}: {exc}") from exc
        resent = 0
        for call in calls(records):
            resent += self._put(call)
        return resent

    def _put(self, records: list[bytes]) -> int:
        pending, resent = records, 0
        for attempt in range(ATTEMPTS):
            if attempt:
                self._sleep(BACKOFF_S * 2 ** (attempt - 1))
                resent += len(pending)
            try:
                answer = self._client.put_record_batch(
                    DeliveryStreamName=self._stream_name, Records=[{"Data": record} for record in pending]
                )
            except (ClientError, BotoCoreError) as exc:
                raise ArchiveUnavailable(f"cannot put {len(pending)} records into {self._stream_name}: {exc}") from exc
            if not answer.get("FailedPutCount"):
                return resent
            responses = answer.get("RequestResponses", [])
            if len(responses) != len(pending):
                raise ArchiveUnavailable(
                    f"{self._stream_name} answered {len(responses)} of {len(pending)} records: their fate is unknown"
                )
            refused = [(record, rsp) for record, rsp in zip(pending, responses, strict=True) if rsp.get("ErrorCode")]
            if not refused:
                return resent
            pending = [record for record, _ in refused]
            codes = sorted({str(rsp["ErrorCode"]) for _, rsp in refused})
        raise ArchiveUnavailable(
            f"{len(pending)} records refused by {self._stream_name} after {ATTEMPTS} attempts: {', '.join(codes)}"
        )
