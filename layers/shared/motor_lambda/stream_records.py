"""The readings in a batch from TelemetryStream: each Kinesis record's data as the rule put it, and its reading."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from pydantic import ValidationError

from motor_maintenance.telemetry import TelemetryEvent


def raw(record: dict[str, Any]) -> bytes | None:
    """The record's data as the rule put it (None if it is not base64: no rule wrote it)."""
    try:
        return base64.b64decode(record["kinesis"]["data"], validate=True)
    except (KeyError, TypeError, AttributeError, binascii.Error, ValueError):
        return None


def decode(record: dict[str, Any]) -> tuple[Any, TelemetryEvent | Exception]:
    """The record's reading as the rule wrote it, validated as a direct invocation's event is, or why not."""
    data = raw(record)
    try:
        if data is None:
            raise ValueError("no base64 data")
        payload = json.loads(data)
    except ValueError as exc:
        kinesis = record.get("kinesis")
        shown = kinesis.get("data") if isinstance(kinesis, dict) else record
        return shown, ValueError(f"record data is not base64 of a JSON reading: {exc}")
    return payload, validated(payload)


def validated(payload: Any) -> TelemetryEvent | Exception:
    """The payload as a reading, validated as a direct invocation's event is, or why not."""
    try:
        return parse(event=payload, model=TelemetryEvent)
    except (ValidationError, ValueError, TypeError) as exc:
        return exc


def accepted(data: bytes) -> bool:
    """Whether a record's data is a JSON reading the schema accepts."""
    try:
        payload = json.loads(data)
    except ValueError:
        return False
    return not isinstance(validated(payload), Exception)
