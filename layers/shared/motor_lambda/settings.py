"""Each function's settings: the environment variables template.yaml sets on it, read once at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from motor_maintenance.topics import DEFAULT_NAMESPACE, TopicNamespace


class FunctionSettings(BaseModel):
    """A function's environment variables, one field each (the variable is the field's name in capitals)."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings in `environ` (the process's environment by default); RuntimeError naming what is wrong.

        Raised at cold start, naming the variable, rather than on the first event. An empty variable counts
        as unset: the template sets some to "" under its conditions (ENDPOINT_NAME without an endpoint).
        """
        env = os.environ if environ is None else environ
        values = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper())}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{str(error['loc'][0]).upper()} {'is not set' if error['type'] == 'missing' else error['msg']}"
                for error in exc.errors()
            )
            raise RuntimeError(f"{cls.__name__}: {problems}") from exc


class TopicSettings(FunctionSettings):
    """What every function that names an MQTT topic needs (template.yaml, Globals)."""

    topic_namespace: TopicNamespace = Field(
        default=DEFAULT_NAMESPACE,
        description="TOPIC_NAMESPACE: the stack's first topic level (TopicNamespace): {namespace}/{motor_id}/alarms.",
    )


class MotorStateSettings(TopicSettings):
    """What every function that keeps the motors' state needs (template.yaml, Globals)."""

    state_table_name: str = Field(description="STATE_TABLE_NAME: per-motor state (DynamoDB).")
    config_parameter_name: str = Field(
        default="", description="CONFIG_PARAMETER_NAME: SSM detector overrides; empty = the defaults."
    )
    config_max_age_s: int = Field(default=300, ge=0, description="CONFIG_MAX_AGE_S: how long to cache them.")
    iot_data_endpoint: str = Field(default="", description="IOT_DATA_ENDPOINT: override for the IoT data plane.")
    history_table_name: str = Field(
        default="", description="HISTORY_TABLE_NAME: the console's 24-hour history; empty = none recorded."
    )
    state_item_format: int = Field(
        default=3,
        ge=2,
        le=3,
        description="STATE_ITEM_FORMAT: the format the state items are written in (StateItemFormat); 2 while a "
        "stack is upgraded from code that reads format 2 only (docs/deploy.md), both are read.",
    )
    history_interval_s: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="HISTORY_INTERVAL_S: a motor's readings recorded at most once per this many seconds of "
        "reading time (alarm transitions always); 0 = every reading.",
    )


class InferenceSettings(MotorStateSettings):
    """InferenceFunction: the motors' state, and the model (an endpoint, embedded, or none)."""

    endpoint_name: str = Field(default="", description="ENDPOINT_NAME: SageMaker endpoint; empty = no endpoint.")
    model_s3_url: str = Field(
        default="", description="MODEL_S3_URL: model.tar.gz evaluated in the function (InferenceMode embedded)."
    )
    endpoint_timeout_s: float = Field(default=3.0, gt=0, description="ENDPOINT_TIMEOUT_S: read timeout per call.")


class ArchiveSettings(FunctionSettings):
    """ArchiveFunction (IngestionMode batched): where a batch's readings are archived."""

    archive_stream_name: str = Field(
        description="ARCHIVE_STREAM_NAME: the archive's Firehose stream each batch's readings are put into."
    )


class ActionSettings(MotorStateSettings):
    """OperatorActionFunction: the motors' state, nothing more."""


class OfflineSettings(MotorStateSettings):
    """OfflineCheckFunction: the motors' state, nothing more."""


class ConsoleSettings(MotorStateSettings):
    """ConsoleFunction: the motors' state to read and act on, and their history."""

    history_table_name: str = Field(description="HISTORY_TABLE_NAME: the console's 24-hour history.")


class AlertSettings(TopicSettings):
    """AlertFunction: where alerts go, and where each alarm event's first delivery is remembered."""

    alert_topic_arn: str = Field(description="ALERT_TOPIC_ARN: SNS topic for people.")
    idempotency_table_name: str = Field(description="IDEMPOTENCY_TABLE_NAME: alert dedup records.")
