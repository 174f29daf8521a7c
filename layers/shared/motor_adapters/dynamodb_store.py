"""Per-motor state in DynamoDB: one item per motor, plus the model's health item, written with a version check."""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_adapters.dynamodb_pages import items
from motor_adapters.state_item import FORMAT, STATE_ATTRIBUTE, decode, encode, state_of
from motor_adapters.written_states import WrittenStates
from motor_maintenance.errors import StoreUnavailable, VersionConflict
from motor_maintenance.state import ModelHealth, MotorState

HEALTH_KEY = "__health__#model"
"""Key of the model's health item in the state table: '#' is not allowed in a motor id, so no motor has it."""

DUE_INDEX = "due-checks"
"""The state table's sparse index of motors the timer must look at (template.yaml, StateTable)."""
DUE_SHARDS = 16
"""Partitions of that index. A motor's shard never changes (crc32 of its id), so this number must not change
either without re-writing every item. 16 keep each partition far below DynamoDB's 1,000 writes/s per key with
100,000 motors, and cost the timer 16 queries a tick whatever the fleet's size (docs/architecture.md)."""


BATCH_GET_KEYS = 100
"""Keys one BatchGetItem request may name (DynamoDB's limit)."""
UNPROCESSED_RETRY_DELAYS_S = (0.05, 0.1, 0.2)
"""Waits (at most; jittered down to half) before asking again for the keys a BatchGetItem left unprocessed
(throttling, or the 16 MB response limit). Short and bounded, since every motor of the batch waits on them:
the keys still unprocessed after the last fail their motors, which Lambda delivers again."""


def due_shard(motor_id: str) -> str:
    """The index partition of a motor, stable across processes and runtimes (not Python's salted hash)."""
    return str(zlib.crc32(motor_id.encode()) % DUE_SHARDS)


class DynamoStateStore:
    """Implements motor_maintenance.service.StateStore.

    Item: `motor_id` (key), `version` (optimistic lock), `s` (the MotorState, motor_adapters.state_item), plus a
    few top-level attributes operators and indexes can query without decoding it. Items of format 1 (the state
    as JSON in `state`) and of format 2 are read, and written in format 3, or in format 2 with `state_format=2`
    (STATE_ITEM_FORMAT: while a stack is upgraded from code that reads format 2 only, docs/deploy.md).

    With `written` (the ingestion function's store), the states it saves are kept, so the next reading of a
    motor needs no read: `remembered` answers, and the save is conditional on the kept version. A conflict
    returns the stored item (ReturnValuesOnConditionCheckFailure, no read units), which the retry starts from.
    The copies are used only while they are mostly current (motor_adapters.written_states).
    """

    def __init__(
        self, table_name: str, client: Any, *, written: WrittenStates | None = None, state_format: int = FORMAT
    ) -> None:
        self._table = table_name
        self._client = client
        self._written = written
        self._format = state_format

    def load(self, motor_id: str) -> MotorState | None:
        item = _get_item(self._client, self._table, motor_id, f"state of {motor_id}")
        if self._written is not None:
            self._written.read(motor_id, None if item is None else int(item["version"]["N"]))
        return None if item is None else state_of(item)

    def remembered(self, motor_id: str) -> MotorState | None:
        kept = None if self._written is None else self._written.copy_of(motor_id)
        if kept is None:
            return None
        version, encoded = kept
        return decode(motor_id, encoded, version)

    def save(self, state: MotorState, expected_version: int) -> MotorState:
        stored = replace(state.copy(), version=expected_version + 1)
        encoded = encode(stored, self._format)
        item: dict[str, Any] = {
            "motor_id": {"S": state.motor_id},
            "version": {"N": str(stored.version)},
            STATE_ATTRIBUTE: {"B": encoded},
            "run_hours": {"N": repr(round(state.run_hours, 6))},
            "alarm_states": {"M": {name: {"S": value} for name, value in state.alarm_states().items()}},
            "outbox_size": {"N": str(len(state.outbox))},
        }
        if state.last_ts_ms is not None:
            item["last_reading_ms"] = {"N": str(state.last_ts_ms)}
        if state.motor_type:
            item["motor_type"] = {"S": state.motor_type}
        if state.failure_probability is not None:
            item["failure_probability"] = {"N": repr(state.failure_probability)}
        # Only a motor with something due is in the sparse index: the timer never reads the others. Events
        # saved but not yet published make it due at once, so the timer delivers them if the invocation
        # that saved them cannot (it died, or ran out of retries).
        due_ms = 0 if state.outbox else state.next_check_ms
        if due_ms is not None:
            item["check_shard"] = {"S": due_shard(state.motor_id)}
            item["check_due_ms"] = {"N": str(due_ms)}
        what = f"state of {state.motor_id}"
        try:
            _put_if_version(self._client, self._table, item, expected_version, what, return_stored=True)
        except VersionConflict as conflict:
            rival = _rival_state(conflict)
            if self._written is not None:
                kept = None if rival is None else (rival.version, encode(rival, self._format))
                self._written.conflicted(state.motor_id, expected_version, kept)
            raise VersionConflict(str(conflict), current=rival) from conflict
        except StoreUnavailable:  # the write may or may not have happened: the next reading reads
            if self._written is not None:
                self._written.forget(state.motor_id)
            raise
        if self._written is not None:
            self._written.written(state.motor_id, expected_version, stored.version, encoded)
        return stored


def _rival_state(conflict: VersionConflict) -> MotorState | None:
    """The state a failed conditional write found stored (None: the answer held none, or one that cannot be read)."""
    item = conflict.current
    if not item:
        return None
    try:
        return state_of(item)
    except (KeyError, ValueError, TypeError):
        return None


class DynamoBatchStateStore(DynamoStateStore):
    """Implements motor_maintenance.service.BatchStateStore: DynamoStateStore, plus `load_many` with BatchGetItem.

    A class of its own so that only the function that applies batches is granted dynamodb:BatchGetItem
    (tests/unit/test_iam.py derives each role's calls from the adapter classes a function builds).
    """

    def __init__(
        self,
        table_name: str,
        client: Any,
        sleep: Callable[[float], None] = time.sleep,
        *,
        written: WrittenStates | None = None,
        state_format: int = FORMAT,
    ) -> None:
        super().__init__(table_name, client, written=written, state_format=state_format)
        self._sleep = sleep

    def load_many(self, motor_ids: Sequence[str]) -> dict[str, MotorState | Exception | None]:
        """Each motor's state (None: never seen) or why it could not be read: BatchGetItem, 100 keys a request.

        Strongly consistent, as `load` is: the state is saved conditionally on the version read here. A
        request that fails fails the motors it named (StoreUnavailable); keys DynamoDB leaves unprocessed
        are asked for again, after a short wait, up to len(UNPROCESSED_RETRY_DELAYS_S) times, and then fail
        their motors. An item that cannot be parsed fails its motor, as `load` would.
        """
        wanted = list(dict.fromkeys(motor_ids))
        loaded: dict[str, MotorState | Exception | None] = {}
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            loaded.update(self._load_keys(wanted[start : start + BATCH_GET_KEYS]))
        return loaded

    def _load_keys(self, motor_ids: list[str]) -> dict[str, MotorState | Exception | None]:
        """At most BATCH_GET_KEYS motors' states, with the unprocessed keys asked for again."""
        loaded: dict[str, MotorState | Exception | None] = dict.fromkeys(motor_ids)  # None unless an item is found
        pending = motor_ids
        for delay_s in (0.0, *UNPROCESSED_RETRY_DELAYS_S):
            if delay_s:
                self._sleep(delay_s * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret
            keys = [{"motor_id": {"S": motor_id}} for motor_id in pending]
            request = {
                self._table: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    # What the detector reads; the copies for operators and indexes are not parsed.
                    "ProjectionExpression": "motor_id, #version, #state, #legacy",
                    "ExpressionAttributeNames": {"#version": "version", "#state": "s", "#legacy": "state"},
                }
            }
            try:
                response = self._client.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as exc:
                failed = StoreUnavailable(f"cannot read the state of {len(pending)} motors: {exc}")
                return loaded | dict.fromkeys(pending, failed)
            for item in response.get("Responses", {}).get(self._table, ()):
                motor_id = item["motor_id"]["S"]
                try:
                    loaded[motor_id] = state_of(item)
                except Exception as exc:  # that motor fails, as its load() would; the others go on
                    loaded[motor_id] = exc
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", ())
            pending = [key["motor_id"]["S"] for key in unprocessed]
            if not pending:
                return loaded
        attempts = 1 + len(UNPROCESSED_RETRY_DELAYS_S)
        left = StoreUnavailable(f"state not read: BatchGetItem left the key unprocessed {attempts} times (throttled)")
        return loaded | dict.fromkeys(pending, left)


class DynamoDueIndex:
    """The motors the timer must look at: the state table's sparse index `DUE_INDEX`, read-only.

    A class of its own so that only the timer's role is granted dynamodb:Query (tests/unit/test_iam.py
    derives each role's calls from the adapter classes a function builds).
    """

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def due_for_check(self, now_ms: int, page_size: int = 500) -> Iterator[str]:
        """Motor ids whose check time has passed, shard by shard, from the sparse index (eventually consistent).

        The reads are proportional to the motors that are due, not to the fleet.
        """
        for shard in range(DUE_SHARDS):
            for item in self._due_in(shard, now_ms, page_size):
                yield item["motor_id"]["S"]

    def _due_in(self, shard: int, now_ms: int, page_size: int) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "check_shard = :shard AND check_due_ms <= :now",
            "ExpressionAttributeValues": {":shard": {"S": str(shard)}, ":now": {"N": str(now_ms)}},
            "Limit": page_size,
        }
        return items(
            lambda start: self._client.query(**request, **start), failure=f"cannot query the index {DUE_INDEX}"
        )


class DynamoHealthStore:
    """Implements motor_maintenance.health.HealthStore: one item, `HEALTH_KEY`, in the state table.

    Written only when the model's health changes (and to empty its outbox), never per prediction,
    so the one key stays far below DynamoDB's per-partition limits whatever the fleet's size.
    """

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def load_health(self) -> ModelHealth | None:
        item = _get_item(self._client, self._table, HEALTH_KEY, "the model's health")
        if item is None:
            return None
        return ModelHealth.from_dict(json.loads(item["health"]["S"]), version=int(item["version"]["N"]))

    def save_health(self, health: ModelHealth, expected_version: int) -> ModelHealth:
        stored = replace(health, version=expected_version + 1)
        item: dict[str, Any] = {
            "motor_id": {"S": HEALTH_KEY},
            "version": {"N": str(stored.version)},
            "health": {"S": json.dumps(stored.to_dict(), separators=(",", ":"))},
            # Copies for an operator reading the item.
            "model_status": {"S": "available" if health.available else "unavailable"},
            "outage": {"N": str(health.outage)},
            "outbox_size": {"N": str(len(health.outbox))},
        }
        _put_if_version(self._client, self._table, item, expected_version, "the model's health")
        return stored


def _get_item(client: Any, table: str, key: str, what: str) -> dict[str, Any] | None:
    """The item under `key` (a strongly consistent read), or None; StoreUnavailable if it cannot be read."""
    try:
        response = client.get_item(TableName=table, Key={"motor_id": {"S": key}}, ConsistentRead=True)
    except (ClientError, BotoCoreError) as exc:
        raise StoreUnavailable(f"cannot read {what}: {exc}") from exc
    item: dict[str, Any] | None = response.get("Item")
    return item


def _put_if_version(
    client: Any, table: str, item: dict[str, Any], expected_version: int, what: str, *, return_stored: bool = False
) -> None:
    """PutItem if the stored version is `expected_version` (0: no item yet); VersionConflict otherwise.

    With `return_stored`, the conflict's `current` is the stored item DynamoDB returned with the failure (raw
    attribute values; None if there is none), which costs no read units.
    """
    if expected_version == 0:
        condition, values = "attribute_not_exists(motor_id)", None
    else:
        condition, values = "version = :expected", {":expected": {"N": str(expected_version)}}
    kwargs: dict[str, Any] = {"TableName": table, "Item": item, "ConditionExpression": condition}
    if values:
        kwargs["ExpressionAttributeValues"] = values
    if return_stored:
        kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    try:
        client.put_item(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            stored = exc.response.get("Item") if return_stored else None
            raise VersionConflict(f"{what} is no longer version {expected_version}", current=stored) from exc
        raise StoreUnavailable(f"cannot write {what}: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"cannot write {what}: {exc}") from exc
