"""Test support: sample events, a Lambda context, in-memory ports, a SageMaker runtime computing from its input."""

from __future__ import annotations

import base64
import fcntl
import importlib.util
import io
import json
import math
import os
import pickle
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.errors import PublishFailed, VersionConflict
from motor_maintenance.features import FEATURE_NAMES
from motor_maintenance.state import MotorState

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/, the same file `sam local invoke -e` uses."""
    path = EVENTS / (name if name.endswith(".json") else f"{name}.json")
    event: dict[str, Any] = json.loads(path.read_text())
    return event


def load_handler(function: str) -> ModuleType:
    """Import functions/<function>/app.py under a unique name (every handler is called app.py)."""
    name = f"{function}_app"
    sys.modules.pop(name, None)
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / function / "app.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    """The attributes Powertools reads from the Lambda context."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 30_000
    """The template's Timeout: a handler starts with all of it (tests/unit/test_timeout_budget.py checks)."""

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def wear_contributions(row: list[float]) -> dict[str, float]:
    """A stand-in model: log-odds terms in vibration and bearing temperature, from the features sent.

    It is not the trained XGBoost model (that arrives with the model issue), but it answers each
    row from that row's own values, so a test sees probabilities move with the readings. Its terms
    are what XGBoost's pred_contribs gives for the real one: each feature's share of the log-odds.
    """

    def value(name: str, default: float) -> float:
        v = row[_INDEX[name]]
        return default if math.isnan(v) else v

    return {
        "vibration_mm_s_ewm_1h": 1.1 * (value("vibration_mm_s_ewm_1h", 2.0) - 6.0),
        "bearing_temp_c": 0.08 * (value("bearing_temp_c", 60.0) - 85.0),
    }


def wear_probability(row: list[float]) -> float:
    """The stand-in model's probability of failure for one feature row."""
    return 1.0 / (1.0 + math.exp(-sum(wear_contributions(row).values())))


def wear_drivers(row: list[float]) -> list[dict[str, Any]]:
    """The endpoint contract's drivers: up to 3 features with a positive contribution, largest first."""
    positive = sorted(((c, f) for f, c in wear_contributions(row).items() if c > 0), reverse=True)
    return [{"feature": feature, "contribution": round(c, 6)} for c, feature in positive[:3]]


@dataclass
class MemoryStore:
    """A BatchStateStore with DynamoDB's conditional-write semantics, and a hook to simulate a rival writer.

    It counts its reads: `loads` (one motor each) and `batch_loads` (the motor ids of each `load_many`).
    """

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    before_save: Callable[[MemoryStore], None] | None = None
    saves: int = 0
    loads: int = 0
    batch_loads: list[list[str]] = field(default_factory=list)

    def load(self, motor_id: str) -> MotorState | None:
        self.loads += 1
        return self.read(motor_id)

    def load_many(self, motor_ids: Sequence[str]) -> dict[str, MotorState | Exception | None]:
        """Each motor as `read` gives it, a failure kept to its motor (as DynamoBatchStateStore does)."""
        self.batch_loads.append(list(motor_ids))
        loaded: dict[str, MotorState | Exception | None] = {}
        for motor_id in dict.fromkeys(motor_ids):
            try:
                loaded[motor_id] = self.read(motor_id)
            except Exception as exc:
                loaded[motor_id] = exc
        return loaded

    def remembered(self, motor_id: str) -> MotorState | None:
        """No copy kept: every unit of work reads (DynamoStateStore's copies are tested against moto)."""
        return None

    def read(self, motor_id: str) -> MotorState | None:
        """One motor's state: what both loads return (a store that fails some motors overrides this)."""
        item = self.items.get(motor_id)
        return None if item is None else MotorState.from_dict(item)

    def save(self, state: MotorState, expected_version: int) -> MotorState:
        if self.before_save is not None:
            hook, self.before_save = self.before_save, None
            hook(self)
        current = self.items.get(state.motor_id)
        current_version = 0 if current is None else current["version"]
        if current_version != expected_version:
            raise VersionConflict(f"expected {expected_version}, found {current_version}")
        stored = MotorState.from_dict(state.to_dict())
        stored.version = expected_version + 1
        self.items[state.motor_id] = stored.to_dict()
        self.saves += 1
        return stored


class ThrottledDynamoDB:
    """A DynamoDB client (moto's) that records every call and, as DynamoDB does when it throttles a
    BatchGetItem, answers some motors' keys as `UnprocessedKeys` instead of reading them.

    `unprocessed`: the motors whose keys are left; `times`: in how many requests they are left before being
    read (None: in every one). Other keys, and every other call, go to the client as they are.
    """

    def __init__(self, client: Any, unprocessed: set[str] | None = None, times: int | None = None) -> None:
        self.client = client
        self.unprocessed = set(unprocessed or ())
        self.times = times
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if not callable(method):
            return method

        def recorded(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return method(**kwargs)

        return recorded

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("batch_get_item", kwargs))
        leaving = self.times is None or self.times > 0
        if self.times is not None and self.times > 0:
            self.times -= 1
        asked: dict[str, Any] = {}
        left: dict[str, Any] = {}
        for table, request in kwargs["RequestItems"].items():
            keys = request["Keys"]
            kept = [k for k in keys if not (leaving and k["motor_id"]["S"] in self.unprocessed)]
            if kept:
                asked[table] = {**request, "Keys": kept}
            if len(kept) < len(keys):
                left[table] = {**request, "Keys": [k for k in keys if k not in kept]}
        response: dict[str, Any] = (
            self.client.batch_get_item(**{**kwargs, "RequestItems": asked}) if asked else {"Responses": {}}
        )
        response["UnprocessedKeys"] = left
        return response

    def made(self, name: str) -> list[dict[str, Any]]:
        """The arguments of each call of `name` (a boto3 method name) made so far."""
        return [kwargs for called, kwargs in self.calls if called == name]


@dataclass
class Recorder:
    """An EventPublisher that records, and can fail the next N publishes."""

    events: list[AlarmEvent] = field(default_factory=list)
    fail_next: int = 0

    def publish(self, event: AlarmEvent) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise PublishFailed("broker unreachable")
        self.events.append(event)


@dataclass
class FakeSageMakerRuntime:
    """Answers InvokeEndpoint like the project's endpoint: per CSV row, a probability and, in JSON, its drivers.

    With `explains` off it answers JSON as SageMaker's plain built-in XGBoost algorithm does: scores only.
    """

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None
    explains: bool = True
    model_version: str = "m-5e1f00d0a1b2"
    """Quoted in the JSON answer, as model/inference.py quotes the served artifact's (not when `explains` is off)."""

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.fail_with is not None:
            raise self.fail_with
        assert kwargs["ContentType"] == "text/csv"
        rows = []
        for line in kwargs["Body"].decode().splitlines():
            fields = line.split(",")
            assert len(fields) == len(FEATURE_NAMES), (
                f"row has {len(fields)} fields, model expects {len(FEATURE_NAMES)}"
            )
            rows.append([float(f) if f else math.nan for f in fields])
        if kwargs.get("Accept", "text/csv") == "text/csv":
            body = "\n".join(f"{wear_probability(row):.6f}" for row in rows)
            return {"Body": io.BytesIO(body.encode()), "ContentType": "text/csv"}
        assert kwargs["Accept"] == "application/json"
        predictions = [
            {"score": round(wear_probability(row), 6), **({"drivers": wear_drivers(row)} if self.explains else {})}
            for row in rows
        ]
        answer: dict[str, Any] = {"predictions": predictions}
        if self.explains:
            answer["model_version"] = self.model_version
        return {
            "Body": io.BytesIO(json.dumps(answer).encode()),
            "ContentType": "application/json",
        }


T0_MS = 1_795_780_800_000  # 2026-11-27T12:00:00Z


def reading_payload(seq: int = 1, *, at_s: float = 0.0, motor_id: str = "motor-001", **signals: Any) -> dict[str, Any]:
    """A healthy running pump's reading, `at_s` seconds after T0, with any signal overridden."""
    payload: dict[str, Any] = {
        "motor_id": motor_id,
        "motor_type": "pump-37kw",
        "ts": T0_MS + round(at_s * 1000),
        "seq": seq,
        "running": True,
        "speed_rpm": 1480.0,
        "torque_nm": 230.0,
        "current_a": 64.0,
        "winding_temp_c": 78.0,
        "bearing_temp_c": 62.0,
        "fluid_temp_c": 84.0,
        "ambient_temp_c": 24.0,
        "vibration_mm_s": 2.4,
        "pressure_bar": 6.1,
        "flow_m3h": 118.0,
    }
    payload.update(signals)
    return {key: value for key, value in payload.items() if value is not None}


STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/motor-maintenance-TelemetryStream"


def kinesis_batch(
    payloads: list[Any], *, first_sequence: int = 49_656_000_000_000_000_000_000_000_000_000_000_000_000_000
) -> dict[str, Any]:
    """A Lambda event from TelemetryStream's event source mapping: each payload as the rule wrote it (JSON).

    A payload that is bytes is sent as is (a record that is not JSON).
    """
    records = []
    for i, payload in enumerate(payloads):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        key = payload.get("topic_motor_id") or payload.get("motor_id") if isinstance(payload, dict) else "unknown"
        sequence = str(first_sequence + i)
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": str(key),
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1795780800.5 + i,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/motor-maintenance-InferenceRole",
                "awsRegion": "eu-west-1",
                "eventSourceARN": STREAM_ARN,
            }
        )
    return {"Records": records}


T = TypeVar("T")


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], T]) -> tuple[T, Path]:
    """`make(folder)` done once per test run, its result and folder shared by every pytest-xdist worker.

    The first worker to come makes it under a lock in the run's temporary folder (the workers' common
    parent); the others wait for it and read the result back.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / name, shared / f"{name}.pickle"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            folder.mkdir(exist_ok=True)
            done.write_bytes(pickle.dumps(make(folder)))
    result: T = pickle.loads(done.read_bytes())  # noqa: S301 - written just above by this run
    return result, folder


def metrics_of(output: str) -> dict[str, float]:
    """The sum of every EMF metric value an invocation printed, by name."""
    values: dict[str, float] = {}
    for line in output.splitlines():
        if '"CloudWatchMetrics"' not in line:
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[definition["Name"]]
            name = definition["Name"]
            values[name] = values.get(name, 0.0) + (sum(value) if isinstance(value, list) else value)
    return values


def svg_elements(path: Path, kind: str | None = None) -> list[ET.Element]:
    """The elements of an SVG plot we wrote (model/svg.py), those with class `kind` if given."""
    root = ET.parse(path).getroot()  # noqa: S314 - a file the code under test just wrote, not untrusted input
    assert root.tag == "{http://www.w3.org/2000/svg}svg", f"{path} is not an SVG document"
    return [element for element in root.iter() if kind is None or element.get("class") == kind]
