"""Lambda's event source mapping for a Kinesis stream, on one machine: pollers that batch a shard into a function.

What `EventSourceMapping` does is what Lambda documents for a Kinesis source (docs/local-stack.md has the
list and what is left out):

- one poller per shard, reading it in order from TRIM_HORIZON or LATEST (GetShardIterator, GetRecords
  against moto), with one batch per shard in flight (ParallelizationFactor 1);
- a batch is up to BatchSize records, gathered until it is full or MaximumBatchingWindowInSeconds has
  passed since its first record was read (6 MB of event at most), and is never empty;
- the function is invoked synchronously (RequestResponse) with Lambda's Kinesis event;
- success with no `batchItemFailures` (absent, null or empty): the checkpoint moves past the batch;
  with ReportBatchItemFailures, failures listed: the checkpoint moves to just before the lowest
  failed sequence number and the records from there are retried; an invalid list (an item without
  an itemIdentifier, or one not in the batch) fails the whole batch;
- a function error (an exception, a timeout, a crashed environment) retries the batch; with
  BisectBatchOnFunctionError the batch is split in two first, and splitting does not count as a retry;
- after MaximumRetryAttempts retries, or once a record is older than MaximumRecordAgeInSeconds, the
  batch is discarded: Lambda's on-failure record for a stream source (`KinesisBatchInfo` with the shard
  and the sequence range, no records) goes to the destination queue, and the poller moves on.

Each invocation's outcome is reported (`BatchOutcome`), with the items of the function's `readings`
whose records are settled (before the checkpoint): the ones past it are redelivered and reported then.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import takewhile
from typing import Any

log = logging.getLogger("local.kinesis")

MAX_EVENT_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload limit: a batch stops growing before it."""
POLL_INTERVAL_S = 0.1
"""How often an idle shard is read (Lambda reads each shard about once a second; locally, faster)."""
GET_RECORDS_LIMIT = 10000


Invoke = Callable[[Any], tuple[Any, dict[str, Any] | None]]
"""A synchronous invocation: (result, None) or (None, error as Lambda reports it)."""
Park = Callable[[str, dict[str, Any]], None]
"""Sends an on-failure record to a destination queue (by its logical id)."""


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """One AWS::Lambda::EventSourceMapping, resolved to the local stream and function."""

    name: str
    """The mapping's logical id."""
    function: str
    function_arn: str
    stream_name: str
    stream_arn: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    batching_window_s: float = 0.0
    report_batch_item_failures: bool = False
    bisect_on_error: bool = False
    max_retry_attempts: int = -1
    """-1: retry until the record expires."""
    max_record_age_s: float = -1
    """-1: no limit but the stream's retention."""
    on_failure: str | None = None
    invoke_identity_arn: str = ""
    """The function's execution role, as Lambda puts it in each record."""
    region: str = "us-east-1"


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """A record as GetRecords returned it, and its item of the Lambda event."""

    sequence_number: str
    arrival_s: float
    event_record: dict[str, Any]
    size: int
    """Bytes the record adds to the event."""

    @property
    def position(self) -> int:
        return int(self.sequence_number)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of one invocation of a batch (or of a batch discarded without one)."""

    mapping: str
    function: str
    shard_id: str
    sequence_numbers: tuple[str, ...]
    result: Any = None
    error: dict[str, Any] | None = None
    readings: tuple[dict[str, Any], ...] = ()
    """The function's `readings` items of records now behind the checkpoint."""
    retried: int = 0
    """Records of the batch that will be delivered again (failed, or after the lowest failure)."""
    discarded: int = 0
    """Records given up on (retries or age exhausted)."""
    dead_lettered: bool = False
    """Whether the discarded records' on-failure record reached the destination."""
    condition: str | None = None
    """RetryAttemptsExhausted or RecordAgeExceeded when records were discarded."""


@dataclass(slots=True)
class _Attempt:
    records: list[StreamRecord]
    retries: int = 0
    invokes: int = 0
    """Invocations these records were in so far (approximateInvokeCount)."""
    last_error: dict[str, Any] | None = field(default=None)


class EventSourceMapping:
    """Pollers for each shard of one stream, invoking one function. `start()`, then `stop()`."""

    def __init__(
        self,
        config: MappingConfig,
        *,
        kinesis: Callable[[], Any],
        invoke: Invoke,
        park: Park,
        on_batch: Callable[[BatchOutcome], None] = lambda outcome: None,
        retry_delays_s: Sequence[float] = (0.5,),
        poll_interval_s: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._kinesis = kinesis
        self._invoke = invoke
        self._park = park
        self._on_batch = on_batch
        self._retry_delays_s = tuple(retry_delays_s) or (0.0,)
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.finished = 0
        """Records behind a checkpoint: processed, or discarded to the on-failure destination."""
        self.invocations = 0
        self.discarded = 0

    def start(self) -> list[str]:
        """One poller per shard, each with its iterator taken before this returns; the shard ids."""
        client = self._kinesis()
        shards = [s["ShardId"] for s in client.list_shards(StreamName=self.config.stream_name)["Shards"]]
        for shard_id in shards:
            iterator = client.get_shard_iterator(
                StreamName=self.config.stream_name, ShardId=shard_id, ShardIteratorType=self.config.starting_position
            )["ShardIterator"]
            thread = threading.Thread(
                target=self._poll,
                args=(shard_id, iterator),
                name=f"esm-{self.config.name}-{shard_id}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return shards

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading; a batch in flight finishes (or fails as its function stops). Idempotent."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def signal_stop(self) -> None:
        """Stop taking new batches, without waiting (the stack stops the functions next, then `stop()`)."""
        self._stopping.set()

    # -- one shard --------------------------------------------------------------------------------

    def _poll(self, shard_id: str, iterator: str) -> None:
        client = self._kinesis()
        buffer: deque[StreamRecord] = deque()
        first_seen: float | None = None
        while not self._stopping.is_set():
            try:
                answer = client.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
            except Exception as exc:  # moto going away while the stack stops, or a passing fault
                if self._stopping.is_set():
                    return
                log.warning("%s: GetRecords on %s failed: %s", self.config.name, shard_id, exc)
                self._stopping.wait(self._poll_interval_s * 5)
                continue
            iterator = answer.get("NextShardIterator") or iterator
            buffer.extend(self._record(shard_id, raw) for raw in answer.get("Records", []))
            if not buffer:
                first_seen = None
                self._stopping.wait(self._poll_interval_s)
                continue
            first_seen = first_seen if first_seen is not None else time.monotonic()
            waited_s = time.monotonic() - first_seen
            if len(buffer) < self.config.batch_size and waited_s < self.config.batching_window_s:
                self._stopping.wait(min(self._poll_interval_s, self.config.batching_window_s - waited_s))
                continue
            batch = self._take(buffer)
            first_seen = time.monotonic() if buffer else None
            try:
                self.deliver(shard_id, batch)
            except Exception:
                if self._stopping.is_set():  # the function stopped under the batch: nothing more to deliver
                    return
                # Part of the batch may be behind the checkpoint already: going on could deliver it twice.
                # The shard stops here, loudly, and the stack never reports itself idle.
                log.exception("%s: %s stopped: a batch could not be delivered", self.config.name, shard_id)
                return

    def _take(self, buffer: deque[StreamRecord]) -> list[StreamRecord]:
        batch: list[StreamRecord] = []
        size = 0
        while (
            buffer and len(batch) < self.config.batch_size and (not batch or size + buffer[0].size <= MAX_EVENT_BYTES)
        ):
            record = buffer.popleft()
            batch.append(record)
            size += record.size
        return batch

    def _record(self, shard_id: str, raw: dict[str, Any]) -> StreamRecord:
        arrival = raw["ApproximateArrivalTimestamp"]
        arrival_s = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)
        sequence_number = str(raw["SequenceNumber"])
        item = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": sequence_number,
                "data": base64.b64encode(raw["Data"]).decode(),
                "approximateArrivalTimestamp": round(arrival_s, 3),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{sequence_number}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.config.invoke_identity_arn,
            "awsRegion": self.config.region,
            "eventSourceARN": self.config.stream_arn,
        }
        return StreamRecord(sequence_number, arrival_s, item, len(json.dumps(item)) + 2)

    # -- one batch, until it is behind the checkpoint -----------------------------------------------

    def deliver(self, shard_id: str, records: list[StreamRecord]) -> None:
        """Invoke the function with `records` (in order) until every one is checkpointed or discarded."""
        work: deque[_Attempt] = deque([_Attempt(records)])
        while work:
            attempt = work.popleft()
            if self.config.max_record_age_s >= 0:
                # A shard's records are in arrival order: the expired ones lead. They go; the rest carries on.
                oldest_kept_s = self._clock() - self.config.max_record_age_s
                expired = list(takewhile(lambda r: r.arrival_s < oldest_kept_s, attempt.records))  # noqa: B023 - used at once
                if expired:
                    self._discard(shard_id, attempt, expired, "RecordAgeExceeded")
                    attempt.records = attempt.records[len(expired) :]
                    if not attempt.records:
                        continue
            if self._stopping.is_set() and attempt.invokes:
                raise InterruptedError("stopping: a retry is not started")
            result, error = self._invoke({"Records": [r.event_record for r in attempt.records]})
            attempt.invokes += 1
            with self._lock:
                self.invocations += 1
            numbers = tuple(r.sequence_number for r in attempt.records)
            if error is None:
                lowest = self._lowest_failure(attempt.records, result)
                if lowest is None:
                    self._settle(attempt.records)
                    self._report(shard_id, numbers, result=result, readings=_readings(result, attempt.records))
                    continue
                settled = [r for r in attempt.records if r.position < lowest]
                rest = [r for r in attempt.records if r.position >= lowest]
                self._settle(settled)
                self._report(shard_id, numbers, result=result, readings=_readings(result, settled), retried=len(rest))
                attempt = _Attempt(rest, attempt.retries, attempt.invokes)
            else:
                self._report(shard_id, numbers, error=error, retried=len(attempt.records))
                attempt.last_error = error
                if self.config.bisect_on_error and len(attempt.records) > 1:
                    half = len(attempt.records) // 2
                    work.extendleft(
                        reversed(
                            [
                                _Attempt(attempt.records[:half], attempt.retries, attempt.invokes, error),
                                _Attempt(attempt.records[half:], attempt.retries, attempt.invokes, error),
                            ]
                        )
                    )
                    continue
            if 0 <= self.config.max_retry_attempts <= attempt.retries:
                self._discard(shard_id, attempt, attempt.records, "RetryAttemptsExhausted")
                continue
            delay = self._retry_delays_s[min(attempt.retries, len(self._retry_delays_s) - 1)]
            attempt.retries += 1
            work.appendleft(attempt)
            self._stopping.wait(delay)

    def _lowest_failure(self, records: list[StreamRecord], result: Any) -> int | None:
        """The lowest failed sequence number the function reported; the first record's if the answer is invalid."""
        if not self.config.report_batch_item_failures or result is None:
            return None
        failures = result.get("batchItemFailures") if isinstance(result, dict) else "not an object"
        if failures is None or failures == []:
            return None
        known = {r.sequence_number for r in records}
        if not isinstance(failures, list) or not all(
            isinstance(item, dict) and item.get("itemIdentifier") in known for item in failures
        ):
            log.warning("%s: invalid batchItemFailures %r: the whole batch failed", self.config.name, failures)
            return records[0].position
        return min(int(item["itemIdentifier"]) for item in failures)

    def _settle(self, records: list[StreamRecord]) -> None:
        with self._lock:
            self.finished += len(records)

    def _discard(self, shard_id: str, attempt: _Attempt, records: list[StreamRecord], condition: str) -> None:
        error = attempt.last_error
        failure = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.config.function_arn,
                "condition": condition,
                "approximateInvokeCount": attempt.invokes,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                # A function error is Unhandled; records the function reported failed came with a normal answer.
                "functionError": "Unhandled" if error is not None else "",
            },
            "version": "1.0",
            "timestamp": _iso(self._clock()),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": records[0].sequence_number,
                "endSequenceNumber": records[-1].sequence_number,
                "approximateArrivalOfFirstRecord": _iso(records[0].arrival_s),
                "approximateArrivalOfLastRecord": _iso(records[-1].arrival_s),
                "batchSize": len(records),
                "streamArn": self.config.stream_arn,
            },
        }
        parked = False
        if self.config.on_failure is not None:
            try:
                self._park(self.config.on_failure, failure)
                parked = True
            except Exception:
                log.exception(
                    "%s: could not park a batch of %s in %s", self.config.name, shard_id, self.config.on_failure
                )
        log.warning(
            "%s: %s on %s: %d records discarded (%s to %s)%s",
            self.config.name,
            condition,
            shard_id,
            len(records),
            records[0].sequence_number,
            records[-1].sequence_number,
            f"; batch info in {self.config.on_failure}" if parked else "",
        )
        with self._lock:
            self.finished += len(records)
            self.discarded += len(records)
        self._report(
            shard_id,
            tuple(r.sequence_number for r in records),
            error=error,
            discarded=len(records),
            dead_lettered=parked,
            condition=condition,
        )

    def _report(self, shard_id: str, numbers: tuple[str, ...], **details: Any) -> None:
        try:
            self._on_batch(BatchOutcome(self.config.name, self.config.function, shard_id, numbers, **details))
        except Exception:
            log.exception("%s: a listener failed on a batch outcome", self.config.name)


def _readings(result: Any, settled: list[StreamRecord]) -> tuple[dict[str, Any], ...]:
    """The result's `readings` items of the settled records (the function's answer about each reading)."""
    items = result.get("readings") if isinstance(result, dict) else None
    if not isinstance(items, list):
        return ()
    wanted = {r.sequence_number for r in settled}
    return tuple(item for item in items if isinstance(item, dict) and item.get("sequence_number") in wanted)


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
