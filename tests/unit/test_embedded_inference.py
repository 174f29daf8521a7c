"""InferenceMode embedded: the model evaluated inside the function raises the same alarms as the endpoint.

The endpoint side is the artifact's inference.py behind SageMakerPredictor (as SageMaker's script mode
runs it, see test_model_serving); the embedded side is EmbeddedPredictor fetching the same model.tar.gz
from S3 (a stand-in client) and running its code/inference.py in the function.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import motor_adapters.clients
from device.history import generate
from device.physics import DAY_S, FleetConfig
from model import inference
from motor_adapters.clients import client as real_client
from motor_adapters.embedded_predictor import EmbeddedPredictor, s3_location
from motor_adapters.sagemaker_predictor import SageMakerPredictor
from motor_maintenance.alarms import AlarmKind, Transition
from motor_maintenance.config import DetectorConfig
from motor_maintenance.errors import PredictionUnavailable
from motor_maintenance.features import FEATURE_NAMES
from motor_maintenance.ports import Predictor
from motor_maintenance.prediction import Prediction
from motor_maintenance.service import process_reading
from tests.conftest import FakeAws
from tests.support import LambdaContext, MemoryStore, Recorder, load_event, load_handler
from tests.unit.test_model_serving import ArtifactEndpoint, _first_wear_failure

MODEL_URL = "s3://models-bucket/motor-failure/model.tar.gz"


@dataclass
class FakeS3:
    """An S3 client holding one object; `failures` GetObject calls fail first, as a throttled S3 would."""

    objects: dict[tuple[str, str], bytes]
    failures: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls.append((Bucket, Key))
        if self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetObject")
        if (Bucket, Key) not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no such key"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


@pytest.fixture(scope="module")
def artifact(small_model_run: tuple[dict[str, Any], Path]) -> bytes:
    _, out = small_model_run
    return (out / "model.tar.gz").read_bytes()


@pytest.fixture(scope="module")
def endpoint(
    small_model_run: tuple[dict[str, Any], Path], tmp_path_factory: pytest.TempPathFactory
) -> ArtifactEndpoint:
    _, out = small_model_run
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(out / "model.tar.gz") as archive:
        archive.extractall(unpacked, filter="data")
    return ArtifactEndpoint(inference.model_fn(str(unpacked)))


PROBABILITY_TOLERANCE = 1e-6
"""float32 has 24 bits: a probability summed from 300 float32 leaves is good to a few 1e-7."""
CONTRIBUTION_TOLERANCE = 1.5e-4
"""Contributions are rounded to 4 decimals: a float32 difference can move one across a rounding edge."""


def assert_same(embedded: Any, endpoint: Any, key: str = "") -> None:
    """Equal, but for floats, which may differ by float32 noise (contributions by one rounding step)."""
    if isinstance(endpoint, dict):
        assert isinstance(embedded, dict), key
        assert embedded.keys() == endpoint.keys(), key
        for name in endpoint:
            assert_same(embedded[name], endpoint[name], name)
    elif isinstance(endpoint, list | tuple):
        assert isinstance(embedded, list | tuple), key
        assert len(embedded) == len(endpoint), key
        for mine, theirs in zip(embedded, endpoint, strict=True):
            assert_same(mine, theirs, key)
    elif isinstance(endpoint, float) and not isinstance(endpoint, bool):
        tolerance = CONTRIBUTION_TOLERANCE if key == "contribution" else PROBABILITY_TOLERANCE
        assert isinstance(embedded, float), key
        assert abs(embedded - endpoint) <= tolerance, (key, embedded, endpoint)
    else:
        assert embedded == endpoint, (key, embedded, endpoint)


def _s3(artifact: bytes, failures: int = 0) -> FakeS3:
    return FakeS3({s3_location(MODEL_URL): artifact}, failures=failures)


def _run(predictor: Predictor, readings: list[Any]) -> tuple[list[Any], list[float | None]]:
    """The readings through the inference use case; the alarm events and each reading's probability."""
    store, publisher = MemoryStore(), Recorder()
    probabilities = []
    for reading in readings:
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        result = process_reading(
            reading, store=store, predictor=predictor, publisher=publisher, config=DetectorConfig(), now=now
        )
        assert result.prediction_error is None
        probabilities.append(result.failure_probability)
    return publisher.events, probabilities


def test_the_embedded_model_raises_the_same_alarms_as_the_endpoint_for_the_same_readings(
    endpoint: ArtifactEndpoint, artifact: bytes
) -> None:
    # Given a motor the model never saw, wearing out to failure, and a healthy one
    history = generate(FleetConfig(motors=2, seed=77, wear_scale=4.0), duration_s=60 * DAY_S)
    column, onset = _first_wear_failure(history)
    readings = [history.reading(t, column) for t in range(max(onset - 14 * 144, 0), onset)]
    readings += [history.reading(t, 1 - column) for t in range(history.steps - 3 * 144, history.steps)]

    # When the same readings go through the use case with the endpoint and with the embedded model
    endpoint_events, endpoint_probabilities = _run(SageMakerPredictor("motor-failure", endpoint), readings)
    s3 = _s3(artifact)
    embedded_events, embedded_probabilities = _run(EmbeddedPredictor(MODEL_URL, s3), readings)

    # Then the predictive alarm was raised (the comparison is not between two silences) ...
    raised = [e for e in endpoint_events if e.kind is AlarmKind.PREDICTIVE and e.transition is Transition.RAISED]
    assert raised
    assert raised[0].drivers
    # ... and every alarm event, probability and driver is the same, in the same order: XGBoost sums the
    # trees in float32 and the embedded model in float64, so numbers agree to float32's precision
    assert len(embedded_events) == len(endpoint_events)
    for embedded_event, endpoint_event in zip(embedded_events, endpoint_events, strict=True):
        assert_same(embedded_event.model_dump(), endpoint_event.model_dump())
    assert_same(embedded_probabilities, endpoint_probabilities)
    assert sum(p is not None for p in embedded_probabilities) > len(readings) // 2
    # The model was fetched once for the whole run, from the object the template names
    assert s3.calls == [s3_location(MODEL_URL)]


def test_a_model_that_cannot_be_fetched_costs_the_reading_its_probability_and_is_fetched_again(
    artifact: bytes,
) -> None:
    s3 = _s3(artifact, failures=1)
    predictor = EmbeddedPredictor(MODEL_URL, s3)
    row = [float("nan")] * _feature_count()

    with pytest.raises(PredictionUnavailable, match="SlowDown"):
        predictor.predict([row])
    [prediction] = predictor.predict([row])

    assert 0.0 <= prediction.probability <= 1.0
    assert len(s3.calls) == 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a tarball", "cannot be loaded"),
        (None, "NoSuchKey"),
    ],
)
def test_an_unusable_artifact_is_a_prediction_unavailable_not_a_failed_invocation(
    content: bytes | None, reason: str
) -> None:
    objects = {} if content is None else {s3_location(MODEL_URL): content}
    predictor = EmbeddedPredictor(MODEL_URL, FakeS3(objects))
    with pytest.raises(PredictionUnavailable, match=reason):
        predictor.predict([[1.0] * _feature_count()])


def test_an_artifact_without_the_json_booster_is_refused_in_one_line_that_says_to_retrain(artifact: bytes) -> None:
    # Given the artifact as SageMaker's server alone needs it: xgboost-model and code/, no embedded/
    stripped = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(artifact), mode="r:gz") as source,
        tarfile.open(fileobj=stripped, mode="w:gz") as target,
    ):
        for member in source.getmembers():
            if not member.name.startswith("embedded"):
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    predictor = EmbeddedPredictor(MODEL_URL, _s3(stripped.getvalue()))

    with pytest.raises(PredictionUnavailable) as refused:
        predictor.predict([[1.0] * _feature_count()])

    message = str(refused.value)
    assert message.startswith(f"model {MODEL_URL} cannot be loaded: ")
    assert "retrain with `python model/train.py`" in message
    assert "\n" not in message


def test_rows_of_the_wrong_width_are_refused_as_the_endpoint_refuses_them(artifact: bytes) -> None:
    predictor = EmbeddedPredictor(MODEL_URL, _s3(artifact))
    with pytest.raises(PredictionUnavailable, match="features"):
        predictor.predict([[1.0, 2.0]])


@pytest.mark.parametrize("url", ["https://bucket/key.tar.gz", "s3://bucket", "s3:///key.tar.gz", ""])
def test_a_model_url_that_is_not_an_s3_object_fails_at_cold_start(url: str) -> None:
    with pytest.raises(ValueError, match="s3://bucket/key"):
        EmbeddedPredictor(url, FakeS3({}))


def _feature_count() -> int:
    return len(FEATURE_NAMES)


def test_the_inference_handler_with_model_s3_url_scores_readings_with_the_model_from_s3(
    aws: FakeAws, artifact: bytes, monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext
) -> None:
    # Given the environment the template sets with InferenceMode embedded, and the artifact in S3
    bucket, key = s3_location(MODEL_URL)
    s3 = real_client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=bucket, Key=key, Body=artifact)
    monkeypatch.setenv("MODEL_S3_URL", MODEL_URL)
    monkeypatch.setenv("ENDPOINT_NAME", "")
    module = load_handler("inference")
    services: list[str] = []

    def client(service: str, **kwargs: Any) -> Any:
        services.append(service)
        return real_client(service, **kwargs)

    monkeypatch.setattr(motor_adapters.clients, "client", client)

    # When two readings of a running motor arrive
    first = module.lambda_handler(load_event("telemetry-normal"), lambda_context)
    second = module.lambda_handler(load_event("telemetry-normal") | {"seq": 99_999}, lambda_context)

    # Then both were scored by the model fetched from S3, without any SageMaker client
    assert first["status"] == second["status"] == "applied"
    assert first["failure_probability"] is not None
    assert 0.0 <= first["failure_probability"] <= 1.0
    assert services.count("s3") == 1  # one client, made once per execution environment
    assert "sagemaker-runtime" not in services


@dataclass
class RowCapture:
    """A Predictor that keeps the feature rows the use case asks it about."""

    rows: list[list[float]] = field(default_factory=list)

    def predict(self, rows: Any) -> list[Prediction]:
        self.rows.extend(list(row) for row in rows)
        return [Prediction(probability=0.0) for _ in rows]


@dataclass
class TickingClock:
    """perf_counter's stand-in: each reading is one second after the last."""

    now: float = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_drivers_stop_at_the_budget_the_most_likely_rows_first_and_the_rest_say_why(artifact: bytes) -> None:
    # Given six rows of a motor wearing out, every one to be explained, and a budget of 2.5 clock seconds
    history = generate(FleetConfig(motors=2, seed=77, wear_scale=4.0), duration_s=60 * DAY_S)
    column, onset = _first_wear_failure(history)
    capture = RowCapture()
    _run(capture, [history.reading(t, column) for t in range(max(onset - 2 * 144, 0), onset)])
    rows = capture.rows[-6:]
    predictor = EmbeddedPredictor(
        MODEL_URL, _s3(artifact), drivers_min_probability=0.0, drivers_budget_s=2.5, clock=TickingClock()
    )

    # When they are predicted in one call
    predictions = predictor.predict(rows)

    # Then every row has its probability; the two most likely (the budget's two clock readings) have
    # drivers, and the others none, with the reason
    unbounded = EmbeddedPredictor(MODEL_URL, _s3(artifact), drivers_min_probability=0.0).predict(rows)
    assert [p.probability for p in predictions] == [p.probability for p in unbounded]
    ranked = sorted(range(len(rows)), key=lambda index: -unbounded[index].probability)
    for index in ranked[:2]:
        assert predictions[index] == unbounded[index]
        assert predictions[index].drivers
    for index in ranked[2:]:
        assert predictions[index].drivers == ()
        assert predictions[index].drivers_dropped == (
            f"drivers not computed: 2 of this call's {len(rows)} rows above 0.0 took its 2.5 s budget"
        )


def test_drivers_named_outside_the_contract_are_dropped_as_the_endpoints_would_be(artifact: bytes) -> None:
    # Given a model whose feature names a Driver cannot carry (a space is not allowed)
    predictor = EmbeddedPredictor(MODEL_URL, _s3(artifact), drivers_min_probability=0.0)
    row = [float("nan")] * _feature_count()
    [plain] = predictor.predict([row])
    assert predictor._served is not None
    model = predictor._served.trees
    model.feature_names = [f"feature {index}" for index in range(model.num_features)]

    # When a row is explained
    [prediction] = predictor.predict([row])

    # Then it keeps its probability, without drivers, saying why: the endpoint's answer is read the same way
    assert prediction.probability == plain.probability
    assert plain.drivers
    assert prediction.drivers == ()
    assert prediction.drivers_dropped is not None
    assert prediction.drivers_dropped.startswith("malformed drivers")
