"""Detector configuration overrides from SSM Parameter Store, cached by Powertools Parameters."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities import parameters
from pydantic import ValidationError

from motor_maintenance.config import DetectorConfig
from motor_maintenance.errors import ConfigUnavailable

RETRY_AFTER_FAILURE_S = 30.0


class ConfigSource:
    """Loads DetectorConfig.with_overrides(<JSON parameter>), refreshed every `max_age_s`.

    `provider` is a Powertools SSMProvider (it caches a good read for `max_age_s`). What happens
    when the parameter cannot be used:

    - the document is invalid (an operator's typo): the last good configuration stays in force,
      or the defaults if there never was one, and `last_error` says why. Alarms keep working;
      the handler logs and counts it.
    - SSM cannot be read (throttled, down) and a good configuration was loaded before: that one
      stays in force, and SSM is not asked again for `RETRY_AFTER_FAILURE_S`.
    - SSM cannot be read and nothing was ever loaded (a cold start): ConfigUnavailable. The
      invocation fails and Lambda retries it, rather than run rules the operator may have changed.
    """

    def __init__(
        self,
        parameter_name: str,
        provider: Any,
        max_age_s: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = parameter_name
        self._max_age = max_age_s
        self._provider = provider
        self._clock = clock
        self._last_good: DetectorConfig | None = None if parameter_name else DetectorConfig()
        self._quiet_until = 0.0
        self._document: Any = None
        self.last_error: str | None = None

    def get(self) -> DetectorConfig:
        if not self._name:
            return DetectorConfig()
        if self._last_good is not None and self._clock() < self._quiet_until:
            return self._last_good
        try:
            overrides = self._provider.get(self._name, transform="json", max_age=self._max_age)
        except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
            if isinstance(exc, parameters.exceptions.TransformParameterError):
                return self._invalid(exc)
            self.last_error = f"detector configuration {self._name} unreadable: {exc}"
            if self._last_good is None:
                raise ConfigUnavailable(self.last_error) from exc
            self._quiet_until = self._clock() + RETRY_AFTER_FAILURE_S
            return self._last_good
        if self._last_good is not None and self.last_error is None and overrides == self._document:
            return self._last_good  # the cached document again: validated already
        try:
            config = DetectorConfig.with_overrides(overrides)
        except (ValidationError, ValueError) as exc:
            return self._invalid(exc)
        self._last_good, self._document = config, overrides
        self.last_error = None
        return config

    def _invalid(self, exc: Exception) -> DetectorConfig:
        self.last_error = f"detector configuration {self._name} not applied: {exc}"
        if self._last_good is None:
            self._last_good = DetectorConfig()
        return self._last_good
