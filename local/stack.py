"""The local stack: template.yaml's pipeline on one machine, started and stopped as one object.

What runs (docs/local-stack.md says how faithfully each part stands in for AWS):

- an MQTT 5 broker on loopback with mutual TLS: mosquitto when installed, else local.mqtt_broker;
- moto's server for DynamoDB, SNS, SQS and SSM, with the template's tables, topic, queues and
  parameter created in it, reached by the functions' unchanged boto3 clients through AWS_ENDPOINT_URL;
- a SageMaker runtime on loopback serving model/output/model.tar.gz through the artifact's own
  inference.py (trained first if missing), or with `inference_mode="embedded"` the artifact in a moto S3
  bucket that InferenceFunction fetches and evaluates itself (the template's InferenceMode embedded);
- an IoT data plane on loopback publishing to the broker;
- every function of the template in execution environments of its own (local.lambdas), invoked by
  the template's IoT rules (local.router) with asynchronous-invocation semantics;
- with `ingestion_mode="batched"` (the template's IngestionMode), the template's Kinesis stream in moto,
  which the telemetry rules put readings into, and its event source mapping (local.kinesis) invoking
  InferenceFunction synchronously with batches;
- an SQS queue subscribed to the alert topic, drained into `alerts`, as an operator receives them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.iot_data import IotDataServer
from local.kinesis import BatchOutcome, EventSourceMapping, MappingConfig
from local.lambdas import FunctionConfig, InvokeRefused, LocalFunction, Outcome
from local.mqtt_client import Message, ServiceClient
from local.pki import LocalPki
from local.processes import Child, free_port, port_open
from local.router import Router
from local.sagemaker_endpoint import STATS_PATH
from local.template import Resolver, ScheduleSpec, Template, load

log = logging.getLogger("local.stack")

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = REPO / ".local-stack"
STACK_FILE = "stack.json"
STACK_NAME = "motor-maintenance-local"
REGION = "us-east-1"
ACCOUNT = "123456789012"
ENDPOINT_NAME = "local-motor-model"
MODEL_BUCKET = f"{STACK_NAME}-models"
MODEL_KEY = "motor-failure/model.tar.gz"
INFERENCE_MODES = ("endpoint", "embedded")
INGESTION_MODES = ("direct", "batched")
RULES_ENGINE = "local-rules-engine"
IOT_DATA = "local-iot-data"
SERVICES = (RULES_ENGINE, IOT_DATA)
ALERT_QUEUE = f"{STACK_NAME}-operator-alerts"
ALERT_TOPIC = "AlertTopic"
"""The topic the operator's queue subscribes to (the template's alert topic)."""
DETECTOR_PARAMETER = "DetectorConfigParameter"
"""The SSM parameter --detector-config overrides (the one the functions read, CONFIG_PARAMETER_NAME)."""
DEFAULT_MODEL = REPO / "model" / "output" / "model.tar.gz"
INHERITED = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "VIRTUAL_ENV"})
"""Variables of the stack's own environment its functions inherit; everything else comes from the template."""
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found is None and os.access("/usr/sbin/mosquitto", os.X_OK):
        found = "/usr/sbin/mosquitto"
    return found


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as the operator's queue received it from the SNS topic."""

    received_s: float
    subject: str
    body: str
    attributes: dict[str, str]

    @property
    def motor_id(self) -> str:
        return self.attributes.get("motor_id", "")


MIN_BATCH_WINDOW_S = 0.2
"""The shortest batching window a sped-up run waits (the pollers read a shard every 0.1 s)."""


def batching_window_s(template_s: float, options: StackOptions) -> float:
    """How long the local mapping gathers a batch: the override, or the template's window in simulated time."""
    if options.batch_window_s is not None:
        return options.batch_window_s
    return min(template_s, max(MIN_BATCH_WINDOW_S, template_s / options.speedup))


@dataclass
class StackOptions:
    """How to run the local stack; the defaults are the demo's."""

    state_dir: Path = STATE_DIR
    template: Path = REPO / "template.yaml"
    model: Path | None = DEFAULT_MODEL
    """The artifact to serve; None runs without a model (the predictive strategy is then off, as in AWS)."""
    inference_mode: str = "endpoint"
    """The template's InferenceMode: 'endpoint' (a SageMaker runtime on loopback) or 'embedded' (in the function)."""
    ingestion_mode: str = "direct"
    """The template's IngestionMode: 'direct' (the rules invoke InferenceFunction) or 'batched' (through Kinesis)."""
    batch_window_s: float | None = None
    """Batched: gather a batch this long instead of the mapping's MaximumBatchingWindowInSeconds (60 s)."""
    speedup: float = 1.0
    """Simulated seconds per wall second of the fleet driven through the stack. The mapping's batching window
    is a span of the readings' time, so without `batch_window_s` it is waited window / speedup wall seconds
    (at least MIN_BATCH_WINDOW_S): a reading waits as long in simulated time as it would in AWS."""
    train_if_missing: bool = True
    broker: str = "auto"
    """'mosquitto', 'builtin' or 'auto' (mosquitto when installed)."""
    detector_config: Mapping[str, Any] | None = None
    """Overrides put in the detector-config SSM parameter, as an operator would."""
    concurrency: int = 1
    retry_delays_s: tuple[float, ...] = (1.0, 2.0)
    devices: tuple[str, ...] = ()
    """Motor ids to issue certificates for."""
    schedule_period_s: float | None = None
    """Run every `Schedule` event at this period instead of the template's (tests that cannot wait a minute)."""
    log: Callable[[str], None] = field(default=lambda line: log.info("%s", line))


class LocalStack:
    """Start with `start()` (or `with LocalStack(options) as stack`), stop with `stop()`; nothing is left behind."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.state_dir = self.options.state_dir
        self.log_dir = self.state_dir / "logs"
        self.pki = LocalPki(self.state_dir / "pki")
        self.children: list[Child] = []
        self.functions: dict[str, LocalFunction] = {}
        self.mappings: dict[str, EventSourceMapping] = {}
        self.streams: dict[str, tuple[str, str]] = {}
        """The template's Kinesis streams: logical id -> (name, ARN)."""
        self.records_put: Counter[str] = Counter()
        """Records the rules put into each stream (by logical id)."""
        self.alerts: list[Alert] = []
        self.outcomes: Counter[str] = Counter()
        self._listeners: list[Callable[[str, Any], None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.router: Router | None = None
        self._rules_client: ServiceClient | None = None
        self._iot_client: ServiceClient | None = None
        self._iot_data: IotDataServer | None = None
        self.broker_port = 0
        self.broker_kind = ""
        self.aws_url = ""
        self.model_url: str | None = None
        self.model_data_url: str | None = None
        """s3://... of the artifact InferenceFunction evaluates itself (inference_mode 'embedded')."""
        self.names: dict[str, str] = {}
        self.queue_urls: dict[str, str] = {}
        self.template: Template | None = None
        self.started = False

    # -- what callers use --------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        """`listener(kind, item)` for 'routed' (Routed), 'outcome' (Outcome), 'batch' (local.kinesis.BatchOutcome)
        and 'alert' (Alert), on stack threads."""
        self._listeners.append(listener)

    def client(self, service: str) -> Any:
        """A boto3 client of the local AWS APIs (moto, the model server, the IoT data plane)."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name=REGION,
            endpoint_url=self._endpoint_for(service),
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
        )

    def device_identity(self, motor_id: str) -> tuple[Path, Path]:
        self.pki.ensure([motor_id])
        return self.pki.cert_path(motor_id), self.pki.key_path(motor_id)

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_path

    @property
    def iot_data_url(self) -> str:
        if self._iot_data is None:
            raise RuntimeError("the local stack is not running")
        return self._iot_data.url

    def aws_environment(self) -> dict[str, str]:
        """The variables that point boto3 at the local stack (what the functions run with)."""
        env = {
            "AWS_ENDPOINT_URL": self.aws_url,
            "AWS_ENDPOINT_URL_IOT_DATA_PLANE": self.iot_data_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **FAKE_CREDENTIALS,
        }
        if self.model_url:
            env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = self.model_url
        return env

    def _endpoint_for(self, service: str) -> str:
        if service == "sagemaker-runtime" and self.model_url:
            return self.model_url
        if service == "iot-data":
            return self.iot_data_url
        return self.aws_url

    # -- start -------------------------------------------------------------------------------------

    def start(self) -> None:
        say = self.options.log
        started = time.monotonic()
        try:
            self._start(say)
        except BaseException:
            self.stop(drain_s=0)
            raise
        self.started = True
        say(f"local stack up in {time.monotonic() - started:.1f} s (logs: {self._shown(self.log_dir)})")

    def _start(self, say: Callable[[str], None]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        if self.log_dir.exists():
            shutil.rmtree(self.log_dir)
        self.log_dir.mkdir()
        self.template = template = load(self.options.template)
        say(f"template: {len(template.rules)} IoT rules, {len(template.functions)} functions")

        self.pki.ensure([*SERVICES, *self.options.devices])
        if self.options.inference_mode not in INFERENCE_MODES:
            raise ValueError(f"inference_mode {self.options.inference_mode!r} is not one of {INFERENCE_MODES}")
        if self.options.ingestion_mode not in INGESTION_MODES:
            raise ValueError(f"ingestion_mode {self.options.ingestion_mode!r} is not one of {INGESTION_MODES}")
        self._start_aws(say)
        if self.options.model is not None and self.options.inference_mode == "embedded":
            self._upload_model(self.options.model, say)
        elif self.options.model is not None:
            self._start_model(self.options.model, say)
        else:
            say("model: none (the predictive strategy is off, as in a stack deployed without ModelDataUrl)")
        self._start_broker(say)

        self._iot_client = ServiceClient(
            port=self.broker_port,
            ca=self.pki.ca_path,
            cert=self.pki.cert_path(IOT_DATA),
            key=self.pki.key_path(IOT_DATA),
            name=IOT_DATA,
        )
        self._iot_client.start()
        self._iot_data = IotDataServer(self._iot_client.publish)
        self._iot_data.start()

        resolver = self._create_resources(template, say)
        self._start_functions(template, resolver, say)
        self._start_mappings(template, resolver, say)

        self.router = Router(
            [
                rule.for_conditions(resolver.condition_holds)
                for rule in template.rules
                if resolver.condition_holds(rule.condition)
            ],
            self.functions,
            park=self._park,
            streams={logical_id: self._putter(logical_id) for logical_id in self.streams},
            on_routed=lambda r: self._tell("routed", r),
        )
        for name in self.router.disabled:
            say(f"rule {name} is disabled in the template: not applied")
        self._rules_client = ServiceClient(
            port=self.broker_port,
            ca=self.pki.ca_path,
            cert=self.pki.cert_path(RULES_ENGINE),
            key=self.pki.key_path(RULES_ENGINE),
            name=RULES_ENGINE,
            on_message=self._on_message,
        )
        self._rules_client.start(self.router.topic_filters())
        say(f"IoT rules: {', '.join(f'{r.spec.name} ({r.sql.topic_filter})' for r in self.router.rules)}")

        thread = threading.Thread(target=self._drain_alerts, name="local-alerts", daemon=True)
        thread.start()
        self._threads.append(thread)
        self._start_schedules(template, say)
        self._write_stack_file()

    def _start_aws(self, say: Callable[[str], None]) -> None:
        port = free_port()
        moto = Child(
            "moto server",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            log_path=self.log_dir / "moto.log",
        )
        moto.start(lambda: port_open(port), timeout_s=60)
        self.children.append(moto)
        self.aws_url = f"http://127.0.0.1:{port}"
        say(f"AWS APIs (moto server): {self.aws_url}")

    def _ensure_artifact(self, artifact: Path, say: Callable[[str], None]) -> None:
        if not artifact.is_file():
            if not self.options.train_if_missing:
                raise RuntimeError(f"no model artifact at {artifact}: run python model/train.py")
            from local.artifact import ensure_model  # noqa: PLC0415 - only the first run trains

            say(f"no model at {self._shown(artifact)} yet: training the default model (about 70-85 s on 2 cores)")
            ensure_model(artifact, log=lambda line: say(f"  train: {line}"))

    def _upload_model(self, artifact: Path, say: Callable[[str], None]) -> None:
        """InferenceMode embedded: the artifact in S3, where ModelDataUrl points; no endpoint."""
        self._ensure_artifact(artifact, say)
        s3 = self.client_cached("s3")
        s3.create_bucket(Bucket=MODEL_BUCKET)
        s3.put_object(Bucket=MODEL_BUCKET, Key=MODEL_KEY, Body=artifact.read_bytes())
        self.model_data_url = f"s3://{MODEL_BUCKET}/{MODEL_KEY}"
        say(f"model: {self._shown(artifact)} at {self.model_data_url}, evaluated inside InferenceFunction (embedded)")

    def _start_model(self, artifact: Path, say: Callable[[str], None]) -> None:
        self._ensure_artifact(artifact, say)
        port = free_port()
        server = Child(
            "SageMaker endpoint",
            [
                *(sys.executable, "-m", "local.sagemaker_endpoint", "--artifact", str(artifact)),
                *("--endpoint-name", ENDPOINT_NAME, "--port", str(port)),
            ],
            log_path=self.log_dir / "sagemaker-endpoint.log",
        )
        server.start(lambda: port_open(port), timeout_s=120)
        self.children.append(server)
        self.model_url = f"http://127.0.0.1:{port}"
        say(f"SageMaker endpoint {ENDPOINT_NAME}: {self._shown(artifact)} through its inference.py, {self.model_url}")

    def _start_broker(self, say: Callable[[str], None]) -> None:
        choice = self.options.broker
        mosquitto = find_mosquitto() if choice in ("auto", "mosquitto") else None
        if choice == "mosquitto" and mosquitto is None:
            raise RuntimeError("--broker mosquitto: mosquitto is not installed (apt-get install mosquitto)")
        self.broker_port = free_port()
        if mosquitto is not None:
            config = self._mosquitto_config()
            child = Child("mosquitto", [mosquitto, "-c", str(config)], log_path=self.log_dir / "broker.log")
            self.broker_kind = "mosquitto"
        else:
            child = Child(
                "MQTT broker",
                [sys.executable, "-m", "local.mqtt_broker", "--port", str(self.broker_port)]
                + ["--cafile", str(self.pki.ca_path), "--certfile", str(self.pki.server_cert_path)]
                + ["--keyfile", str(self.pki.server_key_path)]
                + [arg for name in SERVICES for arg in ("--service", name)],
                log_path=self.log_dir / "broker.log",
            )
            self.broker_kind = "built-in (local.mqtt_broker)"
        port = self.broker_port
        child.start(lambda: port_open(port), timeout_s=30)
        self.children.append(child)
        say(f"MQTT broker: {self.broker_kind}, mqtts://127.0.0.1:{port} (mutual TLS, CA {self._shown(self.ca_path)})")

    def _mosquitto_config(self) -> Path:
        """mosquitto with mutual TLS and an ACL that mirrors the template's DevicePolicy (docs/local-stack.md)."""
        acl = self.state_dir / "mosquitto.acl"
        services = "".join(f"user {name}\ntopic readwrite #\n\n" for name in SERVICES)
        acl.write_text(
            "# A device (username = its certificate's CN) publishes only its telemetry and receives only its\n"
            "# own actions and alarms, as DevicePolicy allows; the stack's services stand in for IoT Core.\n"
            "pattern write motors/%u/telemetry\npattern read motors/%u/actions\npattern read motors/%u/alarms\n\n"
            + services
        )
        config = self.state_dir / "mosquitto.conf"
        user = f"user {_user_name()}\n" if os.geteuid() == 0 else ""
        config.write_text(
            f"{user}listener {self.broker_port} 127.0.0.1\n"
            f"cafile {self.pki.ca_path}\ncertfile {self.pki.server_cert_path}\nkeyfile {self.pki.server_key_path}\n"
            "require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n"
            f"acl_file {acl}\nmax_queued_messages 100000\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            "log_type notice\n"
        )
        return config

    def _create_resources(self, template: Template, say: Callable[[str], None]) -> Resolver:
        """The template's tables, queues, topics and parameters in moto; the resolver that names them."""
        sqs, sns, ssm = (self.client_cached(s) for s in ("sqs", "sns", "ssm"))
        physical: dict[str, str] = {}
        attributes: dict[tuple[str, str], str] = {}
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        parameters = {
            "ExistingEndpointName": ENDPOINT_NAME if self.model_url else "",
            "IngestionMode": self.options.ingestion_mode,
        }
        if self.model_data_url:
            parameters |= {"InferenceMode": "embedded", "ModelDataUrl": self.model_data_url}
        exists = template.resolver(parameters, pseudo).condition_holds
        self._create_stores(template, exists, physical, attributes)
        for name in template.functions:
            physical[name] = name
            attributes[(name, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        # A parameter's Name may refer to other resources: name them all first, then resolve with the names.
        first = template.resolver(parameters, pseudo, physical, attributes)
        for parameter in template.parameters:
            if first.condition_holds(parameter.condition):
                physical[parameter.logical_id] = str(first.resolve(parameter.name, f"{parameter.logical_id}.Name"))
        resolver = template.resolver(parameters, pseudo, physical, attributes)
        for parameter in template.parameters:
            if parameter.logical_id not in physical:
                continue
            value = str(resolver.resolve(parameter.value, f"{parameter.logical_id}.Value"))
            if self.options.detector_config is not None and parameter.logical_id == DETECTOR_PARAMETER:
                value = json.dumps(self.options.detector_config)
            ssm.put_parameter(Name=physical[parameter.logical_id], Value=value, Type=parameter.type)
        for subscription in template.subscriptions:
            if resolver.condition_holds(subscription.condition):
                say(f"subscription {subscription.logical_id} ({subscription.protocol}) is not emulated locally")
        alert_arn = physical.get(ALERT_TOPIC)
        if alert_arn is not None:
            url = sqs.create_queue(QueueName=ALERT_QUEUE)["QueueUrl"]
            queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{ALERT_QUEUE}"
            sns.subscribe(TopicArn=alert_arn, Protocol="sqs", Endpoint=queue_arn)
            self.queue_urls["__alerts__"] = url
        self.names = dict(physical)
        left_out = sorted(template.unsupported_resource_types())
        say(
            f"AWS resources: {len(template.tables)} tables, {len(template.queues)} queues, "
            f"{len(template.topics)} topics, {len(template.parameters)} parameters"
            + (f", {len(self.streams)} Kinesis streams" if self.streams else "")
            + (f"; not emulated: {', '.join(left_out)}" if left_out else "")
        )
        return resolver

    def _create_stores(
        self,
        template: Template,
        exists: Callable[[str | None], bool],
        physical: dict[str, str],
        attributes: dict[tuple[str, str], str],
    ) -> None:
        """The template's tables, queues, topics and Kinesis streams in moto, their names and ARNs recorded."""
        dynamodb, sqs, sns, kinesis = (self.client_cached(s) for s in ("dynamodb", "sqs", "sns", "kinesis"))
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
            self.queue_urls[queue.logical_id] = url
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
            self.streams[stream.logical_id] = (name, arn)

    def _start_functions(self, template: Template, resolver: Resolver, say: Callable[[str], None]) -> None:
        # A clean environment, as Lambda gives: the process basics, then only what the template sets.
        base_env = {key: value for key, value in os.environ.items() if key in INHERITED or key.startswith("LC_")}
        base_env.update(self.aws_environment())
        # X-Ray has no local daemon: traces are off (docs/local-stack.md); everything else is as deployed.
        base_env["POWERTOOLS_TRACE_DISABLED"] = "true"
        for name, spec in template.functions.items():
            if not resolver.condition_holds(spec.condition):
                continue
            environment = spec.resolved_environment(resolver)
            config = FunctionConfig(
                name=name,
                code_uri=spec.code_uri,
                handler=spec.handler,
                environment=environment,
                layers=tuple(template.layer_paths(spec, resolver)),
                timeout_s=spec.timeout_s,
                memory_mb=spec.memory_mb,
                max_retry_attempts=spec.max_retry_attempts,
                max_event_age_s=spec.max_event_age_s,
                on_failure=spec.on_failure,
            )
            self.functions[name] = LocalFunction(
                config,
                base_env=base_env,
                log_dir=self.log_dir,
                park=self._park,
                on_outcome=self._on_outcome,
                concurrency=self.options.concurrency,
                retry_delays_s=self.options.retry_delays_s,
                region=REGION,
                account=ACCOUNT,
            )
        say(f"functions: {', '.join(self.functions)} ({self.options.concurrency} execution environment(s) each)")

    def _start_mappings(self, template: Template, resolver: Resolver, say: Callable[[str], None]) -> None:
        """A poller per shard of each event source mapping (local.kinesis), before any rule puts a record."""
        for spec in template.event_source_mappings:
            if not resolver.condition_holds(spec.condition):
                continue
            if not spec.enabled:
                say(f"event source mapping {spec.logical_id} is disabled in the template: not polled")
                continue
            function = self.functions.get(spec.function)
            if function is None or spec.stream not in self.streams:
                raise RuntimeError(
                    f"{spec.logical_id}: {spec.function} or {spec.stream} does not exist under the template's "
                    "conditions with these parameters"
                )
            window_s = batching_window_s(spec.batching_window_s, self.options)
            name, arn = self.streams[spec.stream]
            config = MappingConfig(
                name=spec.logical_id,
                function=spec.function,
                function_arn=function.arn,
                stream_name=name,
                stream_arn=arn,
                starting_position=spec.starting_position,
                batch_size=spec.batch_size,
                batching_window_s=window_s,
                report_batch_item_failures=spec.report_batch_item_failures,
                bisect_on_error=spec.bisect_on_error,
                max_retry_attempts=spec.max_retry_attempts,
                max_record_age_s=spec.max_record_age_s,
                on_failure=spec.on_failure,
                invoke_identity_arn=f"arn:aws:iam::{ACCOUNT}:role/{STACK_NAME}-{spec.function}Role",
                region=REGION,
            )
            mapping = EventSourceMapping(
                config,
                kinesis=lambda: self.client("kinesis"),
                invoke=function.invoke,
                park=self._park,
                on_batch=self._on_batch,
                retry_delays_s=self.options.retry_delays_s,
            )
            shards = mapping.start()
            self.mappings[spec.logical_id] = mapping
            window = f"{window_s:g} s" + (
                f" (template: {spec.batching_window_s:g} s)" if window_s != spec.batching_window_s else ""
            )
            say(
                f"event source mapping {spec.logical_id}: {spec.stream} ({len(shards)} shard(s), "
                f"{spec.starting_position}) -> {spec.function}, batches of up to {spec.batch_size} within {window}, "
                f"{spec.max_retry_attempts} retries"
                + (", bisect on error" if spec.bisect_on_error else "")
                + (", ReportBatchItemFailures" if spec.report_batch_item_failures else "")
                + (f", then {spec.on_failure}" if spec.on_failure else "")
            )

    def _putter(self, logical_id: str) -> Callable[[bytes, str], None]:
        """The rules' PutRecord into one stream, counted so that `idle()` knows what the pollers still owe."""
        name = self.streams[logical_id][0]
        kinesis = self.client("kinesis")

        def put(data: bytes, partition_key: str) -> None:
            kinesis.put_record(StreamName=name, Data=data, PartitionKey=partition_key)
            with self._lock:
                self.records_put[logical_id] += 1

        return put

    def _start_schedules(self, template: Template, say: Callable[[str], None]) -> None:
        """A thread per `Schedule` event, invoking its function as EventBridge does (asynchronously)."""
        started = []
        for schedule in template.schedules:
            if not schedule.enabled or schedule.function not in self.functions:
                continue
            period_s = self.options.schedule_period_s or schedule.period_s
            thread = threading.Thread(
                target=self._tick, args=(schedule, period_s), name=f"local-schedule-{schedule.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
            started.append(
                f"{schedule.name} ({schedule.expression}"
                + (f", here every {period_s:g} s)" if period_s != schedule.period_s else ")")
            )
        if started:
            say(f"schedules: {', '.join(started)}")

    def _tick(self, schedule: ScheduleSpec, period_s: float) -> None:
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK_NAME}-{schedule.name}"
        while not self._stopping.wait(period_s):
            event = schedule.input
            if event is None:
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": ACCOUNT,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "region": REGION,
                    "resources": [rule_arn],
                    "detail": {},
                }
            # Refused (stopping, or throttled) or gone (stopped): EventBridge would retry; the next tick will.
            try:
                self.functions[schedule.function].invoke_async(event)
            except (InvokeRefused, KeyError) as exc:
                log.warning("schedule %s not delivered: %s", schedule.name, exc)
                continue
            with self._lock:
                self.outcomes[f"schedule.{schedule.name}"] += 1

    def _urls(self) -> list[str]:
        urls = [self.aws_url, self.iot_data_url]
        return urls + ([self.model_url] if self.model_url else [])

    def _write_stack_file(self) -> None:
        info = {
            "pid": os.getpid(),
            "region": REGION,
            "aws_endpoint_url": self.aws_url,
            "iot_data_endpoint_url": self.iot_data_url,
            "sagemaker_runtime_endpoint_url": self.model_url,
            "broker": {"host": "127.0.0.1", "port": self.broker_port, "kind": self.broker_kind},
            "ca": str(self.pki.ca_path),
            "resources": self.names,
            "processes": {child.name: child.process.pid for child in self.children if child.process is not None},
            "ports": [self.broker_port, *(int(url.rsplit(":", 1)[1]) for url in self._urls())],
        }
        (self.state_dir / STACK_FILE).write_text(json.dumps(info, indent=2) + "\n")

    # -- while running -----------------------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        if self.router is not None and not self._stopping.is_set():
            self.router.handle(message)

    def _park(self, queue_logical_id: str, record: dict[str, Any]) -> None:
        self.client_cached("sqs").send_message(
            QueueUrl=self.queue_urls[queue_logical_id], MessageBody=json.dumps(record)
        )

    _clients: dict[str, Any] | None = None

    def client_cached(self, service: str) -> Any:
        with self._lock:
            if self._clients is None:
                self._clients = {}
            if service not in self._clients:
                self._clients[service] = self.client(service)
            return self._clients[service]

    def _on_outcome(self, outcome: Outcome) -> None:
        status = "failed" if outcome.error is not None else str((outcome.result or {}).get("status", "ok"))
        with self._lock:
            self.outcomes[f"{outcome.function}.{status}"] += 1
            if outcome.dead_lettered:
                self.outcomes[f"{outcome.function}.dead_lettered"] += 1
        self._tell("outcome", outcome)

    def _on_batch(self, outcome: BatchOutcome) -> None:
        with self._lock:
            self.outcomes[f"{outcome.function}.batches"] += 1
            if outcome.error is not None and not outcome.discarded:
                self.outcomes[f"{outcome.function}.failed"] += 1
            for reading in outcome.readings:
                self.outcomes[f"{outcome.function}.{reading.get('status', 'ok')}"] += 1
            if outcome.dead_lettered:
                self.outcomes[f"{outcome.function}.dead_lettered"] += outcome.discarded
        self._tell("batch", outcome)

    def _tell(self, kind: str, item: Any) -> None:
        for listener in self._listeners:
            try:
                listener(kind, item)
            except Exception:
                log.exception("a listener of the local stack failed on %s", kind)

    def _drain_alerts(self) -> None:
        url = self.queue_urls.get("__alerts__")
        if url is None:
            return
        sqs = self.client("sqs")
        while not self._stopping.is_set():
            try:
                response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception as exc:  # moto going away while stopping
                if self._stopping.is_set():
                    return
                log.warning("cannot read the alert queue: %s", exc)
                time.sleep(0.5)
                continue
            for message in response.get("Messages", []):
                alert = _alert_from_sns(json.loads(message["Body"]))
                with self._lock:
                    self.alerts.append(alert)
                self._tell("alert", alert)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def queue_depth(self, logical_id: str) -> int:
        """Messages in one of the template's queues (the dead-letter queues)."""
        attributes = self.client_cached("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[logical_id], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def motor_items(self) -> list[dict[str, Any]]:
        """The state table's motor items (run hours, alarm states, probability), as an operator would scan them."""
        table = self.names.get("StateTable")
        if table is None:
            return []
        items: list[dict[str, Any]] = []
        paginator = self.client_cached("dynamodb").get_paginator("scan")
        for page in paginator.paginate(TableName=table):
            items.extend(page["Items"])
        return items

    def idle(self) -> bool:
        """No event queued or running in any function, and every record put in a stream behind its pollers."""
        if any(function.pending() for function in self.functions.values()):
            return False
        with self._lock:
            put = dict(self.records_put)
        return all(
            mapping.finished >= put.get(spec.stream, 0)
            for spec in (self.template.event_source_mappings if self.template else ())
            if (mapping := self.mappings.get(spec.logical_id)) is not None
        )

    def endpoint_stats(self) -> dict[str, int]:
        """The local SageMaker endpoint's counters: `invocations` (InvokeEndpoint calls) and `rows` scored."""
        if not self.model_url:
            raise RuntimeError("no SageMaker endpoint runs (no model, or inference_mode 'embedded')")
        with urllib.request.urlopen(f"{self.model_url}{STATS_PATH}", timeout=5) as answer:  # noqa: S310 - loopback
            stats: dict[str, int] = json.loads(answer.read())
        return stats

    def settle(self, stall_s: float = 60.0, quiet_s: float = 1.5, limit_s: float = 3600.0) -> bool:
        """Wait until every function is idle and no alert arrived for `quiet_s`; whether it settled.

        A backlog (a burst queued in the functions) may take long to work off: the wait gives up only
        when no invocation has finished for `stall_s`, or after `limit_s` in all.
        """
        started = time.monotonic()
        calm_since: float | None = None
        progress_at, done, seen = started, -1, -1
        while time.monotonic() - started < limit_s:
            now = time.monotonic()
            with self._lock:
                alerts = len(self.alerts)
            finished = sum(f.invocations for f in self.functions.values())
            if finished != done:
                progress_at, done = now, finished
            if self.idle() and alerts == seen:
                calm_since = calm_since or now
                if now - calm_since >= quiet_s:
                    return True
            else:
                calm_since = None
                if now - progress_at >= stall_s:
                    return False
            seen = alerts
            time.sleep(0.1)
        return False

    # -- stop --------------------------------------------------------------------------------------

    def stop(self, drain_s: float = 20.0) -> None:
        """Finish what is in flight (up to `drain_s`), then stop every part, children last. Idempotent."""
        if drain_s > 0 and self.started and not self.settle(stall_s=drain_s, limit_s=drain_s):
            waiting = {name: f.pending() for name, f in self.functions.items() if f.pending()}
            finished = {name: m.finished for name, m in self.mappings.items()}
            log.warning(
                "stopping with invocations still pending: %s (records put %s, finished %s)",
                waiting,
                dict(self.records_put),
                finished,
            )
        self._stopping.set()
        for mapping in self.mappings.values():
            mapping.signal_stop()
        for client in (self._rules_client, self._iot_client):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.stop()
        self._rules_client = self._iot_client = None
        for function in self.functions.values():
            function.stop()
        for mapping in self.mappings.values():
            mapping.stop()
        self.mappings.clear()
        self.functions.clear()
        if self._iot_data is not None:
            self._iot_data.stop()
            self._iot_data = None
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / STACK_FILE).unlink()
        self.started = False

    @staticmethod
    def _shown(path: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(Path.cwd()))
        return str(path)


def _alert_from_sns(envelope: dict[str, Any]) -> Alert:
    attributes = {
        name: str(value.get("Value", "")) for name, value in (envelope.get("MessageAttributes") or {}).items()
    }
    return Alert(
        received_s=time.monotonic(),
        subject=str(envelope.get("Subject") or ""),
        body=str(envelope.get("Message") or ""),
        attributes=attributes,
    )


def _user_name() -> str:
    import pwd  # noqa: PLC0415 - POSIX only, and only as root

    return pwd.getpwuid(os.getuid()).pw_name


def running_stack(state_dir: Path = STATE_DIR) -> dict[str, Any] | None:
    """The running local stack's endpoints (stack.json), if one is running."""
    try:
        info: dict[str, Any] = json.loads((state_dir / STACK_FILE).read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(info["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return info


def issue(stack: LocalStack, motor_ids: Iterable[str]) -> Path:
    """Certificates for these motors in the stack's PKI; the --cert-dir that holds them."""
    stack.pki.ensure(list(motor_ids))
    return stack.pki.ca_path.parent
