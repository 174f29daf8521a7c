"""Adapters for the use cases on a motor's state, built from a function's settings; the configuration in force.

Built on a function's first event and kept for its execution environment. Every client comes from
motor_adapters.clients (bounded timeouts; tests/unit/test_iam.py follows these functions to derive each
role's grants from the calls the adapters make). InferenceFunction's model and AlertFunction's adapters
are built beside their use (motor_lambda.ingestion, motor_lambda.alerting), so no function imports
another's adapters at cold start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters import SSMProvider

from motor_adapters import clients
from motor_adapters.config_source import ConfigSource
from motor_adapters.dynamodb_store import DynamoDueIndex, DynamoStateStore
from motor_adapters.firehose_archive import FirehoseArchive
from motor_adapters.fleet_reader import DynamoFleetReader
from motor_adapters.history_store import (
    DynamoHistoryReader,
    DynamoHistoryWriter,
    RecordingBatchStateStore,
    RecordingStateStore,
)
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_lambda.settings import ArchiveSettings, ConsoleSettings, MotorStateSettings
from motor_maintenance.config import DetectorConfig
from motor_maintenance.health import ModelHealthMonitor
from motor_maintenance.ports import (
    BatchStateStore,
    EventPublisher,
    FleetReader,
    HistoryReader,
    Predictor,
    StateStore,
)


@dataclass(frozen=True)
class MotorPorts:
    """OperatorActionFunction's: a motor's state, the alarm topic, the detector's configuration."""

    store: StateStore
    publisher: EventPublisher
    source: ConfigSource


@dataclass(frozen=True)
class InferencePorts:
    """InferenceFunction's: those, with the batch read, the model if there is one, and the model's health."""

    store: BatchStateStore
    predictor: Predictor | None
    publisher: EventPublisher
    source: ConfigSource
    monitor: ModelHealthMonitor | None


@dataclass(frozen=True)
class TimerPorts:
    """OfflineCheckFunction's: a motor's state and the index of the motors that are due."""

    store: StateStore
    due: DynamoDueIndex
    publisher: EventPublisher
    source: ConfigSource


@dataclass(frozen=True)
class ConsolePorts:
    """ConsoleFunction's: the fleet and its history to read, and what an operator's action needs."""

    fleet: FleetReader
    history: HistoryReader
    store: StateStore
    publisher: EventPublisher
    source: ConfigSource


HistoryErrors = Callable[[Exception], None]
"""What a function does with a history entry it could not write (history_errors: log and count it)."""


def motor_ports(settings: MotorStateSettings, on_history_error: HistoryErrors) -> MotorPorts:
    return MotorPorts(state_store(settings, on_history_error), alarm_publisher(settings), config_source(settings))


def timer_ports(settings: MotorStateSettings, on_history_error: HistoryErrors) -> TimerPorts:
    return TimerPorts(
        state_store(settings, on_history_error),
        DynamoDueIndex(settings.state_table_name, clients.client("dynamodb")),
        alarm_publisher(settings),
        config_source(settings),
    )


def console_ports(settings: ConsoleSettings, on_history_error: HistoryErrors) -> ConsolePorts:
    return ConsolePorts(
        DynamoFleetReader(settings.state_table_name, clients.client("dynamodb")),
        DynamoHistoryReader(settings.history_table_name, clients.client("dynamodb")),
        state_store(settings, on_history_error),
        alarm_publisher(settings),
        config_source(settings),
    )


def telemetry_archive(settings: ArchiveSettings) -> FirehoseArchive:
    """ArchiveFunction's: the archive's Firehose stream."""
    return FirehoseArchive(settings.archive_stream_name, clients.client("firehose"))


def state_store(settings: MotorStateSettings, on_history_error: HistoryErrors) -> StateStore:
    """The motors' state, written in the function's STATE_ITEM_FORMAT, feeding the console's history."""
    store = DynamoStateStore(
        settings.state_table_name, clients.client("dynamodb"), state_format=settings.state_item_format
    )
    return recorded(store, settings, on_history_error)


def recorded(store: StateStore, settings: MotorStateSettings, on_error: HistoryErrors) -> StateStore:
    """The store, feeding the console's history as it saves (when the function is given a history table)."""
    if not settings.history_table_name:
        return store
    return RecordingStateStore(store, history_writer(settings), on_error, interval_s=settings.history_interval_s)


def recorded_batch(store: BatchStateStore, settings: MotorStateSettings, on_error: HistoryErrors) -> BatchStateStore:
    """`recorded` for a store that also reads many motors at once."""
    if not settings.history_table_name:
        return store
    return RecordingBatchStateStore(store, history_writer(settings), on_error, interval_s=settings.history_interval_s)


def history_writer(settings: MotorStateSettings) -> DynamoHistoryWriter:
    return DynamoHistoryWriter(settings.history_table_name, clients.client("dynamodb"))


def history_errors(logger: Logger, metrics: Metrics) -> HistoryErrors:
    """Log and count a history entry that could not be written: the charts miss it, the state is saved."""

    def report(exc: Exception) -> None:
        logger.warning("history entry not recorded", reason=str(exc))
        metrics.add_metric(name="HistoryWriteFailed", unit=MetricUnit.Count, value=1)

    return report


def alarm_publisher(settings: MotorStateSettings) -> IotAlarmPublisher:
    client = clients.client("iot-data", endpoint_url=settings.iot_data_endpoint or None)
    return IotAlarmPublisher(client, settings.topic_namespace)


def config_source(settings: MotorStateSettings) -> ConfigSource:
    provider = SSMProvider(boto3_client=clients.client("ssm"))
    return ConfigSource(settings.config_parameter_name, provider, settings.config_max_age_s)


def current_config(source: ConfigSource, logger: Logger, metrics: Metrics) -> DetectorConfig:
    """The configuration in force; a rejected SSM document is logged and counted, never fatal."""
    config = source.get()
    if source.last_error:
        logger.error("configuration rejected, keeping the last good one", reason=source.last_error)
        metrics.add_metric(name="ConfigInvalid", unit=MetricUnit.Count, value=1)
    return config
