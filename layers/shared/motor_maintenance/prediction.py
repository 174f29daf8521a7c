"""What the failure-prediction model says about one reading: a probability, and the features that drove it up."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

FEATURE_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""A feature name as a driver carries it: FEATURE_NAMES, or a model's own (XGBoost's default is 'f12')."""
DRIVERS_MAX = 5
MODEL_VERSION_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
"""A model version as predictions and alarm events carry it: the artifact's `m-` and 12 hex digits of the
hash of its model bytes (docs/model.md, "Versions"); the pattern leaves room for other schemes."""
"""Drivers kept per prediction and carried by an alarm event; the endpoint sends up to 3."""


class Driver(BaseModel):
    """A feature that pushed the failure probability up, with its SHAP contribution (log-odds, > 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    feature: str = Field(pattern=FEATURE_NAME_PATTERN)
    contribution: float = Field(gt=0.0, description="XGBoost pred_contribs for this row and feature, in log-odds.")


def _distinct(drivers: tuple[Driver, ...]) -> tuple[Driver, ...]:
    features = [driver.feature for driver in drivers]
    if len(set(features)) != len(features):
        raise ValueError("a feature is named twice")
    return drivers


Drivers = Annotated[tuple[Driver, ...], Field(max_length=DRIVERS_MAX), AfterValidator(_distinct)]
"""The largest contributions first, each feature once, at most DRIVERS_MAX."""


class Prediction(BaseModel):
    """The model's answer for one feature row."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    probability: float = Field(ge=0.0, le=1.0, strict=True, description="Of a failure within the next 24 h.")
    drivers: Drivers = ()
    drivers_dropped: str | None = Field(
        default=None,
        description="Why the endpoint's drivers for this row were dropped (malformed); the probability is kept.",
    )
    model_version: str | None = Field(
        default=None,
        pattern=MODEL_VERSION_PATTERN,
        description="The version of the model that gave the probability; None if the model does not say.",
    )
