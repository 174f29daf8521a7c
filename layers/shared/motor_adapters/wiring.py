"""What every handler builds the same way: adapters from settings, the current config, rejections."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters import SSMProvider
from pydantic import ValidationError

from motor_adapters.clients import client
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoStateStore
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.settings import Settings
from motor_maintenance.config import DetectorConfig
from motor_maintenance.telemetry import describe_validation_error


def state_store(settings: Settings) -> DynamoStateStore:
    settings.require("state_table_name")
    return DynamoStateStore(settings.state_table_name, client("dynamodb"))


def alarm_publisher(settings: Settings) -> IotAlarmPublisher:
    return IotAlarmPublisher(client("iot-data", endpoint_url=settings.iot_data_endpoint or None))


def config_source(settings: Settings) -> ConfigSource:
    provider = SSMProvider(boto3_client=client("ssm"))
    return ConfigSource(settings.config_parameter_name, provider, settings.config_max_age_s)


def current_config(source: ConfigSource, logger: Any, metrics: Any) -> DetectorConfig:
    """The configuration in force; a rejected SSM document is logged and counted, never fatal."""
    config = source.get()
    if source.last_error:
        logger.error("configuration rejected, keeping the last good one", reason=source.last_error)
        metrics.add_metric(name="ConfigInvalid", unit=MetricUnit.Count, value=1)
    return config


def rejection_reason(exc: Exception) -> str:
    """One line saying which fields are wrong and why."""
    return describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
