"""Which feature rows the failure-prediction model is asked about: a row with nothing to judge wear by is not.

The model judges wear by the running averages of the signals that degrade (features.TRACKED) and by the
reading's own signals. A reading that carries no signal at all (a device sending only `running`), or a
motor none of whose wear signals has ever been measured (only `speed_rpm`, say), gives a row of missing
values the model never saw in training: XGBoost still answers, and for such rows it answers close to
1.0. Those rows are not sent to the model; the reading is applied without a probability, as a stopped
motor's is (docs/model.md, "Readings the model does not score").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from motor_maintenance.features import FEATURE_NAMES, TRACKED
from motor_maintenance.telemetry import SIGNALS

NO_SIGNAL = "the reading carries no signal"
NO_WEAR_SIGNAL = "no wear signal measured yet (temperatures, vibration, current, pressure or flow)"
"""Why a row is not scored; the reasons InferenceFunction logs and answers with."""

_SIGNAL_COLUMNS = tuple(FEATURE_NAMES.index(name) for name in SIGNALS)
_AVERAGE_COLUMNS = tuple(FEATURE_NAMES.index(f"{name}_ewm_1h") for name in TRACKED)


def not_scored(features: Sequence[float]) -> str | None:
    """Why the model is not asked about this feature row (in FEATURE_NAMES order), or None to ask it."""
    if all(math.isnan(features[column]) for column in _SIGNAL_COLUMNS):
        return NO_SIGNAL
    if all(math.isnan(features[column]) for column in _AVERAGE_COLUMNS):
        return NO_WEAR_SIGNAL
    return None
