"""DynamoDB's Scan and Query read page after page (motor_adapters.dynamodb_pages), and the adapters that use it."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from motor_adapters.dynamodb_pages import items
from motor_adapters.dynamodb_store import DUE_INDEX, DynamoDueIndex
from motor_maintenance.errors import StoreUnavailable
from tests.conftest import FakeAws


class Pages:
    """A Scan that answers the pages it is given, and remembers where each call started."""

    def __init__(self, *pages: dict[str, Any] | Exception) -> None:
        self.pages = list(pages)
        self.starts: list[dict[str, Any]] = []

    def __call__(self, start: dict[str, Any]) -> dict[str, Any]:
        self.starts.append(start)
        page = self.pages.pop(0)
        if isinstance(page, Exception):
            raise page
        return page


def test_every_page_is_read_each_from_where_the_last_one_ended() -> None:
    scan = Pages(
        {"Items": [{"n": 1}, {"n": 2}], "LastEvaluatedKey": {"k": "2"}},
        {"Items": [], "LastEvaluatedKey": {"k": "2b"}},  # a filtered page can be empty and still not the last
        {"Items": [{"n": 3}]},
    )

    assert list(items(scan, failure="cannot read")) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert scan.starts == [{}, {"ExclusiveStartKey": {"k": "2"}}, {"ExclusiveStartKey": {"k": "2b"}}]


def test_a_page_that_cannot_be_read_is_the_stores_error_with_the_callers_words() -> None:
    throttled = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Scan")
    scan = Pages({"Items": [{"n": 1}], "LastEvaluatedKey": {"k": "1"}}, throttled)
    read = items(scan, failure="cannot read the motors' states")

    assert next(read) == {"n": 1}
    with pytest.raises(StoreUnavailable, match=r"^cannot read the motors' states: .*ProvisionedThroughputExceeded"):
        next(read)


def test_a_reader_that_stops_early_reads_no_further_page() -> None:
    scan = Pages({"Items": [{"n": 1}, {"n": 2}], "LastEvaluatedKey": {"k": "2"}}, {"Items": [{"n": 3}]})

    assert next(iter(items(scan, failure="cannot read"))) == {"n": 1}
    assert len(scan.starts) == 1


class QueryCounter:
    """A DynamoDB client that counts the index's pages of shard 5 it is asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pages_of_shard_5 = 0

    def query(self, **request: Any) -> dict[str, Any]:
        assert request["IndexName"] == DUE_INDEX
        self.pages_of_shard_5 += request["ExpressionAttributeValues"][":shard"]["S"] == "5"
        return dict(self.inner.query(**request))


def test_the_timer_gets_every_due_motor_when_the_index_answers_in_several_pages(aws: FakeAws) -> None:
    # Given seven due motors in one shard of the index, one not yet due, and pages of two items
    for number in range(8):
        aws.dynamodb.put_item(
            TableName="motor-state",
            Item={
                "motor_id": {"S": f"motor-{number:03d}"},
                "check_shard": {"S": "5"},
                "check_due_ms": {"N": str(1_000 + number * 100)},
            },
        )

    client = QueryCounter(aws.dynamodb)

    due = list(DynamoDueIndex("motor-state", client).due_for_check(now_ms=1_650, page_size=2))

    assert due == [f"motor-{number:03d}" for number in range(7)]
    assert client.pages_of_shard_5 == 4  # 2 + 2 + 2 + 1
