"""Write the --env-vars file that points `sam local invoke` at a deployed stack's resources.

SAM CLI resolves `!Ref StateTable` to the string "StateTable" when it runs a function locally,
so a local invocation needs the real names. They are the stack's outputs, and so is the stack's
topic namespace (SAM CLI would give `!Ref TopicNamespace` its default, and alarm events of a local
invocation would go to another stack's topics):

    python scripts/sam_local_env.py --stack motor-maintenance > env.json
    sam local invoke InferenceFunction -e events/telemetry-normal.json --env-vars env.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

# Environment variable of each function -> the stack output that holds its value.
FUNCTION_ENV = {
    "InferenceFunction": {
        "STATE_TABLE_NAME": "StateTableName",
        "CONFIG_PARAMETER_NAME": "DetectorConfigParameterName",
        "HISTORY_TABLE_NAME": "HistoryTableName",
        "TOPIC_NAMESPACE": "TopicNamespace",
        "ENDPOINT_NAME": "EndpointName",
        "MODEL_S3_URL": "ModelS3Url",
    },
    "ArchiveFunction": {
        "STATE_TABLE_NAME": "StateTableName",
        "CONFIG_PARAMETER_NAME": "DetectorConfigParameterName",
        "HISTORY_TABLE_NAME": "HistoryTableName",
        "TOPIC_NAMESPACE": "TopicNamespace",
        "ARCHIVE_STREAM_NAME": "BatchArchiveStreamName",
    },
    "OperatorActionFunction": {
        "STATE_TABLE_NAME": "StateTableName",
        "CONFIG_PARAMETER_NAME": "DetectorConfigParameterName",
        "HISTORY_TABLE_NAME": "HistoryTableName",
        "TOPIC_NAMESPACE": "TopicNamespace",
    },
    "OfflineCheckFunction": {
        "STATE_TABLE_NAME": "StateTableName",
        "CONFIG_PARAMETER_NAME": "DetectorConfigParameterName",
        "HISTORY_TABLE_NAME": "HistoryTableName",
        "TOPIC_NAMESPACE": "TopicNamespace",
    },
    "AlertFunction": {
        "STATE_TABLE_NAME": "StateTableName",
        "CONFIG_PARAMETER_NAME": "DetectorConfigParameterName",
        "HISTORY_TABLE_NAME": "HistoryTableName",
        "TOPIC_NAMESPACE": "TopicNamespace",
        "ALERT_TOPIC_ARN": "AlertTopicArn",
        "IDEMPOTENCY_TABLE_NAME": "IdempotencyTableName",
    },
    "ConsoleFunction": {
        "STATE_TABLE_NAME": "StateTableName",
        "CONFIG_PARAMETER_NAME": "DetectorConfigParameterName",
        "HISTORY_TABLE_NAME": "HistoryTableName",
        "TOPIC_NAMESPACE": "TopicNamespace",
    },
}


OPTIONAL_OUTPUTS = {"EndpointName", "ModelS3Url", "BatchArchiveStreamName"}
"""Outputs the template declares only when they have a value (no endpoint, no embedded model, direct ingestion):
absent is empty."""


def env_vars(outputs: dict[str, str]) -> dict[str, dict[str, str]]:
    """The --env-vars document for the given stack outputs; names any output that is missing."""
    missing = sorted({out for env in FUNCTION_ENV.values() for out in env.values()} - set(outputs) - OPTIONAL_OUTPUTS)
    if missing:
        raise SystemExit(f"stack has no output(s) {', '.join(missing)}: is it this project's stack, fully deployed?")
    return {function: {var: outputs.get(out, "") for var, out in env.items()} for function, env in FUNCTION_ENV.items()}


def stack_outputs(stack: str, cloudformation: Any) -> dict[str, str]:
    [description] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {output["OutputKey"]: output.get("OutputValue", "") for output in description.get("Outputs", [])}


def main(argv: list[str] | None = None, cloudformation: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="motor-maintenance", help="stack name (default: %(default)s)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    args = parser.parse_args(argv)
    if cloudformation is None:
        with setup_needed("scripts/sam_local_env.py"):
            import boto3  # noqa: PLC0415 - only this path needs it

        cloudformation = boto3.client("cloudformation", region_name=args.region)
    try:
        outputs = stack_outputs(args.stack, cloudformation)
    except Exception as exc:
        name = type(exc).__name__
        if name in {"NoRegionError", "NoCredentialsError", "PartialCredentialsError"}:
            raise SystemExit(f"{exc}: configure AWS credentials and a region (or pass --region)") from exc
        raise SystemExit(f"cannot read stack {args.stack!r}: {exc}") from exc
    json.dump(env_vars(outputs), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
