"""The emulated AWS account: moto's server, the model where InferenceMode puts it, and the template's resources.

`start_moto` runs moto's server; `place_model` serves the artifact behind a SageMaker runtime on
loopback (InferenceMode endpoint) or puts it in an S3 bucket for InferenceFunction to fetch
(embedded); `provision` creates the template's tables, queues, topics, Kinesis streams and SSM
parameters in moto, names them as CloudFormation would (through the template's own `Ref`s and
`GetAtt`s), and subscribes the operator's queue to the alert topic.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.aws import LocalAws
from local.cfn import Resolver
from local.options import ACCOUNT, REGION, STACK_NAME, StackOptions, shown
from local.processes import Child, free_port, port_open
from local.specs import Template

ENDPOINT_NAME = "local-motor-model"
MODEL_BUCKET = f"{STACK_NAME}-models"
MODEL_KEY = "motor-failure/model.tar.gz"
ALERT_QUEUE = f"{STACK_NAME}-operator-alerts"
ALERT_TOPIC = "AlertTopic"
"""The topic the operator's queue subscribes to (the template's alert topic)."""
DETECTOR_PARAMETER = "DetectorConfigParameter"
"""The SSM parameter --detector-config overrides (the one the functions read, CONFIG_PARAMETER_NAME)."""
PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": STACK_NAME,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}

Say = Callable[[str], None]


@dataclass
class Resources:
    """The template's resources as created in moto, and the resolver that knows their physical names."""

    aws: LocalAws
    resolver: Resolver
    names: dict[str, str] = field(default_factory=dict)
    """Logical id -> physical name (a table's name, a queue's URL, a topic's ARN, ...)."""
    queue_urls: dict[str, str] = field(default_factory=dict)
    streams: dict[str, tuple[str, str]] = field(default_factory=dict)
    """The template's Kinesis streams: logical id -> (name, ARN)."""
    alert_queue_url: str | None = None
    """The operator's queue, subscribed to the alert topic."""
    model_data_url: str | None = None
    """s3://... of the artifact InferenceFunction evaluates itself (InferenceMode embedded)."""

    def queue_depth(self, logical_id: str) -> int:
        """Messages in one of the template's queues (the dead-letter queues)."""
        attributes = self.aws.shared("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[logical_id], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def motor_items(self) -> list[dict[str, Any]]:
        """The state table's motor items (run hours, alarm states, probability), as an operator would scan them."""
        table = self.names.get("StateTable")
        if table is None:
            return []
        items: list[dict[str, Any]] = []
        for page in self.aws.shared("dynamodb").get_paginator("scan").paginate(TableName=table):
            items.extend(page["Items"])
        return items


def start_moto(log_dir: Path, say: Say) -> tuple[Child, str]:
    """moto's server (local.moto_server: kept-alive connections) on a free loopback port: the process and its URL."""
    port = free_port()
    moto = Child(
        "moto server",
        [sys.executable, "-m", "local.moto_server", "--host", "127.0.0.1", "--port", str(port)],
        log_path=log_dir / "moto.log",
    )
    moto.start(lambda: port_open(port), timeout_s=60)
    url = f"http://127.0.0.1:{port}"
    say(f"AWS APIs (moto server): {url}")
    return moto, url


def place_model(options: StackOptions, aws: LocalAws, log_dir: Path, say: Say) -> tuple[Child | None, str | None]:
    """The model where the inference mode wants it: (the endpoint's process, None) or (None, its s3:// URL)."""
    if options.model is None:
        say("model: none (the predictive strategy is off, as in a stack deployed without ModelDataUrl)")
        return None, None
    artifact = _artifact(options.model, options.train_if_missing, say)
    if options.inference_mode == "embedded":
        s3 = aws.shared("s3")
        s3.create_bucket(Bucket=MODEL_BUCKET)
        s3.put_object(Bucket=MODEL_BUCKET, Key=MODEL_KEY, Body=artifact.read_bytes())
        data_url = f"s3://{MODEL_BUCKET}/{MODEL_KEY}"
        say(f"model: {shown(artifact)} at {data_url}, evaluated inside InferenceFunction (embedded)")
        return None, data_url
    port = free_port()
    server = Child(
        "SageMaker endpoint",
        [
            *(sys.executable, "-m", "local.sagemaker_endpoint", "--artifact", str(artifact)),
            *("--endpoint-name", ENDPOINT_NAME, "--port", str(port)),
        ],
        log_path=log_dir / "sagemaker-endpoint.log",
    )
    server.start(lambda: port_open(port), timeout_s=120)
    aws.model_url = f"http://127.0.0.1:{port}"
    say(f"SageMaker endpoint {ENDPOINT_NAME}: {shown(artifact)} through its inference.py, {aws.model_url}")
    return server, None


def _artifact(artifact: Path, train_if_missing: bool, say: Say) -> Path:
    if not artifact.is_file():
        if not train_if_missing:
            raise RuntimeError(f"no model artifact at {artifact}: run python model/train.py")
        from local.artifact import ensure_model  # noqa: PLC0415 - only the first run trains

        say(f"no model at {shown(artifact)} yet: training the default model (about 70-85 s on 2 cores)")
        ensure_model(artifact, log=lambda line: say(f"  train: {line}"))
    return artifact


def provision(
    template: Template, options: StackOptions, aws: LocalAws, model_data_url: str | None, say: Say
) -> Resources:
    """The template's tables, queues, topics, streams and parameters in moto; the resolver that names them."""
    parameters = {
        "ExistingEndpointName": ENDPOINT_NAME if aws.model_url else "",
        "IngestionMode": options.ingestion_mode,
        "AllowLegacyTopic": "true" if options.allow_legacy_topic else "false",
        "TopicNamespace": options.topic_namespace,
    }
    if model_data_url:
        parameters |= {"InferenceMode": "embedded", "ModelDataUrl": model_data_url}
    resources = Resources(aws, template.resolver(parameters, PSEUDO_PARAMETERS), model_data_url=model_data_url)
    attributes: dict[tuple[str, str], str] = {}
    _create_stores(template, resources, attributes)
    for name in template.functions:
        resources.names[name] = name
        attributes[(name, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    # A parameter's Name may refer to other resources: name them all first, then resolve with the names.
    first = template.resolver(parameters, PSEUDO_PARAMETERS, resources.names, attributes)
    for parameter in template.parameters:
        if first.condition_holds(parameter.condition):
            resources.names[parameter.logical_id] = str(first.resolve(parameter.name, f"{parameter.logical_id}.Name"))
    resources.resolver = resolver = template.resolver(parameters, PSEUDO_PARAMETERS, resources.names, attributes)
    ssm = aws.shared("ssm")
    for parameter in template.parameters:
        if parameter.logical_id not in resources.names:
            continue
        value = str(resolver.resolve(parameter.value, f"{parameter.logical_id}.Value"))
        if options.detector_config is not None and parameter.logical_id == DETECTOR_PARAMETER:
            value = json.dumps(options.detector_config)
        ssm.put_parameter(Name=resources.names[parameter.logical_id], Value=value, Type=parameter.type)
    for subscription in template.subscriptions:
        if resolver.condition_holds(subscription.condition):
            say(f"subscription {subscription.logical_id} ({subscription.protocol}) is not emulated locally")
    alert_arn = resources.names.get(ALERT_TOPIC)
    if alert_arn is not None:
        resources.alert_queue_url = aws.shared("sqs").create_queue(QueueName=ALERT_QUEUE)["QueueUrl"]
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{ALERT_QUEUE}"
        aws.shared("sns").subscribe(TopicArn=alert_arn, Protocol="sqs", Endpoint=queue_arn)
    left_out = sorted(template.unsupported_resource_types())
    say(
        f"AWS resources: {len(template.tables)} tables, {len(template.queues)} queues, "
        f"{len(template.topics)} topics, {len(template.parameters)} parameters"
        + (f", {len(resources.streams)} Kinesis streams" if resources.streams else "")
        + (f"; not emulated: {', '.join(left_out)}" if left_out else "")
    )
    return resources


def _create_stores(template: Template, resources: Resources, attributes: dict[tuple[str, str], str]) -> None:
    """The template's tables, queues, topics and Kinesis streams in moto, their names and ARNs recorded."""
    exists = resources.resolver.condition_holds
    physical = resources.names
    dynamodb, sqs, sns, kinesis = (resources.aws.shared(s) for s in ("dynamodb", "sqs", "sns", "kinesis"))
    for table in template.tables:
        if not exists(table.condition):
            continue
        name = f"{STACK_NAME}-{table.logical_id}"
        indexes: dict[str, Any] = {}
        if table.global_secondary_indexes:  # on-demand: no ProvisionedThroughput, as in the template
            indexes["GlobalSecondaryIndexes"] = json.loads(json.dumps(table.global_secondary_indexes))
        if table.local_secondary_indexes:
            indexes["LocalSecondaryIndexes"] = json.loads(json.dumps(table.local_secondary_indexes))
        dynamodb.create_table(
            TableName=name,
            KeySchema=table.key_schema,
            AttributeDefinitions=table.attribute_definitions,
            BillingMode="PAY_PER_REQUEST",
            **indexes,
        )
        if table.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute}
            )
        physical[table.logical_id] = name
        attributes[(table.logical_id, "Arn")] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
    for queue in template.queues:
        if not exists(queue.condition):
            continue
        name = f"{STACK_NAME}-{queue.logical_id}" + (".fifo" if queue.fifo else "")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        physical[queue.logical_id] = url
        resources.queue_urls[queue.logical_id] = url
        attributes[(queue.logical_id, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        attributes[(queue.logical_id, "QueueName")] = name
    for topic in template.topics:
        if not exists(topic.condition):
            continue
        arn = sns.create_topic(Name=f"{STACK_NAME}-{topic.logical_id}")["TopicArn"]
        physical[topic.logical_id] = arn
        attributes[(topic.logical_id, "TopicArn")] = arn
    for stream in template.streams:
        if not exists(stream.condition):
            continue
        name = f"{STACK_NAME}-{stream.logical_id}"
        kinesis.create_stream(
            StreamName=name, ShardCount=stream.shard_count, StreamModeDetails={"StreamMode": "PROVISIONED"}
        )
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
        arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        physical[stream.logical_id] = name
        attributes[(stream.logical_id, "Arn")] = arn
        resources.streams[stream.logical_id] = (name, arn)
    for delivery in template.delivery_streams:  # local.firehose's streams, by the name its API takes
        if exists(delivery.condition):
            physical[delivery.logical_id] = delivery.name
            attributes[(delivery.logical_id, "Arn")] = (
                f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{delivery.name}"
            )
