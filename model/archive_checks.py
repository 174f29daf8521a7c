"""The telemetry model's checks on whole columns, in DuckDB SQL: the archive reader's fast path past the model.

`clearly_valid` marks the rows that satisfy every check of `TelemetryEvent`, taken from the model itself
(its JSON schema's required fields, bounds and patterns) plus what the schema cannot say: the timestamp
(ISO-8601 with an offset, or epoch-ms digits, between 2000 and 2100), finite numbers, and the model's
two cross-field rules. Only the rows it marks skip the model; every other row is validated by the
model, which gives the reason. So the fast path can only ever be too cautious, and when the model
gains a validator this module does not know, nothing takes the fast path at all. `checked` gives
the same checks as a query, for one that reads the archive's Parquet.
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


def checked(source: str, types: dict[str, str]) -> str:
    """A query of `source`'s rows (columns of these DuckDB types) with two more columns: `_ok`, whether the row
    passes every check of the model (never NULL), and `_ts_ms`, the epoch ms of its `ts` (0 where not `_ok`)."""
    conditions = _conditions(types)
    if conditions is None:
        return f"SELECT *, false AS _ok, CAST(0 AS BIGINT) AS _ts_ms FROM ({source})"  # noqa: S608 - our own SQL
    text = types.get("ts") == "VARCHAR"
    # Each of the costly parts once: whether ts is digits, its ISO moment (a whole millisecond), then the rest.
    digits = "regexp_full_match(ts, '\\d{1,15}')" if text else "NULL"
    iso_us = f"CASE WHEN regexp_matches(ts, {literal(_ISO)}) THEN epoch_us(TRY_CAST(ts AS TIMESTAMPTZ)) END"
    parsed = f"SELECT *, {digits} AS _digits, {iso_us if text else 'NULL'} AS _iso_us FROM ({source})"  # noqa: S608
    stamp = "CASE WHEN _digits THEN TRY_CAST(ts AS BIGINT) WHEN _iso_us % 1000 = 0 THEN _iso_us // 1000 END"
    stamped = f"SELECT * EXCLUDE (_digits, _iso_us), CAST({stamp} AS BIGINT) AS _stamp FROM ({parsed})"  # noqa: S608
    conditions.append(f"_stamp >= {_EARLIEST_MS} AND _stamp < {_LATEST_MS}")
    ok = "coalesce(" + " AND ".join(f"({condition})" for condition in conditions) + ", false)"
    return (
        "SELECT * EXCLUDE (_stamp), CASE WHEN _ok THEN _stamp ELSE 0 END AS _ts_ms "  # noqa: S608 - our own SQL
        f"FROM (SELECT *, {ok} AS _ok FROM ({stamped}))"
    )


def _conditions(types: dict[str, str]) -> list[str] | None:
    """Every check but the timestamp's, as SQL conditions; None when a row cannot pass (a column missing)."""
    if CONSTRAINTS is None or set(types) - set(CONSTRAINTS):
        return None
    conditions = []
    for name, (required, spec) in CONSTRAINTS.items():
        if name == "ts" or name not in types:
            if required and name not in types:
                return None
            continue
        conditions.append(_column_ok(quoted(name), types[name], required, spec))
    conditions.append("NOT (fault IS NOT NULL AND coalesce(running, false))")
    conditions.append("(topic_motor_id IS NULL OR coalesce(topic_motor_id = motor_id, false))")
    return conditions


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
    typed = ", ".join(f"CAST({quoted(name)} AS {kind}) AS {quoted(name)}" for name, kind in types.items())
    query = f"SELECT _ok, _ts_ms FROM ({checked(f'SELECT {typed} FROM rows_in', types)})"  # noqa: S608 - our own SQL
    found = db.execute(query).fetchnumpy()
    unregister(db, "rows_in")
    return np.asarray(found["_ok"], dtype=bool), np.asarray(found["_ts_ms"], dtype=np.int64)


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
