"""DynamoBatchStateStore.load_many against moto: many motors' states in BatchGetItem requests of 100 keys.

What a batch of readings relies on: each motor's state exactly as `load` gives it (None for a motor
never seen), read strongly consistently, and a failure (a request refused, keys DynamoDB keeps leaving
unprocessed, an item that cannot be parsed) kept to the motors it concerns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from motor_adapters.clients import client
from motor_adapters.dynamodb_store import BATCH_GET_KEYS, UNPROCESSED_RETRY_DELAYS_S, DynamoBatchStateStore
from motor_maintenance.errors import StoreUnavailable
from motor_maintenance.state import AlarmStatus, MotorState
from tests.conftest import FakeAws
from tests.support import ThrottledDynamoDB

TABLE = "motor-state"


def stored(store: DynamoBatchStateStore, *motor_ids: str) -> dict[str, MotorState]:
    """Each motor saved once (version 1), with something of its own in its state."""
    return {
        motor_id: store.save(
            MotorState(motor_id=motor_id, run_hours=float(n), alarms={"schedule": AlarmStatus(held=n % 2 == 0)}),
            expected_version=0,
        )
        for n, motor_id in enumerate(motor_ids)
    }


def keys_asked(dynamodb: ThrottledDynamoDB) -> list[list[str]]:
    """The motor ids each BatchGetItem request named, in order."""
    return [
        [key["motor_id"]["S"] for key in call["RequestItems"][TABLE]["Keys"]]
        for call in dynamodb.made("batch_get_item")
    ]


@pytest.fixture
def dynamodb(aws: FakeAws) -> ThrottledDynamoDB:
    return ThrottledDynamoDB(client("dynamodb"))


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def store(dynamodb: ThrottledDynamoDB, waits: list[float]) -> DynamoBatchStateStore:
    return DynamoBatchStateStore(TABLE, dynamodb, sleep=waits.append)


def test_found_motors_come_back_as_load_gives_them_and_unseen_ones_as_none(
    store: DynamoBatchStateStore, dynamodb: ThrottledDynamoDB
) -> None:
    saved = stored(store, "motor-001", "motor-002")

    loaded = store.load_many(["motor-001", "motor-new", "motor-002", "motor-001"])

    assert set(loaded) == {"motor-001", "motor-002", "motor-new"}
    assert loaded["motor-new"] is None
    for motor_id, state in saved.items():
        one = store.load(motor_id)
        assert isinstance(loaded[motor_id], MotorState)
        assert loaded[motor_id] == one == state
        assert loaded[motor_id].version == 1  # type: ignore[union-attr]
    [request] = dynamodb.made("batch_get_item")
    assert request["RequestItems"][TABLE]["ConsistentRead"] is True  # the version read is the one saved against
    assert keys_asked(dynamodb) == [["motor-001", "motor-new", "motor-002"]]  # a repeated id asked once


def test_more_motors_than_one_request_takes_are_read_in_requests_of_100(
    store: DynamoBatchStateStore, dynamodb: ThrottledDynamoDB
) -> None:
    motors = [f"motor-{n:03d}" for n in range(250)]
    saved = stored(store, *motors[::2])

    loaded = store.load_many(motors)

    assert [len(keys) for keys in keys_asked(dynamodb)] == [BATCH_GET_KEYS, BATCH_GET_KEYS, 50]
    assert [motor for keys in keys_asked(dynamodb) for motor in keys] == motors
    assert loaded == {motor: saved.get(motor) for motor in motors}
    assert dynamodb.made("get_item") == []


def test_keys_left_unprocessed_are_asked_for_again_after_a_short_wait(
    store: DynamoBatchStateStore, dynamodb: ThrottledDynamoDB, waits: list[float]
) -> None:
    saved = stored(store, "motor-001", "motor-002", "motor-003")
    dynamodb.unprocessed, dynamodb.times = {"motor-002", "motor-003"}, 2

    loaded = store.load_many(list(saved))

    assert loaded == saved
    assert keys_asked(dynamodb) == [
        ["motor-001", "motor-002", "motor-003"],
        ["motor-002", "motor-003"],
        ["motor-002", "motor-003"],
    ]
    assert len(waits) == 2
    assert all(0 < wait <= bound for wait, bound in zip(waits, UNPROCESSED_RETRY_DELAYS_S, strict=False))


def test_keys_that_stay_unprocessed_fail_only_their_motors_after_a_bounded_wait(
    store: DynamoBatchStateStore, dynamodb: ThrottledDynamoDB, waits: list[float]
) -> None:
    saved = stored(store, "motor-001", "motor-002")
    dynamodb.unprocessed = {"motor-002", "motor-new"}

    loaded = store.load_many(["motor-001", "motor-002", "motor-new"])

    assert loaded["motor-001"] == saved["motor-001"]
    for motor_id in ("motor-002", "motor-new"):
        assert isinstance(loaded[motor_id], StoreUnavailable)
        assert "unprocessed" in str(loaded[motor_id])
    assert len(dynamodb.made("batch_get_item")) == 1 + len(UNPROCESSED_RETRY_DELAYS_S)
    assert sum(waits) <= sum(UNPROCESSED_RETRY_DELAYS_S) < 1.0


def test_a_refused_request_fails_the_motors_it_named_and_no_others(
    store: DynamoBatchStateStore, dynamodb: ThrottledDynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    motors = [f"motor-{n:03d}" for n in range(150)]
    saved = stored(store, *motors)
    answer = dynamodb.client.batch_get_item
    requests = []

    def second_refused(**kwargs: Any) -> Any:
        requests.append(kwargs)
        if len(requests) == 2:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "BatchGetItem")  # type: ignore[arg-type]
        return answer(**kwargs)

    monkeypatch.setattr(dynamodb.client, "batch_get_item", second_refused)

    loaded = store.load_many(motors)

    assert {motor: loaded[motor] for motor in motors[:100]} == {motor: saved[motor] for motor in motors[:100]}
    for motor in motors[100:]:
        assert isinstance(loaded[motor], StoreUnavailable)
        assert "slow down" in str(loaded[motor])


def test_an_item_that_cannot_be_parsed_fails_its_motor_alone(store: DynamoBatchStateStore, aws: FakeAws) -> None:
    saved = stored(store, "motor-001", "motor-002")
    aws.dynamodb.put_item(
        TableName=TABLE, Item={"motor_id": {"S": "motor-002"}, "version": {"N": "2"}, "state": {"S": "{not json"}}
    )

    loaded = store.load_many(["motor-001", "motor-002"])

    assert loaded["motor-001"] == saved["motor-001"]
    assert isinstance(loaded["motor-002"], json.JSONDecodeError)
    with pytest.raises(json.JSONDecodeError):  # what a single load of it raises
        store.load("motor-002")


def test_a_missing_table_fails_every_motor_without_raising(aws: FakeAws) -> None:
    store = DynamoBatchStateStore("no-such-table", client("dynamodb"), sleep=lambda _: None)

    loaded = store.load_many(["motor-001", "motor-002"])

    assert set(loaded) == {"motor-001", "motor-002"}
    assert all(isinstance(error, StoreUnavailable) for error in loaded.values())


def test_nothing_asked_nothing_read(store: DynamoBatchStateStore, dynamodb: ThrottledDynamoDB) -> None:
    assert store.load_many([]) == {}
    assert dynamodb.calls == []
