"""The telemetry model's checks on whole Arrow columns: the archive reader's fast path past a per-row validation.

`clearly_valid` marks the rows of a batch that satisfy every check of `TelemetryEvent`, taken from the
model itself (its JSON schema's required fields, bounds and patterns) plus what the schema cannot say:
the timestamp (ISO-8601 with an offset, or epoch-ms digits, between 2000 and 2100), finite numbers, and
the model's two cross-field rules. Only the rows it marks skip the model; every other row is validated
by the model, which gives the reason. So the fast path can only ever be too cautious, and when the
model gains a validator this module does not know, nothing takes the fast path at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from motor_maintenance.telemetry import EARLIEST_TS, LATEST_TS, TelemetryEvent, to_epoch_ms

KNOWN_MODEL_VALIDATORS = frozenset({"_stopped_motor_does_not_spin", "_topic_matches_payload"})
"""The model's cross-field rules this module applies (fault => not running; topic's id = motor_id)."""
_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
_EARLIEST_MS, _LATEST_MS = to_epoch_ms(EARLIEST_TS), to_epoch_ms(LATEST_TS)
_BOUNDS = (("minimum", pc.greater_equal), ("maximum", pc.less_equal))
_EXCLUSIVE = (("exclusiveMinimum", pc.greater), ("exclusiveMaximum", pc.less))


def _constraints() -> dict[str, tuple[bool, dict[str, Any]]] | None:
    """(required, JSON-schema constraints) per field; None if the model has rules this module does not apply."""
    decorators = TelemetryEvent.__pydantic_decorators__
    if set(decorators.model_validators) != KNOWN_MODEL_VALIDATORS or decorators.field_validators:
        return None
    schema = TelemetryEvent.model_json_schema()
    required = set(schema.get("required", ()))
    found = {}
    for name, spec in schema["properties"].items():
        options = [option for option in spec.get("anyOf", [spec]) if option.get("type") != "null"]
        if len(options) != 1:
            return None
        found[name] = (name in required, options[0])
    return found


CONSTRAINTS = _constraints()


def clearly_valid(batch: pa.RecordBatch) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(rows that pass every check of the model, epoch ms of `ts` for those rows, 0 elsewhere)."""
    rows = batch.num_rows
    ts_ms = np.zeros(rows, dtype=np.int64)
    if CONSTRAINTS is None or set(batch.schema.names) - set(CONSTRAINTS):
        return np.zeros(rows, dtype=bool), ts_ms
    ok = pa.array(np.ones(rows, dtype=bool))
    for name, (required, spec) in CONSTRAINTS.items():
        if name == "ts" or name not in batch.schema.names:
            if required and name not in batch.schema.names:
                return np.zeros(rows, dtype=bool), ts_ms
            continue
        ok = pc.and_(ok, _column_ok(batch[name], required, spec))
    fault, running = batch["fault"], batch["running"]
    ok = pc.and_(ok, pc.invert(pc.and_(pc.is_valid(fault), pc.fill_null(running, False))))
    topic, motor = batch["topic_motor_id"], batch["motor_id"]
    ok = pc.and_(ok, pc.or_(pc.is_null(topic), pc.fill_null(pc.equal(topic, motor), False)))
    stamp_ok, stamp_ms = _timestamps(batch["ts"])
    ok = pc.and_(ok, stamp_ok)
    mask = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
    ts_ms[mask] = stamp_ms[mask]
    return mask, ts_ms


def _column_ok(column: pa.Array, required: bool, spec: dict[str, Any]) -> pa.Array:
    """Null where allowed, else the right Arrow type within the schema's bounds and pattern."""
    kind = str(spec.get("type"))
    expected = {
        "string": pa.types.is_string,
        "integer": pa.types.is_integer,
        "number": pa.types.is_floating,
        "boolean": pa.types.is_boolean,
    }.get(kind)
    if expected is None or not expected(column.type):
        return pa.array(np.zeros(len(column), dtype=bool))
    ok = pc.is_valid(column)
    if kind == "number":
        ok = pc.and_(ok, pc.is_finite(column))
    for key, compare in (*_BOUNDS, *_EXCLUSIVE):
        if key in spec:
            ok = pc.and_(ok, compare(column, spec[key]))
    if "pattern" in spec:
        ok = pc.and_(ok, pc.match_substring_regex(column, spec["pattern"]))
    for key, compare in (("minLength", pc.greater_equal), ("maxLength", pc.less_equal)):
        if key in spec:
            ok = pc.and_(ok, compare(pc.utf8_length(column), spec[key]))
    ok = pc.fill_null(ok, False)
    return ok if required else pc.or_(ok, pc.is_null(column))


def _cast_iso(texts: pa.Array) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Arrow's ISO-8601 parse of each text: (parsed to a whole millisecond, epoch ms).

    A moment between milliseconds is left to the model, whose rounding decides its key; so is a text that
    is no moment (month 13), found by halving the texts until the cast fails on that one alone.
    """
    try:
        us = pc.cast(texts, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        if len(texts) == 1:
            return np.zeros(1, dtype=bool), np.zeros(1, dtype=np.int64)
        half = len(texts) // 2
        (ok_a, ms_a), (ok_b, ms_b) = _cast_iso(texts.slice(0, half)), _cast_iso(texts.slice(half))
        return np.concatenate([ok_a, ok_b]), np.concatenate([ms_a, ms_b])
    return us % 1000 == 0, us // 1000


def _timestamps(ts: pa.Array) -> tuple[pa.Array, np.ndarray[Any, Any]]:
    """Which `ts` texts are plausible moments the model accepts, and their epoch ms."""
    ms = np.zeros(len(ts), dtype=np.int64)
    digits = pc.fill_null(pc.match_substring_regex(ts, r"^\d{1,15}$"), False)
    iso = pc.fill_null(pc.match_substring_regex(ts, _ISO), False)
    digits_np, iso_np = (mask.to_numpy(zero_copy_only=False) for mask in (digits, iso))
    if digits_np.any():
        ms[digits_np] = pc.cast(ts.filter(digits), pa.int64()).to_numpy()
    if iso_np.any():
        where = np.flatnonzero(iso_np)
        parsed_ok, parsed_ms = _cast_iso(ts.take(pa.array(where)))
        iso_np[where[~parsed_ok]] = False
        ms[where[parsed_ok]] = parsed_ms[parsed_ok]
    plausible = (ms >= _EARLIEST_MS) & (ms < _LATEST_MS)
    return pa.array((digits_np | iso_np) & plausible), ms
