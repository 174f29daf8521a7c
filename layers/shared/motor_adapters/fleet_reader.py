"""The console's read of the motors' state table: every motor (Scan), one motor (GetItem). Never writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_adapters.dynamodb_pages import items
from motor_adapters.state_item import LEGACY_STATE_ATTRIBUTE, STATE_ATTRIBUTE, state_of
from motor_maintenance.errors import StoreUnavailable
from motor_maintenance.state import MotorState


class DynamoFleetReader:
    """Implements motor_maintenance.ports.FleetReader on the state table (motor_adapters.dynamodb_store's items).

    Eventually consistent reads: half the read units of a strongly consistent one, and a page a second
    behind is as good as current. Items without a state (the model's health item) are not motors; both
    item formats are read (motor_adapters.state_item).
    """

    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def motors(self) -> Iterator[MotorState]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "ProjectionExpression": "motor_id, #version, #state, #legacy",
            "ExpressionAttributeNames": {
                "#version": "version",
                "#state": STATE_ATTRIBUTE,
                "#legacy": LEGACY_STATE_ATTRIBUTE,
            },
        }
        scan = items(lambda start: self._client.scan(**request, **start), failure="cannot read the motors' states")
        for item in scan:
            if _holds_state(item):
                yield state_of(item)

    def motor(self, motor_id: str) -> MotorState | None:
        try:
            response = self._client.get_item(TableName=self._table, Key={"motor_id": {"S": motor_id}})
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"cannot read the state of {motor_id}: {exc}") from exc
        item = response.get("Item")
        if item is None or not _holds_state(item):
            return None
        return state_of(item)


def _holds_state(item: dict[str, Any]) -> bool:
    """A motor's item (either format), not the model's health item."""
    return STATE_ATTRIBUTE in item or LEGACY_STATE_ATTRIBUTE in item
