"""Every item of a DynamoDB Scan or Query, page after page: the LastEvaluatedKey loop, written once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_maintenance.errors import StoreUnavailable

Page = dict[str, Any]


def items(read: Callable[[dict[str, Any]], Page], *, failure: str) -> Iterator[dict[str, Any]]:
    """The items of every page `read` returns; StoreUnavailable ("`failure`: why") for a page that cannot be read.

    `read(start)` makes one call: `start` is empty for the first page, then holds the ExclusiveStartKey to
    go on from. The adapter writes the call itself (`lambda start: client.query(**request, **start)`), so
    the API it calls stays in its own code (tests/unit/test_iam.py reads each adapter's calls from it).
    Pages are read as they are consumed: a caller that stops early reads no further page.
    """
    start: dict[str, Any] = {}
    while True:
        try:
            page = read(start)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"{failure}: {exc}") from exc
        yield from page.get("Items", ())
        if "LastEvaluatedKey" not in page:
            return
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
