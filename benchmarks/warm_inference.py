"""Warm per-reading CPU time of the inference handler, against a bare single-row XGBoost prediction.

The handler (functions/inference/app.py, imported as Lambda does, with the template's variables)
processes a realistic stream of readings from running motors (device/history.py). AWS is answered
in-process, behind botocore's HTTP layer, so every client call costs the handler what it costs in
Lambda: DynamoDB, the IoT data plane and SSM by moto's mock_aws, the SageMaker endpoint's
InvokeEndpoint by the real artifact through model/inference.py (input_fn, predict_fn, output_fn).
Requests are signed with botocore's own SigV4, as in Lambda, whose runtime and our layer have no
awscrt (installed here for the device SDK, it would sign instead). Everything runs in this thread, so
the thread's CPU time per reading holds three parts, and the two that are not the Lambda's are timed
on their own:

- moto's share: its request parsing, backend and response (BotocoreStubber.process_request);
- the model server's share: inference.py's work, which runs on SageMaker in production;
- the rest is the Lambda's own: parsing, features, detector, botocore's request building, signing
  and response parsing (the endpoint's call included), Powertools' logs and metrics (written to a
  file and counted: what CloudWatch Logs would ingest, besides Lambda's own START, END and REPORT
  lines).

The floor is `Booster.inplace_predict` of one row on the same booster: the least work any design that
scores every reading must do. The X-Ray tracer is off here, as the template leaves it unless FunctionTracing
is Active, and as in the tests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import xgboost as xgb
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from benchmarks.report import REPO, Figure, ratio
from device.history import History, generate
from device.physics import DAY_S, FleetConfig
from model import inference

ENDPOINT_NAME = "bench-endpoint"
STATE_TABLE = "bench-state"
CONFIG_PARAMETER = "/bench/detector-config"


@dataclass
class ArtifactEndpoint:
    """InvokeEndpoint answered by the artifact's inference.py behind botocore's HTTP layer; its CPU time is summed.

    `answer` is a botocore before-send handler: the client has built, validated and signed the
    request, and parses the response, as it does against SageMaker.
    """

    booster: xgb.Booster
    cpu_s: float = 0.0
    last_exchange: tuple[bytes, bytes] = (b"", b"")
    """The last request's body and the answer's: what a reading sends and gets back."""

    def answer(self, request: Any, **_: Any) -> AWSResponse:
        started = time.thread_time()
        content_type, accept = (_text(request.headers[name]) for name in ("Content-Type", "Accept"))
        rows = inference.read_rows(request.body, content_type)  # the container's steps, raising on a bad request
        body, content_type = inference.serialise(inference.score(rows, self.booster), accept)
        payload = body.encode()
        self.cpu_s += time.thread_time() - started
        self.last_exchange = (request.body, payload)
        return _response(request.url, payload, content_type)


def _response(url: str, body: bytes, content_type: str) -> AWSResponse:
    """A 200 answer as botocore receives one from AWS."""
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "x-amzn-requestid": "bench"}
    return AWSResponse(url, 200, HTTPHeaders.from_dict(headers), _Raw(body))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class _Raw:
    """The raw HTTP body botocore reads a response from (urllib3's HTTPResponse, in production)."""

    data: bytes

    def read(self, amt: int | None = None) -> bytes:
        data, self.data = (self.data, b"") if amt is None else (self.data[:amt], self.data[amt:])
        return data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.read()


@contextlib.contextmanager
def botocore_sigv4() -> Iterator[None]:
    """Sign with botocore's Python SigV4, as in Lambda, even where awscrt is installed (botocore prefers it)."""
    import botocore.auth  # noqa: PLC0415 - the benchmark's own process imports botocore late

    saved = dict(botocore.auth.AUTH_TYPE_MAPS)
    botocore.auth.AUTH_TYPE_MAPS.update({"v4": botocore.auth.SigV4Auth, "v4-query": botocore.auth.SigV4QueryAuth})
    try:
        yield
    finally:
        botocore.auth.AUTH_TYPE_MAPS.clear()
        botocore.auth.AUTH_TYPE_MAPS.update(saved)


@dataclass
class MotoMeter:
    """Sums the CPU time moto spends answering requests (its stubber's process_request)."""

    cpu_s: float = 0.0
    calls: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    """Requests by operation (`dynamodb.BatchGetItem`, say)."""
    _original: Any = field(default=None, repr=False)

    @contextlib.contextmanager
    def installed(self) -> Iterator[MotoMeter]:
        from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415 - moto only while measuring

        original = BotocoreStubber.process_request
        meter = self

        def timed(stubber: Any, request: Any) -> Any:
            started = time.thread_time()
            try:
                return original(stubber, request)
            finally:
                meter.cpu_s += time.thread_time() - started
                meter.calls += 1
                operation = _operation(request)
                meter.by_operation[operation] = meter.by_operation.get(operation, 0) + 1

        BotocoreStubber.process_request = timed  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            BotocoreStubber.process_request = original  # type: ignore[method-assign]


def _operation(request: Any) -> str:
    """What a botocore request asks: `dynamodb.BatchGetItem` (a JSON protocol's target), else its method and URL."""
    target = _text(request.headers.get("X-Amz-Target") or "")
    if target.startswith("DynamoDB_"):
        return f"dynamodb.{target.rpartition('.')[2]}"
    return target or f"{request.method} {request.url.split('://', 1)[-1].split('?', 1)[0]}"


def load_booster(artifact: Path) -> xgb.Booster:
    """The booster as SageMaker's script mode loads it: the tarball unpacked, then model_fn."""
    with tempfile.TemporaryDirectory(prefix="bench-model-") as folder, tarfile.open(artifact) as archive:
        archive.extractall(folder, filter="data")
        return inference.model_fn(folder)


def running_events(count: int, *, motors: int = 4, seed: int = 21) -> list[dict[str, Any]]:
    """`count` readings of running motors, in time order, as TelemetryRule delivers them."""
    days = 2.0
    while True:
        history = generate(FleetConfig(motors=motors, seed=seed, continuous_fraction=1.0), duration_s=days * DAY_S)
        events = list(_events(history))
        if len(events) >= count:
            return events[:count]
        days *= 2


def _events(history: History) -> Iterator[dict[str, Any]]:
    for t in range(history.steps):
        for column, motor_id in enumerate(history.motor_ids):
            if history.running[t, column]:
                payload = history.reading(t, column).model_dump(mode="json", exclude_none=True)
                yield {**payload, "topic_motor_id": motor_id, "received_at": int(history.ts_ms[t]) + 50}


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith(("AWS_", "POWERTOOLS_"))]:
        del os.environ[name]
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class StdoutMeter:
    """Bytes the handler wrote to fd 1 (its logs and EMF metrics, what CloudWatch Logs would ingest)."""

    bytes: int = 0

    @contextlib.contextmanager
    def captured(self) -> Iterator[StdoutMeter]:
        sys.stdout.flush()
        saved = os.dup(1)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            try:
                yield self
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
                os.close(saved)
                self.bytes += sink.seek(0, os.SEEK_END)


def _load_handler() -> ModuleType:
    name = "bench_inference_app"
    sys.modules.pop(name, None)
    spec = importlib.util.spec_from_file_location(name, REPO / "functions" / "inference" / "app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load functions/inference/app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class _Context:
    function_name: str = "InferenceFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:InferenceFunction"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


VARIABLES = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "motor-maintenance",
    "POWERTOOLS_METRICS_NAMESPACE": "MotorMaintenance",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    # As the template sets it unless FunctionTracing is Active (its default is PassThrough: nothing traced).
    "POWERTOOLS_TRACE_DISABLED": "true",
    "STATE_TABLE_NAME": STATE_TABLE,
    "CONFIG_PARAMETER_NAME": CONFIG_PARAMETER,
    "ENDPOINT_NAME": ENDPOINT_NAME,
    "ENDPOINT_TIMEOUT_S": "3",
    # The console's chart history off, whatever the caller's environment says: its sampled PutItem (one per
    # motor per ConsoleHistoryIntervalSeconds, i.e. on every one of these 10-minute readings) is priced by
    # scripts/costs.py; this measures the state's path.
    "HISTORY_TABLE_NAME": "",
}


@contextlib.contextmanager
def _warm_handler(endpoint: ArtifactEndpoint) -> Iterator[ModuleType]:
    """The inference handler, imported as Lambda does, with AWS in moto and the model behind `endpoint`."""
    with _environment(VARIABLES):
        import boto3  # noqa: PLC0415 - after the environment is set
        from moto import mock_aws  # noqa: PLC0415

        import motor_adapters.clients  # noqa: PLC0415
        from motor_adapters.clients import client as real_client  # noqa: PLC0415

        real_client.cache_clear()
        try:
            with mock_aws(), botocore_sigv4():
                dynamodb = boto3.client("dynamodb")
                dynamodb.create_table(
                    TableName=STATE_TABLE,
                    AttributeDefinitions=[{"AttributeName": "motor_id", "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "motor_id", "KeyType": "HASH"}],
                    BillingMode="PAY_PER_REQUEST",
                )
                boto3.client("ssm").put_parameter(Name=CONFIG_PARAMETER, Value="{}", Type="String")
                handler = _load_handler()

                def client(service: str, **kwargs: Any) -> Any:
                    made = real_client(service, **kwargs)
                    if service == "sagemaker-runtime":  # before moto's own handler, which would answer first
                        made.meta.events.register_first("before-send.sagemaker-runtime.InvokeEndpoint", endpoint.answer)
                    return made

                # The handler's adapters are built on its first reading, with the clients made by clients.client.
                motor_adapters.clients.client = client  # type: ignore[assignment]
                yield handler
        finally:
            motor_adapters.clients.client = real_client  # type: ignore[assignment]
            real_client.cache_clear()


def measure(*, booster: xgb.Booster, readings: int, warmup: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Mean CPU per reading of the warm handler (and its parts) and of a bare single-row prediction."""
    events = running_events(warmup + readings)
    endpoint, meter, stdout = ArtifactEndpoint(booster), MotoMeter(), StdoutMeter()
    per_reading: list[float] = []
    outcomes: dict[str, int] = {}
    with _warm_handler(endpoint) as handler:
        context = _Context()
        with StdoutMeter().captured():
            for event in events[:warmup]:
                handler.lambda_handler(event, context)
        endpoint.cpu_s = 0.0
        with stdout.captured(), meter.installed():
            for event in events[warmup:]:
                started = time.thread_time()
                response = handler.lambda_handler(event, context)
                per_reading.append(time.thread_time() - started)
                outcomes[response["status"]] = outcomes.get(response["status"], 0) + 1
        item = _stored_item(events[-1]["topic_motor_id"])
    log(f"warm inference: {readings} readings through the handler ({outcomes})")
    calls_s = client_calls_cpu_s(item, endpoint.last_exchange, repeats=readings)

    rows = np.asarray(feature_rows(events)[warmup:], dtype=np.float32)
    floor_s = bare_predict_cpu_s(booster, rows)
    total_s = statistics.fmean(per_reading)
    moto_s, model_s = meter.cpu_s / readings, endpoint.cpu_s / readings
    lambda_s = total_s - moto_s - model_s
    floor = Figure("bare single-row inplace_predict", floor_s * 1e6, "µs")
    batched = measure_batched(booster=booster, readings=readings, log=log)
    one_each = measure_batched(booster=booster, readings=readings, log=log, motors=100, per_motor=1, exact=True)
    return {
        "ratios": [
            ratio(
                "handler CPU per reading, all in-process",
                Figure("handler + moto + model server", total_s * 1e6, "µs"),
                floor,
                note="moto's and the model server's CPU included",
            ),
            ratio(
                "handler CPU per reading, Lambda's own share",
                Figure("handler minus moto and model server", lambda_s * 1e6, "µs"),
                floor,
                note="what Lambda would bill for CPU; botocore's client side is included",
            ),
            ratio(
                "AWS client calls alone, per direct reading",
                Figure("conditional PutItem + InvokeEndpoint, answered at once", calls_s * 1e6, "µs"),
                floor,
                note="botocore's client side of the two calls a direct reading makes in the common case (its motor's"
                " state kept by the environment): the direct path's floor",
            ),
            ratio(
                "batched handler CPU per reading, Lambda's own share",
                Figure("batch handler minus moto and model server", batched["lambda_own_mean"], "µs"),
                floor,
                note=f"IngestionMode batched: batches of {batched['batch_readings']} readings, "
                f"{batched['readings_per_motor']:g} per motor",
            ),
            ratio(
                "batched handler CPU per reading, one reading per motor, Lambda's own share",
                Figure("batch handler minus moto and model server", one_each["lambda_own_mean"], "µs"),
                floor,
                note=f"the template's defaults: batches of {one_each['batch_readings']} readings, one per motor "
                "(no write saved; the states read together)",
            ),
        ],
        "details": {
            "readings": readings,
            "warmup_readings": warmup,
            "outcomes": outcomes,
            "cpu_us_per_reading": {
                "total_mean": total_s * 1e6,
                "total_median": statistics.median(per_reading) * 1e6,
                "moto_mean": moto_s * 1e6,
                "model_server_mean": model_s * 1e6,
                "lambda_own_mean": lambda_s * 1e6,
                "aws_client_calls_mean": calls_s * 1e6,
                "bare_inplace_predict_mean": floor_s * 1e6,
            },
            "moto_requests_per_reading": meter.calls / readings,
            "log_bytes_per_reading": stdout.bytes / readings,
            "batched": batched,
            "batched_one_per_motor": one_each,
            "clock": "time.thread_time (everything runs in the calling thread; XGBoost nthread=1)",
        },
    }


def _stored_item(motor_id: str) -> dict[str, Any]:
    """The motor's item in the state table, as DynamoDB returns it (inside `_warm_handler`)."""
    import boto3  # noqa: PLC0415 - inside moto, after the environment is set

    key = {"motor_id": {"S": motor_id}}
    item: dict[str, Any] = boto3.client("dynamodb").get_item(TableName=STATE_TABLE, Key=key, ConsistentRead=True)[
        "Item"
    ]
    return item


def client_calls_cpu_s(item: dict[str, Any], exchange: tuple[bytes, bytes], *, repeats: int) -> float:
    """Mean CPU of the calls a direct reading makes in the common case, with the run's own payloads, each
    answered at once: the state's conditional PutItem (from the environment's copy: no GetItem) and InvokeEndpoint.

    Clients made as the handler makes them (motor_adapters.clients), outside moto (botocore would run
    its handler on every request, though ours answers first), answered by a before-send handler that
    returns a canned response: botocore's request building, signing and response parsing, and nothing else.
    """
    from motor_adapters.clients import client  # noqa: PLC0415

    request_body, answer_body = exchange
    version = {":expected": {"N": item["version"]["N"]}}
    amz_json = "application/x-amz-json-1.0"
    with _environment(VARIABLES), botocore_sigv4():
        dynamodb = client.__wrapped__("dynamodb")
        # As the handler makes it (motor_lambda.ingestion.predictor): one attempt, the endpoint's read timeout.
        runtime = client.__wrapped__(
            "sagemaker-runtime", read_timeout=float(VARIABLES["ENDPOINT_TIMEOUT_S"]), max_attempts=1
        )
        for made, event, body, content_type in (
            (dynamodb, "before-send.dynamodb.PutItem", b"{}", amz_json),
            (runtime, "before-send.sagemaker-runtime.InvokeEndpoint", answer_body, "application/json"),
        ):
            made.meta.events.register_first(event, _canned(body, content_type))

        def one_reading() -> None:
            dynamodb.put_item(
                TableName=STATE_TABLE,
                Item=item,
                ConditionExpression="version = :expected",
                ExpressionAttributeValues=version,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            runtime.invoke_endpoint(
                EndpointName=ENDPOINT_NAME, ContentType="text/csv", Accept="application/json", Body=request_body
            )["Body"].read()

        for _ in range(min(repeats, 50)):
            one_reading()
        started = time.thread_time()
        for _ in range(repeats):
            one_reading()
        return (time.thread_time() - started) / repeats


def _canned(body: bytes, content_type: str) -> Callable[..., AWSResponse]:
    def answer(request: Any, **_: Any) -> AWSResponse:
        return _response(request.url, body, content_type)

    return answer


def measure_batched(
    *,
    booster: xgb.Booster,
    readings: int,
    log: Callable[[str], None],
    motors: int = 20,
    per_motor: int = 5,
    exact: bool = False,
) -> dict[str, Any]:
    """The same handler given batches from TelemetryStream: `motors` motors, `per_motor` readings each per batch.

    Without `exact` a batch is the next `motors x per_motor` readings of the fleet's stream, in time order
    (about `per_motor` of each motor, fewer motors while some have not started); with it, each batch holds
    exactly the next `per_motor` readings of every motor. The batch's motors are worked on one after the
    other here (the handler's threads only overlap their waits on AWS; the CPU is the same), so the calling
    thread's CPU time is the batch's.
    """
    from motor_lambda import stream_batch  # noqa: PLC0415
    from tests.support import kinesis_batch  # noqa: PLC0415 - the tests' TelemetryStream event, one shape for both

    size = motors * per_motor
    count = max(size, readings // size * size)
    if exact:
        chunks = _rounds(motors, per_motor, rounds=count // size + 1)
    else:
        events = running_events(count + size, motors=motors)  # the first batch warms up
        chunks = [events[i : i + size] for i in range(0, len(events), size)]
    batches = [kinesis_batch(chunk) for chunk in chunks]
    endpoint, meter = ArtifactEndpoint(booster), MotoMeter()
    outcomes: dict[str, int] = {}
    threaded = stream_batch.map_motors
    stream_batch.map_motors = lambda function, motors: [function(motor) for motor in motors]
    try:
        with _warm_handler(endpoint) as handler, StdoutMeter().captured():
            context = _Context()
            handler.lambda_handler(batches[0], context)
            endpoint.cpu_s = 0.0
            with meter.installed():
                started = time.thread_time()
                for batch in batches[1:]:
                    response = handler.lambda_handler(batch, context)
                    for item in response["readings"]:
                        outcomes[item["status"]] = outcomes.get(item["status"], 0) + 1
                    if response["batchItemFailures"]:
                        raise RuntimeError(f"a batch failed: {response['batchItemFailures'][:3]}")
                total_s = (time.thread_time() - started) / count
    finally:
        stream_batch.map_motors = threaded
    log(f"warm inference, batched: {count} readings in batches of {size}, {per_motor} a motor ({outcomes})")
    moto_s, model_s = meter.cpu_s / count, endpoint.cpu_s / count
    return {
        "readings": count,
        "batch_readings": size,
        "readings_per_motor": size / motors,
        "outcomes": outcomes,
        "total_mean": total_s * 1e6,
        "moto_mean": moto_s * 1e6,
        "model_server_mean": model_s * 1e6,
        "lambda_own_mean": (total_s - moto_s - model_s) * 1e6,
        "moto_requests_per_reading": meter.calls / count,
        "moto_requests_per_batch": {
            name: calls / (len(batches) - 1) for name, calls in sorted(meter.by_operation.items())
        },
    }


def _rounds(motors: int, per_motor: int, *, rounds: int) -> list[list[dict[str, Any]]]:
    """`rounds` batches, each the next `per_motor` running readings of every one of `motors` motors, in time order."""
    count = motors * per_motor * rounds
    while True:
        by_motor: dict[str, list[dict[str, Any]]] = {}
        for event in running_events(count, motors=motors):
            by_motor.setdefault(event["topic_motor_id"], []).append(event)
        if len(by_motor) == motors and min(map(len, by_motor.values())) >= per_motor * rounds:
            break
        count *= 2
    return [
        sorted(
            (event for events in by_motor.values() for event in events[k * per_motor : (k + 1) * per_motor]),
            key=lambda event: event["received_at"],
        )
        for k in range(rounds)
    ]


def feature_rows(events: list[dict[str, Any]]) -> list[list[float]]:
    """The feature rows the handler sent for these readings: each motor's running statistics carried along."""
    from motor_maintenance.features import RunningStats, compute_features  # noqa: PLC0415
    from motor_maintenance.telemetry import Telemetry  # noqa: PLC0415

    stats: dict[str, RunningStats] = {}
    rows = []
    for event in events:
        reading = Telemetry.model_validate(
            {k: v for k, v in event.items() if k not in ("topic_motor_id", "received_at")}
        )
        features, stats[reading.motor_id] = compute_features(reading, stats.get(reading.motor_id))
        rows.append(features)
    return rows


def per_row_cpu_s(predict: Callable[[Any], Any], rows: Sequence[Any] | np.ndarray, *, calls: int = 2000) -> float:
    """Mean CPU seconds of `predict` on one row, each row of the stream in turn (after a warm-up).

    The rows are gone through as many times as makes about `calls` calls, at least once.
    """
    for row in rows[: min(len(rows), 20)]:
        predict(row)
    started = time.thread_time()
    repeats = max(1, calls // len(rows))
    for _ in range(repeats):
        for row in rows:
            predict(row)
    return (time.thread_time() - started) / (repeats * len(rows))


def bare_predict_cpu_s(booster: xgb.Booster, rows: np.ndarray) -> float:
    """Mean CPU seconds of one single-row prediction, each row of the stream in turn (after a warm-up)."""
    return per_row_cpu_s(lambda row: booster.inplace_predict(row[np.newaxis, :], missing=np.nan), rows)
