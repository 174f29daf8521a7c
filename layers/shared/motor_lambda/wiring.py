"""The AWS adapters each function's use cases are given, built from its settings; and the configuration in force.

Built on a function's first invocation and kept for its execution environment. Every client comes from
motor_adapters.clients.client (bounded timeouts; tests/unit/test_iam.py follows these functions to derive
each role's grants from the calls the adapters make).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.parameters import SSMProvider

from motor_adapters.clients import client
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoBatchStateStore, DynamoDueIndex, DynamoHealthStore, DynamoStateStore
from motor_adapters.embedded_predictor import EmbeddedPredictor
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.sagemaker_predictor import SageMakerPredictor
from motor_adapters.sns_notifier import SnsNotifier
from motor_lambda.settings import AlertSettings, InferenceSettings, MotorStateSettings
from motor_maintenance.config import DetectorConfig
from motor_maintenance.health import ModelHealthMonitor
from motor_maintenance.ports import Predictor


@dataclass(frozen=True)
class MotorPorts:
    """OperatorActionFunction's: a motor's state, the alarm topic, the detector's configuration."""

    store: DynamoStateStore
    publisher: IotAlarmPublisher
    source: ConfigSource


@dataclass(frozen=True)
class InferencePorts:
    """InferenceFunction's: those, with the batch read, the model if there is one, and the model's health."""

    store: DynamoBatchStateStore
    predictor: Predictor | None
    publisher: IotAlarmPublisher
    source: ConfigSource
    monitor: ModelHealthMonitor | None


@dataclass(frozen=True)
class TimerPorts:
    """OfflineCheckFunction's: a motor's state and the index of the motors that are due."""

    store: DynamoStateStore
    due: DynamoDueIndex
    publisher: IotAlarmPublisher
    source: ConfigSource


def motor_ports(settings: MotorStateSettings) -> MotorPorts:
    store = DynamoStateStore(settings.state_table_name, client("dynamodb"))
    return MotorPorts(store, alarm_publisher(settings), config_source(settings))


def inference_ports(settings: InferenceSettings) -> InferencePorts:
    """The state store may read many motors at once (BatchGetItem): only this function applies batches."""
    publisher = alarm_publisher(settings)
    model = predictor(settings)
    # The model's health for this execution environment: its own counts, the fleet's shared record.
    monitor = (
        ModelHealthMonitor(DynamoHealthStore(settings.state_table_name, client("dynamodb")), publisher)
        if model is not None
        else None
    )
    store = DynamoBatchStateStore(settings.state_table_name, client("dynamodb"))
    return InferencePorts(store, model, publisher, config_source(settings), monitor)


def timer_ports(settings: MotorStateSettings) -> TimerPorts:
    return TimerPorts(
        DynamoStateStore(settings.state_table_name, client("dynamodb")),
        DynamoDueIndex(settings.state_table_name, client("dynamodb")),
        alarm_publisher(settings),
        config_source(settings),
    )


def predictor(settings: InferenceSettings) -> Predictor | None:
    """The model: embedded (fetched once per environment), behind the endpoint, or none."""
    if settings.model_s3_url:
        return EmbeddedPredictor(settings.model_s3_url, client("s3"))
    if settings.endpoint_name:
        # One attempt, bounded: a reading must not wait out a cold or throttled endpoint (the next one asks again).
        runtime = client("sagemaker-runtime", read_timeout=settings.endpoint_timeout_s, max_attempts=1)
        return SageMakerPredictor(settings.endpoint_name, runtime)
    return None


def alarm_publisher(settings: MotorStateSettings) -> IotAlarmPublisher:
    return IotAlarmPublisher(client("iot-data", endpoint_url=settings.iot_data_endpoint or None))


def config_source(settings: MotorStateSettings) -> ConfigSource:
    provider = SSMProvider(boto3_client=client("ssm"))
    return ConfigSource(settings.config_parameter_name, provider, settings.config_max_age_s)


def notifier(settings: AlertSettings) -> SnsNotifier:
    return SnsNotifier(settings.alert_topic_arn, client("sns"))


def idempotency_store(settings: AlertSettings) -> DynamoDBPersistenceLayer:
    """Where AlertFunction remembers each alarm event it alerted (Powertools idempotency)."""
    return DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name, boto3_client=client("dynamodb"))


def current_config(source: ConfigSource, logger: Logger, metrics: Metrics) -> DetectorConfig:
    """The configuration in force; a rejected SSM document is logged and counted, never fatal."""
    config = source.get()
    if source.last_error:
        logger.error("configuration rejected, keeping the last good one", reason=source.last_error)
        metrics.add_metric(name="ConfigInvalid", unit=MetricUnit.Count, value=1)
    return config
