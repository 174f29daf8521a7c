"""What the design stores and sends, measured with the project's own code: the bytes behind scripts/costs.py.

A motor's state item as `DynamoStateStore.save` writes it (every alarm in use, the largest it gets), a
reading's payload and feature row, and a console history entry, each counted as the service bills it.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def measured_sizes(action_ids: int = 10) -> dict[str, int]:
    """A reading's payload and topic, its feature row, and the state item after two days of a running motor.

    The state has `action_ids` operator actions remembered (UUIDs; the detector keeps the last 50), the
    predictive alarm's drivers, a failure reported, and every alarm of the default configuration in use (each
    with every time of its bookkeeping set), as a motor that has been through a few alarms has.
    """
    from dataclasses import replace as copy  # noqa: PLC0415 - heavy imports only when sizes are measured

    from device.history import generate  # noqa: PLC0415
    from device.physics import DAY_S, FleetConfig  # noqa: PLC0415
    from motor_adapters.dynamodb_store import DynamoStateStore  # noqa: PLC0415
    from motor_adapters.history_store import DynamoHistoryWriter  # noqa: PLC0415
    from motor_maintenance.config import DetectorConfig  # noqa: PLC0415
    from motor_maintenance.detector import ReadingInput, step  # noqa: PLC0415
    from motor_maintenance.features import compute_features, to_csv_row  # noqa: PLC0415
    from motor_maintenance.history import entry_for  # noqa: PLC0415
    from motor_maintenance.prediction import Driver  # noqa: PLC0415
    from motor_maintenance.state import FailureRecord, MotorState  # noqa: PLC0415

    history = generate(FleetConfig(motors=1, seed=7, continuous_fraction=1.0), duration_s=2 * DAY_S)
    config, state = DetectorConfig(), None
    drivers = (
        Driver(feature="bearing_temp_c_trend", contribution=1.4213),
        Driver(feature="vibration_mm_s_ewm_1h", contribution=0.8731),
        Driver(feature="winding_heating_k_per_a2_drift", contribution=0.2145),
    )
    row = ""
    payload = 0
    for t in range(history.steps):
        reading = history.reading(t, 0)
        features, stats = compute_features(reading, state.stats if state else None)
        probability = 0.23 if reading.running else None
        item = ReadingInput(reading, probability, drivers if probability is not None else ())
        now = datetime.fromtimestamp(reading.ts_ms / 1000 + 1, UTC)
        state = copy(step(state, item, now, config).state, stats=stats)
        row = to_csv_row(features)
        body = json.dumps(reading.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
        payload = len(body.encode()) + len(f"motors/{reading.motor_id}/telemetry")
    if not isinstance(state, MotorState):
        raise RuntimeError("no reading was applied")
    state = copy(
        _every_alarm_in_use(state),
        recent_action_ids=tuple(_uuid(i) for i in range(action_ids)),
        last_failure=FailureRecord(state.last_ts_ms or 0, "bearing_wear", "a-failure-report-1"),
        probability_model_version="m-" + "0123456789ab",  # a model's version as model/artifact.py writes it
    )
    captured: dict[str, Any] = {}

    class _Capture:
        def put_item(self, **kwargs: Any) -> None:
            captured.update(kwargs["Item"])

    DynamoStateStore("state", _Capture()).save(state, expected_version=41)
    state_bytes = dynamodb_item_bytes(captured)
    captured.clear()
    entry = entry_for(state, None)
    if entry is None:
        raise RuntimeError("the measured state makes no history entry")
    DynamoHistoryWriter("history", _Capture()).record(copy(entry, transitions=()))  # a sampled reading's entry
    return {
        "payload_bytes": payload,
        "row_bytes": len(row.encode()),
        "state_item_bytes": state_bytes,
        "history_entry_bytes": dynamodb_item_bytes(captured),
    }


PLATFORM_LOG_LEVELS = ("WARN", "INFO")
"""The template's PlatformLogLevel values the cost model prices (DEBUG adds more lines: it is for debugging)."""


def platform_log_bytes(level: str) -> int:
    """Lambda's own log lines for one invocation at a system log level, in the JSON format the template sets.

    At INFO Lambda writes `platform.start` and `platform.report` for each invocation; at WARN neither, only
    rare warnings, counted as nothing here (Lambda developer guide, "Log-level filtering"). The two records
    have the fields of the Telemetry API's schema, which the JSON system logs share, with the values of a
    warm invocation of a traced function.
    """
    if level not in PLATFORM_LOG_LEVELS:
        raise ValueError(f"system log level {level!r} is not priced; choose from {', '.join(PLATFORM_LOG_LEVELS)}")
    if level == "WARN":
        return 0
    request_id = _uuid(0)
    tracing = {
        "spanId": "6a4b1c2d3e4f5a6b",
        "type": "X-Amzn-Trace-Id",
        "value": "Root=1-674f1a2b-0123456789abcdef01234567;Parent=6a4b1c2d3e4f5a6b;Sampled=1",
    }
    time = "2026-11-28T12:00:00.123Z"
    start = {
        "time": time,
        "type": "platform.start",
        "record": {"requestId": request_id, "version": "$LATEST", "tracing": tracing},
    }
    metrics = {"durationMs": 47.52, "billedDurationMs": 48, "memorySizeMB": 512, "maxMemoryUsedMB": 171}
    report = {
        "time": time,
        "type": "platform.report",
        "record": {"requestId": request_id, "metrics": metrics, "tracing": tracing, "status": "success"},
    }
    return sum(len(json.dumps(line, separators=(",", ":")).encode()) + 1 for line in (start, report))


def _uuid(n: int) -> str:
    """A UUID as random as an operator tool's, the same every run."""
    return str(uuid.UUID(bytes=hashlib.sha256(b"%d" % n).digest()[:16]))


def _every_alarm_in_use(state: Any) -> Any:
    """The state with each alarm away from NORMAL and every time of its bookkeeping set (the largest it gets)."""
    from motor_maintenance.alarms import AlarmState  # noqa: PLC0415
    from motor_maintenance.state import AlarmStatus  # noqa: PLC0415

    at = state.last_ts_ms or 0
    busy = (AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED, AlarmState.SNOOZED, AlarmState.LATCHED)
    alarms = {
        name: AlarmStatus(busy[i % len(busy)], True, at - 61_000, i, at - 3_600_000, at + 3_600_000, 212.5, at)
        for i, name in enumerate(state.alarms)
    }
    state.alarms = alarms
    return state


def dynamodb_item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it: attribute names plus values (strings in UTF-8, numbers by digits)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: Mapping[str, Any]) -> int:
    (kind, inner), = value.items()  # fmt: skip
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = len(str(inner).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_bytes(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_bytes(v) + 1 for v in inner)
    raise ValueError(f"attribute type {kind} is not sized here")


# --- output ----------------------------------------------------------------------------------
