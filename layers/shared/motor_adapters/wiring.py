"""What every handler builds the same way: adapters from settings, the current config, rejections, health."""

from __future__ import annotations

import reprlib
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters import SSMProvider
from pydantic import ValidationError

from motor_adapters.clients import client
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoBatchStateStore, DynamoDueIndex, DynamoHealthStore, DynamoStateStore
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_adapters.settings import Settings
from motor_maintenance.alarms import Transition
from motor_maintenance.config import DetectorConfig
from motor_maintenance.health import HealthReport, ModelHealthMonitor
from motor_maintenance.telemetry import describe_validation_error


def state_store(settings: Settings) -> DynamoStateStore:
    settings.require("state_table_name")
    return DynamoStateStore(settings.state_table_name, client("dynamodb"))


def batch_state_store(settings: Settings) -> DynamoBatchStateStore:
    """The state store of the function that applies batches: it may also read many motors at once (BatchGetItem)."""
    settings.require("state_table_name")
    return DynamoBatchStateStore(settings.state_table_name, client("dynamodb"))


def due_index(settings: Settings) -> DynamoDueIndex:
    settings.require("state_table_name")
    return DynamoDueIndex(settings.state_table_name, client("dynamodb"))


def alarm_publisher(settings: Settings) -> IotAlarmPublisher:
    return IotAlarmPublisher(client("iot-data", endpoint_url=settings.iot_data_endpoint or None))


def health_monitor(settings: Settings, publisher: IotAlarmPublisher) -> ModelHealthMonitor:
    """The model's health for this execution environment: its own counts, the fleet's shared record."""
    settings.require("state_table_name")
    return ModelHealthMonitor(DynamoHealthStore(settings.state_table_name, client("dynamodb")), publisher)


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


def report_health(report: HealthReport, logger: Any, metrics: Any) -> None:
    """Logs and metrics for what the model-health monitor did; a record it could not keep is not fatal."""
    for event in report.published:
        if event.transition is Transition.RAISED:
            metrics.add_metric(name="ModelOutages", unit=MetricUnit.Count, value=1)
            logger.error(
                "model unavailable; health alert published",
                event_id=event.event_id,
                failures_in_a_row=event.value,
                reason=event.note,
            )
        else:
            logger.info(
                "model available again; recovery notice published",
                event_id=event.event_id,
                unavailable_since=event.active_since.isoformat() if event.active_since else None,
            )
    if report.error:
        metrics.add_metric(name="ModelHealthUnrecorded", unit=MetricUnit.Count, value=1)
        logger.error("model health not recorded; tried again with the next prediction", reason=report.error)


def rejection_reason(exc: Exception) -> str:
    """One line saying which fields are wrong and why."""
    return describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)


class _Preview(reprlib.Repr):
    """reprlib's bounded repr; an integer over 1000 bits long is named by its size (str() of 4,301 digits raises)."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 1000:
            return f"<int of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_PREVIEW = _Preview()
# Four levels, a few items of each: enough to recognise a payload. A plain repr() of a payload
# nested ~1000 deep raises RecursionError on Python 3.11, and one of 20,000 fields costs 256 KB.
_PREVIEW.maxlevel, _PREVIEW.maxdict, _PREVIEW.maxlist, _PREVIEW.maxtuple = 4, 20, 10, 10
_PREVIEW.maxstring, _PREVIEW.maxother = 200, 80


def payload_preview(payload: Any, limit: int = 500) -> str:
    """A short repr of untrusted input for a log line: bounded in depth and size, ASCII, never raising.

    ASCII because the log is strict UTF-8 (a lone surrogate, which JSON can spell, cannot be written)
    and because an escaped look-alike (``mot\\u043er-001``) shows what it is.
    """
    return _PREVIEW.repr(payload).encode("ascii", "backslashreplace").decode("ascii")[:limit]
