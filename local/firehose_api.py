"""Firehose's PutRecordBatch and PutRecord on loopback, into the local delivery streams (local.firehose).

The functions' unchanged boto3 `firehose` client reaches it through AWS_ENDPOINT_URL_FIREHOSE. botocore's
service model (firehose 2015-08-04) speaks JSON 1.1: `POST /` with `X-Amz-Target: Firehose_20150804.<Operation>`
and a JSON body whose `Data` blobs are base64. What Firehose documents, answered as botocore's JSON parser
reads it (the code in `__type` and `x-amzn-ErrorType`, `message` in the body):

- PutRecordBatch -> 200 `{"FailedPutCount", "Encrypted", "RequestResponses"}`, one response per record in the
  request's order (`RecordId`, or `ErrorCode` and `ErrorMessage` for a record not taken);
- PutRecord -> 200 `{"RecordId", "Encrypted"}`;
- a stream name the stack has no delivery stream for -> 400 ResourceNotFoundException;
- more than 500 records, more than 4 MiB of data in a call, a record over 1,000 KiB, a blob that is not
  base64 -> 400 InvalidArgumentException; any other operation -> 400 UnknownOperationException.

Not emulated: SigV4, the per-stream throughput quotas, encryption. For reliability tests, `fail_next(n)` (or
`POST /_local/fault` with `{"fail": n, "delay_s": x}`, loopback clients only) makes Firehose refuse every
record of the next n calls, each answered with ErrorCode ServiceUnavailableException inside a 200, as
Firehose reports records it did not take (`FailedPutCount`), and `delay_s` slows every call.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult

from local.loopback_http import LoopbackHandler, LoopbackService

log = logging.getLogger("local.firehose_api")

TARGET_PREFIX = "Firehose_20150804."
MAX_CALL_RECORDS = 500
MAX_CALL_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1_000 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
"""4 MiB of data is about 5.6 MB of base64 in JSON: a body over this cannot be a valid call."""
REFUSED = "ServiceUnavailableException"

Streams = Callable[[str], Callable[[bytes], None]]
"""The PutRecord of the delivery stream of that name; KeyError if there is none."""


class InvalidArgument(ValueError):
    """A call Firehose refuses whole (InvalidArgumentException)."""


class FirehoseApi(LoopbackService):
    """PutRecordBatch and PutRecord on loopback, each record put into `streams(stream_name)`."""

    description = "the local Firehose API"
    thread_name = "firehose-api"
    logger = log

    def __init__(self, streams: Streams, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_Handler, host, port)
        self._streams = streams
        self.records_taken = 0
        self.calls_refused = 0

    def put_records(self, stream: str, records: list[bytes]) -> list[dict[str, str]]:
        """One response per record: taken (RecordId), or, the whole call, refused by the fault switch (ErrorCode).

        KeyError if the stack has no delivery stream of that name."""
        put = self._streams(stream)
        with self._lock:
            delay_s = self._delay_s
            refused = self._fail_remaining > 0
            self._fail_remaining -= int(refused)
            self.calls_refused += int(refused)
        if delay_s:
            time.sleep(delay_s)
        if refused:
            return [{"ErrorCode": REFUSED, "ErrorMessage": "local fault injection"} for _ in records]
        responses = []
        for data in records:
            put(data)
            responses.append({"RecordId": uuid.uuid4().hex * 2})
        with self._lock:
            self.records_taken += len(records)
        return responses


def records_of(document: Any) -> tuple[str, list[bytes]]:
    """The stream name and the records' data of a PutRecordBatch body; InvalidArgument for what Firehose refuses."""
    if not isinstance(document, dict) or not isinstance(document.get("DeliveryStreamName"), str):
        raise InvalidArgument("DeliveryStreamName is required")
    entries = document.get("Records")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("Records must hold 1 to 500 records")
    if len(entries) > MAX_CALL_RECORDS:
        raise InvalidArgument(f"{len(entries)} records: at most {MAX_CALL_RECORDS} a call")
    records = [_data(entry) for entry in entries]
    total = sum(map(len, records))
    if total > MAX_CALL_BYTES:
        raise InvalidArgument(f"{total} bytes of records: at most {MAX_CALL_BYTES} a call")
    return document["DeliveryStreamName"], records


def _data(entry: Any) -> bytes:
    if not isinstance(entry, dict) or not isinstance(entry.get("Data"), str):
        raise InvalidArgument("each record needs Data")
    try:
        data = base64.b64decode(entry["Data"], validate=True)
    except binascii.Error as exc:
        raise InvalidArgument(f"Data is not base64: {exc}") from exc
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidArgument(f"a record of {len(data)} bytes: at most {MAX_RECORD_BYTES}")
    return data


class _Handler(LoopbackHandler[FirehoseApi]):
    """One connection: PutRecordBatch, PutRecord, the fault switch."""

    server_version = "LocalFirehose/1.0"
    invalid_request = "InvalidArgumentException"
    forbidden = "AccessDeniedException"
    too_large = "InvalidArgumentException"
    too_large_message = "the request is {length} bytes; at most {limit}"
    drain_limit_bytes = MAX_BODY_BYTES * 2

    def _post(self, url: SplitResult) -> None:
        body = self._read_body(MAX_BODY_BYTES)
        if body is None:
            return
        operation = (self.headers.get("X-Amz-Target") or "").removeprefix(TARGET_PREFIX)
        try:
            document = json.loads(body or b"{}")
            if operation == "PutRecordBatch":
                stream, records = records_of(document)
            elif operation == "PutRecord":
                stream, records = records_of(
                    {"DeliveryStreamName": document.get("DeliveryStreamName"), "Records": [document.get("Record")]}
                )
            else:
                self._error(400, "UnknownOperationException", f"{operation or 'no operation'} is not emulated")
                return
        except (InvalidArgument, ValueError, AttributeError) as exc:
            self._error(400, "InvalidArgumentException", str(exc))
            return
        try:
            responses = self.app.put_records(stream, records)
        except KeyError:
            self._error(400, "ResourceNotFoundException", f"Firehose {stream} under account 123456789012 not found.")
            return
        if operation == "PutRecord":
            if "ErrorCode" in responses[0]:
                self._error(503, REFUSED, "local fault injection")
                return
            self._send_json(200, None, {"RecordId": responses[0]["RecordId"], "Encrypted": False})
            return
        failed = sum("ErrorCode" in response for response in responses)
        self._send_json(200, None, {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": responses})

    def _not_found(self) -> None:
        if self._read_body(self.drain_limit_bytes) is None:
            return
        self._error(400, "UnknownOperationException", f"no Firehose operation at {self.command} {self.path}")

    def _error(self, status: int, code: str, message: str) -> None:
        self._send_json(status, code, {"__type": code, "message": message})
