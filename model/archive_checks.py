"""The telemetry model's checks on whole columns, in DuckDB SQL: the archive reader's fast path past the model.

`clearly_valid` marks the rows that satisfy every check of `TelemetryEvent`, taken from the model itself
(its JSON schema's required fields, bounds and patterns) plus what the schema cannot say: the timestamp
(ISO-8601 with an offset, or epoch-ms digits, between 2000 and 2100), finite numbers, and the model's
two cross-field rules. Only the rows it marks skip the model; every other row is validated by the
model, which gives the reason. So the fast path can only ever be too cautious, and when the model
gains a validator this module does not know, nothing takes the fast path at all. `checks_sql` gives
the same checks as SQL expressions, for a query that reads the archive's Parquet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from device.archive_layout import TELEMETRY_TYPES
from device.columnar import Table, literal, quoted, register, session, unregister
from motor_maintenance.telemetry import EARLIEST_TS, LATEST_TS, TelemetryEvent, to_epoch_ms

KNOWN_MODEL_VALIDATORS = frozenset({"_stopped_motor_does_not_spin", "_topic_matches_payload"})
"""The model's cross-field rules this module applies (fault => not running; topic's id = motor_id)."""
_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
_EARLIEST_MS, _LATEST_MS = to_epoch_ms(EARLIEST_TS), to_epoch_ms(LATEST_TS)
_BOUNDS = (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<"))
_LENGTHS = (("minLength", ">="), ("maxLength", "<="))
_KINDS = {
    "string": ("VARCHAR",),
    "integer": ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"),
    "number": ("DOUBLE", "FLOAT"),
    "boolean": ("BOOLEAN",),
}
"""The DuckDB types that hold each JSON-schema type."""


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


def checks_sql(types: dict[str, str]) -> tuple[str, str]:
    """SQL over columns of these DuckDB types: (a row passes every check of the model, epoch ms of `ts` where it does).

    The first is never NULL; the second is 0 where the first is false.
    """
    if CONSTRAINTS is None or set(types) - set(CONSTRAINTS):
        return "false", "CAST(0 AS BIGINT)"
    conditions = []
    for name, (required, spec) in CONSTRAINTS.items():
        if name == "ts" or name not in types:
            if required and name not in types:
                return "false", "CAST(0 AS BIGINT)"
            continue
        conditions.append(_column_ok(quoted(name), types[name], required, spec))
    conditions.append("NOT (fault IS NOT NULL AND coalesce(running, false))")
    conditions.append("(topic_motor_id IS NULL OR coalesce(topic_motor_id = motor_id, false))")
    stamp = _ts_ms_sql() if types.get("ts") == "VARCHAR" else "NULL"
    conditions.append(f"({stamp}) >= {_EARLIEST_MS} AND ({stamp}) < {_LATEST_MS}")
    ok = "coalesce(" + " AND ".join(f"({condition})" for condition in conditions) + ", false)"
    return ok, f"CASE WHEN {ok} THEN CAST({stamp} AS BIGINT) ELSE 0 END"


def clearly_valid(table: Table) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """(rows that pass every check of the model, epoch ms of `ts` for those rows, 0 elsewhere)."""
    rows = table.num_rows
    if rows == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    db = session()
    register(db, "rows_in", table)
    types = {name: TELEMETRY_TYPES.get(name, "") for name in table.column_names}
    described = {str(row[0]): str(row[1]) for row in db.execute("DESCRIBE rows_in").fetchall()}
    types = {name: kind or described[name] for name, kind in types.items()}  # the table's own type when not one of ours
    ok, ts_ms = checks_sql(types)
    typed = ", ".join(f"CAST({quoted(name)} AS {kind}) AS {quoted(name)}" for name, kind in types.items())
    query = f"SELECT {ok} AS ok, {ts_ms} AS ts_ms FROM (SELECT {typed} FROM rows_in)"  # noqa: S608 - our own names
    found = db.execute(query).fetchnumpy()
    unregister(db, "rows_in")
    return np.asarray(found["ok"], dtype=bool), np.asarray(found["ts_ms"], dtype=np.int64)


def _column_ok(column: str, kind: str, required: bool, spec: dict[str, Any]) -> str:
    """Null where allowed, else the right type within the schema's bounds and pattern."""
    if kind not in _KINDS.get(str(spec.get("type")), ()):
        return "false"
    checks = [f"{column} IS NOT NULL"]
    if spec.get("type") == "number":
        checks.append(f"isfinite({column})")
    checks += [f"{column} {compare} {spec[key]!r}" for key, compare in _BOUNDS if key in spec]
    if "pattern" in spec:
        checks.append(f"regexp_matches({column}, {literal(spec['pattern'])})")
    checks += [f"length({column}) {compare} {spec[key]}" for key, compare in _LENGTHS if key in spec]
    ok = "coalesce(" + " AND ".join(checks) + ", false)"
    return ok if required else f"({ok} OR {column} IS NULL)"


def _ts_ms_sql() -> str:
    """Epoch ms of a `ts` text: epoch-ms digits, or ISO 8601 with an offset at a whole millisecond; else NULL.

    A moment between milliseconds is left to the model, whose rounding decides its key; so is a text that
    is no moment (month 13).
    """
    iso_us = "epoch_us(TRY_CAST(ts AS TIMESTAMPTZ))"
    return (
        "CASE WHEN regexp_full_match(ts, '\\d{1,15}') THEN CAST(ts AS BIGINT) "
        f"WHEN regexp_matches(ts, {literal(_ISO)}) AND {iso_us} % 1000 = 0 THEN {iso_us} // 1000 END"
    )
