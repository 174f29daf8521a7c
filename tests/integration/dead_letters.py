"""What a local stack parked in its dead-letter queues, a line per record: which function or rule, and why.

A test that expects the queues empty shows these lines when they are not, so a failure names its cause
(the function, the error Lambda recorded, the rule and the action) without a rerun.
"""

from __future__ import annotations

import json
from typing import Any

from local.stack import LocalStack

MAX_SHOWN = 10


def parked_records(stack: LocalStack, queue: str, limit: int = MAX_SHOWN) -> list[dict[str, Any]]:
    """Up to `limit` records waiting in one of the template's queues, left there (they stay visible)."""
    sqs = stack.resources.aws.shared("sqs")
    url = stack.resources.queue_urls[queue]
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(limit):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen[message["MessageId"]] = json.loads(message["Body"])
        if len(seen) >= limit:
            break
    return list(seen.values())[:limit]


def describe(record: dict[str, Any], stack: LocalStack) -> str:
    """One line: the function (its log file), the condition and the error; or the rule, its action and the error."""
    if "ruleName" in record:  # an IoT rule's error action
        failures = "; ".join(
            f"{f.get('failedAction')} on {f.get('failedResource')}: {f.get('errorMessage')}"
            for f in record.get("failures", [])
        )
        return f"rule {record['ruleName']} ({record.get('topic')}, client {record.get('clientId')}): {failures}"
    context = record.get("requestContext", {})
    arn = str(context.get("functionArn", ""))
    function = arn.split(":")[6] if arn.count(":") >= 6 else "an unknown function"
    response = record.get("responsePayload") or {}
    batch = record.get("KinesisBatchInfo")
    where = f"batch of {batch.get('batchSize')} from {batch.get('shardId')}" if batch else "event"
    error = (
        f"{response.get('errorType')}: {response.get('errorMessage')}"
        if response.get("errorType")
        else "the function reported these records failed (its log says why)"
    )
    return (
        f"{function} ({where}, {context.get('condition')} after {context.get('approximateInvokeCount')} attempt(s)): "
        f"{error} (log: {stack.log_dir / f'{function}.log'})"
    )


def parked_report(stack: LocalStack, parked: dict[str, int]) -> str:
    """The records of every non-empty queue in `parked` (queue -> depth), described; '' when all are empty."""
    lines = []
    for queue, depth in parked.items():
        if depth:
            lines.append(f"{queue}: {depth} record(s)")
            lines.extend(f"  {describe(record, stack)}" for record in parked_records(stack, queue))
    return "\n".join(lines)
