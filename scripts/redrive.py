"""Put back what a failure set aside: the messages in a stack's FunctionFailureQueue and RuleErrorQueue.

    python scripts/redrive.py --stack motor-maintenance --dry-run    # say what it would do, change nothing
    python scripts/redrive.py --stack motor-maintenance              # do it (both queues)
    python scripts/redrive.py --stack motor-maintenance --queue function-failures

FunctionFailureQueue holds Lambda's on-failure records: the event the function received is in
`requestPayload`, the function in `requestContext.functionArn`. That function is invoked again
with that event, asynchronously (InvocationType Event, as the IoT rule invoked it).

With IngestionMode batched it also holds the records of TelemetryStreamMapping's failed batches.
Those do not carry the readings, only where they are: `KinesisBatchInfo` names the stream, the
shard and the sequence-number range. The readings are read back from the stream and put into it
again, in their order, each with its partition key (the motor id), so the event source mapping
applies them again. Only the stack's own stream (output TelemetryStreamName) is redriven. The
stream keeps records 24 hours: a batch whose records are no longer all there cannot be redriven.

RuleErrorQueue holds IoT Core's error records: the message in `base64OriginalPayload`, its
`topic` and the publisher's `clientId`. A message of a `{namespace}/{id}/...` topic (the stack's own
TopicNamespace: only the stack's rules park in its queue) is published again to its topic, so its rule
runs again. A message of the original sample's `iml_iotevents_data`
cannot be: its rule takes the motor id from the MQTT client id, which a message published over
HTTP does not have. It is mapped as LegacyTelemetryRule maps it, stamped with the time SQS
received it, and InferenceFunction is invoked with the result.

A message is deleted only once its redrive was accepted (for a stream batch: once every one of its
records was put back). One that cannot be redriven (a function of another stack, another stream, a
batch whose records expired, a topic no rule of this stack reads, a body that is not a record)
stays in the queue and is reported, and the exit status is 1. Redriving twice is harmless:
readings are deduplicated by (ts, seq), actions by action_id, alerts by event_id. A reading older
than the newest one applied for its motor is counted stale and not applied.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

if not __package__:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

QUEUES = {"function-failures": "FunctionFailureQueueUrl", "rule-errors": "RuleErrorQueueUrl"}
FUNCTION_OUTPUTS = ("InferenceFunctionName", "OperatorActionFunctionName", "AlertFunctionName")
LEGACY_TOPIC = "iml_iotevents_data"
RULE_TOPICS = re.compile(r"^[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_-]{1,64}/(telemetry|actions|alarms)$")
"""The topics of the stack's rules: {namespace}/{motor_id}/..., the namespace one level (TopicNamespace)."""
VISIBILITY_S = 300
"""How long a received message stays hidden: a run sees each message once."""
STREAM_OUTPUT = "TelemetryStreamName"
"""Only in a stack with IngestionMode batched."""
PUT_MAX_RECORDS = 500
PUT_MAX_BYTES = 5 * 1024 * 1024
"""PutRecords' limits per request (data and partition keys counted)."""
PUT_RETRY_PAUSES_S = (0.2, 1.0, 3.0)
"""Pauses before putting a request's failed entries again (throttling by the shard, usually)."""
MAX_GET_RECORDS_CALLS = 1000
"""GetRecords calls for one batch before giving up: the range is at most 10,000 records."""
EXPIRED_CODES = {"InvalidArgumentException", "ResourceNotFoundException", "ExpiredIteratorException"}


class NotRedrivable(Exception):
    """A message this script cannot put back; it stays in the queue."""


@dataclass(frozen=True)
class Redrive:
    """What to do with one message: invoke a function with an event, or publish a payload to a topic."""

    kind: str  # "invoke" or "publish"
    target: str
    payload: bytes

    def describe(self) -> str:
        preview = self.payload[:160].decode(errors="replace")
        return f"{self.kind} {self.target} {preview}"


@dataclass(frozen=True)
class StreamBatch:
    """Where a failed batch of TelemetryStreamMapping is: a shard and an inclusive sequence-number range."""

    stream: str
    shard_id: str
    start: str
    end: str
    batch_size: int

    def describe(self) -> str:
        return f"stream {self.stream} {self.shard_id} sequence numbers {self.start}..{self.end}"


@dataclass(frozen=True)
class StreamRecord:
    data: bytes
    partition_key: str
    sequence_number: str


@dataclass(frozen=True)
class StreamRedrive:
    """A failed batch's records, read back from the stream, to put into it again."""

    batch: StreamBatch
    records: list[StreamRecord]

    def describe(self) -> str:
        found = f"{len(self.records)} records (batch of {self.batch.batch_size})"
        return f"put {found} back into {self.batch.describe()}"


def stream_batch(body: dict[str, Any], stack_stream: str | None) -> StreamBatch:
    """The on-failure record of a stream batch -> where its records are, if they are in this stack's stream."""
    try:
        info = body["KinesisBatchInfo"]
        arn = str(info["streamArn"])
        batch = StreamBatch(
            stream=arn.rsplit("/", 1)[-1],
            shard_id=str(info["shardId"]),
            start=str(info["startSequenceNumber"]),
            end=str(info["endSequenceNumber"]),
            batch_size=int(info["batchSize"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise NotRedrivable(f"not a Kinesis batch on-failure record ({exc!r})") from exc
    if not stack_stream:
        raise NotRedrivable(f"stream {batch.stream!r}: this stack has no stream (no output {STREAM_OUTPUT})")
    if batch.stream != stack_stream:
        raise NotRedrivable(f"stream {batch.stream!r} is not this stack's ({stack_stream})")
    return batch


def function_failure(body: dict[str, Any], functions: set[str]) -> Redrive:
    """Lambda's on-failure record -> invoke the same function of this stack with the same event."""
    try:
        arn = body["requestContext"]["functionArn"]
        event = body["requestPayload"]
    except (KeyError, TypeError) as exc:
        raise NotRedrivable(f"not a Lambda on-failure record (no {exc})") from exc
    name = str(arn).split(":")[6] if str(arn).count(":") >= 6 else str(arn)
    if name not in functions:
        raise NotRedrivable(f"function {name!r} is not one of this stack's ({', '.join(sorted(functions))})")
    return Redrive("invoke", str(arn), json.dumps(event, separators=(",", ":")).encode())


def rule_error(body: dict[str, Any], sent_ms: int, inference_function: str) -> Redrive:
    """IoT Core's error record -> the message back on its topic, or a legacy reading to the function."""
    try:
        topic = str(body["topic"])
        original = base64.b64decode(body["base64OriginalPayload"], validate=True)
    except (KeyError, TypeError, binascii.Error) as exc:
        raise NotRedrivable(f"not an IoT rule error record ({exc!r})") from exc
    if RULE_TOPICS.match(topic):
        return Redrive("publish", topic, original)
    if topic == LEGACY_TOPIC:
        try:
            payload = json.loads(original)
        except ValueError as exc:
            raise NotRedrivable(f"legacy message is not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise NotRedrivable("legacy message is not a JSON object")
        event = legacy_event(payload, client_id=str(body.get("clientId", "")), received_ms=sent_ms)
        return Redrive("invoke", inference_function, json.dumps(event, separators=(",", ":")).encode())
    raise NotRedrivable(f"topic {topic!r} is read by no rule of this stack")


def legacy_event(original: dict[str, Any], *, client_id: str, received_ms: int) -> dict[str, Any]:
    """What LegacyTelemetryRule's SQL (template.yaml) makes of the original sample's payload.

    A field the payload lacks is left out, as IoT SQL leaves out an undefined value.
    """

    def first(*names: str) -> Any:
        return next((original[name] for name in names if name in original), None)

    tt01 = original.get("TT01")
    running = tt01 > 10 if isinstance(tt01, int | float) and not isinstance(tt01, bool) else None
    event = {
        "motor_id": original.get("motorID"),
        "motor_type": original.get("motorType"),
        "ts": received_ms,
        "seq": received_ms,
        "running": running,
        "winding_temp_c": original.get("TT02"),
        "bearing_temp_c": original.get("TT03"),
        "fluid_temp_c": first("FT01", "FTO1"),
        "pressure_bar": first("PT01", "PTO1"),
        "topic_motor_id": client_id,
        "received_at": received_ms,
    }
    return {name: value for name, value in event.items() if value is not None}


@dataclass
class Tally:
    redriven: int = 0
    """Redriven and deleted (with --dry-run: that would be)."""
    left: int = 0
    """Not redrivable, or the redrive failed: still in the queue."""


class Redriver:
    def __init__(self, make_client: Callable[..., Any], outputs: dict[str, str], dry_run: bool, out: TextIO):
        self._make_client = make_client
        self._sqs = make_client("sqs")
        self._outputs = outputs
        self._dry_run = dry_run
        self._out = out
        self._lambda: Any = None
        self._iot_data: Any = None
        self._kinesis: Any = None

    def drain(self, queue: str, limit: int | None) -> Tally:
        url = self._outputs[QUEUES[queue]]
        functions = {self._outputs[name] for name in FUNCTION_OUTPUTS}
        tally, release = Tally(), []
        for message in self._messages(url, limit):
            try:
                body = json.loads(message["Body"])
                if not isinstance(body, dict):
                    raise NotRedrivable("body is not a JSON object")
                plan: Redrive | StreamRedrive
                if queue == "function-failures" and "KinesisBatchInfo" in body:
                    plan = self._read_batch(stream_batch(body, self._outputs.get(STREAM_OUTPUT)))
                elif queue == "function-failures":
                    plan = function_failure(body, functions)
                else:
                    sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", 0))
                    plan = rule_error(body, sent_ms, self._outputs["InferenceFunctionName"])
                if self._dry_run:
                    self._say(queue, message, f"would {plan.describe()}")
                    tally.redriven += 1
                    release.append(message)
                    continue
                self._apply(plan)
            except (NotRedrivable, ValueError) as exc:
                self._say(queue, message, f"left: {exc}")
                tally.left += 1
                release.append(message)
                continue
            except Exception as exc:  # the AWS call failed: keep the message for the next run
                self._say(queue, message, f"left: redrive failed: {exc}")
                tally.left += 1
                release.append(message)
                continue
            self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            self._say(queue, message, f"redriven: {plan.describe()}")
            tally.redriven += 1
        for message in release:  # visible again now, not after VISIBILITY_S
            self._sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return tally

    def _messages(self, url: str, limit: int | None) -> Iterator[dict[str, Any]]:
        seen = 0
        while limit is None or seen < limit:
            batch = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10 if limit is None else max(1, min(10, limit - seen)),
                VisibilityTimeout=VISIBILITY_S,
                AttributeNames=["SentTimestamp"],
            ).get("Messages", [])
            if not batch:
                return
            for message in batch:
                seen += 1
                yield message

    def _stream(self) -> Any:
        if self._kinesis is None:
            self._kinesis = self._make_client("kinesis")
        return self._kinesis

    def _read_batch(self, batch: StreamBatch) -> StreamRedrive:
        """The batch's records, in the shard's order; NotRedrivable unless all of them are still there."""
        kinesis = self._stream()
        try:
            iterator = kinesis.get_shard_iterator(
                StreamName=batch.stream,
                ShardId=batch.shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                StartingSequenceNumber=batch.start,
            )["ShardIterator"]
        except Exception as exc:
            if error_code(exc) in EXPIRED_CODES:  # what Kinesis answers for a trimmed sequence number
                raise NotRedrivable(
                    f"records expired: {batch.describe()} can no longer be read "
                    f"(the stream keeps records 24 hours): {exc}"
                ) from exc
            raise
        start, end = int(batch.start), int(batch.end)
        records: list[StreamRecord] = []
        for _call in range(MAX_GET_RECORDS_CALLS):
            if iterator is None:  # a closed shard (resharded), read to its end
                break
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for record in page.get("Records", []):
                if start <= int(record["SequenceNumber"]) <= end:
                    records.append(StreamRecord(record["Data"], record["PartitionKey"], record["SequenceNumber"]))
            last = page["Records"][-1]["SequenceNumber"] if page.get("Records") else None
            if last is not None and int(last) >= end:
                break
            if not page.get("Records") and page.get("MillisBehindLatest", 0) == 0:
                break  # at the tip of the shard: nothing more to find
            iterator = page.get("NextShardIterator")
        else:
            raise RuntimeError(f"{batch.describe()}: gave up after {MAX_GET_RECORDS_CALLS} GetRecords calls")
        # The first record missing means it was trimmed: Kinesis then starts at the oldest one it has.
        complete = (
            len(records) >= batch.batch_size
            and int(records[0].sequence_number) == start
            and int(records[-1].sequence_number) == end
        )
        if not records or not complete:
            raise NotRedrivable(
                f"records expired: found {len(records)} of the batch's {batch.batch_size} in {batch.describe()} "
                "(the stream keeps records 24 hours); nothing was put back"
            )
        return StreamRedrive(batch, records)

    def _put_back(self, plan: StreamRedrive) -> None:
        """Put the records into the stream again, in their order; RuntimeError unless all were put.

        PutRecords has no SequenceNumberForOrdering (only PutRecord has), and does not keep the order
        of the entries of one request: a failed entry does not stop the ones after it, so, retried, it
        would land after a later reading of its motor and be counted stale. So a request
        holds at most one record per partition key, and the next request is sent only once every
        entry of this one was put: each motor's readings go in as they came, without a call per record.
        """
        for request in put_requests(plan.records):
            entries = [{"Data": record.data, "PartitionKey": record.partition_key} for record in request]
            for pause_s in (*PUT_RETRY_PAUSES_S, None):
                answer = self._stream().put_records(StreamName=plan.batch.stream, Records=entries)
                if not answer.get("FailedRecordCount"):
                    break
                failed = [
                    entry for entry, result in zip(entries, answer["Records"], strict=True) if "ErrorCode" in result
                ]
                codes = sorted({result["ErrorCode"] for result in answer["Records"] if "ErrorCode" in result})
                if pause_s is None:
                    raise RuntimeError(
                        f"PutRecords failed for {len(failed)} of the batch's records ({', '.join(codes)}) after "
                        f"{len(PUT_RETRY_PAUSES_S)} retries; the records before them were put back"
                    )
                entries = failed
                time.sleep(pause_s)

    def _apply(self, plan: Redrive | StreamRedrive) -> None:
        if isinstance(plan, StreamRedrive):
            self._put_back(plan)
        elif plan.kind == "invoke":
            if self._lambda is None:
                self._lambda = self._make_client("lambda")
            response = self._lambda.invoke(FunctionName=plan.target, InvocationType="Event", Payload=plan.payload)
            if response.get("StatusCode") != 202:
                raise RuntimeError(f"Lambda answered {response.get('StatusCode')} instead of 202")
        else:
            if self._iot_data is None:
                address = self._make_client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
                self._iot_data = self._make_client("iot-data", endpoint_url=f"https://{address}")
            self._iot_data.publish(topic=plan.target, qos=1, payload=plan.payload)

    def _say(self, queue: str, message: dict[str, Any], what: str) -> None:
        self._out.write(f"{queue} {message.get('MessageId', '?')}: {what}\n")


def put_requests(records: list[StreamRecord]) -> Iterator[list[StreamRecord]]:
    """Consecutive records in PutRecords-sized requests, a partition key at most once in each."""
    request: list[StreamRecord] = []
    keys: set[str] = set()
    size = 0
    for record in records:
        record_size = len(record.data) + len(record.partition_key.encode())
        if request and (
            record.partition_key in keys or len(request) == PUT_MAX_RECORDS or size + record_size > PUT_MAX_BYTES
        ):
            yield request
            request, keys, size = [], set(), 0
        request.append(record)
        keys.add(record.partition_key)
        size += record_size
    if request:
        yield request


def error_code(exc: Exception) -> str:
    """A botocore ClientError's code, or "" (botocore is imported only by the command line)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def stack_outputs(stack: str, cloudformation: Any) -> dict[str, str]:
    [description] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {output["OutputKey"]: output.get("OutputValue", "") for output in description.get("Outputs", [])}


def main(argv: list[str] | None = None, make_client: Callable[..., Any] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="motor-maintenance", help="stack name (default: %(default)s)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    parser.add_argument("--queue", choices=[*QUEUES, "all"], default="all", help="which queue (default: all)")
    parser.add_argument("--max", type=int, metavar="N", help="at most N messages per queue")
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be done; invoke, publish, put, delete nothing"
    )
    args = parser.parse_args(argv)
    if make_client is None:
        with setup_needed("scripts/redrive.py"):
            import boto3  # noqa: PLC0415 - only the command line needs it

        def make_client(service: str, **kwargs: Any) -> Any:
            make: Any = boto3.client  # its overloads want a literal service name
            return make(service, region_name=args.region, **kwargs)

    try:
        outputs = stack_outputs(args.stack, make_client("cloudformation"))
    except Exception as exc:
        name = type(exc).__name__
        if name in {"NoRegionError", "NoCredentialsError", "PartialCredentialsError"}:
            raise SystemExit(f"{exc}: configure AWS credentials and a region (or pass --region)") from exc
        raise SystemExit(f"cannot read stack {args.stack!r}: {exc}") from exc
    missing = sorted({*QUEUES.values(), *FUNCTION_OUTPUTS} - set(outputs))
    if missing:
        raise SystemExit(f"stack has no output(s) {', '.join(missing)}: is it this project's stack, fully deployed?")

    redriver = Redriver(make_client, outputs, args.dry_run, out)
    left = 0
    for queue in QUEUES if args.queue == "all" else [args.queue]:
        tally = redriver.drain(queue, args.max)
        done = "would be redriven" if args.dry_run else "redriven"
        out.write(f"{queue}: {tally.redriven} {done}, {tally.left} cannot be (left in the queue)\n")
        left += tally.left
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
