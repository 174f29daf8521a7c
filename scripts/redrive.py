"""Put back what a failure set aside: the messages in a stack's FunctionFailureQueue and RuleErrorQueue.

    python scripts/redrive.py --stack motor-maintenance --dry-run    # say what it would do, change nothing
    python scripts/redrive.py --stack motor-maintenance              # do it (both queues)
    python scripts/redrive.py --stack motor-maintenance --queue function-failures

FunctionFailureQueue holds Lambda's on-failure records: the event the function received is in
`requestPayload`, the function in `requestContext.functionArn`. That function is invoked again
with that event, asynchronously (InvocationType Event, as the IoT rule invoked it).

RuleErrorQueue holds IoT Core's error records: the message in `base64OriginalPayload`, its
`topic` and the publisher's `clientId`. A message of a `motors/{id}/...` topic is published again
to its topic, so its rule runs again. A message of the original sample's `iml_iotevents_data`
cannot be: its rule takes the motor id from the MQTT client id, which a message published over
HTTP does not have. It is mapped as LegacyTelemetryRule maps it, stamped with the time SQS
received it, and InferenceFunction is invoked with the result.

A message is deleted only once its redrive was accepted. One that cannot be redriven (a function
of another stack, a topic no rule of this stack reads, a body that is not a record) stays in the
queue and is reported, and the exit status is 1. Redriving twice is harmless: readings are
deduplicated by (ts, seq), actions by action_id, alerts by event_id.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

QUEUES = {"function-failures": "FunctionFailureQueueUrl", "rule-errors": "RuleErrorQueueUrl"}
FUNCTION_OUTPUTS = ("InferenceFunctionName", "OperatorActionFunctionName", "AlertFunctionName")
LEGACY_TOPIC = "iml_iotevents_data"
RULE_TOPICS = re.compile(r"^motors/[A-Za-z0-9_-]{1,64}/(telemetry|actions|alarms)$")
VISIBILITY_S = 300
"""How long a received message stays hidden: a run sees each message once."""


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
    numeric = isinstance(tt01, int | float) and not isinstance(tt01, bool)
    event = {
        "motor_id": original.get("motorID"),
        "motor_type": original.get("motorType"),
        "ts": received_ms,
        "seq": received_ms,
        "running": tt01 > 10 if numeric else None,
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

    def drain(self, queue: str, limit: int | None) -> Tally:
        url = self._outputs[QUEUES[queue]]
        functions = {self._outputs[name] for name in FUNCTION_OUTPUTS}
        tally, release = Tally(), []
        for message in self._messages(url, limit):
            try:
                body = json.loads(message["Body"])
                if not isinstance(body, dict):
                    raise NotRedrivable("body is not a JSON object")
                if queue == "function-failures":
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

    def _apply(self, plan: Redrive) -> None:
        if plan.kind == "invoke":
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
        "--dry-run", action="store_true", help="say what would be done; invoke, publish, delete nothing"
    )
    args = parser.parse_args(argv)
    if make_client is None:
        import boto3  # noqa: PLC0415 - only the command line needs it

        def make_client(service: str, **kwargs: Any) -> Any:
            return boto3.client(service, region_name=args.region, **kwargs)

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
