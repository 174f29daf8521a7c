"""Batched ingestion on the local stack: the template's stream and mapping, the rules' Kinesis action, the poller.

local.template reads the `Fn::If` between TelemetryRule's Kinesis and Lambda actions, the stream and the
event source mapping (refusing what the local poller does not implement); local.router puts a rule's
result into a stream with its partition key; local.kinesis polls moto's Kinesis as Lambda's event source
mapping does: batches by size and window, checkpoints on partial failure, retries, bisects, discards to
the on-failure destination with Lambda's record, one batch per shard in flight. The functions here are
fakes that answer as the contract says; local.lambdas' synchronous invoke runs a real worker process.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cfn import TemplateError
from local.kinesis import BatchOutcome, EventSourceMapping, MappingConfig
from local.lambdas import FunctionConfig, LocalFunction, Outcome
from local.mqtt_client import Message
from local.options import StackOptions, batching_window_s
from local.router import Router, RuleSetupError
from local.specs import KinesisActionSpec, RuleSpec, Template
from local.template import load
from tests.support import ROOT
from tests.unit.test_local_rules import write_template

TEMPLATE = load(ROOT / "template.yaml")
STREAM = "telemetry"
REGION = "eu-west-1"


def batched(name: str) -> RuleSpec:
    rule = next(rule for rule in TEMPLATE.rules if rule.name == name)
    return rule.for_conditions(lambda condition: condition == "Batched")


# ---------------------------------------------------------------- the template


def test_the_telemetry_rules_put_into_the_stream_when_batched_and_invoke_the_function_when_direct() -> None:
    direct = TEMPLATE.resolver().condition_holds
    for name, key in (("TelemetryRule", "${topic(2)}"), ("LegacyTelemetryRule", "${clientid()}")):
        rule = next(rule for rule in TEMPLATE.rules if rule.name == name)
        assert (rule.for_conditions(direct).actions, rule.for_conditions(direct).kinesis) == (
            ("InferenceFunction",),
            (),
        )
        assert (batched(name).actions, batched(name).kinesis) == ((), (KinesisActionSpec("TelemetryStream", key),))
    assert batched("AlarmRule").actions == ("AlertFunction",)


def test_the_stream_and_its_mapping_are_read_with_every_property() -> None:
    [stream] = TEMPLATE.streams
    mapping, archive = sorted(TEMPLATE.event_source_mappings, key=lambda m: m.function != "InferenceFunction")
    assert (stream.logical_id, stream.shard_count, stream.condition) == ("TelemetryStream", 1, "Batched")
    assert (mapping.function, mapping.stream, mapping.starting_position) == (
        "InferenceFunction",
        "TelemetryStream",
        "TRIM_HORIZON",
    )
    assert (mapping.batch_size, mapping.batching_window_s) == (500, 60.0)
    assert (mapping.report_batch_item_failures, mapping.bisect_on_error) == (True, True)
    assert (mapping.max_retry_attempts, mapping.max_record_age_s, mapping.parallelization_factor) == (5, 3600, 1)
    assert (mapping.on_failure, mapping.enabled, mapping.condition) == ("FunctionFailureQueue", True, "Batched")
    # The archive's mapping: the same shards and batches, retried whole until the records leave the stream
    assert (archive.logical_id, archive.function, archive.stream) == (
        "TelemetryArchiveMapping",
        "ArchiveFunction",
        "TelemetryStream",
    )
    assert (archive.starting_position, archive.batch_size, archive.batching_window_s) == ("TRIM_HORIZON", 500, 60.0)
    assert (archive.report_batch_item_failures, archive.bisect_on_error) == (False, False)
    assert (archive.max_retry_attempts, archive.max_record_age_s, archive.parallelization_factor) == (-1, -1, 1)
    assert (archive.on_failure, archive.enabled, archive.condition) == ("FunctionFailureQueue", True, "Batched")


OTHERS = """
Stream:
  Type: AWS::Kinesis::Stream
  Properties: {ShardCount: 2}
Consumer:
  Type: AWS::Kinesis::StreamConsumer
  Properties: {ConsumerName: c, StreamARN: !GetAtt Stream.Arn}
Topic:
  Type: AWS::SNS::Topic
"""


def mapping_template(tmp_path: Path, **properties: str) -> Template:
    """write_template's function and queue, a stream, and a mapping from it with these properties."""
    written = {"FunctionName": "!Ref Fn", "EventSourceArn": "!GetAtt Stream.Arn", "StartingPosition": "LATEST"}
    lines = "".join(f"    {name}: {value}\n" for name, value in {**written, **properties}.items())
    return write_template(
        tmp_path, OTHERS + "Mapping:\n  Type: AWS::Lambda::EventSourceMapping\n  Properties:\n" + lines
    )


def test_a_mapping_without_optional_properties_takes_lambdas_defaults(tmp_path: Path) -> None:
    [mapping] = mapping_template(tmp_path).event_source_mappings
    assert (mapping.starting_position, mapping.batch_size, mapping.batching_window_s) == ("LATEST", 100, 0.0)
    assert (mapping.max_retry_attempts, mapping.max_record_age_s, mapping.on_failure) == (-1, -1, None)
    assert not mapping.report_batch_item_failures
    assert not mapping.bisect_on_error


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ({"StartingPosition": "AT_TIMESTAMP"}, r"Mapping\.Properties\.StartingPosition: 'AT_TIMESTAMP'"),
        ({"StartingPositionTimestamp": "1700000000"}, r"Mapping\.Properties: StartingPositionTimestamp not emulated"),
        ({"FilterCriteria": "{Filters: [{Pattern: '{}'}]}"}, r"Mapping\.Properties: FilterCriteria not emulated"),
        ({"TumblingWindowInSeconds": "60"}, r"Mapping\.Properties: TumblingWindowInSeconds not emulated"),
        ({"ParallelizationFactor": "2"}, r"Mapping\.Properties\.ParallelizationFactor: 2 - the local stack reads"),
        ({"EventSourceArn": "!GetAtt Consumer.ConsumerARN"}, r"Mapping\.Properties\.EventSourceArn: .*fan-out"),
        ({"FunctionResponseTypes": "[Other]"}, r"Mapping\.Properties\.FunctionResponseTypes"),
        ({"MaximumRecordAgeInSeconds": "30"}, r"Mapping\.Properties\.MaximumRecordAgeInSeconds: 30"),
        (
            {"DestinationConfig": "{OnFailure: {Destination: !Ref Topic}}"},
            r"Mapping\.Properties\.DestinationConfig\.OnFailure: .*queues only",
        ),
    ],
)
def test_what_the_local_poller_does_not_implement_stops_the_stack_naming_it(
    tmp_path: Path, properties: dict[str, str], named: str
) -> None:
    with pytest.raises(TemplateError, match=named):
        mapping_template(tmp_path, **properties)


@pytest.mark.parametrize(
    ("action", "named"),
    [
        ("Kinesis: {StreamName: !Ref Queue, PartitionKey: k, RoleArn: r}", r"StreamName.*AWS::Kinesis::Stream"),
        ("Kinesis: {StreamName: !Ref Stream, RoleArn: r}", r"Actions\[0\]\.Fn::If\[1\]\.Kinesis\.PartitionKey"),
        ("Kinesis: {StreamName: !Ref Stream, PartitionKey: k, BatchMode: true}", r"BatchMode not emulated"),
        ("Firehose: {DeliveryStreamName: d, RoleArn: r}", r"unsupported rule action Firehose in Rule"),
    ],
)
def test_a_rule_action_the_stack_cannot_run_fails_in_either_branch_of_an_if(
    tmp_path: Path, action: str, named: str
) -> None:
    rule = """
Rule:
  Type: AWS::IoT::TopicRule
  Properties:
    TopicRulePayload:
      Sql: SELECT * FROM 'a/+'
      Actions:
        - !If [Batched, {ACTION}, {Lambda: {FunctionArn: !GetAtt Fn.Arn}}]
Stream:
  Type: AWS::Kinesis::Stream
  Properties: {ShardCount: 1}
""".replace("ACTION", action)
    with pytest.raises(TemplateError, match=named):
        write_template(tmp_path, rule)


# ---------------------------------------------------------------- the rule's Kinesis action


def message(topic: str, payload: dict[str, Any], publisher: str | None = "motor-007") -> Message:
    return Message(topic, json.dumps(payload).encode(), qos=1, publisher=publisher)


def test_the_rules_result_goes_into_the_stream_keyed_by_the_template_on_the_original_message() -> None:
    puts: list[tuple[bytes, str]] = []
    rule = RuleSpec(
        "Rule",
        "SELECT *, topic(2) AS alias FROM 'motors/+/telemetry'",
        "2016-03-23",
        False,
        (),
        None,
        "test",
        kinesis=(KinesisActionSpec("Stream", "m-${topic(2)}-${alias}-${seq + 1}"),),
    )
    router = Router([rule], {}, park=lambda queue, record: None, streams={"Stream": lambda d, k: puts.append((d, k))})

    router.handle(message("motors/motor-007/telemetry", {"seq": 41}))

    [(data, key)] = puts
    assert json.loads(data) == {"seq": 41, "alias": "motor-007"}
    assert key == "m-motor-007--42", "an AS alias is not visible to a substitution template (AWS documents it)"


def test_a_failed_put_sends_iot_cores_error_record_with_the_kinesis_action_to_the_error_queue() -> None:
    parked: list[tuple[str, dict[str, Any]]] = []

    def refuse(data: bytes, key: str) -> None:
        raise RuntimeError("ProvisionedThroughputExceededException")

    rule = RuleSpec(
        "Rule", "SELECT * FROM 'a/+'", "2016-03-23", False, (), "Errors", "test",
        kinesis=(KinesisActionSpec("Stream", "${topic(2)}"), KinesisActionSpec("Stream", "${missing}")),
    )  # fmt: skip
    router = Router([rule], {}, park=lambda queue, record: parked.append((queue, record)), streams={"Stream": refuse})

    router.handle(message("a/b", {"x": 1}))

    assert [queue for queue, _ in parked] == ["Errors", "Errors"]
    failures = [record["failures"][0] for _, record in parked]
    assert [f["failedAction"] for f in failures] == ["KinesisAction", "KinesisAction"]
    assert "ProvisionedThroughputExceededException" in failures[0]["errorMessage"]
    assert "empty" in failures[1]["errorMessage"], "an Undefined partition key is an empty one, which Kinesis refuses"
    assert base64.b64decode(parked[0][1]["base64OriginalPayload"]) == b'{"x": 1}'


def test_a_kinesis_action_naming_a_stream_the_stack_did_not_create_fails_at_start() -> None:
    with pytest.raises(RuleSetupError, match="TelemetryRule: its Kinesis action names"):
        Router([batched("TelemetryRule")], {}, park=lambda queue, record: None, streams={})


# ---------------------------------------------------------------- the event source mapping


@dataclass
class FakeFunction:
    """A function answering as `answer(event, call)` says, recording every batch of sequence numbers it got."""

    answer: Callable[[dict[str, Any], int], tuple[Any, dict[str, Any] | None]]
    batches: list[list[str]] = field(default_factory=list)
    keys: list[list[str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        shard = event["Records"][0]["eventID"].split(":")[0]
        with self.lock:
            self.in_flight[shard] = self.in_flight.get(shard, 0) + 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight[shard])
            call = len(self.batches)
            self.batches.append([r["kinesis"]["sequenceNumber"] for r in event["Records"]])
            self.keys.append([r["kinesis"]["partitionKey"] for r in event["Records"]])
            self.events.append(event)
        time.sleep(0.01)
        try:
            return self.answer(event, call)
        finally:
            with self.lock:
                self.in_flight[shard] -= 1


def applied(event: dict[str, Any], call: int) -> tuple[Any, dict[str, Any] | None]:
    readings = [{"sequence_number": r["kinesis"]["sequenceNumber"], "status": "applied"} for r in event["Records"]]
    return {"batchItemFailures": [], "readings": readings}, None


@dataclass
class Shards:
    client: Any
    arn: str
    sequence_numbers: list[str] = field(default_factory=list)

    def put(self, count: int, key: Callable[[int], str] = lambda i: "motor-001") -> list[str]:
        numbers = []
        for i in range(count):
            answer = self.client.put_record(StreamName=STREAM, Data=json.dumps({"i": i}).encode(), PartitionKey=key(i))
            numbers.append(answer["SequenceNumber"])
        self.sequence_numbers += numbers
        return numbers


@pytest.fixture
def shards(request: pytest.FixtureRequest) -> Iterator[Shards]:
    with mock_aws():
        client = boto3.client("kinesis", region_name=REGION)
        client.create_stream(StreamName=STREAM, ShardCount=getattr(request, "param", 1))
        arn = client.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
        yield Shards(client, arn)


@dataclass
class Run:
    mapping: EventSourceMapping
    function: FakeFunction
    parked: list[dict[str, Any]]
    outcomes: list[BatchOutcome]

    def until_finished(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.mapping.finished < count:
            assert time.monotonic() < deadline, f"{self.mapping.finished} of {count} records finished"
            time.sleep(0.02)


@pytest.fixture
def start(shards: Shards) -> Iterator[Callable[..., Run]]:
    mappings: list[EventSourceMapping] = []

    def start_mapping(answer: Any = applied, clock: Callable[[], float] = time.time, **settings: Any) -> Run:
        function, parked, outcomes = FakeFunction(answer), [], []
        config = MappingConfig(
            name="Mapping",
            function="Fn",
            function_arn="arn:aws:lambda:eu-west-1:123456789012:function:Fn",
            stream_name=STREAM,
            stream_arn=shards.arn,
            invoke_identity_arn="arn:aws:iam::123456789012:role/FnRole",
            region=REGION,
            on_failure="Dlq",
            **settings,
        )
        mapping = EventSourceMapping(
            config,
            kinesis=lambda: shards.client,
            invoke=function,
            park=lambda queue, record: parked.append({"queue": queue, **record}),
            on_batch=outcomes.append,
            retry_delays_s=(0.0,),
            poll_interval_s=0.02,
            clock=clock,
        )
        mapping.start()
        mappings.append(mapping)
        return Run(mapping, function, parked, outcomes)

    yield start_mapping
    for mapping in mappings:
        mapping.stop()


def test_each_record_reaches_the_function_as_lambdas_kinesis_event_says(shards: Shards, start: Any) -> None:
    run = start(batch_size=10)
    before = time.time()
    [number] = shards.put(1, key=lambda i: "motor-042")
    run.until_finished(1)

    [record] = run.function.events[0]["Records"]
    assert record == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "motor-042",
            "sequenceNumber": number,
            "data": base64.b64encode(b'{"i": 0}').decode(),
            "approximateArrivalTimestamp": record["kinesis"]["approximateArrivalTimestamp"],
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/FnRole",
        "awsRegion": REGION,
        "eventSourceARN": shards.arn,
    }
    assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float)
    assert before - 1 <= record["kinesis"]["approximateArrivalTimestamp"] <= time.time() + 1


def test_a_batch_is_sent_when_full_and_the_rest_when_the_window_ends(shards: Shards, start: Any) -> None:
    shards.put(25)
    run = start(batch_size=10, batching_window_s=0.5)
    run.until_finished(25)

    assert [len(batch) for batch in run.function.batches] == [10, 10, 5]
    assert [n for batch in run.function.batches for n in batch] == shards.sequence_numbers


def test_a_batch_waits_for_the_window_after_its_first_record_and_takes_what_came_meanwhile(
    shards: Shards, start: Any
) -> None:
    run = start(batch_size=100, batching_window_s=0.6)
    time.sleep(0.1)
    first = time.monotonic()
    shards.put(2)
    time.sleep(0.2)
    shards.put(1)
    run.until_finished(3)

    assert time.monotonic() - first >= 0.5, "the window was waited for"
    assert run.function.batches == [shards.sequence_numbers]


def test_starting_at_latest_skips_what_the_stream_held_before(shards: Shards, start: Any) -> None:
    shards.put(3)
    # A window, so that the two later records make one batch however the poller's reads fall between them.
    run = start(starting_position="LATEST", batching_window_s=0.5)
    later = shards.put(2)
    run.until_finished(2)
    time.sleep(0.2)

    assert run.function.batches == [later]


def test_a_partial_failure_checkpoints_before_the_lowest_failed_record_and_redelivers_from_there(
    shards: Shards, start: Any
) -> None:
    def fail_third_once(event: dict[str, Any], call: int) -> tuple[Any, None]:
        records = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        if call > 0:
            return applied(event, call)
        readings = [{"sequence_number": n, "status": "applied"} for n in records[:2] + records[4:]]
        return {
            "batchItemFailures": [{"itemIdentifier": records[3]}, {"itemIdentifier": records[2]}],
            "readings": readings,
        }, None

    numbers = shards.put(6)
    run = start(fail_third_once, batch_size=10, report_batch_item_failures=True)
    run.until_finished(6)

    assert run.function.batches == [numbers, numbers[2:]], "redelivered from the lowest failed record on"
    first, second = run.outcomes
    assert [r["sequence_number"] for r in first.readings] == numbers[:2], "only what is behind the checkpoint counts"
    assert first.retried == 4
    assert [r["sequence_number"] for r in second.readings] == numbers[2:]
    assert run.parked == []


@pytest.mark.parametrize(
    "failures",
    [[{"itemIdentifier": "1"}], [{"itemIdentifier": ""}], [{"itemIdentifier": None}], [{"id": "x"}], "all"],
    ids=["not-in-batch", "empty", "null", "wrong-key", "not-a-list"],
)
def test_an_invalid_batch_item_failures_answer_fails_the_whole_batch(shards: Shards, start: Any, failures: Any) -> None:
    numbers = shards.put(3)
    run = start(
        lambda event, call: ({"batchItemFailures": failures} if call == 0 else applied(event, call)[0], None),
        report_batch_item_failures=True,
    )
    run.until_finished(3)

    assert run.function.batches == [numbers, numbers]


def test_without_report_batch_item_failures_the_answer_is_not_read(shards: Shards, start: Any) -> None:
    numbers = shards.put(3)
    run = start(lambda event, call: ({"batchItemFailures": [{"itemIdentifier": "x"}]}, None))
    run.until_finished(3)

    assert run.function.batches == [numbers]


def test_a_failing_batch_is_retried_then_its_batch_info_goes_to_the_destination_and_the_shard_moves_on(
    shards: Shards, start: Any
) -> None:
    error = {"errorType": "ModelUnavailable", "errorMessage": "down"}
    numbers = shards.put(3)
    run = start(
        lambda event, call: (None, error) if call < 3 else applied(event, call),
        batch_size=3,
        max_retry_attempts=2,
    )
    run.until_finished(3)
    later = shards.put(1)
    run.until_finished(4)

    assert run.function.batches == [numbers, numbers, numbers, later], "1 attempt + 2 retries, then the next record"
    [record] = run.parked
    assert record["queue"] == "Dlq"
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == "arn:aws:lambda:eu-west-1:123456789012:function:Fn"
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["version"] == "1.0"
    info = record["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"]) == (
        "shardId-000000000000",
        numbers[0],
        numbers[-1],
    )
    assert (info["batchSize"], info["streamArn"]) == (3, shards.arn)
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert "Records" not in record, "a stream source's failure record names the batch, it does not carry it"
    discarded = [o for o in run.outcomes if o.discarded]
    assert [(o.discarded, o.dead_lettered, o.condition) for o in discarded] == [(3, True, "RetryAttemptsExhausted")]


def test_bisecting_isolates_the_bad_record_and_splitting_does_not_count_as_a_retry(shards: Shards, start: Any) -> None:
    numbers = shards.put(4)
    poison = numbers[2]

    def fail_on_poison(event: dict[str, Any], call: int) -> tuple[Any, dict[str, Any] | None]:
        if any(r["kinesis"]["sequenceNumber"] == poison for r in event["Records"]):
            return None, {"errorType": "ValueError", "errorMessage": "poison"}
        return applied(event, call)

    run = start(fail_on_poison, batch_size=4, bisect_on_error=True, max_retry_attempts=1)
    run.until_finished(4)

    a, b, c, d = numbers
    assert run.function.batches == [[a, b, c, d], [a, b], [c, d], [c], [c], [d]]
    [record] = run.parked
    assert (record["KinesisBatchInfo"]["startSequenceNumber"], record["KinesisBatchInfo"]["batchSize"]) == (c, 1)
    assert record["requestContext"]["approximateInvokeCount"] == 4, "[a..d], [c, d], [c] and its one retry"


def test_records_older_than_the_maximum_age_are_discarded_without_another_try(shards: Shards, start: Any) -> None:
    offset = [0.0]
    numbers = shards.put(2)

    def fail_and_age(event: dict[str, Any], call: int) -> tuple[None, dict[str, Any]]:
        offset[0] = 120.0
        return None, {"errorType": "Boom", "errorMessage": "still down"}

    run = start(fail_and_age, max_record_age_s=60, clock=lambda: time.time() + offset[0])
    run.until_finished(2)

    assert run.function.batches == [numbers], "retries are infinite, but the records expired"
    [record] = run.parked
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["KinesisBatchInfo"]["batchSize"] == 2


@pytest.mark.parametrize("shards", [2], indirect=True)
def test_each_shard_has_one_batch_in_flight_and_each_keys_records_arrive_in_order(shards: Shards, start: Any) -> None:
    motors = [f"motor-{m:03d}" for m in range(12)]
    shards.put(120, key=lambda i: motors[i % len(motors)])

    run = start(batch_size=7, batching_window_s=0.1)
    run.until_finished(120)

    seen: dict[str, list[int]] = {}
    for batch, keys in zip(run.function.batches, run.function.keys, strict=True):
        for number, key in zip(batch, keys, strict=True):
            seen.setdefault(key, []).append(int(number))
    assert set(seen) == set(motors)
    assert all(numbers == sorted(numbers) for numbers in seen.values()), "a motor's readings stay in order"
    assert sum(len(n) for n in seen.values()) == 120
    assert {event["Records"][0]["eventID"].split(":")[0] for event in run.function.events} == {
        "shardId-000000000000",
        "shardId-000000000001",
    }
    assert run.function.most_in_flight == 1, "one batch per shard at a time (ParallelizationFactor 1)"


# ---------------------------------------------------------------- synchronous invocation


def test_a_synchronous_invoke_returns_the_result_or_the_error_without_retry_or_destination(tmp_path: Path) -> None:
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text(
        "def handler(event, context):\n"
        "    if event.get('fail'):\n"
        "        raise ValueError('bad batch')\n"
        "    return {'batchItemFailures': [], 'got': len(event['Records'])}\n"
    )
    parked: list[Any] = []
    outcomes: list[Outcome] = []
    function = LocalFunction(
        FunctionConfig(name="Fn", code_uri=code, handler="app.handler", environment={}, timeout_s=10, on_failure="Q"),
        base_env={"PATH": "/usr/bin:/bin"},
        log_dir=tmp_path / "logs",
        park=lambda queue, record: parked.append(record),
        on_outcome=outcomes.append,
    )
    try:
        assert function.invoke({"Records": [1, 2]}) == ({"batchItemFailures": [], "got": 2}, None)
        result, error = function.invoke({"fail": True})
        assert result is None
        assert error is not None
        assert (error["errorType"], error["errorMessage"]) == ("ValueError", "bad batch")
        assert (function.invocations, function.errors, function.pending()) == (2, 1, 0)
        assert parked == outcomes == [], "the caller (the mapping) decides about retries and destinations"
    finally:
        function.stop()


# ---------------------------------------------------------------- the accounting


def test_the_watch_counts_a_batchs_settled_readings_and_its_discarded_records_as_dead_lettered() -> None:
    from local.watch import Watch

    watch = Watch(("motor-001",))
    readings = (
        {"sequence_number": "1", "status": "applied", "motor_id": "motor-001", "failure_probability": 0.7},
        {"sequence_number": "2", "status": "duplicate", "motor_id": "motor-001", "failure_probability": 0.75},
        {"sequence_number": "3", "status": "rejected", "motor_id": None, "reason": "speed_rpm < 0"},
    )
    watch.on_stack(
        "batch", BatchOutcome("M", "InferenceFunction", "shard", ("1", "2", "3", "4"), {}, None, readings, 1)
    )
    watch.on_stack(
        "batch", BatchOutcome("M", "InferenceFunction", "shard", ("4",), error={"errorType": "E"}, retried=1)
    )
    watch.on_stack(
        "batch",
        BatchOutcome(
            "M", "InferenceFunction", "shard", ("4",), error={"errorType": "E"}, discarded=1, dead_lettered=True
        ),
    )

    _, _, counts, _ = watch.snapshot()
    assert (counts["readings.processed"], counts["readings.rejected"], counts["readings.dead_lettered"]) == (2, 1, 1)
    assert counts["InferenceFunction.invocations"] == 2, "the discard invoked nothing"
    assert watch.motors["motor-001"].failure_probability == 0.75, "the latest reading of the batch shows"


# ---------------------------------------------------------------- the simulator's options


def test_the_simulators_ingestion_options_reach_the_stack_options() -> None:
    from device.options import parse
    from local.simulation import stack_options

    args, _ = parse(["--ingestion-mode", "batched", "--batch-window-s", "1.5"])
    options = stack_options(args, ("motor-001",), lambda line: None)
    assert (options.ingestion_mode, options.batch_window_s) == ("batched", 1.5)
    default = stack_options(parse([])[0], ("motor-001",), lambda line: None)
    assert (default.ingestion_mode, default.batch_window_s) == ("direct", None)


def test_a_batch_window_without_batched_ingestion_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from device import simulate

    with pytest.raises(SystemExit) as exit_info:
        simulate.main(["--batch-window-s", "1"])
    assert exit_info.value.code == 2
    assert "--batch-window-s applies to --ingestion-mode batched only" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("template_s", "override", "speedup", "expected"),
    [(60.0, None, 1.0, 60.0), (60.0, None, 2000.0, 0.2), (60.0, None, 100.0, 0.6), (0.0, None, 100.0, 0.0),
     (60.0, 1.0, 2000.0, 1.0)],
)  # fmt: skip
def test_the_batching_window_is_waited_in_simulated_time_unless_overridden(
    template_s: float, override: float | None, speedup: float, expected: float
) -> None:
    options = StackOptions(batch_window_s=override, speedup=speedup)

    assert batching_window_s(template_s, options) == pytest.approx(expected)
