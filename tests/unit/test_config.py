"""Detector configuration: documented defaults, validated overrides."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from motor_maintenance.config import DEFAULT_CONDITIONS, ConditionRule, DetectorConfig

DEFAULT_FLUID = DEFAULT_CONDITIONS[0].model_dump()


def test_defaults_are_the_documented_ones() -> None:
    config = DetectorConfig()

    assert config.schedule.service_interval_h == 1000
    fluid = config.condition("fluid_overtemperature")
    assert fluid is not None
    assert (fluid.signal, fluid.raise_threshold, fluid.min_duration_s) == ("fluid_temp_c", 200, 300)
    vibration = config.condition("vibration_zone_d")
    assert vibration is not None
    assert (vibration.raise_threshold, vibration.min_duration_s) == (11.2, 60)
    assert (config.predictive.raise_threshold, config.predictive.consecutive) == (0.5, 2)
    assert config.offline.after_s == 600
    assert config.alarm_names() == ("schedule", "fluid_overtemperature", "vibration_zone_d", "predictive", "offline")


def test_overrides_merge_into_nested_rules() -> None:
    config = DetectorConfig.with_overrides({"schedule": {"service_interval_h": 500}, "latch": False})

    assert config.schedule.service_interval_h == 500
    assert config.schedule.advice == DetectorConfig().schedule.advice
    assert config.latch is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedule": {"service_interval_h": 0}}, "greater than 0"),
        ({"predictive": {"raise_threshold": 0.3, "clear_threshold": 0.6}}, "must not exceed raise_threshold"),
        (
            {"conditions": [{"name": "x", "signal": "fluid_temp", "raise_threshold": 1, "clear_threshold": 0}]},
            "unknown signal",
        ),
        (
            {
                "conditions": [
                    {"name": "schedule", "signal": "fluid_temp_c", "raise_threshold": 1, "clear_threshold": 0}
                ]
            },
            "reserved",
        ),
        ({"typo_field": 1}, "Extra inputs are not permitted"),
        # Both travel in every alarm event, which bounds them so that an alert always fits SNS.
        ({"conditions": [{**DEFAULT_FLUID, "description": "d" * 501}]}, "at most 500 characters"),
        ({"predictive": {"advice": "a" * 1001}}, "at most 1000 characters"),
    ],
)
def test_invalid_overrides_are_rejected_with_the_reason(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DetectorConfig.with_overrides(overrides)


def test_hysteresis_must_point_away_from_the_raise_threshold() -> None:
    with pytest.raises(ValidationError, match="clear_threshold must not exceed"):
        ConditionRule(name="hot", signal="winding_temp_c", raise_threshold=120, clear_threshold=130)
