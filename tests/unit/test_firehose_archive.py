"""ArchiveFunction's archive writer: readings packed several to a Firehose record, within PutRecordBatch's
limits, and the records Firehose refuses sent again until they are in or the batch fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from motor_adapters.firehose_archive import (
    BILLING_UNIT_BYTES,
    MAX_CALL_BYTES,
    MAX_CALL_RECORDS,
    FirehoseArchive,
    calls,
    pack,
)
from motor_maintenance.errors import ArchiveUnavailable
from tests.support import reading_payload


def documents_of(record: bytes) -> list[Any]:
    """The JSON documents of one Firehose record, read one after another as a JSON deserializer does."""
    decoder, text, position, found = json.JSONDecoder(), record.decode(), 0, []
    while text[position:].strip():
        position += len(text[position:]) - len(text[position:].lstrip())
        document, position = decoder.raw_decode(text, position)
        found.append(document)
    return found


def reading(n: int) -> bytes:
    return json.dumps(reading_payload(n, at_s=60.0 * n) | {"topic_motor_id": "motor-001"}).encode()


@given(st.lists(st.integers(min_value=1, max_value=10_000), max_size=300), st.integers(min_value=0, max_value=3))
def test_packed_records_hold_every_document_in_order_each_within_the_billing_unit(
    sequences: list[int], refused: int
) -> None:
    readings = [reading(n) for n in sequences]
    alone = [b'{"motor_id": "m", "speed_rpm": "fast"}'] * refused

    records = pack(readings, alone)

    assert [doc for record in records for doc in documents_of(record)] == [json.loads(d) for d in readings + alone]
    assert all(len(record) <= BILLING_UNIT_BYTES for record in records)
    assert all(record.endswith(b"\n") for record in records)
    assert all(len(documents_of(record)) == 1 for record in records[len(records) - refused :])
    packed = records[: len(records) - refused]
    first_of_next = [readings[sum(len(documents_of(r)) for r in packed[:i])] for i in range(1, len(packed))]
    for record, following in zip(packed, first_of_next, strict=False):  # closed only when the next would not fit
        assert len(record) + len(following) + 1 > BILLING_UNIT_BYTES


def test_a_minute_of_1000_motors_fills_records_of_about_fifteen_readings() -> None:
    readings = [reading(n) for n in range(1000)]

    records = pack(readings)

    assert len(records) < 1000 / 10
    assert sum(len(r) for r in records) == sum(len(d) + 1 for d in readings)


def test_a_reading_larger_than_the_unit_travels_in_a_record_of_its_own() -> None:
    large = json.dumps({"motor_id": "m", "note": "x" * (2 * BILLING_UNIT_BYTES)}).encode()

    records = pack([reading(1), large, reading(2)])

    assert [len(documents_of(r)) for r in records] == [1, 1, 1]


def test_calls_stay_within_500_records_and_4_mib() -> None:
    many = [b"{}\n"] * 1_234
    big = [b"x" * (900 * 1024)] * 9

    assert [len(call) for call in calls(many)] == [500, 500, 234]
    assert all(len(call) <= MAX_CALL_RECORDS for call in calls(many))
    assert all(sum(map(len, call)) <= MAX_CALL_BYTES for call in calls(big))
    assert sum(len(call) for call in calls(big)) == 9


class PartlyRefusing:
    """A Firehose client that refuses the records at `refused` positions of its first `times` calls."""

    def __init__(self, refused: set[int], times: int) -> None:
        self.refused, self.times = refused, times
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:
        self.calls.append([r["Data"] for r in Records])
        refusing = len(self.calls) <= self.times
        responses = [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}
            if refusing and i in self.refused
            else {"RecordId": f"r{i}"}
            for i in range(len(Records))
        ]
        return {"FailedPutCount": sum("ErrorCode" in r for r in responses), "RequestResponses": responses}


def test_records_firehose_refuses_are_sent_again_alone_with_backoff() -> None:
    readings = [reading(n) for n in range(100)]
    client = PartlyRefusing(refused={1, 3}, times=1)
    waits: list[float] = []

    resent = FirehoseArchive("archive", client, sleep=waits.append).put_readings(readings)

    first = client.calls[0]
    assert client.calls[1] == [first[1], first[3]]
    assert resent == 2
    assert waits == [0.1]
    archived = [doc for record in client.calls[0] for doc in documents_of(record)]
    assert archived == [json.loads(d) for d in readings]


def test_records_still_refused_after_three_attempts_fail_the_archive() -> None:
    client = PartlyRefusing(refused={0}, times=99)
    waits: list[float] = []

    with pytest.raises(ArchiveUnavailable, match="ServiceUnavailableException"):
        FirehoseArchive("archive", client, sleep=waits.append).put_readings([reading(1), reading(2)])

    assert len(client.calls) == 3
    assert waits == [0.1, 0.2]


def test_a_refused_call_fails_the_archive() -> None:
    class Refusing:
        def put_record_batch(self, **_: Any) -> Any:
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": "no such stream"}}
            raise ClientError(error, "PutRecordBatch")  # type: ignore[arg-type]

    with pytest.raises(ArchiveUnavailable, match="no such stream"):
        FirehoseArchive("archive", Refusing()).put_readings([reading(1)])


def test_an_answer_that_does_not_name_every_record_fails_the_archive() -> None:
    class Short:
        def put_record_batch(self, Records: list[dict[str, bytes]], **_: Any) -> Any:
            return {"FailedPutCount": 1, "RequestResponses": [{"ErrorCode": "InternalFailure"}]}

    records = [reading(n) for n in range(40)]  # three records: the answer names one
    with pytest.raises(ArchiveUnavailable, match="answered 1 of 3 records"):
        FirehoseArchive("archive", Short(), sleep=lambda _: None).put_readings(records)


def test_a_document_too_large_for_any_record_fails_the_archive_not_the_function() -> None:
    class Unused:
        def put_record_batch(self, **_: Any) -> Any:
            raise AssertionError("nothing should be sent")

    with pytest.raises(ArchiveUnavailable, match="records of"):
        FirehoseArchive("archive", Unused()).put_readings([b"{" + b" " * 1_100_000 + b"}"])
