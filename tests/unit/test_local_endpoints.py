"""The local stack's SageMaker runtime and IoT data plane, reached by the Lambda's unchanged adapters over HTTP.

The model server answers through the artifact's own inference.py, so the predictor must get exactly what
the in-process ArtifactEndpoint (test_model_serving) gets; errors must reach the adapters as the ClientError
codes the real services cause. Everything listens on loopback; nothing here needs an AWS account.
"""

from __future__ import annotations

import http.client
import io
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from local.artifact import ensure_model
from local.iot_data import MAX_PAYLOAD_BYTES as MAX_PUBLISH_BYTES
from local.iot_data import IotDataServer
from local.sagemaker_endpoint import ACCOUNT_ID, MAX_PAYLOAD_BYTES, ModelServer
from model import artifact, inference
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.sagemaker_predictor import SageMakerPredictor
from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.errors import PredictionUnavailable, PublishFailed
from motor_maintenance.features import FEATURE_NAMES
from tests.support import ROOT, load_event
from tests.unit.test_model_serving import ArtifactEndpoint

ENDPOINT = "motor-failure-xgboost"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"}
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def _client(service: str, url: str, config: Config = NO_RETRIES) -> Any:
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service, region_name=REGION, endpoint_url=url, config=config, **CREDENTIALS
    )


@pytest.fixture(scope="module")
def model_tar(small_model_run: tuple[dict[str, Any], Path]) -> Path:
    return small_model_run[1] / "model.tar.gz"


@pytest.fixture(scope="module")
def server(model_tar: Path) -> Iterator[ModelServer]:
    with ModelServer(model_tar, ENDPOINT) as running:
        yield running


@pytest.fixture
def model(server: ModelServer) -> Iterator[ModelServer]:
    """The shared server, its fault switches off again after the test."""
    yield server
    server.fail_next(0)
    server.delay_s = 0


@pytest.fixture(scope="module")
def in_process(model_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> ArtifactEndpoint:
    """The same artifact answered in this process by model/inference.py, as test_model_serving does."""
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(model_tar) as archive:
        archive.extractall(unpacked, filter="data")
    return ArtifactEndpoint(inference.model_fn(str(unpacked)))


@pytest.fixture(scope="module")
def rows(small_model_run: tuple[dict[str, Any], Path], in_process: ArtifactEndpoint) -> list[list[float]]:
    """Held-out feature rows: the five the model finds likeliest to fail (they carry drivers), and five others."""
    table = np.genfromtxt(small_model_run[1] / "dataset" / "validation.csv", delimiter=",", dtype=np.float64)
    features = table[:, 1:]
    scores = in_process.booster.inplace_predict(features.astype(np.float32), missing=np.nan)
    order = np.argsort(-scores, kind="stable")
    chosen = [*order[:5], *order[len(order) // 2 : len(order) // 2 + 5]]
    return [features[index].tolist() for index in chosen]


# -- SageMaker runtime: InvokeEndpoint ---------------------------------------------------------------


def test_the_predictor_gets_over_http_what_the_artifact_answers_in_process(
    model: ModelServer, in_process: ArtifactEndpoint, rows: list[list[float]]
) -> None:
    invocations, scored = model.invocations, model.rows

    over_http = SageMakerPredictor(ENDPOINT, _client("sagemaker-runtime", model.url)).predict(rows)
    direct = SageMakerPredictor(ENDPOINT, in_process).predict(rows)

    assert over_http == direct
    assert any(prediction.drivers for prediction in over_http), "no row was likely enough to be explained"
    assert {driver.feature for p in over_http for driver in p.drivers} <= set(FEATURE_NAMES)
    assert (model.invocations, model.rows) == (invocations + 1, scored + len(rows))


def test_csv_and_json_answers_carry_their_content_type_and_the_variant(
    model: ModelServer, rows: list[list[float]]
) -> None:
    runtime = _client("sagemaker-runtime", model.url)
    body = "\n".join(",".join("" if math.isnan(v) else repr(v) for v in row) for row in rows[:3]).encode()

    as_csv = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Accept="text/csv", Body=body)
    as_json = runtime.invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="text/csv", Accept="application/json", Body=body
    )

    assert as_csv["ContentType"] == "text/csv; charset=utf-8"  # werkzeug adds the charset to a text/* type
    assert as_json["ContentType"] == "application/json"
    assert as_csv["InvokedProductionVariant"] == as_json["InvokedProductionVariant"] == "AllTraffic"
    probabilities = [float(line) for line in as_csv["Body"].read().decode().splitlines()]
    scores = [item["score"] for item in json.loads(as_json["Body"].read())["predictions"]]
    assert probabilities == pytest.approx(scores, rel=1e-5)
    assert len(probabilities) == 3


def test_a_malformed_row_is_the_models_error_as_sagemaker_reports_it(model: ModelServer) -> None:
    predictor = SageMakerPredictor(ENDPOINT, _client("sagemaker-runtime", model.url))
    errors = model.model_errors

    with pytest.raises(PredictionUnavailable) as raised:
        predictor.predict([[1.0, 2.0, 3.0]])  # three features; the model expects len(FEATURE_NAMES)

    cause = raised.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "ModelError"
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    model_error = cast(dict[str, Any], cause.response)  # botocore adds the ModelError shape's members
    assert model_error["OriginalStatusCode"] == 400
    assert f"the model expects {len(FEATURE_NAMES)}" in model_error["OriginalMessage"]
    assert model_error["LogStreamArn"].endswith(f":log-group:/aws/sagemaker/Endpoints/{ENDPOINT}")
    assert "Received client error (400) from primary" in str(raised.value)
    assert model.model_errors == errors + 1


def test_text_that_is_not_csv_numbers_is_a_model_error_too(model: ModelServer) -> None:
    runtime = _client("sagemaker-runtime", model.url)

    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=b"not,numbers")

    assert "is not a number" in raised.value.response["OriginalMessage"]


def test_an_unknown_endpoint_is_a_validation_error(model: ModelServer) -> None:
    runtime = _client("sagemaker-runtime", model.url)
    invocations = model.invocations

    with pytest.raises(runtime.exceptions.ValidationError) as raised:
        runtime.invoke_endpoint(EndpointName="no-such-model", ContentType="text/csv", Body=b"1")

    assert raised.value.response["Error"]["Message"] == f"Endpoint no-such-model of account {ACCOUNT_ID} not found."
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert model.invocations == invocations


def test_a_body_over_six_megabytes_is_refused_before_the_model_sees_it(
    model: ModelServer, rows: list[list[float]]
) -> None:
    # botocore checks the size itself; turned off, the request reaches the server as another SDK's would.
    runtime = _client("sagemaker-runtime", model.url, NO_RETRIES.merge(Config(parameter_validation=False)))
    invocations = model.invocations

    with pytest.raises(runtime.exceptions.ValidationError) as raised:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=b"0" * (MAX_PAYLOAD_BYTES + 1))

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert model.invocations == invocations
    # The kept-alive connection is still in step: the next call on it is answered.
    assert len(SageMakerPredictor(ENDPOINT, runtime).predict(rows[:1])) == 1


def test_other_methods_and_paths_are_not_found(model: ModelServer) -> None:
    for method, path in (("GET", f"/endpoints/{ENDPOINT}/invocations"), ("POST", "/"), ("POST", "/endpoints/x")):
        status, document = _http(model.port, method, path)
        assert status == 404, (method, path)
        assert "no SageMaker runtime operation" in document["Message"]


def test_the_fault_switch_takes_the_model_down_then_brings_it_back(model: ModelServer, rows: list[list[float]]) -> None:
    predictor = SageMakerPredictor(ENDPOINT, _client("sagemaker-runtime", model.url))

    model.fail_next(2)
    for _ in range(2):
        with pytest.raises(PredictionUnavailable, match="ModelError"):
            predictor.predict(rows[:1])

    assert len(predictor.predict(rows[:1])) == 1


def test_the_fault_switch_over_http_is_what_another_process_uses(model: ModelServer, rows: list[list[float]]) -> None:
    predictor = SageMakerPredictor(ENDPOINT, _client("sagemaker-runtime", model.url))

    status, switches = _http(model.port, "POST", "/_local/fault", {"fail": 1, "error": "ServiceUnavailable"})

    assert (status, switches) == (200, {"fail": 1, "error": "ServiceUnavailable", "delay_s": 0.0})
    with pytest.raises(PredictionUnavailable, match="ServiceUnavailable"):
        predictor.predict(rows[:1])
    assert len(predictor.predict(rows[:1])) == 1
    assert _http(model.port, "POST", "/_local/fault", {"fail": -1})[0] == 400


def test_a_slow_model_times_the_predictor_out(model: ModelServer, rows: list[list[float]]) -> None:
    impatient = NO_RETRIES.merge(Config(read_timeout=0.2, connect_timeout=1))
    predictor = SageMakerPredictor(ENDPOINT, _client("sagemaker-runtime", model.url, impatient))

    scored = model.rows

    model.delay_s = 0.6
    with pytest.raises(PredictionUnavailable) as raised:
        predictor.predict(rows[:1])

    assert isinstance(raised.value.__cause__, ReadTimeoutError)
    deadline = time.monotonic() + 10
    while model.rows == scored and time.monotonic() < deadline:  # the model still scores the row, too late
        time.sleep(0.05)
    assert model.rows == scored + 1


def test_concurrent_invocations_are_all_answered_and_counted(model: ModelServer, rows: list[list[float]]) -> None:
    invocations, scored = model.invocations, model.rows
    answers: list[int] = []

    def call() -> None:
        predictor = SageMakerPredictor(ENDPOINT, _client("sagemaker-runtime", model.url))
        for _ in range(5):
            answers.append(len(predictor.predict(rows[:2])))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert answers == [2] * 40
    assert (model.invocations, model.rows) == (invocations + 40, scored + 80)


def test_a_kept_alive_call_is_not_held_back_by_delayed_acknowledgements(
    model: ModelServer, rows: list[list[float]]
) -> None:
    # With Nagle's algorithm on, every answer waits about 40 ms for the client's delayed ACK; a row takes ~1 ms.
    predictor = SageMakerPredictor(ENDPOINT, _client("sagemaker-runtime", model.url))
    predictor.predict(rows[:1])
    elapsed_ms = []
    for _ in range(21):
        started = time.perf_counter()
        predictor.predict(rows[:1])
        elapsed_ms.append((time.perf_counter() - started) * 1000)

    assert sorted(elapsed_ms)[10] < 25


def test_a_client_configured_only_by_the_environment_reaches_the_model_server(
    model: ModelServer, rows: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", model.url)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", REGION)):
        monkeypatch.setenv(name, value)
    invocations = model.invocations

    runtime = boto3.session.Session().client("sagemaker-runtime")
    predictions = SageMakerPredictor(ENDPOINT, runtime).predict(rows[:1])

    assert runtime.meta.endpoint_url == model.url
    assert len(predictions) == 1
    assert model.invocations == invocations + 1


def test_stop_is_idempotent_and_leaves_no_unpacked_model_behind(model_tar: Path) -> None:
    server = ModelServer(model_tar, ENDPOINT)
    server.start()
    model_dir = server.model_dir
    port = server.port
    assert model_dir is not None
    assert (model_dir / "code" / "inference.py").is_file()

    server.stop()
    server.stop()

    assert not model_dir.exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("member", ["../escaped.txt", "/absolute/escaped.txt", "code/../../escaped.txt"])
def test_an_artifact_whose_members_leave_the_model_directory_is_refused(tmp_path: Path, member: str) -> None:
    tar = tmp_path / "evil" / "model.tar.gz"
    tar.parent.mkdir()
    with tarfile.open(tar, "w:gz") as archive:
        for name, data in ((member, b"gotcha"), ("code/inference.py", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

    unpacked_before = set(Path(tempfile.gettempdir()).glob("sagemaker-model-*"))

    with pytest.raises(ValueError, match="outside the model directory"):
        ModelServer(tar, ENDPOINT).start()

    assert not (tmp_path / "escaped.txt").exists()
    assert set(Path(tempfile.gettempdir()).glob("sagemaker-model-*")) == unpacked_before


def test_an_artifact_without_inference_code_is_refused(tmp_path: Path) -> None:
    tar = tmp_path / "model.tar.gz"
    with tarfile.open(tar, "w:gz") as archive:
        info = tarfile.TarInfo(artifact.MODEL_FILE)
        info.size = 5
        archive.addfile(info, io.BytesIO(b"model"))

    with pytest.raises(ValueError, match=r"no code/inference\.py"):
        ModelServer(tar, ENDPOINT).start()


# -- IoT data plane: Publish --------------------------------------------------------------------------


class Broker:
    """The callback IotDataServer hands messages to; can refuse them, as a broker that is gone would."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, int]] = []
        self.attempts = 0
        self.refuse = False

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.attempts += 1
        if self.refuse:
            raise RuntimeError("the broker refused the publish")
        self.messages.append((topic, payload, qos))


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def data_plane(broker: Broker) -> Iterator[IotDataServer]:
    with IotDataServer(broker.publish) as running:
        yield running


def test_the_alarm_publisher_delivers_topic_payload_and_qos(data_plane: IotDataServer, broker: Broker) -> None:
    event = AlarmEvent.model_validate(load_event("alarm-raised"))

    IotAlarmPublisher(_client("iot-data", data_plane.url)).publish(event)

    assert broker.messages == [(f"motors/{event.motor_id}/alarms", event.model_dump_json().encode(), 1)]
    assert data_plane.published == 1


def test_a_broker_failure_is_the_publishers_error(data_plane: IotDataServer, broker: Broker) -> None:
    event = AlarmEvent.model_validate(load_event("alarm-raised"))
    broker.refuse = True

    with pytest.raises(PublishFailed) as raised:
        IotAlarmPublisher(_client("iot-data", data_plane.url)).publish(event)

    cause = raised.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "ServiceUnavailableException"
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "the broker refused the publish" in cause.response["Error"]["Message"]
    assert data_plane.published == 0


def test_one_injected_failure_is_absorbed_by_botocores_retries_as_in_aws(
    data_plane: IotDataServer, broker: Broker
) -> None:
    event = AlarmEvent.model_validate(load_event("alarm-raised"))
    retrying = _client("iot-data", data_plane.url, Config(retries={"total_max_attempts": 3, "mode": "standard"}))

    data_plane.fail_next(1)
    IotAlarmPublisher(retrying).publish(event)

    assert len(broker.messages) == 1
    data_plane.fail_next(3)
    with pytest.raises(PublishFailed, match="ServiceUnavailableException"):
        IotAlarmPublisher(retrying).publish(event)
    assert broker.attempts == 1  # injected failures never reach the broker


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("", "empty"),
        ("motors/+/alarms", "wildcards"),
        ("motors/#", "wildcards"),
        ("m" * 257, "257 bytes"),
        ("a/b/c/d/e/f/g/h/i", "8 forward slashes"),
        ("motors/\x00", "U+0000"),
    ],
)
def test_topics_iot_core_refuses_are_invalid_requests(
    data_plane: IotDataServer, broker: Broker, topic: str, reason: str
) -> None:
    iot = _client("iot-data", data_plane.url)

    with pytest.raises(ClientError) as raised:
        iot.publish(topic=topic, qos=1, payload=b"{}")

    assert raised.value.response["Error"]["Code"] == "InvalidRequestException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert reason in raised.value.response["Error"]["Message"]
    assert broker.attempts == 0


def test_topics_at_the_limits_are_published(data_plane: IotDataServer, broker: Broker) -> None:
    iot = _client("iot-data", data_plane.url)
    accepted = ["é" * 128, "a/b/c/d/e/f/g/h", "$aws/rules/motor_telemetry/a/b/c/d/e/f/g/h", "motors/m 1/alarms%2F"]

    for topic in accepted:
        iot.publish(topic=topic, qos=0, payload=b"")

    assert [topic for topic, _, _ in broker.messages] == accepted
    assert {qos for _, _, qos in broker.messages} == {0}


def test_a_payload_over_128_kb_is_too_large(data_plane: IotDataServer, broker: Broker) -> None:
    iot = _client("iot-data", data_plane.url)

    iot.publish(topic="big", qos=1, payload=b"x" * MAX_PUBLISH_BYTES)
    with pytest.raises(ClientError) as raised:
        iot.publish(topic="big", qos=1, payload=b"x" * (MAX_PUBLISH_BYTES + 1))

    assert raised.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert len(broker.messages) == 1


def test_qos_2_is_refused(data_plane: IotDataServer) -> None:
    with pytest.raises(ClientError, match="InvalidRequestException"):
        _client("iot-data", data_plane.url).publish(topic="motors/a", qos=2, payload=b"")


def test_other_data_plane_operations_say_they_are_not_supported_locally(data_plane: IotDataServer) -> None:
    iot = _client("iot-data", data_plane.url)

    with pytest.raises(ClientError) as raised:
        iot.get_thing_shadow(thingName="motor-001")

    assert raised.value.response["Error"]["Code"] == "UnsupportedOperation"
    assert "GetThingShadow" in raised.value.response["Error"]["Message"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_an_iot_data_client_configured_only_by_the_environment_reaches_the_data_plane(
    data_plane: IotDataServer, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IOT_DATA_PLANE", data_plane.url)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", REGION)):
        monkeypatch.setenv(name, value)

    iot = boto3.session.Session().client("iot-data")
    iot.publish(topic="motors/motor-001/alarms", qos=1, payload=b"{}")

    assert iot.meta.endpoint_url == data_plane.url
    assert broker.messages == [("motors/motor-001/alarms", b"{}", 1)]


# -- the `python -m` entries ---------------------------------------------------------------------------


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("listening on http://127.0.0.1:"):
        process.kill()
        process.wait()
        pytest.fail(f"{argv} did not say it was listening: {line!r}")
    return process, line.removeprefix("listening on ").strip()


def _terminate(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_model_server_entry_starts_answers_and_exits_0_on_sigterm(model_tar: Path, rows: list[list[float]]) -> None:
    process, url = _start(["-m", "local.sagemaker_endpoint", "--artifact", str(model_tar), "--endpoint-name", ENDPOINT])

    predictions = SageMakerPredictor(ENDPOINT, _client("sagemaker-runtime", url)).predict(rows[:2])

    assert len(predictions) == 2
    assert _terminate(process) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # exited and reaped: no process left


def test_the_data_plane_entry_prints_what_is_published_and_exits_0_on_sigterm() -> None:
    process, url = _start(["-m", "local.iot_data"])
    assert process.stdout is not None

    _client("iot-data", url).publish(topic="motors/motor-001/alarms", qos=1, payload=b'{"ok": true}')
    line = process.stdout.readline()

    assert json.loads(line) == {"topic": "motors/motor-001/alarms", "qos": 1, "payload": '{"ok": true}'}
    assert _terminate(process) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


# -- the artifact the stack serves ---------------------------------------------------------------------


def test_an_existing_artifact_is_served_as_it_is_without_training(tmp_path: Path) -> None:
    existing = tmp_path / "model.tar.gz"
    existing.write_bytes(b"already trained")
    lines: list[str] = []

    found = ensure_model(existing, log=lines.append, command=[sys.executable, "-c", "raise SystemExit(9)"])

    assert found == existing
    assert lines == []


def test_training_progress_is_logged_as_it_comes_and_the_artifact_returned(tmp_path: Path) -> None:
    path = tmp_path / "out" / "model.tar.gz"
    script = "import sys, time, pathlib; print('1/5 simulating'); time.sleep(0.5); print('5/5 writing')\n"
    script += "pathlib.Path(sys.argv[1]).parent.mkdir(exist_ok=True); pathlib.Path(sys.argv[1]).write_bytes(b'model')"
    seen: list[tuple[float, str]] = []

    found = ensure_model(
        path, log=lambda line: seen.append((time.monotonic(), line)), command=[sys.executable, "-c", script, str(path)]
    )

    assert found == path
    progress = [(at, line) for at, line in seen if line.endswith(("simulating", "writing"))]
    assert [line for _, line in progress] == ["1/5 simulating", "5/5 writing"]
    assert progress[1][0] - progress[0][0] >= 0.3, "the first line waited for the end of the training"


def test_a_failing_training_names_the_command_and_its_exit_status(tmp_path: Path) -> None:
    script = "import sys; print('1/5 simulating'); print('MemoryError', file=sys.stderr); sys.exit(3)"
    command = [sys.executable, "-c", script]
    lines: list[str] = []

    with pytest.raises(RuntimeError) as raised:
        ensure_model(tmp_path / "model.tar.gz", log=lines.append, command=command)

    message = str(raised.value)
    assert "exited with status 3" in message
    assert "sys.exit(3)" in message  # the command, as the shell would show it
    assert "MemoryError" in message
    assert "1/5 simulating" in lines


def test_a_training_that_writes_no_artifact_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="wrote no"):
        ensure_model(tmp_path / "model.tar.gz", log=lambda _line: None, command=[sys.executable, "-c", "pass"])


def _http(port: int, method: str, path: str, document: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps(document).encode() if document is not None else None
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()
