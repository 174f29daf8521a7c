"""The functions' settings, read from the environment once, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Environment variables the template sets on the functions (see template.yaml Globals)."""

    model_config = ConfigDict(frozen=True)

    state_table_name: str = Field(default="", description="STATE_TABLE_NAME: per-motor state (DynamoDB).")
    endpoint_name: str = Field(default="", description="ENDPOINT_NAME: SageMaker endpoint; empty = no model.")
    model_s3_url: str = Field(
        default="", description="MODEL_S3_URL: model.tar.gz evaluated in the function (InferenceMode embedded)."
    )
    alert_topic_arn: str = Field(default="", description="ALERT_TOPIC_ARN: SNS topic for people.")
    idempotency_table_name: str = Field(default="", description="IDEMPOTENCY_TABLE_NAME: alert dedup records.")
    config_parameter_name: str = Field(default="", description="CONFIG_PARAMETER_NAME: SSM detector overrides.")
    config_max_age_s: int = Field(default=300, ge=0, description="CONFIG_MAX_AGE_S: how long to cache them.")
    iot_data_endpoint: str = Field(default="", description="IOT_DATA_ENDPOINT: override for the IoT data plane.")
    endpoint_timeout_s: float = Field(default=3.0, gt=0, description="ENDPOINT_TIMEOUT_S: read timeout per call.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper())}
        return cls.model_validate(values)

    def require(self, *names: str) -> None:
        """Fail at cold start, naming the variable, rather than on the first reading."""
        missing = [name.upper() for name in names if not getattr(self, name)]
        if missing:
            raise RuntimeError(f"missing environment variable(s): {', '.join(missing)}")
