"""The archive's roles grant exactly what Firehose and the IoT rules' Firehose actions use.

Each Firehose stream has a role of its own that writes only its prefix and its error prefix (as the
stream names them), reads only the Glue table it converts against, and logs only to its own group;
the rules' role may only put records, one at a time, into the streams the rules name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.test_archive_template import STREAMS, destination, glue_table, kind_of, set_at
from tests.unit.test_template import (
    TEMPLATE,
    Template,
    direct_reference,
    each,
    get_att_arn,
    problems_when_broken,
    resources,
    role_grants,
)


def grantpairs(role_name: str, template: Template) -> set[tuple[str, str]]:
    role = template["Resources"][role_name]
    return {
        (action, json.dumps(resource, sort_keys=True))
        for _, actions, granted in role_grants(role_name, role)
        for action in actions
        for resource in granted
    }


def pairs(actions: list[str], targets: list[Any]) -> set[tuple[str, str]]:
    return {(action, json.dumps(target, sort_keys=True)) for action in actions for target in targets}


def delivery_role_problems(template: Template) -> list[str]:
    """Each stream's role writes only its own prefixes, reads only its own table, logs only to its own group."""
    problems = []
    roles = {stream: direct_reference(destination(template, stream).get("RoleARN")) for stream in STREAMS}
    if len(set(roles.values())) != len(roles):
        problems.append(f"delivery roles are shared between streams: {roles}")
    for stream, role in roles.items():
        assert role is not None
        config = destination(template, stream)
        kind = kind_of(stream)
        static = [str(config[key]).split("!{", 1)[0] for key in ("Prefix", "ErrorOutputPrefix")]
        expected = pairs(
            ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"], [get_att_arn("ArchiveBucket")]
        )
        # Firehose's S3 destination: PutObject, multipart uploads and their clean-up, a GetObject to check.
        expected |= pairs(
            ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
            [{"Fn::Sub": f"${{ArchiveBucket.Arn}}/{prefix.split('dt=', 1)[0]}*"} for prefix in static],
        )
        if "DataFormatConversionConfiguration" in config:
            table_name, _ = glue_table(template, kind)
            glue = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:"
            expected |= pairs(
                ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
                [
                    {"Fn::Sub": f"{glue}catalog"},
                    {"Fn::Sub": f"{glue}database/${{ArchiveDatabase}}"},
                    {"Fn::Sub": f"{glue}table/${{ArchiveDatabase}}/${{{table_name}}}"},
                ],
            )
        group = direct_reference(config["CloudWatchLoggingOptions"]["LogGroupName"])
        expected |= pairs(["logs:PutLogEvents"], [get_att_arn(group)])
        granted = grantpairs(role, template)
        for action, resource in sorted(granted - expected):
            problems.append(f"{role}: grants {action} on {resource}, which {stream} does not use")
        for action, resource in sorted(expected - granted):
            problems.append(f"{role}: lacks {action} on {resource}, which {stream} needs")
    return problems


def writer_role_problems(template: Template) -> list[str]:
    """A rule's Firehose role may put records (one at a time) into the streams the rules name, nothing else."""
    problems = []
    puts: dict[str, set[str]] = {}
    for _, rule in resources(template, "AWS::IoT::TopicRule"):
        for action, _ in each(rule["Properties"]["TopicRulePayload"]["Actions"]):
            if "Firehose" in action:
                role = direct_reference(action["Firehose"]["RoleArn"]) or ""
                puts.setdefault(role, set()).add(direct_reference(action["Firehose"]["DeliveryStreamName"]) or "")
    for role, streams in puts.items():
        expected = pairs(["firehose:PutRecord"], [get_att_arn(stream) for stream in sorted(streams)])
        granted = grantpairs(role, template)
        for action, resource in sorted(granted ^ expected):
            verb = "grants" if (action, resource) in granted else "lacks"
            problems.append(f"{role}: {verb} {action} on {resource}")
    return problems


RULES = {"delivery_role": delivery_role_problems, "writer_role": writer_role_problems}


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_each_archive_role_grants_exactly_what_its_service_uses(rule: Any) -> None:
    problems = rule(TEMPLATE)
    assert not problems, "\n".join(problems)


def _add_put_record_batch(template: Template) -> None:
    policy = template["Resources"]["ArchiveWriterRole"]["Properties"]["Policies"][0]
    policy["PolicyDocument"]["Statement"][0]["Action"] = ["firehose:PutRecord", "firehose:PutRecordBatch"]


def _statement_resource(role: str, index: int) -> str:
    return f"{role}/Properties/Policies/0/PolicyDocument/Statement/{index}/Resource"


@pytest.mark.parametrize(
    ("rule", "breakage", "named"),
    [
        # Alarm events' role writing the whole bucket, readings included.
        (
            "delivery_role",
            set_at(_statement_resource("AlarmArchiveDeliveryRole", 1), {"Fn::Sub": "${ArchiveBucket.Arn}/*"}),
            "AlarmArchiveDeliveryRole",
        ),
        ("delivery_role", set_at(_statement_resource("TelemetryArchiveDeliveryRole", 2), "*"), "glue:GetTable"),
        ("delivery_role", set_at(_statement_resource("ActionArchiveDeliveryRole", 2), []), "lacks logs:PutLogEvents"),
        (
            "delivery_role",
            set_at(
                "AlarmArchiveStream/Properties/ExtendedS3DestinationConfiguration/RoleARN",
                get_att_arn("ActionArchiveDeliveryRole"),
            ),
            "shared",
        ),
        ("writer_role", _add_put_record_batch, "PutRecordBatch"),
        ("writer_role", set_at(_statement_resource("ArchiveWriterRole", 0), "*"), 'grants firehose:PutRecord on "*"'),
    ],
)
def test_each_rule_reports_a_template_broken_on_purpose(
    rule: str, breakage: Callable[[Template], None], named: str
) -> None:
    assert not RULES[rule](TEMPLATE)
    problems = problems_when_broken(RULES[rule], breakage)
    assert any(named in problem for problem in problems), problems
