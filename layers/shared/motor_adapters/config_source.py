"""Detector configuration overrides from SSM Parameter Store, cached by Powertools Parameters."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities import parameters
from pydantic import ValidationError

from motor_maintenance.config import DetectorConfig


class ConfigSource:
    """Loads DetectorConfig.with_overrides(<JSON parameter>), refreshed every `max_age_s`.

    `provider` is a Powertools SSMProvider (it caches per name for `max_age_s`). A parameter that
    is missing, unreadable or invalid must not stop alarms: the last good
    configuration (or the defaults) stays in force and `last_error` says what went wrong.
    """

    def __init__(self, parameter_name: str, provider: Any, max_age_s: int = 300) -> None:
        self._name = parameter_name
        self._max_age = max_age_s
        self._provider = provider
        self._last_good = DetectorConfig()
        self.last_error: str | None = None

    def get(self) -> DetectorConfig:
        if not self._name:
            return self._last_good
        try:
            overrides = self._provider.get(self._name, transform="json", max_age=self._max_age)
            self._last_good = DetectorConfig.with_overrides(overrides)
            self.last_error = None
        except (
            ValidationError,
            ValueError,
            parameters.exceptions.GetParameterError,
            parameters.exceptions.TransformParameterError,
        ) as exc:
            self.last_error = f"detector configuration {self._name} not applied: {exc}"
        return self._last_good
