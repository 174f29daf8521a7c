"""scripts/redrive.py against moto's SQS, Kinesis and IoT data plane, with a Lambda client that runs the real handlers.

The records are shaped as AWS documents them: Lambda's on-failure destination record ("Capturing
records of Lambda asynchronous invocations"), its record of a Kinesis event source mapping's failed
batch ("Retain discarded batch records for a Kinesis Data Streams event source") and IoT Core's
error-action message.
"""

from __future__ import annotations

import base64
import io
import json
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

import motor_adapters.clients
from motor_adapters.clients import client as real_client
from motor_maintenance.errors import PublishFailed
from scripts import redrive
from tests.conftest import FakeAws
from tests.support import LambdaContext, kinesis_batch, load_event, load_handler, reading_payload

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ACCOUNT, REGION = "123456789012", "eu-west-1"
STREAM = "motor-maintenance-TelemetryStream-d4"
SHARD = "shardId-000000000000"
FUNCTIONS = {
    "InferenceFunctionName": ("motor-maintenance-InferenceFunction-a1", "inference"),
    "OperatorActionFunctionName": ("motor-maintenance-OperatorActionFunction-b2", "actions"),
    "AlertFunctionName": ("motor-maintenance-AlertFunction-c3", "alerts"),
}


def function_arn(output: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTIONS[output][0]}:$LATEST"


def lambda_failure_record(output: str, event: Any, error: Exception) -> dict[str, Any]:
    """What Lambda sends to an on-failure destination after the last retry."""
    return {
        "version": "1.0",
        "timestamp": "2026-11-27T12:01:05.568Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-4b8e-8880-a18cdf61200e",
            "functionArn": function_arn(output),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
    }


def rule_error_record(topic: str, payload: bytes, client_id: str, rule: str = "TelemetryRule") -> dict[str, Any]:
    """What an IoT rule's SQS error action sends when its Lambda action failed."""
    return {
        "ruleName": rule,
        "topic": topic,
        "cloudwatchTraceId": "7e146a2c-95b5-6caf-98b9-50e3969734c7",
        "clientId": client_id,
        "base64OriginalPayload": base64.b64encode(payload).decode(),
        "failures": [
            {
                "failedAction": "LambdaAction",
                "failedResource": FUNCTIONS["InferenceFunctionName"][0],
                "errorMessage": "Failed to invoke lambda function. Received Server error from Lambda. "
                "The error code is 429",
            }
        ],
    }


def kinesis_failure_record(first: str, last: str, batch_size: int, stream: str = STREAM) -> dict[str, Any]:
    """What TelemetryStreamMapping sends to its on-failure destination: where the batch is, not its records."""
    return {
        "requestContext": {
            "requestId": "c9b8fa9f-5a7f-4fb2-9a2f-1b5b3a1e2c3d",
            "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTIONS['InferenceFunctionName'][0]}",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 6,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-27T12:01:05.568Z",
        "KinesisBatchInfo": {
            "shardId": SHARD,
            "startSequenceNumber": first,
            "endSequenceNumber": last,
            "approximateArrivalOfFirstRecord": "2026-11-27T11:59:58.301Z",
            "approximateArrivalOfLastRecord": "2026-11-27T12:00:01.002Z",
            "batchSize": batch_size,
            "streamArn": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}",
        },
    }


class FlakyKinesis:
    """Kinesis (moto), whose PutRecords fails the first entry of one partition key for its next `refusals` calls.

    As Kinesis does, the request's other entries are put all the same.
    """

    def __init__(self, refuse_key: str | None = None, refusals: int = 0) -> None:
        self.real = real_client("kinesis")
        self.refuse_key = refuse_key
        self.refusals = refusals
        self.put_calls: list[list[str]] = []
        self.expired = False

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        if self.expired:  # what Kinesis answers for a sequence number past the stream's retention
            raise ClientError(
                {"Error": {"Code": "InvalidArgumentException", "Message": "sequence number has been trimmed"}},
                "GetShardIterator",
            )
        return self.real.get_shard_iterator(**kwargs)

    def get_records(self, **kwargs: Any) -> Any:
        return self.real.get_records(**kwargs)

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.put_calls.append([entry["PartitionKey"] for entry in Records])
        refused = self.refusals > 0
        self.refusals -= refused
        results: list[dict[str, Any]] = []
        for entry in Records:
            if refused and entry["PartitionKey"] == self.refuse_key:
                refused = False  # the first one only: the key's later entries would be put
                results.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate"})
            else:
                results.append(self.real.put_records(StreamName=StreamName, Records=[entry])["Records"][0])
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


class FakeCloudFormation:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


class FakeLambda:
    """Lambda's Invoke: accepts (202) and runs the real handler in-process, recording what it got."""

    def __init__(self, handlers: dict[str, ModuleType]) -> None:
        self.handlers = handlers
        self.invocations: list[tuple[str, str, Any]] = []
        self.answers: list[Any] = []
        self.refuse: ClientError | None = None

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        if self.refuse is not None:
            raise self.refuse
        name = FunctionName.split(":")[6] if FunctionName.startswith("arn:") else FunctionName  # both are accepted
        event = json.loads(Payload)
        self.invocations.append((name, InvocationType, event))
        self.answers.append(self.handlers[name].lambda_handler(event, LambdaContext()))
        return {"StatusCode": 202}


class Stack:
    """The stack's queues on moto, its outputs, and what the script's AWS clients do."""

    def __init__(self, aws: FakeAws, *, batched: bool = False) -> None:
        self.aws = aws
        self.queues = {
            name: aws.sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("function-failures", "rule-errors")
        }
        outputs = {output: name for output, (name, _) in FUNCTIONS.items()}
        outputs |= {"FunctionFailureQueueUrl": self.queues["function-failures"]}
        outputs |= {"RuleErrorQueueUrl": self.queues["rule-errors"]}
        self.batched = batched
        if batched:  # IngestionMode batched: TelemetryStream and its output
            real_client("kinesis").create_stream(StreamName=STREAM, ShardCount=1)
            outputs |= {"TelemetryStreamName": STREAM}
        self.kinesis = FlakyKinesis()
        self.cloudformation = FakeCloudFormation(outputs)
        self.lambda_ = FakeLambda({name: load_handler(module) for name, module in FUNCTIONS.values()})
        self.iot_data_endpoints: list[str] = []

    def make_client(self, service: str, **kwargs: Any) -> Any:
        if service == "cloudformation":
            return self.cloudformation
        if service == "lambda":
            return self.lambda_
        if service == "kinesis" and self.batched:
            return self.kinesis
        if service == "iot-data":  # moto serves the data plane on its generic host only
            self.iot_data_endpoints.append(kwargs.pop("endpoint_url"))
        return real_client(service, **kwargs)

    def park(self, queue: str, record: dict[str, Any] | str) -> None:
        body = record if isinstance(record, str) else json.dumps(record)
        self.aws.sqs.send_message(QueueUrl=self.queues[queue], MessageBody=body)

    def waiting(self, queue: str) -> int:
        attributes = self.aws.sqs.get_queue_attributes(
            QueueUrl=self.queues[queue],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0", "a message was left hidden"
        return int(attributes["ApproximateNumberOfMessages"])

    def stream(self, readings: list[dict[str, Any]]) -> list[str]:
        """Readings into TelemetryStream as TelemetryRule writes them; their sequence numbers."""
        kinesis = real_client("kinesis")
        sequence_numbers = []
        for reading in readings:
            data = json.dumps(reading | {"topic_motor_id": reading["motor_id"], "received_at": reading["ts"]})
            put = kinesis.put_record(StreamName=STREAM, Data=data.encode(), PartitionKey=reading["motor_id"])
            sequence_numbers.append(put["SequenceNumber"])
        return sequence_numbers

    def shard(self) -> list[tuple[str, dict[str, Any]]]:
        """Every record of the shard, oldest first: (partition key, reading)."""
        kinesis = real_client("kinesis")
        iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=SHARD, ShardIteratorType="TRIM_HORIZON")
        records = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=10_000)["Records"]
        return [(record["PartitionKey"], json.loads(record["Data"])) for record in records]

    def run(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        status = redrive.main(["--stack", "motor-maintenance", *args], make_client=self.make_client, out=out)
        return status, out.getvalue()


@pytest.fixture
def stack(aws: FakeAws) -> Stack:
    return Stack(aws)


@pytest.fixture
def batched(aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setattr(redrive, "PUT_RETRY_PAUSES_S", (0.0, 0.0, 0.0))
    return Stack(aws, batched=True)


def readings() -> list[dict[str, Any]]:
    """Two motors' readings in arrival order; the middle three are the failed batch."""
    return [
        reading_payload(1, at_s=0),
        reading_payload(1, at_s=1, motor_id="motor-002"),
        reading_payload(2, at_s=60),
        reading_payload(3, at_s=120),
        reading_payload(2, at_s=61, motor_id="motor-002"),
    ]


class FlakyIotData:
    """The IoT data plane, refusing every publish while `down`."""

    def __init__(self) -> None:
        self.down = True

    def publish(self, **kwargs: Any) -> Any:
        if self.down:
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "data plane down"}}, "Publish")
        return real_client("iot-data").publish(**kwargs)


def test_an_invocation_that_failed_its_retries_is_redriven_with_its_event_and_alerts_once(
    stack: Stack, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the IoT data plane down while a reading raised an alarm, so that Lambda's three attempts
    failed and the on-failure record was parked, when the data plane is back and the queue is
    redriven, then the function gets the exact event again, the alarm event is published, people are
    alerted once, and the record is deleted."""
    iot = FlakyIotData()
    monkeypatch.setattr(
        motor_adapters.clients,
        "client",
        lambda service, **kw: iot if service == "iot-data" else real_client(service, **kw),
    )
    inference = stack.lambda_.handlers[FUNCTIONS["InferenceFunctionName"][0]]
    inference.lambda_handler(reading_payload(1, at_s=0, vibration_mm_s=12.0, running=False), LambdaContext())
    event = reading_payload(2, at_s=60, vibration_mm_s=12.0, running=False) | {"topic_motor_id": "motor-001"}
    for _attempt in range(3):  # the first try and Lambda's two retries
        with pytest.raises(PublishFailed) as failure:
            inference.lambda_handler(event, LambdaContext())
    stack.park("function-failures", lambda_failure_record("InferenceFunctionName", event, failure.value))
    iot.down = False

    status, out = stack.run("--queue", "function-failures")
    for _topic, alarm_event in aws.published():  # what AlarmRule does with what was published
        stack.lambda_.handlers[FUNCTIONS["AlertFunctionName"][0]].lambda_handler(alarm_event, LambdaContext())

    assert status == 0
    name, invocation_type, payload = stack.lambda_.invocations[0]
    assert (name, invocation_type, payload) == (FUNCTIONS["InferenceFunctionName"][0], "Event", event)
    assert stack.lambda_.answers[0]["status"] == "duplicate"  # applied on the first try; only the publish was left
    assert [alarm["transition"] for _topic, alarm in aws.published()] == ["raised"]
    assert len(aws.alerts()) == 1
    assert stack.waiting("function-failures") == 0
    assert "function-failures: 1 redriven, 0 cannot be" in out


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(stack: Stack, aws: FakeAws) -> None:
    stack.park(
        "function-failures", lambda_failure_record("AlertFunctionName", load_event("alarm-raised"), ValueError())
    )
    telemetry = json.dumps(reading_payload(1)).encode()
    stack.park("rule-errors", rule_error_record("motors/motor-001/telemetry", telemetry, "motor-001"))

    status, out = stack.run("--dry-run")

    assert status == 0
    assert f"would invoke {function_arn('AlertFunctionName')}" in out
    assert "would publish motors/motor-001/telemetry" in out
    assert stack.lambda_.invocations == []
    assert aws.published() == []
    assert (stack.waiting("function-failures"), stack.waiting("rule-errors")) == (1, 1)


def test_a_rule_error_on_a_motor_topic_is_published_again_to_that_topic(stack: Stack, aws: FakeAws) -> None:
    telemetry = json.dumps(reading_payload(7)).encode()
    stack.park("rule-errors", rule_error_record("motors/motor-001/telemetry", telemetry, "motor-001"))

    status, _ = stack.run("--queue", "rule-errors")

    assert status == 0
    assert aws.published() == [("motors/motor-001/telemetry", json.loads(telemetry))]
    assert stack.iot_data_endpoints[0].endswith("-ats.iot.eu-west-1.amazonaws.com")
    assert stack.waiting("rule-errors") == 0


def test_a_legacy_reading_is_mapped_as_its_rule_maps_it_and_sent_to_the_inference_function(stack: Stack) -> None:
    """Republishing would not work (no MQTT client id over HTTP), so the script does the rule's mapping."""
    original = {"motorID": "AWS98765", "motorType": "Pump_GN12345", "TT01": 42.0, "TT02": 64, "TT03": 57}
    original |= {"TT04": 30, "FTO1": 231, "PT01": 27.3}  # FTO1: the original simulator's spelling
    received_ms = 1795780800000

    event = redrive.legacy_event(original, client_id="AWS98765", received_ms=received_ms)

    assert event == load_event("telemetry-legacy")  # what LegacyTelemetryRule's SQL produces
    stack.park("rule-errors", rule_error_record("iml_iotevents_data", json.dumps(original).encode(), "AWS98765"))
    status, _ = stack.run("--queue", "rule-errors")
    [(name, _, sent)] = stack.lambda_.invocations
    assert status == 0
    assert name == FUNCTIONS["InferenceFunctionName"][0]
    assert sent["ts"] == sent["seq"] == sent["received_at"]  # stamped with the time SQS received the error
    assert {k: v for k, v in sent.items() if k not in {"ts", "seq", "received_at"}} == {
        k: v for k, v in event.items() if k not in {"ts", "seq", "received_at"}
    }
    assert stack.lambda_.answers[0]["status"] == "applied"


def test_what_cannot_be_redriven_stays_in_the_queue_and_is_reported(stack: Stack) -> None:
    foreign = lambda_failure_record("InferenceFunctionName", reading_payload(1), ValueError())
    foreign["requestContext"]["functionArn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:someone-elses"
    stack.park("function-failures", foreign)
    stack.park("function-failures", "not json")
    stack.park("rule-errors", rule_error_record("factory/other/topic", b"{}", "x"))

    status, out = stack.run()

    assert status == 1
    assert "left: function 'someone-elses' is not one of this stack's" in out
    assert "left: topic 'factory/other/topic' is read by no rule of this stack" in out
    assert stack.lambda_.invocations == []
    assert (stack.waiting("function-failures"), stack.waiting("rule-errors")) == (2, 1)


def test_a_redrive_lambda_refuses_is_kept_for_the_next_run(stack: Stack) -> None:
    stack.park(
        "function-failures", lambda_failure_record("AlertFunctionName", load_event("alarm-raised"), ValueError())
    )
    stack.lambda_.refuse = ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate"}}, "Invoke")

    first, out = stack.run("--queue", "function-failures")
    stack.lambda_.refuse = None
    second, _ = stack.run("--queue", "function-failures")

    assert (first, second) == (1, 0)
    assert "left: redrive failed" in out
    assert stack.lambda_.answers[0]["status"] == "sent"
    assert stack.waiting("function-failures") == 0


def test_a_failed_stream_batch_is_put_back_in_order_with_its_keys_and_applied_again(batched: Stack) -> None:
    """Given five readings in TelemetryStream, of which the middle three were a batch that failed its
    retries, when the queue is redriven, then exactly those three are put back into the stream, in
    their order, each with its motor id as partition key, the record is deleted, and the readings,
    delivered again by the event source mapping, are applied."""
    sequence_numbers = batched.stream(readings())
    batched.park("function-failures", kinesis_failure_record(sequence_numbers[1], sequence_numbers[3], 3))

    status, out = batched.run("--queue", "function-failures")

    assert status == 0
    shard = batched.shard()
    assert shard[:5] == [
        (r["motor_id"], r | {"topic_motor_id": r["motor_id"], "received_at": r["ts"]}) for r in readings()
    ]
    assert shard[5:] == shard[1:4]
    assert [(key, reading["seq"]) for key, reading in shard[5:]] == [
        ("motor-002", 1),
        ("motor-001", 2),
        ("motor-001", 3),
    ]
    assert batched.waiting("function-failures") == 0
    assert f"redriven: put 3 records (batch of 3) back into stream {STREAM} {SHARD}" in out
    inference = batched.lambda_.handlers[FUNCTIONS["InferenceFunctionName"][0]]
    response = inference.lambda_handler(kinesis_batch([reading for _, reading in shard[5:]]), LambdaContext())
    assert response["batchItemFailures"] == []
    assert [reading["status"] for reading in response["readings"]] == ["applied"] * 3


def test_a_dry_run_of_a_stream_batch_says_what_it_found_and_puts_nothing(batched: Stack) -> None:
    sequence_numbers = batched.stream(readings())
    batched.park("function-failures", kinesis_failure_record(sequence_numbers[1], sequence_numbers[3], 3))

    status, out = batched.run("--dry-run")

    assert status == 0
    range_ = f"{sequence_numbers[1]}..{sequence_numbers[3]}"
    assert f"would put 3 records (batch of 3) back into stream {STREAM} {SHARD} sequence numbers {range_}" in out
    assert len(batched.shard()) == 5
    assert batched.kinesis.put_calls == []
    assert batched.waiting("function-failures") == 1


def test_a_batch_of_another_stacks_stream_is_left_and_reported(batched: Stack) -> None:
    sequence_numbers = batched.stream(readings())
    record = kinesis_failure_record(sequence_numbers[1], sequence_numbers[3], 3, stream="someone-elses-stream")
    batched.park("function-failures", record)

    status, out = batched.run("--queue", "function-failures")

    assert status == 1
    assert f"left: stream 'someone-elses-stream' is not this stack's ({STREAM})" in out
    assert len(batched.shard()) == 5
    assert batched.waiting("function-failures") == 1


@pytest.mark.parametrize("how", ["the first records trimmed", "the iterator refused"])
def test_a_batch_whose_records_expired_is_left_in_the_queue_and_nothing_is_put(batched: Stack, how: str) -> None:
    """The stream keeps records 24 hours: past that, some or all of a batch are gone."""
    sequence_numbers = batched.stream(readings())
    batched.park("function-failures", kinesis_failure_record(sequence_numbers[1], sequence_numbers[3], 3))
    if how == "the first records trimmed":
        from moto.kinesis.models import kinesis_backends

        shard = kinesis_backends[ACCOUNT][REGION].streams[STREAM].shards[SHARD]
        for sequence_number in sequence_numbers[:3]:  # trimmed, oldest first
            del shard.records[int(sequence_number)]
    else:
        batched.kinesis.expired = True

    status, out = batched.run("--queue", "function-failures")

    assert status == 1
    assert "left: records expired" in out
    assert "the stream keeps records 24 hours" in out
    assert batched.kinesis.put_calls == []
    assert batched.waiting("function-failures") == 1


def test_records_putrecords_refuses_are_put_again_alone_and_before_the_motors_next_reading(batched: Stack) -> None:
    sequence_numbers = batched.stream(readings())
    batched.park("function-failures", kinesis_failure_record(sequence_numbers[1], sequence_numbers[3], 3))
    batched.kinesis.refuse_key, batched.kinesis.refusals = "motor-001", 2

    status, _ = batched.run("--queue", "function-failures")

    assert status == 0
    assert batched.kinesis.put_calls == [["motor-002", "motor-001"], ["motor-001"], ["motor-001"], ["motor-001"]]
    assert [(key, reading["seq"]) for key, reading in batched.shard()[5:]] == [
        ("motor-002", 1),
        ("motor-001", 2),
        ("motor-001", 3),
    ]
    assert batched.waiting("function-failures") == 0


def test_a_batch_putrecords_keeps_refusing_is_left_in_the_queue(batched: Stack) -> None:
    sequence_numbers = batched.stream(readings())
    batched.park("function-failures", kinesis_failure_record(sequence_numbers[1], sequence_numbers[3], 3))
    batched.kinesis.refuse_key, batched.kinesis.refusals = "motor-001", 100

    status, out = batched.run("--queue", "function-failures")

    assert status == 1
    assert "left: redrive failed: PutRecords failed for 1 of the batch's records" in out
    assert "ProvisionedThroughputExceededException" in out
    assert len(batched.kinesis.put_calls) == 1 + len(redrive.PUT_RETRY_PAUSES_S)
    assert batched.waiting("function-failures") == 1


def test_a_stack_without_a_stream_leaves_a_stream_batch_and_redrives_the_rest_as_before(stack: Stack) -> None:
    """A direct-mode stack has no TelemetryStreamName output; its invocations are redriven as they always were."""
    stack.park("function-failures", kinesis_failure_record("49656", "49658", 3))
    stack.park(
        "function-failures", lambda_failure_record("AlertFunctionName", load_event("alarm-raised"), ValueError())
    )

    status, out = stack.run("--queue", "function-failures")

    assert status == 1
    assert f"left: stream {STREAM!r}: this stack has no stream (no output TelemetryStreamName)" in out
    assert [name for name, _, _ in stack.lambda_.invocations] == [FUNCTIONS["AlertFunctionName"][0]]
    assert "function-failures: 1 redriven, 1 cannot be" in out
    assert stack.waiting("function-failures") == 1


def test_putrecords_requests_keep_to_its_limits_and_hold_a_motor_once() -> None:
    def record(i: int, key: str, size: int = 100) -> redrive.StreamRecord:
        return redrive.StreamRecord(b"x" * size, key, str(i))

    many = [record(i, f"motor-{i:04d}") for i in range(1200)]
    large = [record(i, f"motor-{i}", size=2 * 1024 * 1024) for i in range(5)]
    one_motor = [record(i, "motor-001") for i in range(3)]

    assert [len(request) for request in redrive.put_requests(many)] == [500, 500, 200]
    assert [len(request) for request in redrive.put_requests(large)] == [2, 2, 1]  # 5 MB a request
    assert [len(request) for request in redrive.put_requests(one_motor)] == [1, 1, 1]
    assert [r for request in redrive.put_requests(many) for r in request] == many  # the order kept
