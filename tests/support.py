"""Test support: sample events, a Lambda context, and a SageMaker runtime that computes from its input."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.errors import PublishFailed
from motor_maintenance.features import FEATURE_NAMES

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/, the same file `sam local invoke -e` uses."""
    path = EVENTS / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())


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


def wear_probability(row: list[float]) -> float:
    """A stand-in model: logistic in vibration and bearing-temperature trend, from the features sent.

    It is not the trained XGBoost model (that arrives with the model issue), but it answers each
    row from that row's own values, so a test sees probabilities move with the readings.
    """

    def value(name: str, default: float) -> float:
        v = row[_INDEX[name]]
        return default if math.isnan(v) else v

    score = 1.1 * (value("vibration_mm_s_ewm_1h", 2.0) - 6.0) + 0.08 * (value("bearing_temp_c", 60.0) - 85.0)
    return 1.0 / (1.0 + math.exp(-score))


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
    """Answers InvokeEndpoint like the built-in XGBoost container: one probability per CSV row."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.fail_with is not None:
            raise self.fail_with
        assert kwargs["ContentType"] == "text/csv"
        rows = kwargs["Body"].decode().splitlines()
        probabilities = []
        for line in rows:
            fields = line.split(",")
            assert len(fields) == len(FEATURE_NAMES), (
                f"row has {len(fields)} fields, model expects {len(FEATURE_NAMES)}"
            )
            probabilities.append(wear_probability([float(f) if f else math.nan for f in fields]))
        return {"Body": io.BytesIO("\n".join(f"{p:.6f}" for p in probabilities).encode()), "ContentType": "text/csv"}


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
