"""A motor's recent history in DynamoDB (one item per entry, expired by TTL), and the state store that feeds it.

Item: `motor_id` (partition key), `at_version` (sort key: the entry's time, zero-padded, then the state's
version, so entries sort by time and two saves never share a key), `expires_at` (the table's TTL
attribute, epoch seconds) and `entry` (JSON: the reading's point, the alarm transitions).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_adapters.dynamodb_pages import items
from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.errors import StoreUnavailable, VersionConflict
from motor_maintenance.history import HISTORY_HOURS_MAX, INTERVAL_S_DEFAULT, Entry, Point, Seen, entry_for
from motor_maintenance.ports import BatchStateStore, HistoryRecorder, StateStore
from motor_maintenance.state import MotorState

KEEP_S = (HISTORY_HOURS_MAX + 1) * 3600
"""An entry's TTL after its own time: the longest window, and an hour for readings that arrive late."""
SEEN_MAX = 10_000
"""Motors whose last recorded state one execution environment remembers; beyond, it starts again (harmless)."""


def _sort_key(at_ms: int, version: int) -> str:
    return f"{at_ms:013d}#{version:012d}"


class DynamoHistoryWriter:
    """Implements motor_maintenance.ports.HistoryRecorder: PutItem only (every function that saves states)."""

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def record(self, entry: Entry) -> None:
        body = {
            "point": entry.point.to_dict() if entry.point is not None else None,
            "transitions": [event.model_dump(mode="json") for event in entry.transitions],
        }
        item = {
            "motor_id": {"S": entry.motor_id},
            "at_version": {"S": _sort_key(entry.at_ms, entry.version)},
            "expires_at": {"N": str(entry.at_ms // 1000 + KEEP_S)},
            "entry": {"S": json.dumps(body, separators=(",", ":"))},
        }
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"cannot record the history of {entry.motor_id}: {exc}") from exc


class DynamoHistoryReader:
    """Implements motor_maintenance.ports.HistoryReader: Query only (ConsoleFunction)."""

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def entries(self, motor_id: str, from_ms: int, to_ms: int) -> list[Entry]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "motor_id = :motor AND at_version BETWEEN :from AND :to",
            "ExpressionAttributeValues": {
                ":motor": {"S": motor_id},
                ":from": {"S": f"{from_ms:013d}"},
                ":to": {"S": f"{to_ms:013d}~"},  # '~' sorts after '#': every version of to_ms
            },
        }
        query = items(
            lambda start: self._client.query(**request, **start), failure=f"cannot read the history of {motor_id}"
        )
        return [_entry_of(item) for item in query]


def _entry_of(item: dict[str, Any]) -> Entry:
    at_ms, _, version = item["at_version"]["S"].partition("#")
    body = json.loads(item["entry"]["S"])
    point = body.get("point")
    return Entry(
        motor_id=item["motor_id"]["S"],
        at_ms=int(at_ms),
        version=int(version),
        point=Point.from_dict(point) if point else None,
        transitions=tuple(AlarmEvent.model_validate(event) for event in body.get("transitions", ())),
    )


class RecordingStateStore:
    """A StateStore that also records, in a HistoryRecorder, what each saved state adds to the motor's history.

    The history is for charts, not the record (the archive is): an entry that cannot be written is handed
    to `on_error` (the shell logs and counts it) and the use case carries on, its state saved. Readings are
    sampled, one every `interval_s` of reading time, alarm transitions always kept (history.entry_for):
    the common reading costs the state's write alone.
    """

    def __init__(
        self,
        inner: StateStore,
        history: HistoryRecorder,
        on_error: Callable[[Exception], None],
        *,
        interval_s: int = INTERVAL_S_DEFAULT,
    ) -> None:
        self._inner = inner
        self._history = history
        self._on_error = on_error
        self._interval_ms = interval_s * 1000
        self._seen: dict[str, Seen] = {}

    def load(self, motor_id: str) -> MotorState | None:
        state = self._inner.load(motor_id)
        self._remember(motor_id, state)
        return state

    def remembered(self, motor_id: str) -> MotorState | None:
        state = self._inner.remembered(motor_id)
        if state is not None:
            self._remember(motor_id, state)
        return state

    def save(self, state: MotorState, expected_version: int) -> MotorState:
        try:
            stored = self._inner.save(state, expected_version)
        except VersionConflict as conflict:
            if isinstance(conflict.current, MotorState):  # the retry starts from the rival's state, unread here
                self._remember(state.motor_id, conflict.current)
            raise
        entry = entry_for(stored, self._seen.get(state.motor_id), self._interval_ms)
        self._remember(state.motor_id, stored)
        if entry is not None:
            try:
                self._history.record(entry)
            except StoreUnavailable as exc:
                self._on_error(exc)
        return stored

    def _remember(self, motor_id: str, state: MotorState | None) -> None:
        if len(self._seen) >= SEEN_MAX:
            self._seen.clear()
        self._seen[motor_id] = Seen.of(state) if state is not None else Seen((None, None), frozenset())


class RecordingBatchStateStore(RecordingStateStore):
    """RecordingStateStore over a BatchStateStore: the batch read remembered as each motor's load."""

    def __init__(
        self,
        inner: BatchStateStore,
        history: HistoryRecorder,
        on_error: Callable[[Exception], None],
        *,
        interval_s: int = INTERVAL_S_DEFAULT,
    ) -> None:
        super().__init__(inner, history, on_error, interval_s=interval_s)
        self._batch = inner

    def load_many(self, motor_ids: Sequence[str]) -> Mapping[str, MotorState | Exception | None]:
        loaded = self._batch.load_many(motor_ids)
        for motor_id, state in loaded.items():
            if not isinstance(state, Exception):
                self._remember(motor_id, state)
        return loaded
