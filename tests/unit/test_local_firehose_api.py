"""The local Firehose API (local.firehose_api), driven by the unchanged boto3 `firehose` client the functions use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.aws import FAKE_CREDENTIALS
from local.firehose_api import MAX_CALL_RECORDS, FirehoseApi
from motor_adapters.firehose_archive import FirehoseArchive
from motor_maintenance.errors import ArchiveUnavailable

STREAM = "motor-maintenance-TelemetryArchiveStream"


@pytest.fixture
def api() -> Iterator[tuple[FirehoseApi, list[bytes]]]:
    taken: list[bytes] = []
    streams = {STREAM: taken.append}
    with FirehoseApi(streams.__getitem__) as running:
        yield running, taken


def client(api: FirehoseApi, **config: Any) -> Any:
    return boto3.client(
        "firehose",
        region_name="us-east-1",
        endpoint_url=api.url,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def test_put_record_batch_hands_each_record_to_its_stream_in_order(api: tuple[FirehoseApi, list[bytes]]) -> None:
    server, taken = api
    records = [b'{"a":1}\n{"a":2}\n', b'{"a":3}\n', bytes(range(256))]

    answer = client(server).put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": r} for r in records])

    assert answer["FailedPutCount"] == 0
    assert len(answer["RequestResponses"]) == 3
    assert all("RecordId" in response for response in answer["RequestResponses"])
    assert taken == records


def test_put_record_takes_one_record(api: tuple[FirehoseApi, list[bytes]]) -> None:
    server, taken = api

    answer = client(server).put_record(DeliveryStreamName=STREAM, Record={"Data": b"{}\n"})

    assert answer["RecordId"]
    assert taken == [b"{}\n"]


def test_a_stream_the_stack_has_not_is_refused_by_name(api: tuple[FirehoseApi, list[bytes]]) -> None:
    server, _ = api
    with pytest.raises(ClientError) as refused:
        client(server).put_record_batch(DeliveryStreamName="other", Records=[{"Data": b"{}"}])
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_more_than_500_records_are_refused_whole(api: tuple[FirehoseApi, list[bytes]]) -> None:
    server, taken = api
    unchecked = client(server, parameter_validation=False)
    with pytest.raises(ClientError) as refused:
        unchecked.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": b"{}"}] * (MAX_CALL_RECORDS + 1))
    assert refused.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert taken == []


def test_the_fault_switch_refuses_every_record_of_the_next_calls_as_a_partial_failure(
    api: tuple[FirehoseApi, list[bytes]],
) -> None:
    server, taken = api
    firehose = client(server)
    server.fail_next(1)

    refused = firehose.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": b"1"}, {"Data": b"2"}])
    taken_next = firehose.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": b"3"}])

    assert refused["FailedPutCount"] == 2
    assert {r["ErrorCode"] for r in refused["RequestResponses"]} == {"ServiceUnavailableException"}
    assert taken_next["FailedPutCount"] == 0
    assert taken == [b"3"]
    assert server.calls_refused == 1


def test_the_functions_archive_writer_resends_what_the_local_firehose_refused(
    api: tuple[FirehoseApi, list[bytes]],
) -> None:
    server, taken = api
    archive = FirehoseArchive(STREAM, client(server), sleep=lambda _: None)
    server.fail_next(2)

    assert archive.put_readings([b'{"seq":1}', b'{"seq":2}']) == 2  # the packed record, sent twice more
    assert taken == [b'{"seq":1}\n{"seq":2}\n']

    server.fail_next(3)
    with pytest.raises(ArchiveUnavailable, match="ServiceUnavailableException"):
        archive.put_readings([b'{"seq":3}'])
