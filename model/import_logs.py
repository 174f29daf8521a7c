"""A historian's failure log and service log as the archive's operator actions, the labels training reads.

Each failure becomes the `report_failure` an operator would have sent (`failed_at` and `ts` the logged
time, `failure_mode` the log's description made a mode name), each service a `service_complete` at
the time it was completed, both validated with the `OperatorAction` model the functions use. Action
ids are derived from (action, motor, time): importing the same log twice archives the same actions,
which the reader counts once.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from model.import_convert import Moments, RowChecks
from model.import_mapping import LogSpec
from model.import_sources import Rows
from motor_maintenance.alarms import NOTE_MAX, ActionName, OperatorAction

OPERATOR = "historian-import"
"""Who the imported actions name as their operator."""
UNNAMED_MODE = "other"
"""The mode of a failure the log does not describe (no mode column, or a blank cell)."""
_IDS = uuid.UUID("6f1c8e52-3b0a-4c1e-9d55-0f2a7b9e4c10")
MODE_CHARS = 40


def failure_mode(description: str | None) -> str:
    """A log's description as a failure mode name: lower case, words joined by '_', at most 40 characters."""
    words = re.findall(r"[a-z0-9]+", (description or "").lower())
    mode = "_".join(words)[:MODE_CHARS].rstrip("_")
    if not mode:
        return UNNAMED_MODE
    return mode if mode[0].isalpha() else f"mode_{mode}"[:MODE_CHARS].rstrip("_")


class LogConverter:
    """Turns batches of a failure or service log into actions; `refused` counts the rows it could not."""

    def __init__(self, spec: LogSpec) -> None:
        self.spec = spec
        self.action = ActionName.REPORT_FAILURE if spec.section == "failures" else ActionName.SERVICE_COMPLETE
        self.moments = Moments(spec.timestamp, f"{spec.section}.timestamp")
        self.refused: Counter[str] = Counter()

    def convert(self, rows: Rows, source: str) -> list[tuple[dict[str, Any], int]]:
        """(action as archived, its time in epoch ms) for each row that makes a valid action."""
        spec = self.spec
        checks = RowChecks(rows.num_rows, self.refused)
        motors = rows.text(spec.motor_id)
        checks.require(motors != None, f"{spec.motor_id}: blank")  # noqa: E711 - element-wise
        ms = self.moments.epoch_ms(rows, motors, checks)
        descriptions = rows.text(spec.mode).tolist() if spec.mode is not None else [None] * rows.num_rows
        actions = []
        for index in np.flatnonzero(checks.ok).tolist():
            motor_id, at_ms = str(motors[index]), int(ms[index])
            record = self._action(motor_id, at_ms, descriptions[index], source)
            try:
                OperatorAction.model_validate(record)
            except ValidationError as exc:
                error = exc.errors(include_url=False, include_input=False)[0]
                field = ".".join(str(part) for part in error["loc"]) or "action"
                column = {"motor_id": spec.motor_id, "ts": spec.timestamp.column, "failed_at": spec.timestamp.column}
                where = f"{field} ({column[field]})" if field in column else field
                self.refused[f"{where}: {error['msg'].removeprefix('Value error, ')}"] += 1
                continue
            actions.append((record, at_ms))
        return actions

    def _action(self, motor_id: str, at_ms: int, description: str | None, source: str) -> dict[str, Any]:
        at = datetime.fromtimestamp(at_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        identity = uuid.uuid5(_IDS, f"{self.action.value}/{motor_id}/{at_ms}")
        record: dict[str, Any] = {
            "motor_id": motor_id,
            "action": self.action.value,
            "action_id": f"import-{identity}",
            "ts": at,
            "operator": OPERATOR,
        }
        if self.action is ActionName.REPORT_FAILURE:
            note = f"{description} (imported from {source})" if description else f"imported from {source}"
            record.update(note=note[:NOTE_MAX], failed_at=at, failure_mode=failure_mode(description))
        else:
            record["note"] = f"imported from {source}"[:NOTE_MAX]
        return record
