"""ArchiveFunction with a batch from TelemetryStream (IngestionMode batched), Firehose faked by moto.

The sample event events/archive-batch.json is what `sam local invoke -e` sends: two readings and one the
schema refuses, as the rule put them into the stream.
"""

from __future__ import annotations

import base64
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

import motor_adapters.clients
from motor_adapters import firehose_archive
from motor_adapters.clients import client as real_client
from motor_maintenance.errors import ArchiveUnavailable
from tests.conftest import FakeAws
from tests.support import LambdaContext, kinesis_batch, load_event, load_handler, metrics_of, reading_payload


@pytest.fixture
def archive(aws: FakeAws) -> ModuleType:
    return load_handler("archive")


def test_the_sample_batch_is_archived_as_the_rule_delivered_it_invalid_readings_alone(
    archive: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    """Given the sample batch (a reading the schema refuses among them), when it is archived, then the archive's
    stream received every record's bytes, each followed by a newline as the rules' Firehose action writes it:
    the valid ones packed in one Firehose record, the refused one in a record of its own."""
    event = load_event("archive-batch")
    raw = [base64.b64decode(record["kinesis"]["data"]) for record in event["Records"]]

    response = archive.lambda_handler(event, lambda_context)

    assert response == {"readings": 2, "alone": 1, "skipped": 0}
    (call,) = aws.archived()  # moto writes one PutRecordBatch call as one object, its records concatenated
    assert call == raw[0] + b"\n" + raw[1] + b"\n" + raw[2] + b"\n"


def test_a_batch_the_archive_refuses_fails_whole_and_gets_in_when_delivered_again(
    archive: ModuleType,
    aws: FakeAws,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Given a Firehose stream that refuses a record on every attempt, when a batch arrives, then the invocation
    fails (Lambda delivers the whole batch again) and the failure is counted; once Firehose takes them, the batch
    delivered again is archived."""
    event = kinesis_batch([reading_payload(1, motor_id="motor-001"), reading_payload(1, motor_id="motor-002")])
    firehose = real_client("firehose")
    put = firehose.put_record_batch

    def refusing(**kwargs: Any) -> Any:
        answer = put(**kwargs)
        answer["RequestResponses"][0] = {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "busy"}
        return answer | {"FailedPutCount": 1}

    monkeypatch.setattr(firehose, "put_record_batch", refusing)
    monkeypatch.setattr(firehose_archive, "BACKOFF_S", 0.0)
    monkeypatch.setattr(motor_adapters.clients, "client", lambda service, **kw: firehose)
    archive.archive.cache_clear()

    with pytest.raises(ArchiveUnavailable, match="ServiceUnavailableException"):
        archive.lambda_handler(event, lambda_context)

    metrics = metrics_of(capsys.readouterr().out)
    assert metrics["ArchiveWriteFailed"] == 2.0

    monkeypatch.setattr(firehose, "put_record_batch", put)
    assert archive.lambda_handler(event, lambda_context) == {"readings": 2, "alone": 0, "skipped": 0}
    packed = aws.archived()[-1]
    assert packed.count(b"\n") == 2


def test_records_firehose_refused_once_are_sent_again_and_counted(
    archive: ModuleType,
    aws: FakeAws,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Given a Firehose stream that refuses the first call's records once, when a batch arrives, then it is archived
    and the record sent again is counted (ArchiveRecordsResent)."""
    firehose = real_client("firehose")
    put = firehose.put_record_batch
    calls: list[int] = []

    def refusing_once(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Records"]))
        if len(calls) > 1:
            return put(**kwargs)
        refused = {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "busy"}
        return {"FailedPutCount": calls[0], "RequestResponses": [refused] * calls[0]}

    monkeypatch.setattr(firehose, "put_record_batch", refusing_once)
    monkeypatch.setattr(firehose_archive, "BACKOFF_S", 0.0)
    monkeypatch.setattr(motor_adapters.clients, "client", lambda service, **kw: firehose)
    archive.archive.cache_clear()

    archive.lambda_handler(load_event("archive-batch"), lambda_context)

    assert calls == [2, 2]  # the packed readings' record and the refused reading's, then both again
    assert metrics_of(capsys.readouterr().out)["ArchiveRecordsResent"] == 2.0


def test_a_batch_that_is_not_archived_is_logged_without_its_readings(
    archive: ModuleType,
    aws: FakeAws,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Given a device's payload with a marker in it and a Firehose stream that is down, when the batch fails, then
    the function's log names the reason and the count, never the payload (devices write what they like)."""
    marker = "MIDDLE-OF-PAYLOAD-7f3a"
    event = kinesis_batch([reading_payload(1) | {"note": marker}, b"not json " + marker.encode()])
    firehose = real_client("firehose")

    def down(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailableException", "Message": "down"}}, "PutRecordBatch")

    monkeypatch.setattr(firehose, "put_record_batch", down)
    monkeypatch.setattr(motor_adapters.clients, "client", lambda service, **kw: firehose)
    archive.archive.cache_clear()

    with pytest.raises(ArchiveUnavailable):
        archive.lambda_handler(event, lambda_context)

    lines = [archive.logger.registered_formatter.format(record) for record in caplog.records]
    assert any('"records":2' in line.replace(" ", "") for line in lines), lines
    assert marker not in "\n".join(lines)
