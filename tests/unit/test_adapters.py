"""AWS adapters against moto: AWS errors become domain errors, and the state item round-trips."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from local import cfn
from motor_adapters.clients import client
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoStateStore
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.sagemaker_predictor import SageMakerPredictor, parse_predictions
from motor_lambda.settings import AlertSettings, InferenceSettings
from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.errors import PredictionUnavailable, PublishFailed, StoreUnavailable, VersionConflict
from motor_maintenance.prediction import Driver, Prediction
from motor_maintenance.state import AlarmStatus, MotorState
from tests.conftest import FakeAws
from tests.support import ROOT, load_event


def test_state_round_trips_through_dynamodb_with_a_version(aws: FakeAws) -> None:
    store = DynamoStateStore("motor-state", client("dynamodb"))
    state = MotorState(
        motor_id="motor-001",
        run_hours=12.5,
        alarms={"schedule": AlarmStatus(held=True)},
        failure_probability=0.8,
        probability_drivers=(Driver(feature="bearing_temp_c_trend", contribution=1.23),),
    )

    saved = store.save(state, expected_version=0)
    loaded = store.load("motor-001")

    assert saved.version == 1
    assert loaded is not None
    assert loaded.to_dict() == saved.to_dict()
    assert loaded.probability_drivers == state.probability_drivers
    item = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": "motor-001"}})["Item"]
    assert item["alarm_states"]["M"]["schedule"]["S"] == "NORMAL"


def test_a_stale_version_is_a_conflict_not_an_overwrite(aws: FakeAws) -> None:
    store = DynamoStateStore("motor-state", client("dynamodb"))
    store.save(MotorState(motor_id="motor-001"), expected_version=0)
    store.save(MotorState(motor_id="motor-001", run_hours=1.0), expected_version=1)

    with pytest.raises(VersionConflict):
        store.save(MotorState(motor_id="motor-001", run_hours=99.0), expected_version=1)
    with pytest.raises(VersionConflict):
        store.save(MotorState(motor_id="motor-001"), expected_version=0)
    loaded = store.load("motor-001")
    assert loaded is not None
    assert loaded.run_hours == 1.0


def test_a_missing_table_is_reported_as_store_unavailable(aws: FakeAws) -> None:
    store = DynamoStateStore("no-such-table", client("dynamodb"))

    with pytest.raises(StoreUnavailable, match="motor-001"):
        store.load("motor-001")


class Runtime:
    def __init__(self, answer: str | Exception) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if isinstance(self.answer, Exception):
            raise self.answer
        return {"Body": io.BytesIO(self.answer.encode())}


def json_answer(*rows: dict[str, Any]) -> str:
    return json.dumps({"predictions": list(rows)})


def test_the_endpoint_is_sent_csv_rows_and_asked_for_json() -> None:
    runtime = Runtime(json_answer({"score": 0.2}, {"score": 0.3}))

    SageMakerPredictor("ep", runtime).predict([[1.0, float("nan")], [0.5, 2.0]])

    call = runtime.calls[0]
    assert (call["ContentType"], call["Accept"]) == ("text/csv", "application/json")
    assert call["Body"] == b"1.0,\n0.5,2.0"


def test_drivers_come_with_their_probability_largest_first() -> None:
    payload = json_answer(
        {
            "score": 0.87,
            "drivers": [
                {"feature": "vibration_mm_s", "contribution": 0.4},
                {"feature": "bearing_temp_c_trend", "contribution": 1.23},
            ],
        },
        {"score": 0.1, "drivers": []},
    )

    predictions = SageMakerPredictor("ep", Runtime(payload)).predict([[1.0], [2.0]])

    assert predictions == [
        Prediction(
            probability=0.87,
            drivers=(
                Driver(feature="bearing_temp_c_trend", contribution=1.23),
                Driver(feature="vibration_mm_s", contribution=0.4),
            ),
        ),
        Prediction(probability=0.1),
    ]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("0.25", [0.25]),
        ("0.1\n0.9\n", [0.1, 0.9]),
        ("0.1,0.9", [0.1, 0.9]),
        ('{"predictions": [{"score": 0.4}]}', [0.4]),  # the built-in algorithm: no drivers
        ('{"predictions": [{"score": 1, "drivers": null}]}', [1.0]),
    ],
)
def test_answers_without_drivers_are_read_as_probabilities_alone(payload: str, expected: list[float]) -> None:
    predictions = parse_predictions(payload)

    assert [p.probability for p in predictions] == expected
    assert all(p.drivers == () and p.drivers_dropped is None for p in predictions)


def test_features_that_lowered_the_probability_are_not_drivers_and_at_most_five_are_kept() -> None:
    drivers = [{"feature": f"f{i}", "contribution": float(i)} for i in range(-2, 9)]

    (prediction,) = parse_predictions(json_answer({"score": 0.9, "drivers": drivers}))

    assert [d.feature for d in prediction.drivers] == ["f8", "f7", "f6", "f5", "f4"]
    assert prediction.drivers_dropped is None


def test_fields_a_driver_does_not_define_are_ignored() -> None:
    (prediction,) = parse_predictions(
        json_answer({"score": 0.9, "drivers": [{"feature": "vibration_mm_s", "contribution": 0.5, "value": 12.0}]})
    )

    assert prediction.drivers == (Driver(feature="vibration_mm_s", contribution=0.5),)


@pytest.mark.parametrize(
    ("drivers", "why"),
    [
        ("vibration_mm_s", "not a list of objects"),
        ([["vibration_mm_s", 0.5]], "not a list of objects"),
        ([{"feature": "vibration_mm_s"}], "contribution"),
        ([{"feature": "vibration_mm_s", "contribution": "0.5"}], "contribution"),
        ([{"feature": "vibration_mm_s", "contribution": float("nan")}], "contribution"),
        ([{"feature": "vibration_mm_s", "contribution": 10**400}], "contribution"),
        ([{"feature": "vibration_mm_s", "contribution": True}], "contribution"),
        ([{"feature": "motor-001/#", "contribution": 0.5}], "feature"),
        ([{"feature": "x" * 65, "contribution": 0.5}], "feature"),
        ([{"feature": "vibration\udcff", "contribution": 0.5}], "feature"),
        ([{"feature": 7, "contribution": 0.5}], "feature"),
        ([{"feature": "f1", "contribution": 0.5}, {"feature": "f1", "contribution": 0.4}], "named twice"),
    ],
)
def test_malformed_drivers_are_dropped_and_the_probability_kept(drivers: Any, why: str) -> None:
    (prediction,) = parse_predictions(json_answer({"score": 0.87, "drivers": drivers}))

    assert prediction.probability == 0.87
    assert prediction.drivers == ()
    assert prediction.drivers_dropped is not None
    assert why in prediction.drivers_dropped
    assert prediction.drivers_dropped.isascii()  # it is logged as is


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("1.7", "not a probability"),
        ("nan", "not a probability"),
        ("<html>", "unreadable"),
        ("0.2\n0.3", "2 predictions for 1 rows"),
        ('{"predictions": [{"score": 1.7, "drivers": []}]}', "not a probability"),
        ('{"predictions": [{"score": "0.4"}]}', "not a probability"),
        ('{"predictions": [{"score": true}]}', "not a probability"),
        ('{"predictions": [{"drivers": []}]}', "unreadable"),
        ('{"predictions": {"score": 0.4}}', "unreadable"),
        ('{"scores": [0.4]}', "unreadable"),
        ('{"predictions": [' * 100_000, "unreadable"),
        (EndpointConnectionError(endpoint_url="https://x"), "Could not connect"),
        (
            ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeEndpoint"),
            "slow down",
        ),
    ],
)
def test_any_endpoint_failure_becomes_prediction_unavailable(answer: str | Exception, message: str) -> None:
    predictor = SageMakerPredictor("ep", Runtime(answer))

    with pytest.raises(PredictionUnavailable, match=message):
        predictor.predict([[1.0, 2.0]])


def test_publish_failure_is_a_domain_error() -> None:
    class Broken:
        def publish(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "down"}}, "Publish")

    event = AlarmEvent.model_validate(load_event("alarm-raised"))

    with pytest.raises(PublishFailed, match="motors/motor-001/alarms"):
        IotAlarmPublisher(Broken()).publish(event)


class Provider:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, name: str, **_: Any) -> Any:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def test_config_source_keeps_the_last_good_config_when_the_parameter_turns_bad() -> None:
    provider = Provider({"schedule": {"service_interval_h": 250}})
    source = ConfigSource("/p", provider)
    assert source.get().schedule.service_interval_h == 250

    provider.value = ["not", "an", "object"]
    assert source.get().schedule.service_interval_h == 250
    assert source.last_error is not None
    assert "JSON object" in source.last_error

    provider.value = {}
    assert source.get().schedule.service_interval_h == 1000
    assert source.last_error is None


def test_settings_come_from_the_environment_and_missing_ones_are_named() -> None:
    settings = InferenceSettings.from_env({"STATE_TABLE_NAME": "t", "ENDPOINT_TIMEOUT_S": "1.5"})

    assert (settings.state_table_name, settings.endpoint_timeout_s) == ("t", 1.5)
    with pytest.raises(RuntimeError, match="ALERT_TOPIC_ARN is not set") as missing:
        AlertSettings.from_env({"IDEMPOTENCY_TABLE_NAME": "i", "STATE_TABLE_NAME": "t"})
    assert "IDEMPOTENCY_TABLE_NAME" not in str(missing.value)
    with pytest.raises(RuntimeError, match="STATE_TABLE_NAME is not set"):
        InferenceSettings.from_env({"STATE_TABLE_NAME": ""})  # the template's empty value is no value
    with pytest.raises(RuntimeError, match="ENDPOINT_TIMEOUT_S"):
        InferenceSettings.from_env({"STATE_TABLE_NAME": "t", "ENDPOINT_TIMEOUT_S": "0"})


def test_every_value_a_number_parameter_allows_is_a_setting_the_functions_accept() -> None:
    """Given the template's shared environment, when a Number parameter it passes on takes any value it allows
    (SAM passes it as text), then the settings of a function that keeps the motors' state accept it."""
    template = cfn.parse((ROOT / "template.yaml").read_text())
    parameters = template["Parameters"]
    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    numbers = {
        variable: parameters[value["Ref"]]
        for variable, value in shared.items()
        if isinstance(value, dict) and parameters.get(value.get("Ref"), {}).get("Type") == "Number"
    }
    assert "STATE_ITEM_FORMAT" in numbers
    for variable, parameter in numbers.items():
        for allowed in parameter.get("AllowedValues", [parameter["Default"]]):
            settings = InferenceSettings.from_env({"STATE_TABLE_NAME": "t", variable: str(allowed)})
            assert getattr(settings, variable.lower()) == allowed


def test_a_silent_endpoint_costs_one_bounded_attempt_not_a_retry_storm() -> None:
    """A server that accepts and never answers: the predictor gives up after one read timeout."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    connections: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(5)
        try:
            while True:
                connections.append(server.accept()[0])
        except OSError:
            return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    runtime = client("sagemaker-runtime", endpoint_url=url, read_timeout=0.5, max_attempts=1)
    predictor = SageMakerPredictor("ep", runtime)

    started = time.monotonic()
    with pytest.raises(PredictionUnavailable, match="Read timeout"):
        predictor.predict([[1.0]])
    elapsed = time.monotonic() - started
    server.close()
    for connection in connections:
        connection.close()

    assert len(connections) == 1
    assert elapsed < 2.0


def test_an_answer_that_is_not_text_is_prediction_unavailable() -> None:
    class Binary:
        def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
            return {"Body": io.BytesIO(b"\xff\xfe\x00garbage")}

    with pytest.raises(PredictionUnavailable, match="not UTF-8"):
        SageMakerPredictor("ep", Binary()).predict([[1.0]])


def test_config_source_refuses_to_guess_on_a_cold_start_without_ssm() -> None:
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    from motor_maintenance.errors import ConfigUnavailable

    source = ConfigSource("/p", Provider(GetParameterError("throttled")))

    with pytest.raises(ConfigUnavailable, match="throttled"):
        source.get()


def test_config_source_keeps_the_last_good_config_through_an_ssm_outage_and_backs_off() -> None:
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    calls = []

    class Counting(Provider):
        def get(self, name: str, **kwargs: Any) -> Any:
            calls.append(name)
            return super().get(name, **kwargs)

    now = [0.0]
    provider = Counting({"schedule": {"service_interval_h": 250}})
    source = ConfigSource("/p", provider, clock=lambda: now[0])
    source.get()
    provider.value = GetParameterError("down")

    first = source.get()
    again = source.get()  # within the back-off: SSM is not asked
    now[0] += 31
    source.get()

    assert first.schedule.service_interval_h == again.schedule.service_interval_h == 250
    assert source.last_error is not None
    assert len(calls) == 3


def test_config_source_validates_a_document_once_not_on_every_invocation(monkeypatch: pytest.MonkeyPatch) -> None:
    from motor_maintenance.config import DetectorConfig

    validations = []
    original = DetectorConfig.with_overrides.__func__  # type: ignore[attr-defined]

    def counting(cls: type[DetectorConfig], overrides: Any) -> DetectorConfig:
        validations.append(overrides)
        return original(cls, overrides)

    monkeypatch.setattr(DetectorConfig, "with_overrides", classmethod(counting))
    provider = Provider({"schedule": {"service_interval_h": 250}})
    source = ConfigSource("/p", provider)

    configs = [source.get() for _ in range(5)]
    provider.value = {"schedule": {"service_interval_h": 300}}
    changed = source.get()

    assert all(c.schedule.service_interval_h == 250 for c in configs)
    assert changed.schedule.service_interval_h == 300
    assert len(validations) == 2


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        ({"motor_id": "motor-\udcff1"}, "'motor-\\udcff1'"),  # a lone surrogate: JSON can spell one
        ({"motor_id": "m\u043etor-001"}, "'m\\u043etor-001'"),  # a Cyrillic o, shown for what it is
        ({"motor_id": "motor-001\u202e"}, "'motor-001\\u202e'"),  # a right-to-left override
        ({"seq": 10**5000}, "<int of 16610 bits>"),  # too long for str(), which would raise
        (b"\xff\xfe{", "b'\\xff\\xfe{'"),
    ],
)
def test_a_payload_preview_is_ascii_and_escapes_what_a_log_line_cannot_show(payload: Any, shown: str) -> None:
    from motor_lambda.rejection import payload_preview

    preview = payload_preview(payload)

    assert preview.isascii()
    assert shown in preview


def test_a_payload_preview_is_short_however_deep_or_large_the_payload() -> None:
    """repr() of a payload nested ~990 deep raised RecursionError on Python 3.11; one of 20,000 fields is 256 KB."""
    from motor_lambda.rejection import payload_preview

    deep: Any = "leaf"
    for _ in range(100_000):
        deep = {"a": [deep]}
    wide = {f"field_{i}": "x" * 1000 for i in range(20_000)}

    assert payload_preview(deep) == "{'a': [{'a': [{...}]}]}"  # four levels
    assert len(payload_preview(wide)) == 500
    assert len(payload_preview("motor-" * 1000, 80)) == 80
