"""InferenceFunction with a batch from TelemetryStream (IngestionMode batched), AWS faked by moto.

The sample event events/telemetry-batch.json is what `sam local invoke -e` sends: two motors, a
condition held long enough to raise, a reading the schema refuses and a redelivered one.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

import motor_adapters.clients
from motor_adapters.clients import client as real_client
from motor_lambda import stream_batch
from tests.conftest import FakeAws
from tests.support import (
    FakeSageMakerRuntime,
    LambdaContext,
    ThrottledDynamoDB,
    kinesis_batch,
    load_event,
    metrics_of,
    reading_payload,
)


@pytest.fixture
def dynamodb(aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> ThrottledDynamoDB:
    """The DynamoDB client the handler's adapters are built with: moto's, each call recorded, throttling on demand."""
    recorded = ThrottledDynamoDB(real_client("dynamodb"))
    other = motor_adapters.clients.client  # the inference fixture's endpoint, when it came first

    def client(service: str, **kwargs: Any) -> Any:
        return recorded if service == "dynamodb" else other(service, **kwargs)

    monkeypatch.setattr(motor_adapters.clients, "client", client)
    return recorded


def test_the_sample_batch_is_applied_with_one_model_call_and_the_alarm_raised_once(
    inference: ModuleType,
    aws: FakeAws,
    sagemaker: FakeSageMakerRuntime,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = load_event("telemetry-batch")

    response = inference.lambda_handler(event, lambda_context)

    assert response["batchItemFailures"] == []
    readings = {r["sequence_number"]: r for r in response["readings"]}
    statuses = [readings[record["kinesis"]["sequenceNumber"]]["status"] for record in event["Records"]]
    assert statuses == ["applied", "applied", "applied", "rejected", "duplicate"]
    assert "speed_rpm" in readings[event["Records"][3]["kinesis"]["sequenceNumber"]]["reason"]
    assert len(sagemaker.calls) == 1
    assert len(sagemaker.calls[0]["Body"].decode().splitlines()) == 3  # the applied, running readings
    published = aws.published()
    assert [(topic, p["alarm"], p["transition"]) for topic, p in published] == [
        ("motors/motor-001/alarms", "fluid_overtemperature", "raised")
    ]
    raised = readings[event["Records"][2]["kinesis"]["sequenceNumber"]]
    assert raised["alarm_states"]["fluid_overtemperature"] == "ACTIVE"
    assert raised["events"] == [published[0][1]["event_id"]]
    metrics = metrics_of(capsys.readouterr().out)
    assert metrics["BatchReadings"] == 5.0
    assert metrics["ModelCalls"] == 1.0
    assert metrics["ReadingsProcessed"] == 3.0
    assert metrics["ReadingsRejected"] == 1.0
    assert metrics["ReadingsDuplicate"] == 1.0
    assert metrics["AlarmTransitions"] == 1.0
    assert "ReadingsRedelivered" not in metrics


def test_a_motor_whose_state_cannot_be_read_is_reported_for_redelivery_with_all_its_readings(
    inference: ModuleType, dynamodb: ThrottledDynamoDB, lambda_context: LambdaContext
) -> None:
    payloads = [
        reading_payload(1, at_s=0, motor_id="motor-001") | {"topic_motor_id": "motor-001"},
        reading_payload(1, at_s=1, motor_id="motor-002"),
        reading_payload(2, at_s=60, motor_id="motor-001"),
        reading_payload(2, at_s=61, motor_id="motor-002"),
    ]
    event = kinesis_batch(payloads)
    dynamodb.unprocessed = {"motor-002"}  # throttled: DynamoDB leaves its key unprocessed, request after request

    response = inference.lambda_handler(event, lambda_context)

    sequences = [record["kinesis"]["sequenceNumber"] for record in event["Records"]]
    assert response["batchItemFailures"] == [{"itemIdentifier": sequences[1]}, {"itemIdentifier": sequences[3]}]
    assert [r["sequence_number"] for r in response["readings"]] == [sequences[0], sequences[2]]

    dynamodb.unprocessed = set()  # Lambda delivers again from the first reported record
    retry = inference.lambda_handler(kinesis_batch(payloads[1:]), lambda_context)

    assert retry["batchItemFailures"] == []
    assert [r["status"] for r in retry["readings"]] == ["applied", "duplicate", "applied"]


def test_a_motor_whose_state_read_fails_outright_is_reported_and_the_others_applied(
    inference: ModuleType, dynamodb: ThrottledDynamoDB, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a batch of 101 motors (two BatchGetItem requests), when DynamoDB refuses the second request,
    then only the motor it named is reported for redelivery."""
    payloads = [reading_payload(1, motor_id=f"motor-{n:03d}") for n in range(101)]
    answer = dynamodb.client.batch_get_item
    requests = 0

    def second_refused(**kwargs: Any) -> Any:
        nonlocal requests
        requests += 1
        if requests == 2:
            error = {"Error": {"Code": "InternalServerError", "Message": "try again"}}
            raise ClientError(error, "BatchGetItem")  # type: ignore[arg-type]
        return answer(**kwargs)

    monkeypatch.setattr(dynamodb.client, "batch_get_item", second_refused)

    response = inference.lambda_handler(kinesis_batch(payloads), lambda_context)

    event_records = kinesis_batch(payloads)["Records"]
    assert response["batchItemFailures"] == [{"itemIdentifier": event_records[100]["kinesis"]["sequenceNumber"]}]
    assert [r["status"] for r in response["readings"]] == ["applied"] * 100


def test_a_batch_reads_its_motors_states_with_one_batchgetitem_per_100_motors_and_raises_what_direct_does(
    inference: ModuleType, dynamodb: ThrottledDynamoDB, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    """Given 250 motors, one in ten vibrating past zone D, two readings each,
    when their readings arrive as one batch,
    then the states are read with three BatchGetItem requests (100, 100, 50 keys) and no GetItem,
    and the alarm events published are those the direct path publishes for the same readings, id for id."""
    motors = [f"motor-{n:03d}" for n in range(250)]
    payloads = [
        reading_payload(seq, at_s=60.0 * seq, motor_id=motor, vibration_mm_s=12.0 if n % 10 == 0 else 2.4)
        | {"topic_motor_id": motor, "received_at": 1_795_780_800_000 + 60_000 * seq + 100}
        for seq in (1, 2)
        for n, motor in enumerate(motors)
    ]

    response = inference.lambda_handler(kinesis_batch(payloads), lambda_context)

    assert response["batchItemFailures"] == []
    assert [len(call["RequestItems"]["motor-state"]["Keys"]) for call in dynamodb.made("batch_get_item")] == [
        100,
        100,
        50,
    ]
    assert all(call["RequestItems"]["motor-state"]["ConsistentRead"] for call in dynamodb.made("batch_get_item"))
    state_reads = [call for call in dynamodb.made("get_item") if call["Key"]["motor_id"]["S"] in motors]
    assert state_reads == []
    batched = sorted((topic, p["alarm"], p["transition"], p["event_id"]) for topic, p in aws.published())
    assert {topic for topic, *_ in batched} == {f"motors/{motor}/alarms" for motor in motors[::10]}
    assert sum(event[1:3] == ("vibration_zone_d", "raised") for event in batched) == 25

    for item in aws.dynamodb.scan(TableName="motor-state")["Items"]:  # the same readings again, one at a time
        aws.dynamodb.delete_item(TableName="motor-state", Key={"motor_id": item["motor_id"]})
    published_before = len(aws.published())
    for payload in payloads:
        assert inference.lambda_handler(payload, lambda_context)["status"] == "applied"
    direct = sorted(
        (topic, p["alarm"], p["transition"], p["event_id"]) for topic, p in aws.published()[published_before:]
    )

    assert batched == direct


def test_a_batch_every_record_of_which_fails_is_reported_whole_not_raised(
    inference: ModuleType, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = kinesis_batch([reading_payload(1), reading_payload(2, at_s=60)])
    monkeypatch.setattr(stream_batch, "may_start_motor", lambda: False)

    response = inference.lambda_handler(event, lambda_context)

    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        r["kinesis"]["sequenceNumber"] for r in event["Records"]
    ]
    assert response["readings"] == []


def test_records_that_are_not_readings_are_rejected_not_redelivered(
    inference: ModuleType, lambda_context: LambdaContext
) -> None:
    event = kinesis_batch([b"not json", reading_payload(1), {"motor_id": "motor-001"}])
    event["Records"][1]["kinesis"]["data"] = "%%%"  # not base64

    response = inference.lambda_handler(event, lambda_context)

    assert response["batchItemFailures"] == []
    assert [r["status"] for r in response["readings"]] == ["rejected", "rejected", "rejected"]
    assert "not base64 of a JSON reading" in response["readings"][1]["reason"]


def test_when_the_endpoint_fails_the_batch_is_applied_and_the_failure_counted_once(
    inference: ModuleType,
    sagemaker: FakeSageMakerRuntime,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sagemaker.fail_with = ClientError({"Error": {"Code": "ModelError", "Message": "boom"}}, "InvokeEndpoint")
    event = kinesis_batch([reading_payload(1), reading_payload(2, at_s=60), reading_payload(1, motor_id="motor-002")])

    response = inference.lambda_handler(event, lambda_context)

    assert response["batchItemFailures"] == []
    assert [r["status"] for r in response["readings"]] == ["applied"] * 3
    assert all(r["failure_probability"] is None for r in response["readings"])
    metrics = metrics_of(capsys.readouterr().out)
    assert metrics["PredictionsFailed"] == 3.0  # per reading, as the direct path counts: the alarm's ratio holds
    assert metrics["ModelCalls"] == 1.0
    assert "PredictionsMade" not in metrics


def test_a_direct_reading_still_returns_its_own_result(inference: ModuleType, lambda_context: LambdaContext) -> None:
    response = inference.lambda_handler(load_event("telemetry-normal"), lambda_context)

    assert response["status"] == "applied"
    assert "batchItemFailures" not in response


def test_a_device_cannot_pass_off_a_batch_of_other_motors_readings_as_its_own_reading(
    inference: ModuleType, aws: FakeAws, lambda_context: LambdaContext
) -> None:
    forged = kinesis_batch([reading_payload(1, motor_id="motor-009", vibration_mm_s=30.0)])
    # What TelemetryRule makes of it: the device's payload plus the rule's envelope fields.
    event = forged | {"topic_motor_id": "motor-001", "received_at": 1795780800120}

    response = inference.lambda_handler(event, lambda_context)

    assert response["status"] == "rejected"
    assert aws.dynamodb.scan(TableName="motor-state")["Items"] == []


def test_a_batch_is_applied_without_the_archive_which_reads_the_stream_through_its_own_mapping(
    inference: ModuleType, aws: FakeAws, sagemaker: FakeSageMakerRuntime, lambda_context: LambdaContext
) -> None:
    """Given the sample batch, when it is applied, then nothing goes into the archive's stream: ArchiveFunction
    archives the batch (tests/unit/test_archive_handler.py), so a Firehose brownout holds up no alarm."""
    response = inference.lambda_handler(load_event("telemetry-batch"), lambda_context)

    assert response["batchItemFailures"] == []
    assert aws.archived() == []
