"""Act on a motor's alarms from the command line: against the local stack or a deployed stack alike.

    python scripts/operate.py status                                   # every motor's alarms and run hours
    python scripts/operate.py stats                                    # local stack: each IoT rule's messages
    python scripts/operate.py acknowledge motor-002 predictive --note "bearing ordered"
    python scripts/operate.py snooze motor-002 vibration_zone_d --minutes 60
    python scripts/operate.py reset motor-002 vibration_zone_d
    python scripts/operate.py disable motor-004 fluid_overtemperature   # and: enable
    python scripts/operate.py service-complete motor-004 [--at 2026-12-03T16:00:00Z]
    python scripts/operate.py report-failure motor-002 --mode bearing_wear --at 2h --note "bearing seized"
    python scripts/operate.py reset motor-002 predictive --verdict confirmed   # was the alarm right?

Each action is an OperatorAction (motor_maintenance.alarms: the schema OperatorActionFunction
parses) published at QoS 1 to {namespace}/{motor_id}/actions through the IoT data plane, as the AWS CLI's
`aws iot-data publish` does; ActionRule hands it to OperatorActionFunction. The namespace is the
stack's TopicNamespace: --topic-namespace, else the target's own (the local stack's, or the deployed
stack's TopicNamespace output), else $TOPIC_NAMESPACE, else motors. Where it goes:

- a local stack is running (`python device/simulate.py` without --endpoint): to it, unless --stack
  or --endpoint-url is given;
- --stack NAME: the deployed stack, through your AWS credentials (the IoT data endpoint is looked
  up with iot:DescribeEndpoint; `status` reads the stack's StateTableName output).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

if not __package__:  # run as a script: make the repository's packages importable
    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "layers" / "shared")]

from device.requirements_check import setup_needed

with setup_needed("scripts/operate.py"):
    from pydantic import ValidationError

    from local.accounting import lines as accounting_lines
    from local.options import STATE_DIR
    from local.stack import running_stack, running_stats
    from motor_maintenance.alarms import FAILURE_LOOKBACK_DAYS, ActionName, OperatorAction, Verdict
    from motor_maintenance.config import DEFAULT_FAILURE_MODES
    from motor_maintenance.telemetry import describe_validation_error
    from motor_maintenance.topics import DEFAULT_NAMESPACE, actions_topic, check_namespace

ACTIONS = {name.value.replace("_", "-"): name for name in ActionName}
ClientFactory = Callable[..., Any]
_AGO = {"m": 60, "h": 3600, "d": 86400}
_AGO_PATTERN = re.compile(r"(\d+(?:\.\d+)?)([mhd])")


def parse_when(text: str, now: datetime) -> datetime:
    """A moment from the command line: `now`, a time ago (`45m`, `2h`, `3d`), or ISO-8601.

    An ISO time without an offset is this machine's local time. ValueError if it is none of these.
    """
    text = text.strip()
    if text == "now":
        return now
    ago = _AGO_PATTERN.fullmatch(text)
    if ago:
        return now - timedelta(seconds=float(ago.group(1)) * _AGO[ago.group(2)])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at {text!r}: expected now, a time ago (45m, 2h, 3d) or an ISO-8601 time") from None
    return moment.astimezone(UTC)


def _namespace(text: str) -> str:
    try:
        return check_namespace(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/operate.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_argument_group("where (default: the running local stack)")
    target.add_argument("--stack", help="a deployed stack's name (uses your AWS credentials)")
    target.add_argument("--endpoint-url", help="IoT data endpoint, https://<prefix>-ats.iot.<region>.amazonaws.com")
    target.add_argument("--region", help="AWS region of --stack (default: your configuration's)")
    target.add_argument(
        "--topic-namespace",
        type=_namespace,
        metavar="NAME",
        help="the stack's TopicNamespace (default: the running local stack's or --stack's, else $TOPIC_NAMESPACE, "
        f"else {DEFAULT_NAMESPACE})",
    )
    target.add_argument("--state-dir", type=Path, default=STATE_DIR, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    commands.add_parser("status", help="every motor's alarm states, run hours and failure probability")
    commands.add_parser(
        "stats",
        help="local stack: every message each IoT rule received, from any client: processed, rejected, dead-lettered",
    )
    for name, action in ACTIONS.items():
        sub = commands.add_parser(name, help=f"publish a {action.value} action")
        sub.add_argument("motor_id")
        if action not in (ActionName.SERVICE_COMPLETE, ActionName.REPORT_FAILURE):
            sub.add_argument("alarm", help="schedule, predictive, or a condition rule's name (e.g. vibration_zone_d)")
        if action is ActionName.SNOOZE:
            sub.add_argument("--minutes", type=float, required=True, help="how long to snooze")
        if action in (ActionName.ACKNOWLEDGE, ActionName.RESET):
            sub.add_argument(
                "--verdict",
                choices=[verdict.value for verdict in Verdict],
                help="was the alarm right? (predictive and condition alarms; a label for training the model)",
            )
        if action is ActionName.REPORT_FAILURE:
            sub.add_argument(
                "--mode",
                required=True,
                help=f"how it failed; by default one of {', '.join(DEFAULT_FAILURE_MODES)} (the stack's "
                "DetectorConfig failure_modes)",
            )
            sub.add_argument(
                "--at",
                required=True,
                help="when it failed: now, a time ago (45m, 2h, 3d) or ISO-8601 (without an offset: local time); "
                f"at most {FAILURE_LOOKBACK_DAYS} days ago",
            )
        if action is ActionName.SERVICE_COMPLETE:
            sub.add_argument(
                "--at",
                default="now",
                help="when the service was completed: now, a time ago (45m, 2h, 3d) or ISO-8601 (without an offset: "
                "local time); training leaves out a motor's readings from its failure to this moment",
            )
        sub.add_argument("--operator", default=getpass.getuser(), help="who acts (audit trail)")
        sub.add_argument("--note", default="", help="why, for the audit trail and the alert")
    return parser


def build_action(args: argparse.Namespace, now: datetime) -> OperatorAction:
    """The action as OperatorActionFunction will parse it; ValueError naming what is wrong."""
    action = ACTIONS[args.command]
    fields: dict[str, Any] = {
        "motor_id": args.motor_id,
        "action": action.value,
        "action_id": str(uuid.uuid4()),
        "ts": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "operator": args.operator,
        "note": args.note,
    }
    if action not in (ActionName.SERVICE_COMPLETE, ActionName.REPORT_FAILURE):
        fields["alarm"] = args.alarm
    if action is ActionName.SNOOZE:
        fields["snooze_minutes"] = args.minutes
    if getattr(args, "verdict", None):
        fields["verdict"] = args.verdict
    if action is ActionName.SERVICE_COMPLETE:
        done = parse_when(args.at, now.replace(microsecond=0))
        fields["ts"] = done.isoformat(timespec="seconds").replace("+00:00", "Z")
    if action is ActionName.REPORT_FAILURE:
        fields["failure_mode"] = args.mode
        fields["failed_at"] = parse_when(args.at, now.replace(microsecond=0)).isoformat()
    try:
        return OperatorAction.model_validate(fields)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def _clients(args: argparse.Namespace, make_client: ClientFactory) -> tuple[Any, Callable[[], Any], str, str]:
    """(iot-data client, a dynamodb client maker, state table name, topic namespace) for the chosen target."""
    fallback = args.topic_namespace or os.environ.get("TOPIC_NAMESPACE") or DEFAULT_NAMESPACE
    if args.stack:
        cloudformation = make_client("cloudformation", region_name=args.region)
        stack = cloudformation.describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        endpoint = args.endpoint_url
        if not endpoint:
            iot = make_client("iot", region_name=args.region)
            endpoint = "https://" + iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        return (
            make_client("iot-data", region_name=args.region, endpoint_url=endpoint),
            lambda: make_client("dynamodb", region_name=args.region),
            outputs.get("StateTableName", ""),
            args.topic_namespace or outputs.get("TopicNamespace") or fallback,
        )
    if args.endpoint_url:
        iot_data = make_client("iot-data", region_name=args.region, endpoint_url=args.endpoint_url)
        return iot_data, lambda: None, "", fallback
    local = running_stack(args.state_dir)
    if local is None:
        raise LookupError(
            "no local stack is running (start one with: python device/simulate.py), and no --stack or "
            "--endpoint-url was given"
        )
    credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": local["region"]}
    return (
        make_client("iot-data", endpoint_url=local["iot_data_endpoint_url"], **credentials),
        lambda: make_client("dynamodb", endpoint_url=local["aws_endpoint_url"], **credentials),
        local["resources"].get("StateTable", ""),
        args.topic_namespace or local.get("topic_namespace") or fallback,
    )


def status(dynamodb: Any, table: str, out: TextIO) -> int:
    if dynamodb is None or not table:
        print("status needs the stack's state table: give --stack, or run a local stack", file=sys.stderr)
        return 2
    items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
    motors = sorted((i for i in items if "#" not in i["motor_id"]["S"]), key=lambda i: i["motor_id"]["S"])
    if not motors:
        print(f"no motor has reported yet ({table} is empty)", file=out)
    for item in motors:
        states = {name: value["S"] for name, value in item.get("alarm_states", {}).get("M", {}).items()}
        raised = ", ".join(f"{name} {state}" for name, state in sorted(states.items()) if state != "NORMAL")
        probability = item.get("failure_probability", {}).get("N")
        shown = f"{float(probability):.1%}" if probability is not None else "-"
        hours = float(item.get("run_hours", {}).get("N", "0"))
        print(
            f"{item['motor_id']['S']:<16} run {hours:8.1f} h  P(fail 24 h) {shown:>6}  {raised or 'all normal'}",
            file=out,
        )
    return 0


def stats(state_dir: Path, out: TextIO) -> int:
    """The running local stack's accounting per IoT rule (what is not settled yet shows as in flight)."""
    found = running_stats(state_dir)
    if found is None:
        print("stats needs a running local stack (start one with: python device/simulate.py)", file=sys.stderr)
        return 2
    print("messages each IoT rule received, from every client:", file=out)
    for line in accounting_lines(found["rules"], settled=False):
        print(line, file=out)
    return 0


def main(argv: Sequence[str] | None = None, make_client: ClientFactory | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "stats":
        if args.stack or args.endpoint_url:
            parser.error("stats reads the local stack's counters; a deployed stack's are on its CloudWatch dashboard")
        return stats(args.state_dir, out)
    if make_client is None:
        import boto3  # noqa: PLC0415 - tests pass their own client factory

        make_client = boto3.client
    try:
        iot_data, dynamodb, table, namespace = _clients(args, make_client)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "status":
        code = status(dynamodb(), table, out)
        if code == 0 and not (args.stack or args.endpoint_url) and running_stats(args.state_dir) is not None:
            stats(args.state_dir, out)
        return code
    try:
        action = build_action(args, datetime.now(UTC))
    except ValueError as exc:
        parser.error(str(exc))
    topic = actions_topic(action.motor_id, namespace)
    payload = action.model_dump_json(exclude_none=True)
    iot_data.publish(topic=topic, qos=1, payload=payload.encode())
    print(f"published to {topic}: {json.dumps(json.loads(payload))}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
