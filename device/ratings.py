"""Motor nameplates: the rating a simulated motor and its pump are built to, and the fleet's per-motor arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class MotorRating:
    """Nameplate of the motor and its pump (defaults: a 37 kW, 4-pole, 400 V pump set)."""

    motor_type: str = "pump-37kw"
    power_w: float = 37_000.0
    speed_rpm: float = 1480.0
    current_a: float = 68.0
    no_load_current_fraction: float = 0.35
    winding_rise_k: float = 80.0
    """Winding temperature rise over ambient at rated current (insulation class F, class B rise)."""
    bearing_rise_k: float = 25.0
    flow_m3h: float = 180.0
    pressure_bar: float = 6.0
    pump_efficiency: float = 0.78


RATINGS: dict[str, MotorRating] = {
    rating.motor_type: rating
    for rating in (
        # A 2-pole 15 kW set: twice the speed, a smaller pump, a cooler bearing.
        MotorRating(
            motor_type="pump-15kw",
            power_w=15_000.0,
            speed_rpm=2940.0,
            current_a=28.5,
            no_load_current_fraction=0.38,
            bearing_rise_k=22.0,
            flow_m3h=90.0,
            pressure_bar=4.5,
            pump_efficiency=0.74,
        ),
        MotorRating(),
        # A 4-pole 90 kW set: a bigger pump, more current, a warmer bearing.
        MotorRating(
            motor_type="pump-90kw",
            power_w=90_000.0,
            speed_rpm=1485.0,
            current_a=160.0,
            no_load_current_fraction=0.3,
            bearing_rise_k=30.0,
            flow_m3h=380.0,
            pressure_bar=7.0,
            pump_efficiency=0.81,
        ),
    )
}
"""Three common pump-set sizes of a plant: 15, 37 and 90 kW (IEC 60034 nameplates, 400 V, 50 Hz)."""


class FleetRatings:
    """Every nameplate field as an array with one value per motor, so a whole fleet steps at once."""

    def __init__(self, ratings: Sequence[MotorRating]) -> None:
        self.motor_types: tuple[str, ...] = tuple(rating.motor_type for rating in ratings)
        for spec in fields(MotorRating):
            if spec.name != "motor_type":
                setattr(self, spec.name, np.array([getattr(rating, spec.name) for rating in ratings]))

    power_w: NDArray[np.float64]
    speed_rpm: NDArray[np.float64]
    current_a: NDArray[np.float64]
    no_load_current_fraction: NDArray[np.float64]
    winding_rise_k: NDArray[np.float64]
    bearing_rise_k: NDArray[np.float64]
    flow_m3h: NDArray[np.float64]
    pressure_bar: NDArray[np.float64]
    pump_efficiency: NDArray[np.float64]
