"""Faults injected where they happen, through the real handlers on moto: the model, DynamoDB, MQTT, SNS.

What a plant engineer relies on: a reading is never lost, alarms still fire when the model is down,
every transition reaches people exactly once, and a failure is retried rather than swallowed.
Each fault is a real botocore error raised by (or instead of) the real client.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
from botocore.exceptions import ClientError
from botocore.stub import Stubber

import motor_adapters.clients
from local.cfn import parse
from motor_adapters.clients import client as real_client
from motor_adapters.dynamodb_store import DynamoStateStore
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.state_item import state_of
from motor_maintenance.config import DetectorConfig
from motor_maintenance.errors import PublishFailed, StoreUnavailable
from motor_maintenance.service import process_reading
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry
from tests.conftest import FakeAws
from tests.support import ROOT, FakeSageMakerRuntime, LambdaContext, load_event, load_handler, reading_payload

HEALTH_TOPIC = "motors/all.motors/alarms"
# A handler that raises before adding a metric makes Powertools warn; raising is the point here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


# --- helpers --------------------------------------------------------------------------------------------


def reading(seq: int, at_s: float, motor_id: str = "motor-001", **signals: Any) -> dict[str, Any]:
    """What TelemetryRule hands the inference function: the device's reading plus the topic's motor id."""
    return reading_payload(seq, at_s=at_s, motor_id=motor_id, **signals) | {"topic_motor_id": motor_id}


def environment(monkeypatch: pytest.MonkeyPatch, sagemaker: Any) -> ModuleType:
    """A fresh execution environment of InferenceFunction whose model calls go to `sagemaker`."""
    module = load_handler("inference")
    other = motor_adapters.clients.client  # the `faults` fixture's clients, when a test injects some

    def client(service: str, **kwargs: Any) -> Any:
        return sagemaker if service == "sagemaker-runtime" else other(service, **kwargs)

    monkeypatch.setattr(motor_adapters.clients, "client", client)
    assert module.ingestion.ports.predictor is not None  # its adapters built now, with this client
    return module


class CalmModel:
    """An endpoint that answers a low failure probability for every row, so only the rules under test move."""

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        rows = kwargs["Body"].decode().splitlines()
        return {"Body": io.BytesIO("\n".join("0.05" for _ in rows).encode())}


def emf_total(stdout: str, metric: str) -> float:
    """The sum of a metric over the CloudWatch EMF documents the handlers printed."""
    total = 0.0
    for line in stdout.splitlines():
        if '"_aws"' in line:
            value = json.loads(line).get(metric, 0)
            total += sum(value) if isinstance(value, list) else value
    return total


def deliver_alarm_events(alerts: ModuleType, aws: FakeAws, context: LambdaContext, start: int = 0) -> int:
    """What AlarmRule does: every alarm event published since `start` to AlertFunction. Returns the new start."""
    published = aws.published()
    for _topic, payload in published[start:]:
        alerts.lambda_handler(payload, context)
    return len(published)


def client_error(code: str, operation: str, status: int = 500) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


class FaultyClient:
    """A real client, except that the calls queued in `faults` for an operation raise, one per call.

    None in a queue is a call that goes through. The queue is read at call time, so a fault can be
    added after the handler built its adapters.
    """

    def __init__(self, service: str, kwargs: dict[str, Any], faults: dict[tuple[str, str], list[Any]]) -> None:
        self._service, self._kwargs, self._faults = service, kwargs, faults

    def __getattr__(self, operation: str) -> Any:
        pending = self._faults.get((self._service, operation))
        fault = pending.pop(0) if pending else None
        if fault is None:
            return getattr(real_client(self._service, **self._kwargs), operation)

        def fail(**_: Any) -> Any:
            raise fault

        return fail


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], list[Any]]:
    """Faults by (service, operation) for every client the adapters and handlers create from now on."""
    table: dict[tuple[str, str], list[Any]] = {}

    def client(service: str, **kwargs: Any) -> FaultyClient:
        return FaultyClient(service, kwargs, table)

    monkeypatch.setattr(motor_adapters.clients, "client", client)
    return table


@pytest.fixture
def alerts(aws: FakeAws) -> ModuleType:
    return load_handler("alerts")


# --- 1. the model endpoint down, slow or throttled ---------------------------------------------------------


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                held.append(server.accept()[0])
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in held:
        connection.close()


def closed_port() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


def broken_endpoint(fault: str, silent_endpoint: str) -> Any:
    """The real sagemaker-runtime client, failing the way SageMaker or the network fails."""
    if fault == "refused":
        return real_client("sagemaker-runtime", endpoint_url=closed_port(), read_timeout=3.0, max_attempts=1)
    if fault == "silent":
        return real_client("sagemaker-runtime", endpoint_url=silent_endpoint, read_timeout=0.2, max_attempts=1)
    code, status = {
        "throttled": ("ThrottlingException", 400),
        "model_error": ("ModelError", 424),
        "unavailable": ("ServiceUnavailable", 503),
        "internal": ("InternalFailure", 500),
    }[fault]
    runtime = real_client("sagemaker-runtime", read_timeout=3.0, max_attempts=1)
    stubber = Stubber(runtime)
    for _ in range(20):
        stubber.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=status)
    stubber.activate()
    return runtime


FAULT_REASONS = {
    "throttled": "ThrottlingException",
    "model_error": "ModelError",
    "unavailable": "ServiceUnavailable",
    "internal": "InternalFailure",
    "refused": "Could not connect to the endpoint URL",
    "silent": "Read timeout",
}


@pytest.mark.parametrize("fault", sorted(FAULT_REASONS))
def test_with_the_model_failing_every_reading_is_stored_and_schedule_and_condition_alarms_fire_on_time(
    fault: str,
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: LambdaContext,
    silent_endpoint: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Given the same readings for a motor on a healthy model and one on a failing model,
    the failing one stores every reading and raises the same schedule and condition alarms at the same reading."""
    aws.ssm.put_parameter(
        Name="/motor-maintenance/detector-config", Value='{"schedule": {"service_interval_h": 0.04}}', Overwrite=True
    )
    healthy = environment(monkeypatch, FakeSageMakerRuntime())
    failing = environment(monkeypatch, broken_endpoint(fault, silent_endpoint))

    for seq in range(7):  # a reading a minute, fluid past 200 C throughout
        for motor, function in (("motor-ok", healthy), ("motor-blind", failing)):
            answer = function.lambda_handler(reading(seq, seq * 60, motor, fluid_temp_c=212.5), lambda_context)
            assert answer["status"] == "applied"
            assert (answer["failure_probability"] is None) == (motor == "motor-blind")

    def transitions(motor: str) -> list[tuple[str, str, int]]:
        return [
            (event["alarm"], event["transition"], event["reading_seq"])
            for topic, event in aws.published()
            if topic == f"motors/{motor}/alarms"
        ]

    assert transitions("motor-blind") == transitions("motor-ok")
    assert ("schedule", "raised", 3) in transitions("motor-blind")  # 0.04 h of running: at the 4th reading
    assert ("fluid_overtemperature", "raised", 5) in transitions("motor-blind")  # held 300 s: at the 6th
    item = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": "motor-blind"}})["Item"]
    assert state_of(item).last_seq == 6
    stdout = capsys.readouterr().out
    assert (emf_total(stdout, "PredictionsFailed"), emf_total(stdout, "PredictionsMade")) == (7, 7)
    reasons = [r.reason for r in caplog.records if r.getMessage().startswith("prediction failed")]
    assert len(reasons) == 7
    assert all(FAULT_REASONS[fault] in reason for reason in reasons)
    health = [event for topic, event in aws.published() if topic == HEALTH_TOPIC]
    assert [(event["alarm"], event["transition"]) for event in health] == [("model_unavailable", "raised")]


def test_a_model_outage_reaches_people_once_and_its_end_once_across_environments_and_motors(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, alerts: ModuleType, lambda_context: LambdaContext
) -> None:
    """Given two execution environments serving ten motors, when the endpoint dies and comes back,
    then the alert topic carries one 'model unavailable' and one 'available again', through the e-mail filter too."""
    email_queue = subscribe_like_the_email_subscription(aws)
    endpoint = FakeSageMakerRuntime()
    environments = [environment(monkeypatch, endpoint), environment(monkeypatch, endpoint)]
    motors = [f"motor-{n:03d}" for n in range(10)]
    seq = 0

    def round_of_readings() -> None:
        nonlocal seq
        seq += 1
        for n, motor in enumerate(motors):
            answer = environments[n % 2].lambda_handler(reading(seq, seq * 30, motor), lambda_context)
            assert answer["status"] == "applied"

    round_of_readings()
    endpoint.fail_with = client_error("ServiceUnavailable", "InvokeEndpoint", 503)
    for _ in range(4):  # each environment sees 20 failures
        round_of_readings()
    endpoint.fail_with = None
    for _ in range(4):
        round_of_readings()
    deliver_alarm_events(alerts, aws, lambda_context)

    subjects = [alert["Subject"] for alert in aws.alerts()]
    assert subjects == [
        "[HIGH] All motors: failure-prediction model unavailable",
        "[HIGH] All motors: failure-prediction model available again",
    ]
    assert [alert["Subject"] for alert in received(aws, email_queue)] == subjects


def subscribe_like_the_email_subscription(aws: FakeAws) -> str:
    """A queue subscribed to the alert topic with the FilterPolicy template.yaml gives the e-mail subscription."""
    template = parse((ROOT / "template.yaml").read_text())
    policy = template["Resources"]["AlertEmailSubscription"]["Properties"]["FilterPolicy"]
    url = aws.sqs.create_queue(QueueName="email-like")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = aws.sns.list_topics()["Topics"][0]["TopicArn"]
    aws.sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"FilterPolicy": json.dumps(dict(policy))}
    )
    return url


def received(aws: FakeAws, queue_url: str) -> list[dict[str, Any]]:
    messages = aws.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_the_email_filter_is_a_real_filter_that_keeps_acknowledgements_out(
    aws: FakeAws, alerts: ModuleType, lambda_context: LambdaContext
) -> None:
    """The check above could pass with no filter at all; this shows the policy is applied."""
    email_queue = subscribe_like_the_email_subscription(aws)
    acknowledged = load_event("alarm-raised") | {
        "event_id": "0" * 32,
        "transition": "acknowledged",
        "from_state": "ACTIVE",
        "to_state": "ACKNOWLEDGED",
    }

    alerts.lambda_handler(acknowledged, lambda_context)

    assert len(aws.alerts()) == 1
    assert received(aws, email_queue) == []


def test_the_email_filter_lets_a_reported_failure_through(
    aws: FakeAws, alerts: ModuleType, lambda_context: LambdaContext
) -> None:
    """A failure someone reported is something people must hear of: the e-mail subscription's filter passes it."""
    email_queue = subscribe_like_the_email_subscription(aws)

    alerts.lambda_handler(load_event("alarm-failure-reported"), lambda_context)

    [message] = received(aws, email_queue)
    assert message["MessageAttributes"]["transition"]["Value"] == "failure_reported"


# --- 2. concurrency and retries ------------------------------------------------------------------------------


class RivalWritesBetweenLoadAndSave:
    """The real DynamoDB store, with another invocation's write slipped in before our first save."""

    def __init__(self, inner: DynamoStateStore, rival: Callable[[], None]) -> None:
        self._inner = inner
        self._rival: Callable[[], None] | None = rival

    def load(self, motor_id: str) -> MotorState | None:
        return self._inner.load(motor_id)

    def remembered(self, motor_id: str) -> MotorState | None:
        return self._inner.remembered(motor_id)

    def save(self, state: MotorState, expected_version: int) -> MotorState:
        if self._rival is not None:
            rival, self._rival = self._rival, None
            rival()
        return self._inner.save(state, expected_version)


def test_two_invocations_racing_on_one_motor_lose_no_transition_and_alert_each_once(
    aws: FakeAws, alerts: ModuleType, lambda_context: LambdaContext
) -> None:
    """Given vibration past zone D, when a reading that raises the alarm and a later one that clears it
    are processed at the same time, then both transitions are stored, published and alerted, once each."""
    store, config = DynamoStateStore("motor-state", real_client("dynamodb")), DetectorConfig()
    publisher = IotAlarmPublisher(real_client("iot-data"))

    def apply(seq: int, at_s: float, vibration: float, on: Any) -> Any:
        item = Telemetry.model_validate(reading_payload(seq, at_s=at_s, vibration_mm_s=vibration))
        return process_reading(item, store=on, predictor=None, publisher=publisher, config=config, now=item.ts)

    apply(1, 0, 12.0, store)
    racing = RivalWritesBetweenLoadAndSave(store, rival=lambda: apply(2, 60, 12.0, store))  # raises
    ours = apply(3, 120, 3.0, racing)  # loaded before the rival's save; clears

    assert ours.conflicts == 1
    saved = store.load("motor-001")
    assert saved is not None
    assert saved.alarms["vibration_zone_d"].state.value == "LATCHED"
    assert saved.last_seq == 3
    events = [(event["alarm"], event["transition"]) for _topic, event in aws.published()]
    assert events == [("vibration_zone_d", "raised"), ("vibration_zone_d", "cleared")]
    deliver_alarm_events(alerts, aws, lambda_context)
    assert [alert["Subject"].rsplit(" - ", 1)[1] for alert in aws.alerts()] == ["ALARM", "cleared"]


def test_a_reading_delivered_again_or_late_changes_nothing_and_alerts_nothing(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, alerts: ModuleType, lambda_context: LambdaContext
) -> None:
    inference = environment(monkeypatch, CalmModel())
    for seq in (1, 2, 3):
        inference.lambda_handler(reading(seq, seq * 60, vibration_mm_s=12.0), lambda_context)
    seen = deliver_alarm_events(alerts, aws, lambda_context)
    assert len(aws.alerts()) == 1  # vibration_zone_d raised
    before = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": "motor-001"}})["Item"]

    again = inference.lambda_handler(reading(3, 180, vibration_mm_s=12.0), lambda_context)
    late = inference.lambda_handler(reading(2, 120, vibration_mm_s=2.0), lambda_context)
    older = inference.lambda_handler(reading(0, 0, vibration_mm_s=1.0), lambda_context)
    deliver_alarm_events(alerts, aws, lambda_context, start=seen)

    assert [again["status"], late["status"], older["status"]] == ["duplicate", "stale", "stale"]
    after = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": "motor-001"}})["Item"]
    assert after == before
    assert len(aws.published()) == seen
    assert aws.alerts() == []


def test_a_retry_after_the_alarm_event_could_not_be_published_alerts_exactly_once(
    aws: FakeAws,
    faults: dict[tuple[str, str], list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    alerts: ModuleType,
    lambda_context: LambdaContext,
) -> None:
    """State saved with the event in its outbox, then MQTT refuses it: the invocation fails, the retry publishes."""
    inference = environment(monkeypatch, CalmModel())
    inference.lambda_handler(reading(1, 0, vibration_mm_s=12.0), lambda_context)
    raising = reading(2, 60, vibration_mm_s=12.0)
    faults[("iot-data", "publish")] = [client_error("InternalFailure", "Publish")]

    with pytest.raises(PublishFailed):
        inference.lambda_handler(raising, lambda_context)
    item = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": "motor-001"}})["Item"]
    assert (state_of(item).last_seq, item["outbox_size"]["N"]) == (2, "1")
    retry = inference.lambda_handler(raising, lambda_context)
    deliver_alarm_events(alerts, aws, lambda_context)

    assert retry["status"] == "duplicate"
    assert [event["transition"] for _topic, event in aws.published()] == ["raised"]
    assert len(aws.alerts()) == 1


def test_a_retry_after_the_outbox_could_not_be_emptied_alerts_exactly_once(
    aws: FakeAws,
    faults: dict[tuple[str, str], list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    alerts: ModuleType,
    lambda_context: LambdaContext,
) -> None:
    """The reverse: the event is published, then the write that drops it from the outbox fails."""
    inference = environment(monkeypatch, CalmModel())
    inference.lambda_handler(reading(1, 0, vibration_mm_s=12.0), lambda_context)
    raising = reading(2, 60, vibration_mm_s=12.0)
    throttled = client_error("ProvisionedThroughputExceededException", "PutItem", 400)
    # The save with the outbox passes, its entry in the console's history is written, emptying the outbox fails.
    faults[("dynamodb", "put_item")] = [None, None, throttled]

    with pytest.raises(StoreUnavailable):
        inference.lambda_handler(raising, lambda_context)
    retry = inference.lambda_handler(raising, lambda_context)
    deliver_alarm_events(alerts, aws, lambda_context)

    published = [event["event_id"] for _topic, event in aws.published()]
    assert retry["status"] == "duplicate"
    assert len(published) == 2  # the retry published the event again...
    assert len(set(published)) == 1  # ...with the same id...
    assert len(aws.alerts()) == 1  # ...so people hear it once
    item = aws.dynamodb.get_item(TableName="motor-state", Key={"motor_id": {"S": "motor-001"}})["Item"]
    assert item["outbox_size"]["N"] == "0"


def test_an_alert_whose_sns_publish_failed_is_sent_once_by_the_retry(
    aws: FakeAws, faults: dict[tuple[str, str], list[Any]], lambda_context: LambdaContext
) -> None:
    faults[("sns", "publish")] = [client_error("InternalError", "Publish")]
    alerts = load_handler("alerts")
    event = load_event("alarm-raised")

    with pytest.raises(PublishFailed):
        alerts.lambda_handler(event, lambda_context)
    retry = alerts.lambda_handler(event, lambda_context)
    again = alerts.lambda_handler(event, lambda_context)

    assert retry["status"] == again["status"] == "sent"
    assert retry["message_id"] == again["message_id"]
    assert len(aws.alerts()) == 1


# --- 3. downstream failures ------------------------------------------------------------------------------------


DOWNSTREAM_FAULTS = [
    ("inference", "iot-data", "publish", "InternalFailure", PublishFailed),
    ("inference", "dynamodb", "put_item", "ProvisionedThroughputExceededException", StoreUnavailable),
    ("inference", "dynamodb", "get_item", "InternalServerError", StoreUnavailable),
    ("actions", "iot-data", "publish", "ThrottlingException", PublishFailed),
    ("actions", "dynamodb", "put_item", "InternalServerError", StoreUnavailable),
    ("alerts", "sns", "publish", "KMSThrottlingException", PublishFailed),
    ("alerts", "dynamodb", "put_item", "InternalServerError", IdempotencyPersistenceLayerError),
]


@pytest.mark.parametrize(
    ("function", "service", "operation", "code", "raised"),
    DOWNSTREAM_FAULTS,
    ids=[f"{f}-{s}-{o}" for f, s, o, _, _ in DOWNSTREAM_FAULTS],
)
def test_a_failing_downstream_fails_the_invocation_so_lambda_retries_it_and_then_parks_it(
    function: str,
    service: str,
    operation: str,
    code: str,
    raised: type[Exception],
    aws: FakeAws,
    faults: dict[tuple[str, str], list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: LambdaContext,
) -> None:
    """Nothing is swallowed: the handler raises, which is what makes Lambda retry and then use the destination."""
    event = {
        "inference": reading(2, 60, vibration_mm_s=12.0),
        "actions": load_event("action-service-complete"),
        "alerts": load_event("alarm-raised"),
    }[function]
    handler = environment(monkeypatch, CalmModel()) if function == "inference" else load_handler(function)
    if function == "inference" and operation != "get_item":
        handler.lambda_handler(reading(1, 0, vibration_mm_s=12.0), lambda_context)  # the next reading raises
    # (The read is tested on a motor this environment has not written: of one it has, it keeps a copy.)
    faults[(service, operation)] = [client_error(code, operation)] * 5

    with pytest.raises(raised):
        handler.lambda_handler(event, lambda_context)
    assert aws.alerts() == []
