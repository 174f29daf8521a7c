"""The archive in template.yaml keeps docs/archive.md's contract: streams, prefixes, schema, partitions, roles.

The expectations come from their sources, not from this file: the layout, the streams and the
deduplication keys from docs/archive.md (the contract the template, the local stack and the reader
build to), the columns from the pydantic models every component imports. A rule lists the problems
it finds; the tests at the end break the template on purpose to prove each rule can fail.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from motor_maintenance.alarms import AlarmEvent, OperatorAction
from motor_maintenance.telemetry import TelemetryEvent
from tests.unit.test_template import (
    TEMPLATE,
    Template,
    direct_reference,
    each,
    get_att_arn,
    problems_when_broken,
    resources,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = (ROOT / "docs" / "archive.md").read_text(encoding="utf-8")

# The fields the labels add to AlarmEvent and OperatorAction (verdict on acknowledge/reset, and
# report_failure's failed_at and failure_mode). The tables declare them whether or not the models
# of this checkout carry them yet; once they do, the model decides their types like any field's.
LABEL_FIELDS = {"verdict", "failure_mode", "failed_at"}
FIREHOSE_MAX_BUFFER_SECONDS = 900
PARQUET_MIN_BUFFER_MB = 64  # record format conversion refuses a smaller buffer
TIMESTAMP_DAY = "!{timestamp:yyyy-MM-dd}"
ERROR_TYPE = "!{firehose:error-output-type}"


# ------------------------------------------------------------------ the contract, read from docs/archive.md


def contract_layout() -> dict[str, str]:
    """Record kind -> file extension, from the layout block (`telemetry/dt=YYYY-MM-DD/<object>.parquet`)."""
    block = CONTRACT.split("## Layout", 1)[1].split("```", 2)[1]
    return dict(re.findall(r"(?m)^(\w+)/dt=YYYY-MM-DD/<object>(\.\w+)", block))


def contract_streams() -> dict[str, tuple[list[str], str]]:
    """Stream -> (the rules that feed it, its Glue table), from the Delivery table."""
    section = CONTRACT.split("## Delivery", 1)[1].split("\n## ", 1)[0]
    streams = {}
    for row in re.findall(r"(?m)^\| `(\w+Stream)` \|(.*)$", section):
        name, rest = row
        cells = [cell.strip() for cell in rest.strip().strip("|").split("|")]
        rules = re.findall(r"`(\w+Rule)`", cells[0])
        streams[name] = (rules, re.findall(r"`(\w+)`", cells[-1])[0])
    return streams


def contract_dedup_keys() -> dict[str, list[str]]:
    """Record kind -> the columns a reader deduplicates on; `ts` as epoch ms is the column `ts_ms`."""
    section = CONTRACT.split("## Deduplication", 1)[1].split("\n## ", 1)[0]
    kinds = {"readings": "telemetry", "alarm events": "alarms", "actions": "actions"}
    keys = {}
    for records, key in re.findall(r"(?m)^\| ([a-z ]+) \| (.+?) \|$", section):
        if records in kinds:
            names = re.findall(r"`(\w+)`( as epoch ms)?", key)
            keys[kinds[records]] = [f"{name}_ms" if epoch else name for name, epoch in names]
    return keys


STREAMS = contract_streams()
LAYOUT = contract_layout()
DEDUP_KEYS = contract_dedup_keys()


def test_the_contract_names_three_streams_three_prefixes_and_their_keys() -> None:
    assert set(LAYOUT) == {"telemetry", "alarms", "actions"}
    assert {table for _, table in STREAMS.values()} == set(LAYOUT)
    assert set(DEDUP_KEYS) == set(LAYOUT)
    assert DEDUP_KEYS["telemetry"] == ["motor_id", "ts_ms", "seq"]


# ------------------------------------------------------------------ walking the archive's resources


def prop(template: Template, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][name]["Properties"]
    return properties


def destination(template: Template, stream: str) -> dict[str, Any]:
    config: dict[str, Any] = prop(template, stream)["ExtendedS3DestinationConfiguration"]
    return config


def glue_table(template: Template, table_name: str) -> tuple[str, dict[str, Any]]:
    found = [
        (name, resource["Properties"]["TableInput"])
        for name, resource in resources(template, "AWS::Glue::Table")
        if resource["Properties"]["TableInput"]["Name"] == table_name
    ]
    assert len(found) == 1, f"{len(found)} Glue tables named {table_name!r}"
    return found[0]


def sub_text(node: Any) -> str:
    """The pattern of an !Sub (or a literal string)."""
    if isinstance(node, str):
        return node
    sub = node["Fn::Sub"]
    return str(sub if isinstance(sub, str) else sub[0])


def kind_of(stream: str) -> str:
    return STREAMS[stream][1]


# ------------------------------------------------------------------ Hive types from the pydantic models


def hive_type(annotation: Any) -> str:
    """The Glue (Hive) type a field's JSON takes in the archive; timestamps stay as sent, as text."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return hive_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds = {hive_type(arg) for arg in typing.get_args(annotation) if arg is not type(None)}
        if len(kinds) == 1:
            return kinds.pop()
        return "double" if kinds <= {"bigint", "double"} else "string"  # JSON text holds either
    if origin is Literal:
        assert all(isinstance(arg, str) for arg in typing.get_args(annotation)), annotation
        return "string"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"map<{hive_type(key)},{hive_type(value)}>"
    if origin in (tuple, list):
        return f"array<{hive_type(typing.get_args(annotation)[0])}>"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            fields = ",".join(f"{name}:{hive_type(info.annotation)}" for name, info in annotation.model_fields.items())
            return f"struct<{fields}>"
        for python, hive in ((bool, "boolean"), (int, "bigint"), (float, "double"), (Enum, "string")):
            if issubclass(annotation, python):
                return hive
        if issubclass(annotation, (str, datetime)):
            return "string"
    raise AssertionError(f"no Hive type for {annotation!r}")


def model_columns(model: type[BaseModel]) -> list[tuple[str, str]]:
    return [(name, hive_type(info.annotation)) for name, info in model.model_fields.items()]


def test_hive_types_follow_the_json_a_field_is_written_as() -> None:
    assert hive_type(int | None) == "bigint"
    assert hive_type(bool) == "boolean"
    assert hive_type(dict[str, float]) == "map<string,double>"
    assert hive_type(dict[str, str | int | float | None]) == "map<string,string>"
    assert hive_type(Literal["a", "b"] | None) == "string"
    assert hive_type(datetime | None) == "string"


# ------------------------------------------------------------------ the rules


def stream_problems(template: Template) -> list[str]:
    """Each stream writes its kind to the contract's prefix, extension and error prefix, logged and encrypted."""
    problems = []
    declared = {name for name, _ in resources(template, "AWS::KinesisFirehose::DeliveryStream")}
    if declared != set(STREAMS):
        problems.append(f"delivery streams {sorted(declared)}; docs/archive.md names {sorted(STREAMS)}")
    for stream in sorted(declared & set(STREAMS)):
        kind, config = kind_of(stream), destination(template, stream)
        expected = {
            "BucketARN": get_att_arn("ArchiveBucket"),
            "Prefix": f"{kind}/dt={TIMESTAMP_DAY}/",
            "ErrorOutputPrefix": f"errors/{kind}/{ERROR_TYPE}/dt={TIMESTAMP_DAY}/",
            "FileExtension": LAYOUT[kind],
            # Parquet compresses its pages itself; a JSON-lines object is read as it is named.
            "CompressionFormat": "UNCOMPRESSED",
        }
        for key, value in expected.items():
            if config.get(key) != value:
                problems.append(f"{stream}: {key} is {config.get(key)!r}, not {value!r}")
        if prop(template, stream).get("DeliveryStreamEncryptionConfigurationInput", {}).get("KeyType") is None:
            problems.append(f"{stream}: not encrypted at rest")
        logging = config.get("CloudWatchLoggingOptions", {})
        group = direct_reference(logging.get("LogGroupName"))
        log_stream = direct_reference(logging.get("LogStreamName"))
        if logging.get("Enabled") is not True or group is None or log_stream is None:
            problems.append(f"{stream}: delivery errors are not logged to a log group and stream of the stack")
        elif direct_reference(prop(template, log_stream).get("LogGroupName")) != group:
            problems.append(f"{stream}: log stream {log_stream} is not in its log group {group}")
    return problems


def buffering_problems(template: Template) -> list[str]:
    """Buffers Firehose accepts, with values the local stack can read (a literal, or a parameter's default)."""
    problems = []
    for stream in STREAMS:
        hints = destination(template, stream).get("BufferingHints", {})
        size, interval = hints.get("SizeInMBs"), hints.get("IntervalInSeconds")
        converted = "DataFormatConversionConfiguration" in destination(template, stream)
        least = PARQUET_MIN_BUFFER_MB if converted else 1
        if not isinstance(size, int) or not least <= size <= 128:
            problems.append(f"{stream}: SizeInMBs {size!r} outside {least}..128")
        name = direct_reference(interval)
        parameter = template["Parameters"].get(name or "", {})
        bounds = (parameter.get("MinValue"), parameter.get("Default"), parameter.get("MaxValue"))
        if isinstance(interval, int):
            bounds = (interval, interval, interval)
        if not all(isinstance(bound, int) for bound in bounds) or not (
            0 <= bounds[0] <= bounds[1] <= bounds[2] <= FIREHOSE_MAX_BUFFER_SECONDS
        ):
            problems.append(f"{stream}: IntervalInSeconds {interval!r} is not a literal or bounded parameter in 0..900")
    return problems


def conversion_problems(template: Template) -> list[str]:
    """Readings become Snappy Parquet through the telemetry table; events and actions stay JSON lines."""
    problems = []
    for stream in STREAMS:
        config = destination(template, stream)
        conversion = config.get("DataFormatConversionConfiguration")
        if LAYOUT[kind_of(stream)] != ".parquet":
            if conversion is not None:
                problems.append(f"{stream}: converts, but its records are kept as JSON lines")
            continue
        if conversion is None or conversion.get("Enabled") is False:
            problems.append(f"{stream}: no record format conversion to Parquet")
            continue
        table_name, _ = glue_table(template, kind_of(stream))
        schema = conversion.get("SchemaConfiguration", {})
        wanted = {
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
        }
        for key, value in wanted.items():
            if conversion.get(key) != value:
                problems.append(f"{stream}: {key} is {conversion.get(key)!r}, not {value!r}")
        if (
            direct_reference(schema.get("TableName")) != table_name
            or direct_reference(schema.get("DatabaseName")) != "ArchiveDatabase"
            or schema.get("RoleARN") != config.get("RoleARN")
            or schema.get("VersionId") != "LATEST"
        ):
            problems.append(
                f"{stream}: SchemaConfiguration is not the latest {table_name} of ArchiveDatabase, read by its role"
            )
    return problems


def rule_action_problems(template: Template) -> list[str]:
    """Each rule the contract names sends what it receives to its stream, in every ingestion mode.

    A rule's Firehose action is unconditional, or, for the readings, present only without batched ingestion
    (`Fn::If [Batched, AWS::NoValue, Firehose]`), in which case a function given that stream (ARCHIVE_STREAM_NAME)
    reads the rule's Kinesis stream through an event source mapping and archives the batches
    (tests/unit/test_archive_handler.py checks what it puts).
    """
    problems = []
    for stream, (rules, _) in STREAMS.items():
        for rule in rules:
            actions = template["Resources"][rule]["Properties"]["TopicRulePayload"]["Actions"]
            archived = [action["Firehose"] for action in actions if isinstance(action, dict) and "Firehose" in action]
            direct_only = [
                action["Fn::If"][2]["Firehose"]
                for action in actions
                if isinstance(action, dict)
                and "Fn::If" in action
                and action["Fn::If"][:2] == ["Batched", {"Ref": "AWS::NoValue"}]
                and "Firehose" in action["Fn::If"][2]
            ]
            if direct_only and not batch_archivers(template, actions, stream):
                problems.append(
                    f"{rule}: batched, nothing archives into {stream} (a function reading the rule's Kinesis "
                    "stream with it as ARCHIVE_STREAM_NAME)"
                )
            wanted = {"DeliveryStreamName": {"Ref": stream}, "Separator": "\n"}
            if not any(
                all(action.get(key) == value for key, value in wanted.items()) for action in archived + direct_only
            ):
                problems.append(f"{rule}: no Firehose action into {stream} with a newline separator")
            if any(action.get("BatchMode") for action in archived + direct_only):
                problems.append(f"{rule}: BatchMode needs a JSON array and firehose:PutRecordBatch")
    return problems


def batch_archivers(template: Template, actions: list[Any], stream: str) -> set[str]:
    """The functions given `stream` as ARCHIVE_STREAM_NAME that an event source mapping feeds from the Kinesis
    stream the rule's batched action writes into."""
    kinesis = {
        action["Fn::If"][1]["Kinesis"]["StreamName"]["Ref"]
        for action in actions
        if isinstance(action, dict) and "Fn::If" in action and "Kinesis" in (action["Fn::If"][1] or {})
    }
    fed = {
        mapping["Properties"]["FunctionName"].get("Ref")
        for mapping in template["Resources"].values()
        if mapping["Type"] == "AWS::Lambda::EventSourceMapping"
        and mapping["Properties"]["EventSourceArn"].get("Fn::GetAtt", [None])[0] in kinesis
    }
    variables = {
        name: template["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {}) for name in fed
    }
    return {name for name in fed if variables[name].get("ARCHIVE_STREAM_NAME") == {"Ref": stream}}


def column_problems(template: Template) -> list[str]:
    """Each table's columns are its model's fields, with the Hive types of their JSON."""
    problems = []
    models: dict[str, type[BaseModel]] = {"telemetry": TelemetryEvent, "alarms": AlarmEvent, "actions": OperatorAction}
    for kind, model in models.items():
        name, table = glue_table(template, kind)
        columns = [(column["Name"], column["Type"]) for column in table["StorageDescriptor"]["Columns"]]
        from_model = model_columns(model)
        if kind == "telemetry":
            if columns != from_model:
                problems.append(f"{name}: columns {columns} are not {model.__name__}'s fields {from_model}")
            continue
        missing = [column for column in from_model if column not in columns]
        unknown = {column for column, _ in columns} - {field for field, _ in from_model} - LABEL_FIELDS
        if missing:
            problems.append(f"{name}: {model.__name__}'s fields {missing} are not columns with that type")
        if unknown:
            problems.append(f"{name}: columns {sorted(unknown)} are no field of {model.__name__}")
    return problems


def partition_problems(template: Template) -> list[str]:
    """Daily dt partitions with projection, located where the table's stream writes them."""
    problems = []
    for stream in STREAMS:
        kind = kind_of(stream)
        name, table = glue_table(template, kind)
        prefix = str(destination(template, stream)["Prefix"])
        parameters = table.get("Parameters", {})
        expected = {
            "projection.enabled": "true",
            "projection.dt.type": "date",
            "projection.dt.format": "yyyy-MM-dd",
            "projection.dt.interval": "1",
            "projection.dt.interval.unit": "DAYS",
        }
        for key, value in expected.items():
            if parameters.get(key) != value:
                problems.append(f"{name}: {key} is {parameters.get(key)!r}, not {value!r}")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2},NOW", str(parameters.get("projection.dt.range"))):
            problems.append(f"{name}: projection.dt.range must run from a day to NOW")
        template_location = sub_text(parameters.get("storage.location.template", ""))
        # What Firehose writes, with the day as the projected ${dt} (written ${!dt} in an !Sub).
        wanted = "s3://${ArchiveBucket}/" + prefix.replace(TIMESTAMP_DAY, "${!dt}")
        if template_location != wanted:
            problems.append(f"{name}: storage.location.template {template_location!r}, not {wanted!r}")
        if sub_text(table["StorageDescriptor"]["Location"]) != f"s3://${{ArchiveBucket}}/{kind}/":
            problems.append(f"{name}: Location is not the {kind}/ prefix of ArchiveBucket")
        if table.get("PartitionKeys") is None or [(key["Name"], key["Type"]) for key in table["PartitionKeys"]] != [
            ("dt", "string")
        ]:
            problems.append(f"{name}: the only partition key must be dt (string)")
        serde = table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
        wanted_serde = (
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
            if LAYOUT[kind] == ".parquet"
            else "org.openx.data.jsonserde.JsonSerDe"
        )
        if serde != wanted_serde:
            problems.append(f"{name}: SerDe {serde}, not {wanted_serde}")
    return problems


def bucket_problems(template: Template) -> list[str]:
    """Encrypted, private, TLS only, owner enforced, versioned, kept with the stack, retention by parameter."""
    problems = []
    resource = template["Resources"]["ArchiveBucket"]
    bucket = resource["Properties"]
    if resource.get("DeletionPolicy") != "Retain":
        problems.append("ArchiveBucket: deleting the stack would delete the fleet's history")
    encryption = bucket.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    if not any(rule.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in encryption):
        problems.append("ArchiveBucket: no default encryption")
    block = bucket.get("PublicAccessBlockConfiguration", {})
    for setting in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        if block.get(setting) is not True:
            problems.append(f"ArchiveBucket: {setting} is not true")
    if bucket.get("OwnershipControls", {}).get("Rules") != [{"ObjectOwnership": "BucketOwnerEnforced"}]:
        problems.append("ArchiveBucket: ACLs are not disabled (BucketOwnerEnforced)")
    if bucket.get("VersioningConfiguration", {}).get("Status") != "Enabled":
        problems.append("ArchiveBucket: not versioned")
    policies = [
        policy
        for _, policy in resources(template, "AWS::S3::BucketPolicy")
        if direct_reference(policy["Properties"]["Bucket"]) == "ArchiveBucket"
    ]
    denies_plain_http = [
        statement
        for policy in policies
        for statement, _ in each(policy["Properties"]["PolicyDocument"]["Statement"])
        if statement.get("Effect") == "Deny"
        and statement.get("Principal") == "*"
        and statement.get("Action") == "s3:*"
        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        and get_att_arn("ArchiveBucket") in statement.get("Resource", [])
        and {"Fn::Sub": "${ArchiveBucket.Arn}/*"} in statement.get("Resource", [])
    ]
    if not denies_plain_http:
        problems.append("ArchiveBucket: no bucket policy denies requests without TLS on the bucket and its objects")
    problems += lifecycle_problems(template)
    return problems


def lifecycle_problems(template: Template) -> list[str]:
    """Glacier Instant Retrieval and expiry after the parameters' days, each off at 0; old versions expire."""
    problems = []
    rules = template["Resources"]["ArchiveBucket"]["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    retention = [rule for rule in rules if "Prefix" not in rule and "Filter" not in rule]
    if len(retention) != 1:
        return ["ArchiveBucket: no single lifecycle rule over the whole archive"]
    rule = retention[0]
    conditions = template.get("Conditions", {})
    off_at_zero = {
        parameter: [
            name
            for name, value in conditions.items()
            if value == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, "0"]}]}
        ]
        for parameter in ("ArchiveGlacierAfterDays", "ArchiveExpireAfterDays")
    }
    transitions = rule.get("Transitions")
    if not (
        isinstance(transitions, dict)
        and transitions.get("Fn::If", [None])[0] in off_at_zero["ArchiveGlacierAfterDays"]
        and transitions["Fn::If"][1]
        == [{"StorageClass": "GLACIER_IR", "TransitionInDays": {"Ref": "ArchiveGlacierAfterDays"}}]
        and transitions["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    ):
        problems.append("ArchiveBucket: no move to GLACIER_IR after ArchiveGlacierAfterDays, off at 0")
    expiry = rule.get("ExpirationInDays")
    if not (
        isinstance(expiry, dict)
        and expiry.get("Fn::If", [None])[0] in off_at_zero["ArchiveExpireAfterDays"]
        and expiry["Fn::If"][1:] == [{"Ref": "ArchiveExpireAfterDays"}, {"Ref": "AWS::NoValue"}]
    ):
        problems.append("ArchiveBucket: no expiry after ArchiveExpireAfterDays, off at 0")
    if not rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays"):
        problems.append("ArchiveBucket: deleted or replaced versions are kept for ever")
    for parameter in off_at_zero:
        if template["Parameters"][parameter].get("MinValue") != 0:
            problems.append(f"{parameter}: 0 (never) must be its least value")
    return problems


# ------------------------------------------------------------------ the tests


RULES = {
    "stream": stream_problems,
    "buffering": buffering_problems,
    "conversion": conversion_problems,
    "rule_action": rule_action_problems,
    "column": column_problems,
    "partition": partition_problems,
    "bucket": bucket_problems,
}


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_the_archive_keeps_its_contract(rule: Any) -> None:
    problems = rule(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_the_telemetry_table_has_a_column_for_every_field_a_reading_carries() -> None:
    _, table = glue_table(TEMPLATE, "telemetry")
    names = {column["Name"] for column in table["StorageDescriptor"]["Columns"]}
    assert names == set(TelemetryEvent.model_fields)
    assert {"topic_motor_id", "received_at", "ts", "seq"} <= names


# ------------------------------------------------------------------ each rule fails on a template broken on purpose


def set_at(path: str, value: Any) -> Callable[[Template], None]:
    """A breakage: the value at `path` (resource/key/.../index, from Resources) set to `value`."""

    def breakage(template: Template) -> None:
        *parents, last = path.split("/")
        node = template["Resources"]
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return breakage


def _drop_firehose_action(rule: str) -> Callable[[Template], None]:
    def breakage(template: Template) -> None:
        payload = template["Resources"][rule]["Properties"]["TopicRulePayload"]
        payload["Actions"] = [action for action in payload["Actions"] if "Firehose" not in json.dumps(action)]

    return breakage


def _drop_column(table: str, column: str) -> Callable[[Template], None]:
    def breakage(template: Template) -> None:
        columns = template["Resources"][table]["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
        columns[:] = [entry for entry in columns if entry["Name"] != column]

    return breakage


DESTINATION = "TelemetryArchiveStream/Properties/ExtendedS3DestinationConfiguration"
TELEMETRY_COLUMNS = "TelemetryTable/Properties/TableInput/StorageDescriptor/Columns"
ALARM_EXTENSION = "AlarmArchiveStream/Properties/ExtendedS3DestinationConfiguration/FileExtension"
SERIALIZER = f"{DESTINATION}/DataFormatConversionConfiguration/OutputFormatConfiguration/Serializer"
TELEMETRY_LOCATION = "TelemetryTable/Properties/TableInput/Parameters/storage.location.template"


@pytest.mark.parametrize(
    ("rule", "breakage", "named"),
    [
        ("stream", set_at(f"{DESTINATION}/Prefix", "telemetry/!{timestamp:yyyy/MM/dd}/"), "Prefix"),
        ("stream", set_at(f"{DESTINATION}/ErrorOutputPrefix", "errors/"), "ErrorOutputPrefix"),
        ("stream", set_at(ALARM_EXTENSION, ".json"), ".jsonl"),
        ("stream", set_at(f"{DESTINATION}/CloudWatchLoggingOptions/Enabled", False), "not logged"),
        ("buffering", set_at(f"{DESTINATION}/BufferingHints/SizeInMBs", 32), "SizeInMBs"),
        ("conversion", set_at(SERIALIZER, {"OrcSerDe": {}}), "OutputFormatConfiguration"),
        ("rule_action", _drop_firehose_action("LegacyTelemetryRule"), "LegacyTelemetryRule"),
        (
            "rule_action",
            set_at("ArchiveFunction/Properties/Environment/Variables/ARCHIVE_STREAM_NAME", ""),
            "batched",
        ),
        (
            "rule_action",
            set_at("ActionRule/Properties/TopicRulePayload/Actions/1/Firehose/Separator", ","),
            "ActionRule",
        ),
        ("column", _drop_column("TelemetryTable", "received_at"), "TelemetryTable"),
        ("column", set_at(f"{TELEMETRY_COLUMNS}/3/Type", "int"), "seq"),
        ("column", _drop_column("ActionsTable", "action_id"), "action_id"),
        (
            "partition",
            set_at("AlarmsTable/Properties/TableInput/Parameters/projection.enabled", "false"),
            "AlarmsTable",
        ),
        ("partition", set_at(TELEMETRY_LOCATION, {"Fn::Sub": "s3://${ArchiveBucket}/readings/dt=${!dt}/"}), "template"),
        (
            "bucket",
            set_at("ArchiveBucket/Properties/PublicAccessBlockConfiguration/BlockPublicPolicy", False),
            "Policy",
        ),
        ("bucket", set_at("ArchiveBucketPolicy/Properties/PolicyDocument/Statement/0/Resource", []), "TLS"),
        ("bucket", set_at("ArchiveBucket/Properties/LifecycleConfiguration/Rules/0/ExpirationInDays", 365), "expiry"),
        ("bucket", set_at("ArchiveBucket/DeletionPolicy", "Delete"), "history"),
    ],
)
def test_each_rule_reports_a_template_broken_on_purpose(
    rule: str, breakage: Callable[[Template], None], named: str
) -> None:
    assert not RULES[rule](TEMPLATE)
    problems = problems_when_broken(RULES[rule], breakage)
    assert any(named in problem for problem in problems), problems
