"""The archive is watched and queried as docs/archive.md and docs/operations.md say.

Each stream's delivery is alarmed on and on the dashboard; the Athena workgroup enforces encrypted,
expiring results and a scan limit; each saved query bounds the days it reads and counts each record
once, on the key docs/archive.md gives for its kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.test_archive_template import DEDUP_KEYS, STREAMS, set_at, sub_text
from tests.unit.test_template import TEMPLATE, Template, direct_reference, problems_when_broken, resources

ATHENA_MIN_SCAN_CUTOFF = 10_000_000  # BytesScannedCutoffPerQuery's lower bound (10 MB)


def monitoring_problems(template: Template) -> list[str]:
    """Each stream's delivery is alarmed on (ops topic) and on the dashboard."""
    problems = []
    limit = template["Parameters"]["ArchiveBufferSeconds"]["MaxValue"]
    alarms = {
        direct_reference(dimension["Value"]): (name, alarm["Properties"])
        for name, alarm in resources(template, "AWS::CloudWatch::Alarm")
        for dimension in alarm["Properties"].get("Dimensions", [])
        if dimension["Name"] == "DeliveryStreamName"
    }
    dashboard = sub_text(template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"])
    for stream in STREAMS:
        if stream not in alarms:
            problems.append(f"{stream}: no CloudWatch alarm on its delivery")
            continue
        name, alarm = alarms[stream]
        if (alarm.get("Namespace"), alarm.get("MetricName")) != ("AWS/Firehose", "DeliveryToS3.DataFreshness"):
            problems.append(f"{name}: not on AWS/Firehose DeliveryToS3.DataFreshness")
        if alarm.get("Threshold", 0) < 2 * limit:
            problems.append(f"{name}: threshold {alarm.get('Threshold')} s would fire on a full buffer ({limit} s)")
        if alarm.get("AlarmActions") != [{"Ref": "OpsTopic"}] or alarm.get("OKActions") != [{"Ref": "OpsTopic"}]:
            problems.append(f"{name}: does not notify the ops topic")
        for shown in (f"${{{name}.Arn}}", f'"DeliveryStreamName", "${{{stream}}}"'):
            if shown not in dashboard:
                problems.append(f"OperationsDashboard: does not show {shown}")
    return problems


def athena_problems(template: Template) -> list[str]:
    """The workgroup enforces encrypted, expiring results and a scan limit; the queries read each record once."""
    problems = []
    workgroups = list(resources(template, "AWS::Athena::WorkGroup"))
    if len(workgroups) != 1:
        return [f"{len(workgroups)} Athena workgroups"]
    workgroup_name, workgroup = workgroups[0]
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    results = config.get("ResultConfiguration", {})
    location = sub_text(results.get("OutputLocation", ""))
    if config.get("EnforceWorkGroupConfiguration") is not True:
        problems.append(f"{workgroup_name}: a query may override its settings")
    if results.get("EncryptionConfiguration") != {"EncryptionOption": "SSE_S3"}:
        problems.append(f"{workgroup_name}: results are not encrypted (SSE_S3)")
    match = re.fullmatch(r"s3://\$\{ArchiveBucket\}/([a-z-]+/)", location)
    rules = template["Resources"]["ArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    if not match or not any(rule.get("Prefix") == match.group(1) and rule.get("ExpirationInDays") for rule in rules):
        problems.append(f"{workgroup_name}: results are not under a prefix of ArchiveBucket that expires")
    cutoff = direct_reference(config.get("BytesScannedCutoffPerQuery"))
    if (
        cutoff not in template["Parameters"]
        or template["Parameters"][cutoff].get("MinValue", 0) < ATHENA_MIN_SCAN_CUTOFF
    ):
        problems.append(f"{workgroup_name}: no bytes-scanned limit per query from a parameter of at least 10 MB")
    queries = list(resources(template, "AWS::Athena::NamedQuery"))
    if len(queries) < 3:
        problems.append(f"{len(queries)} named queries; the archive's users start from three")
    for name, query in queries:
        properties = query["Properties"]
        sql = properties["QueryString"]
        if direct_reference(properties.get("WorkGroup")) != workgroup_name:
            problems.append(f"{name}: not in {workgroup_name}")
        if direct_reference(properties.get("Database")) != "ArchiveDatabase":
            problems.append(f"{name}: not on ArchiveDatabase")
        read = set(re.findall(r"\bFROM\s+(\w+)", sql)) & set(DEDUP_KEYS)
        if not read:
            problems.append(f"{name}: reads no table of the archive")
        for kind in sorted(read):
            partitioned = {
                tuple(column.split(".")[-1].strip() for column in columns.split(","))
                for columns in re.findall(r"PARTITION BY ([\w., ]+?) ORDER BY", sql)
            }
            if tuple(DEDUP_KEYS[kind]) not in partitioned:
                problems.append(f"{name}: does not count each {kind} record once ({', '.join(DEDUP_KEYS[kind])})")
        if not re.search(r"\bdt\s*(>=|BETWEEN)", sql):
            problems.append(f"{name}: does not bound the days (dt) it reads")
    return problems


RULES = {"monitoring": monitoring_problems, "athena": athena_problems}


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_the_archive_is_watched_and_queried_as_documented(rule: Any) -> None:
    problems = rule(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_the_outputs_name_the_bucket_the_database_and_the_workgroup() -> None:
    outputs = {name: output["Value"] for name, output in TEMPLATE["Outputs"].items()}
    assert outputs["ArchiveBucketName"] == {"Ref": "ArchiveBucket"}
    assert outputs["ArchiveDatabaseName"] == {"Ref": "ArchiveDatabase"}
    assert outputs["ArchiveWorkGroupName"] == {"Ref": "ArchiveWorkGroup"}


def _without_dedup(template: Template) -> None:
    query = template["Resources"]["FailureAndServiceLogQuery"]["Properties"]
    query["QueryString"] = query["QueryString"].replace("PARTITION BY a.action_id", "PARTITION BY a.motor_id")


def _reading_every_day(template: Template) -> None:
    query = template["Resources"]["MotorReadingsQuery"]["Properties"]
    query["QueryString"] = query["QueryString"].replace("AND t.dt BETWEEN '2026-10-31' AND '2026-11-08'", "")


WORKGROUP = "ArchiveWorkGroup/Properties/WorkGroupConfiguration"


@pytest.mark.parametrize(
    ("rule", "breakage", "named"),
    [
        ("monitoring", set_at("ActionArchiveDeliveryAlarm/Properties/Threshold", 600), "ActionArchiveDeliveryAlarm"),
        ("monitoring", set_at("TelemetryArchiveDeliveryAlarm/Properties/OKActions", []), "ops topic"),
        ("athena", set_at(f"{WORKGROUP}/EnforceWorkGroupConfiguration", False), "override"),
        ("athena", set_at(f"{WORKGROUP}/ResultConfiguration/EncryptionConfiguration", {}), "SSE_S3"),
        ("athena", set_at(f"{WORKGROUP}/BytesScannedCutoffPerQuery", 10**12), "bytes-scanned"),
        ("athena", _without_dedup, "actions record once"),
        ("athena", _reading_every_day, "dt"),
    ],
)
def test_each_rule_reports_a_template_broken_on_purpose(
    rule: str, breakage: Callable[[Template], None], named: str
) -> None:
    assert not RULES[rule](TEMPLATE)
    problems = problems_when_broken(RULES[rule], breakage)
    assert any(named in problem for problem in problems), problems
