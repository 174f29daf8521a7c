"""Shared fixtures: fake AWS credentials, moto-backed resources shaped like template.yaml's."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Set before any handler module is imported: they read their settings at import time.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "POWERTOOLS_SERVICE_NAME": "motor-maintenance-test",
        "POWERTOOLS_METRICS_NAMESPACE": "MotorMaintenanceTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        "STATE_TABLE_NAME": "motor-state",
        "HISTORY_TABLE_NAME": "motor-history",
        "IDEMPOTENCY_TABLE_NAME": "alert-idempotency",
        "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:motor-alerts",
        "ENDPOINT_NAME": "motor-failure-xgboost",
        "CONFIG_PARAMETER_NAME": "/motor-maintenance/detector-config",
        # Read by ArchiveFunction, which the template makes only with IngestionMode batched.
        "ARCHIVE_STREAM_NAME": "telemetry-archive",
    }
)
for leftover in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(leftover, None)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # A pytest-xdist worker per core keeps every core busy: XGBoost's OpenMP threads (one per core by default, or
    # the nthread a call names) would spin waiting for a core the other worker holds. Measured side by side on two
    # busy cores: test_boosted_trees.py and test_ai4i.py took 89 s with one thread, 118 s with two. The trees are
    # the same (model/artifact.py's fit gave the same bytes with one thread and with two).
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the default team
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # and the most a call may ask for (nthread=2 runs on one)

from moto import mock_aws  # noqa: E402

from tests import scheduling  # noqa: E402
from tests.reports import StackReport, SummaryReport, Tally, export_all, merge_all  # noqa: E402
from tests.support import LambdaContext  # noqa: E402

REPORTS: dict[str, type[SummaryReport]] = {StackReport.name: StackReport, Tally.name: Tally}
"""The reports printed after pytest's summary (tests/reports.py)."""


SCOPE_TIMER = scheduling.ScopeTimer()
"""Each work unit's time, in the process that prints the run's reports (the controller under pytest-xdist)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-scope-seconds",
        action="store_true",
        help="write each test module's time to tests/scope_seconds.json (the order pytest-xdist starts them in)",
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The longest work unit first (tests/scheduling.py)."""
    return scheduling.make_scheduler(config, log)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        SCOPE_TIMER.add(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its share of the reports to the controller; the controller keeps the times."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["reports"] = export_all(session.config, REPORTS)
    else:
        SCOPE_TIMER.save(session.config, record=session.config.getoption("record_scope_seconds"))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """The controller adds a finished worker's share of the reports to its own (pytest-xdist)."""
    shares = getattr(node, "workeroutput", {}).get("reports")
    if shares:
        merge_all(node.config, REPORTS, shares)


ARCHIVE_BUCKET = "motor-archive"


@dataclass
class FakeAws:
    """Handles on the moto resources a test inspects."""

    dynamodb: Any
    sns: Any
    sqs: Any
    ssm: Any
    alert_queue_url: str
    s3: Any = None

    def archived(self) -> list[bytes]:
        """The records put into the archive's Firehose stream, in order (moto writes each call as one S3 object)."""
        objects = self.s3.list_objects_v2(Bucket=ARCHIVE_BUCKET).get("Contents", [])
        return [self.s3.get_object(Bucket=ARCHIVE_BUCKET, Key=o["Key"])["Body"].read() for o in objects]

    def alerts(self) -> list[dict[str, Any]]:
        """SNS messages delivered to a queue subscribed to the alert topic (raw delivery off)."""
        messages = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.alert_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.alert_queue_url, ReceiptHandle=message["ReceiptHandle"])

    def published(self) -> list[tuple[str, dict[str, Any]]]:
        """Messages the IoT data plane was asked to publish: (topic, payload)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.iotdata.models import iotdata_backends

        backend = iotdata_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"]
        return [(topic, json.loads(payload)) for topic, payload in backend.published_payloads]


def template_table(logical_id: str) -> dict[str, Any]:
    """CreateTable arguments for a table of template.yaml: its keys, attributes and indexes, as written there."""
    from local.cfn import parse

    template = parse((Path(__file__).resolve().parents[1] / "template.yaml").read_text())
    properties = json.loads(json.dumps(template["Resources"][logical_id]["Properties"]))
    shape = {
        key: properties[key]
        for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")
        if key in properties
    }
    return {**shape, "BillingMode": "PAY_PER_REQUEST"}


@pytest.fixture
def aws() -> Iterator[FakeAws]:
    """DynamoDB tables, SNS topic, SSM parameter as template.yaml defines them, faked by moto."""
    import boto3

    from motor_adapters.clients import client

    client.cache_clear()
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(TableName=os.environ["STATE_TABLE_NAME"], **template_table("StateTable"))
        dynamodb.create_table(TableName=os.environ["IDEMPOTENCY_TABLE_NAME"], **template_table("IdempotencyTable"))
        dynamodb.create_table(TableName=os.environ["HISTORY_TABLE_NAME"], **template_table("HistoryTable"))
        sns = boto3.client("sns")
        topic_arn = sns.create_topic(Name="motor-alerts")["TopicArn"]
        assert topic_arn == os.environ["ALERT_TOPIC_ARN"]
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="alert-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name=os.environ["CONFIG_PARAMETER_NAME"], Value="{}", Type="String")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=ARCHIVE_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        boto3.client("firehose").create_delivery_stream(
            DeliveryStreamName=os.environ["ARCHIVE_STREAM_NAME"],
            ExtendedS3DestinationConfiguration={
                "BucketARN": f"arn:aws:s3:::{ARCHIVE_BUCKET}",
                "RoleARN": "arn:aws:iam::123456789012:role/archive-delivery",
            },
        )
        yield FakeAws(dynamodb=dynamodb, sns=sns, sqs=sqs, ssm=ssm, alert_queue_url=queue_url, s3=s3)
    client.cache_clear()


@pytest.fixture(scope="session")
def default_model() -> Path:
    """model/output/model.tar.gz, the model the local stack serves: trained if missing, once per version of the
    code that trains it (tests/model_cache.py)."""
    from tests.model_cache import default_model as trained

    return trained(log=lambda line: print(f"train: {line}", flush=True))


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()
