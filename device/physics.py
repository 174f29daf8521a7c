"""Motor physics: a fleet of centrifugal-pump motors that run shifts, heat up, wear out and fail.

Every motor of the fleet is a column of the arrays below, so one `step` advances the whole fleet
with a handful of NumPy operations; that is what makes a simulated motor-year take a fraction of
a second. The same code drives the live simulator and the fast-forward history the model trains
on. The equations and their parameters are documented in docs/device.md.

What is hidden (the ground truth) and what is observed (the reading) are kept apart: each wear
mode has a health index `h` (0 = new, 1 = failed) that the signals reveal only through physics,
with noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from device.plant import Plant, PlantConfig
from device.ratings import FleetRatings, MotorRating
from motor_maintenance.telemetry import SIGNALS, Telemetry

F64 = NDArray[np.float64]
HOUR_S = 3600.0
DAY_S = 86_400.0
YEAR_S = 365.0 * DAY_S
SEASON_S = 365.2425 * DAY_S
"""The Gregorian year: the seasons keep their dates over decades of epoch time."""


class FailureMode(StrEnum):
    """How a motor fails. All but `random` build up hidden wear that the signals show in advance."""

    BEARING_WEAR = "bearing_wear"
    WINDING_INSULATION = "winding_insulation"
    COOLING_LOSS = "cooling_loss"
    IMPELLER_WEAR = "impeller_wear"
    RANDOM = "random"


WEAR_MODES: tuple[FailureMode, ...] = (
    FailureMode.BEARING_WEAR,
    FailureMode.WINDING_INSULATION,
    FailureMode.COOLING_LOSS,
    FailureMode.IMPELLER_WEAR,
)
"""Modes with hidden, growing degradation, in the row order of `Fleet.health`."""

FAULT_CODES: dict[FailureMode, str] = {
    FailureMode.BEARING_WEAR: "bearing_failure",
    FailureMode.WINDING_INSULATION: "winding_failure",
    FailureMode.COOLING_LOSS: "overheating",
    FailureMode.IMPELLER_WEAR: "impeller_failure",
    FailureMode.RANDOM: "random_failure",
}
"""What a failed motor reports in its reading's `fault` field."""

MODE_INDEX: dict[FailureMode, int] = {mode: index for index, mode in enumerate(FailureMode)}
NO_FAILURE = -1
WORN_OUT = 1.0 - 1e-9
"""Health at which a part counts as worn through when a repair checks it (rounding-tolerant)."""


@dataclass(frozen=True, slots=True)
class WearParameters:
    """How fast each mode wears and how sharply it ends. Lives are in stress-hours of running.

    Lives are compressed against real plant (a bearing's L10 life is tens of thousands of hours)
    so that a simulated fleet-year holds enough failures to learn from; `wear_scale` tunes it.
    """

    life_scale_h: dict[FailureMode, float] = field(
        default_factory=lambda: {
            FailureMode.BEARING_WEAR: 8000.0,
            FailureMode.WINDING_INSULATION: 6000.0,
            FailureMode.COOLING_LOSS: 11000.0,
            FailureMode.IMPELLER_WEAR: 10000.0,
        }
    )
    life_shape: float = 2.0
    """Weibull shape of the lives: above 1 means wear-out, failures get likelier with age."""
    final_phase_h: tuple[float, float] = (18.0, 40.0)
    """Range of the time constant of the last, accelerating phase of wear (stress-hours)."""


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What to simulate. Same config and seed, same history."""

    motors: int = 10
    seed: int = 1
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    motor_type: str = "pump-37kw"
    id_prefix: str = "motor-"
    motor_ids: tuple[str, ...] | None = None
    """Explicit names (e.g. IoT thing names); default id_prefix + 001, 002, ..."""
    wear_scale: float = 1.0
    """Multiplies every wear rate: 2.0 wears out twice as fast."""
    random_failures_per_year: float = 0.3
    """Failures without warning, per motor-year of running (8760 running hours)."""
    continuous_fraction: float = 0.4
    """Share of motors that run around the clock; the others run two shifts on weekdays."""
    repair_hours: tuple[float, float] = (8.0, 48.0)
    """A failed motor stays down for a time drawn uniformly from this range, then is repaired."""
    rating: MotorRating = field(default_factory=MotorRating)
    wear: WearParameters = field(default_factory=WearParameters)
    plant: PlantConfig | None = None
    """A real plant's sensors, ratings and maintenance (device/plant.py); None: the ideal simulator."""

    def ids(self) -> tuple[str, ...]:
        if self.motor_ids is not None:
            if len(self.motor_ids) != self.motors:
                raise ValueError(f"{len(self.motor_ids)} motor ids given for {self.motors} motors")
            return self.motor_ids
        width = max(3, len(str(self.motors)))
        return tuple(f"{self.id_prefix}{index:0{width}d}" for index in range(1, self.motors + 1))


@dataclass(frozen=True, slots=True)
class Truth:
    """What the motor knows and the reading does not say: hidden wear, and why it is down."""

    health: dict[str, float]
    failed_mode: FailureMode | None
    operating_s: float


@dataclass(frozen=True, slots=True)
class Sample:
    """One motor's reading after a step, and the ground truth behind it."""

    reading: Telemetry
    truth: Truth

    def payload(self) -> dict[str, Any]:
        """The reading as the device publishes it (JSON-ready, absent signals left out)."""
        return self.reading.model_dump(mode="json", exclude_none=True)


SIGNAL_COLUMNS: tuple[str, ...] = SIGNALS
"""The signals every reading carries, in the telemetry model's order."""
ROUNDING: dict[str, int] = {
    "speed_rpm": 1,
    "torque_nm": 2,
    "current_a": 2,
    "winding_temp_c": 2,
    "bearing_temp_c": 2,
    "fluid_temp_c": 2,
    "ambient_temp_c": 2,
    "vibration_mm_s": 3,
    "pressure_bar": 3,
    "flow_m3h": 2,
}
"""Decimals each signal is reported with: sensor resolution, and shorter messages."""

THERMAL_TAU_H: dict[str, tuple[float, float]] = {
    "winding": (0.4, 1.0),
    "bearing": (0.6, 1.5),
    "fluid": (0.5, 3.0),
}
"""Thermal time constants in hours, running and stopped (a stopped motor cools slower, without its fan)."""

N_NOISE = 16  # standard-normal draws per motor per step, drawn in one call


@dataclass(frozen=True, slots=True)
class _StepConstants:
    dt_h: float
    p_start: F64
    p_stop: F64
    decay: dict[str, tuple[float, float]]
    """exp(-step / time constant) per part, running and stopped."""


class _Drive(NamedTuple):
    """The mechanical and electrical operating point of every motor in one step."""

    speed_frac: F64
    flow_m3h: F64
    pressure_bar: F64
    shaft_w: F64
    load: F64
    current_a: F64

    def stopped_where(self, stopped: NDArray[np.bool_]) -> _Drive:
        """The same operating point with the motors in `stopped` at rest."""
        return _Drive(*(np.where(stopped, 0.0, column) for column in self))


class Fleet:
    """A fleet of motors advanced together in simulated time."""

    def __init__(self, config: FleetConfig | None = None) -> None:
        self.config = config = config or FleetConfig()
        if config.motors < 1:
            raise ValueError("a fleet needs at least one motor")
        if config.wear_scale <= 0 or config.random_failures_per_year < 0:
            raise ValueError("wear_scale must be positive and random_failures_per_year not negative")
        self.motor_ids: tuple[str, ...] = config.ids()
        self._index = {motor_id: index for index, motor_id in enumerate(self.motor_ids)}
        n = config.motors
        # One stream for what every step draws (a fixed amount), and one per motor for the lives of
        # its new parts (drawn when a part is renewed): servicing one motor leaves the others'
        # histories exactly as they were, so strategies can be compared on the same fleet.
        # The plant has a stream of its own: without a plant, every other draw is as before.
        streams = np.random.SeedSequence(config.seed).spawn(n + 2)
        self.rng = np.random.Generator(np.random.PCG64(streams[0]))
        self._part_rngs = [np.random.Generator(np.random.PCG64(stream)) for stream in streams[1 : n + 1]]
        rng = self.rng
        self.plant = (
            None if config.plant is None else Plant(config.plant, n, np.random.Generator(np.random.PCG64(streams[-1])))
        )
        nameplates = [config.rating] * n if self.plant is None else self.plant.ratings(n)
        self.rating = FleetRatings(nameplates)
        self.motor_types = (config.motor_type,) * n if self.plant is None else self.rating.motor_types
        self.time_ms = config.start_ms
        self.seq = np.zeros(n, dtype=np.int64)

        # Who each motor is: duty profile, process, installation. Fixed for its life.
        self.continuous = rng.random(n) < config.continuous_fraction
        self.mean_demand = rng.uniform(0.55, 0.9, n)
        self.ambient_offset_c = rng.normal(0.0, 2.0, n)
        self.process_temp_c = rng.uniform(35.0, 75.0, n)
        self.base_vibration = rng.uniform(1.0, 2.0, n)

        # Operating state.
        self.running = np.zeros(n, dtype=bool)
        self.demand = self.mean_demand.copy()
        self.speed_trim = np.zeros(n)
        self.ambient_noise_c = np.zeros(n)
        ambient = self._ambient_c(self.time_ms)
        self.winding_c = ambient.copy()
        self.bearing_c = ambient.copy()
        self.fluid_c = ambient + 0.5 * (self.process_temp_c - ambient)
        self.operating_s = np.zeros(n)

        # Hidden wear: health index per wear mode (rows) and motor (columns), h' = stress (a + h / tau).
        modes = len(WEAR_MODES)
        self.health = np.zeros((modes, n))
        self.onset = np.zeros((modes, n))
        self.final_phase_h = np.zeros((modes, n))
        self.wear_rate = np.full((modes, n), config.wear_scale)
        self.injected = np.zeros((modes, n), dtype=bool)
        for row in range(modes):
            self._new_component(row, np.arange(n))

        # Failures: the mode a motor is down with (NO_FAILURE when not down), and until when;
        # operating seconds at which an injected random failure strikes (inf: none injected).
        self.failed = np.full(n, NO_FAILURE, dtype=np.int64)
        self.down_until_ms = np.zeros(n, dtype=np.int64)
        self.random_due_s = np.full(n, math.inf)
        self.failure_count = np.zeros(n, dtype=np.int64)
        """Failures so far per motor: tells a new failure from the one a motor is down with."""
        self.service_count = np.zeros(n, dtype=np.int64)
        """Services so far per motor (`service`, or the plant acting on an alarm)."""
        self.signals: dict[str, F64] = {}
        self._constants: _StepConstants | None = None
        """The latest readings' signals, by name: one value per motor."""

    # -- control ---------------------------------------------------------------------------------

    def index(self, motor_id: str) -> int:
        try:
            return self._index[motor_id]
        except KeyError:
            raise KeyError(
                f"no motor {motor_id!r} in this fleet (motors: {', '.join(self.motor_ids[:5])}...)"
            ) from None

    def inject(self, motor_id: str, mode: FailureMode | str, after_s: float) -> None:
        """Make `motor_id` fail by `mode` after `after_s` seconds of running (stopped time does not count).

        A wear mode starts its degradation afresh, timed to end then (how early its signals show
        depends on the mode's final phase, as for natural wear); `random` fails with no warning.
        """
        mode = FailureMode(mode)
        if not math.isfinite(after_s) or after_s < 0:
            raise ValueError(f"after_s must be a finite, non-negative number of seconds, not {after_s!r}")
        column = self.index(motor_id)
        if mode is FailureMode.RANDOM:
            self.random_due_s[column] = self.operating_s[column] + after_s
            return
        row = WEAR_MODES.index(mode)
        tau = self.final_phase_h[row, column]
        life_h = max(after_s / HOUR_S, 1e-3)
        self.health[row, column] = 0.0
        self.onset[row, column] = _onset_rate(life_h, tau)
        # Timed in running hours, whatever the fleet's wear_scale and the motor's load.
        self.wear_rate[row, column] = 1.0
        self.injected[row, column] = True

    def service(self, motor_id: str) -> None:
        """A `service_complete`: every worn part renewed, a failed motor repaired and free to run."""
        self._service(self.index(motor_id))

    def _service(self, column: int) -> None:
        for row in range(len(WEAR_MODES)):
            self._new_component(row, np.array([column]))
        self.failed[column] = NO_FAILURE
        self.down_until_ms[column] = 0
        self.random_due_s[column] = math.inf
        self.service_count[column] += 1
        if self.plant is not None:
            self.plant.serviced(column)

    # -- simulation ------------------------------------------------------------------------------

    def advance(self, dt_s: float) -> None:
        """Advance every motor by `dt_s` simulated seconds (state only; see `step` for readings)."""
        if not dt_s > 0 or not math.isfinite(dt_s):
            raise ValueError(f"dt_s must be a positive number of seconds, not {dt_s!r}")
        noise = self.rng.standard_normal((N_NOISE, self.config.motors))
        uniform = self.rng.random((3, self.config.motors))
        self.time_ms += round(dt_s * 1000)
        dt_h = dt_s / HOUR_S

        self._repair()
        self._duty(dt_h, uniform[0])
        # Process demand (valve position), speed trim and weather: Ornstein-Uhlenbeck processes.
        shift_phase = 2 * math.pi * ((self.time_ms / 1000) % DAY_S) / DAY_S
        target = self.mean_demand + 0.08 * math.sin(shift_phase - math.pi / 2)
        self.demand = np.clip(_ou(self.demand, target, tau_h=2.0, sigma=0.05, dt_h=dt_h, noise=noise[0]), 0.35, 1.0)
        self.speed_trim = _ou(self.speed_trim, 0.0, tau_h=1.0, sigma=0.015, dt_h=dt_h, noise=noise[1])
        self.ambient_noise_c = _ou(self.ambient_noise_c, 0.0, tau_h=6.0, sigma=1.0, dt_h=dt_h, noise=noise[2])
        ambient = self._ambient_c(self.time_ms)

        drive = self._drive()
        self._heat(drive, ambient, dt_h)
        self._wear(drive, dt_s)
        if self._fail(uniform[1], uniform[2], dt_s):
            drive = drive.stopped_where(~self.running)
        self._observe(drive, ambient, noise)
        if self.plant is not None:
            self.signals = self.plant.sense(self.signals, dt_s)
            for column in self.plant.services_due(self.signals, self.running, self.time_ms):
                self._service(column)
        self.seq += 1

    def _repair(self) -> None:
        """Repairs that are due: the failed part is renewed and the motor may run again."""
        repaired = (self.failed != NO_FAILURE) & (self.time_ms >= self.down_until_ms)
        if not repaired.any():
            return
        for column in np.flatnonzero(repaired):
            mode = list(FailureMode)[self.failed[column]]
            row = WEAR_MODES.index(mode) if mode is not FailureMode.RANDOM else None
            # A part injected or serviced while the motor was down is new already: keep it.
            if row is not None and self.health[row, column] >= WORN_OUT:
                self._new_component(row, np.array([column]))
        self.failed[repaired] = NO_FAILURE

    def _step_constants(self, dt_h: float) -> _StepConstants:
        """What depends only on the step length: computed once for a run of equal steps."""
        cached = self._constants
        if cached is None or cached.dt_h != dt_h:
            mean_run_h = np.where(self.continuous, 72.0, 5.0)
            mean_stop_h = np.where(self.continuous, 1.0, 0.5)
            cached = self._constants = _StepConstants(
                dt_h=dt_h,
                p_start=-np.expm1(-dt_h / mean_stop_h),
                p_stop=-np.expm1(-dt_h / mean_run_h),
                decay={
                    part: (math.exp(-dt_h / running_h), math.exp(-dt_h / stopped_h))
                    for part, (running_h, stopped_h) in THERMAL_TAU_H.items()
                },
            )
        return cached

    def _duty(self, dt_h: float, draw: F64) -> None:
        """Running or stopped: a two-state Markov process, within the plant's schedule."""
        constants = self._step_constants(dt_h)
        starting = ~self.running & (draw < constants.p_start)
        stopping = self.running & (draw < constants.p_stop)
        down = self.failed != NO_FAILURE
        self.running = (self.running | starting) & ~stopping & self._scheduled(self.time_ms) & ~down

    def _drive(self) -> _Drive:
        """Pump affinity laws and the motor's electrical side, with the effects of wear."""
        rating = self.rating
        h_bearing, h_winding, _, h_impeller = self.health
        run = self.running
        speed_frac = np.where(run, np.clip(0.72 + 0.28 * self.demand + self.speed_trim, 0.6, 1.0), 0.0)
        flow = rating.flow_m3h * speed_frac * self.demand * (1.0 - 0.35 * h_impeller)
        # Head falls as flow rises (the pump curve); a worn impeller makes less of both.
        pressure = rating.pressure_bar * speed_frac**2 * (1.15 - 0.25 * self.demand**2) * (1.0 - 0.30 * h_impeller)
        efficiency = rating.pump_efficiency * (1.0 - 0.25 * h_impeller)
        hydraulic_w = pressure * 1e5 * flow / 3600.0
        # Friction: 600 W of fans and seals, more as a bearing wears.
        shaft_w = np.where(run, hydraulic_w / efficiency + 1500.0 * h_bearing + 600.0, 0.0)
        load = shaft_w / rating.power_w
        no_load = rating.no_load_current_fraction * rating.current_a
        active = np.sqrt(rating.current_a**2 - no_load**2)
        # Ageing insulation leaks: more current for the same work.
        current = np.where(run, np.sqrt(no_load**2 + (load * active) ** 2) * (1.0 + 0.08 * h_winding), 0.0)
        return _Drive(speed_frac, flow, pressure, shaft_w, load, current)

    def _heat(self, drive: _Drive, ambient: F64, dt_h: float) -> None:
        """Temperatures: first-order lags toward steady states (exact for a step of any length)."""
        rating = self.rating
        h_bearing, h_winding, h_cooling, _ = self.health
        run = self.running
        cooling = 1.0 + 0.6 * h_cooling
        copper = rating.winding_rise_k * (drive.current_a / rating.current_a) ** 2 * cooling
        winding_ss = np.where(run, ambient + copper + 30.0 * h_winding, ambient)
        friction = rating.bearing_rise_k * drive.speed_frac * (0.6 + 0.4 * drive.load)
        bearing_ss = np.where(run, ambient + friction + 40.0 * h_bearing**1.5, ambient)
        fluid_ss = np.where(run, self.process_temp_c + 6.0 * drive.load + 200.0 * h_cooling**1.5, ambient)
        decay = self._step_constants(dt_h).decay
        self.winding_c = _lag(self.winding_c, winding_ss, np.where(run, *decay["winding"]))
        self.bearing_c = _lag(self.bearing_c, bearing_ss, np.where(run, *decay["bearing"]))
        self.fluid_c = _lag(self.fluid_c, fluid_ss, np.where(run, *decay["fluid"]))

    def _wear(self, drive: _Drive, dt_s: float) -> None:
        """Wear grows only while running, faster under stress: h' = stress (a + h / tau), solved exactly."""
        run = self.running
        if not run.any():
            return
        h_winding = self.health[1]
        ran_h = np.where(run, dt_s / HOUR_S, 0.0) * self.wear_rate
        stress = np.empty_like(self.health)
        stress[0] = drive.speed_frac * (0.5 + 0.5 * drive.load) * (1.0 + 0.02 * np.maximum(self.bearing_c - 70.0, 0.0))
        # Insulation life halves for every 10 K hotter (Montsinger's rule), 75 degC nominal; the hot
        # spot the damage itself causes is left out, or the end would run away too fast to warn of.
        stress[1] = np.exp2((self.winding_c - 30.0 * h_winding - 75.0) / 10.0)
        stress[2] = 1.0
        stress[3] = drive.speed_frac**2 * (0.5 + self.demand)
        stress = np.where(self.injected, 1.0, stress)
        growth = np.exp(np.minimum(stress * ran_h / self.final_phase_h, 50.0))
        offset = self.onset * self.final_phase_h
        # Stopped motors keep their health bit for bit: (h + offset) - offset can round a worn-out
        # part's 1.0 down, and a repair would then not see that the part needs renewing.
        self.health = np.where(run, (self.health + offset) * growth - offset, self.health)
        self.operating_s += np.where(run, dt_s, 0.0)

    def _fail(self, draw: F64, repair_draw: F64, dt_s: float) -> bool:
        """Failures, worn through or at random: the motor stops and is down for its repair time."""
        run = self.running
        worn = self.health >= 1.0
        rate_per_s = self.config.random_failures_per_year / YEAR_S
        random_hit = (draw < -np.expm1(-rate_per_s * dt_s)) | (self.operating_s >= self.random_due_s)
        failing = run & (worn.any(axis=0) | random_hit)
        if not failing.any():
            return False
        lo, hi = self.config.repair_hours
        for column in np.flatnonzero(failing):
            if worn[:, column].any():
                mode = WEAR_MODES[int(np.argmax(self.health[:, column]))]
                self.health[:, column] = np.minimum(self.health[:, column], 1.0)
            else:
                mode = FailureMode.RANDOM
                self.random_due_s[column] = math.inf
            self.failed[column] = MODE_INDEX[mode]
            self.failure_count[column] += 1
            repair_ms = round((lo + (hi - lo) * repair_draw[column]) * HOUR_S * 1000)
            self.down_until_ms[column] = self.time_ms + repair_ms
        self.running &= ~failing
        return True

    def _observe(self, drive: _Drive, ambient: F64, noise: F64) -> None:
        """What the sensors report: physics plus noise; cavitation makes the hydraulics noisy."""
        if self.plant is not None:
            noise = noise * self.plant.config.noise_scale
        rating = self.rating
        h_bearing, _, _, h_impeller = self.health
        run = self.running
        omega = rating.speed_rpm * drive.speed_frac * 2 * math.pi / 60
        cavitation = 1.0 + 6.0 * h_impeller**2
        vibration = np.where(
            run,
            self.base_vibration * (0.6 + 0.4 * drive.speed_frac**2) + 12.0 * h_bearing**2 + 2.5 * h_impeller**2,
            0.05,
        ) * np.exp(0.06 * noise[5])
        pressure = np.where(run, drive.pressure_bar * (1.0 + 0.01 * cavitation * noise[11]), 0.0)
        flow = np.where(run, np.maximum(drive.flow_m3h * (1.0 + 0.01 * cavitation * noise[13]), 0.0), 0.0)
        self.signals = {
            "speed_rpm": np.where(run, np.maximum(rating.speed_rpm * drive.speed_frac + 1.5 * noise[3], 0.0), 0.0),
            "torque_nm": np.where(run, drive.shaft_w / np.maximum(omega, 1.0) * (1.0 + 0.01 * noise[4]), 0.0),
            "current_a": np.maximum(drive.current_a * (1.0 + 0.005 * noise[6]), 0.0),
            "winding_temp_c": self.winding_c + 0.3 * noise[7],
            "bearing_temp_c": self.bearing_c + 0.3 * noise[8],
            "fluid_temp_c": self.fluid_c + 0.3 * noise[9],
            "ambient_temp_c": ambient + 0.2 * noise[10],
            "vibration_mm_s": vibration,
            "pressure_bar": pressure + 0.01 * noise[12],
            "flow_m3h": flow,
        }

    def step(self, dt_s: float) -> list[Sample]:
        """Advance every motor by `dt_s` simulated seconds and return each one's reading."""
        self.advance(dt_s)
        return [self.sample(column) for column in range(self.config.motors)]

    def sample(self, column: int) -> Sample:
        """The latest reading of the motor in `column`, validated against the telemetry model."""
        failed = int(self.failed[column])
        mode = list(FailureMode)[failed] if failed != NO_FAILURE else None
        reading = make_reading(
            motor_id=self.motor_ids[column],
            motor_type=self.motor_types[column],
            ts_ms=self.time_ms,
            seq=int(self.seq[column]),
            running=bool(self.running[column]),
            failed_mode=mode,
            signals={name: float(self.signals[name][column]) for name in SIGNAL_COLUMNS},
        )
        truth = Truth(
            health={mode.value: float(self.health[row, column]) for row, mode in enumerate(WEAR_MODES)},
            failed_mode=mode,
            operating_s=float(self.operating_s[column]),
        )
        return Sample(reading=reading, truth=truth)

    # -- internals -------------------------------------------------------------------------------

    def _new_component(self, row: int, columns: NDArray[np.int64]) -> None:
        """A new part for wear mode `row` on `columns`: health 0, a fresh life drawn from Weibull."""
        wear = self.config.wear
        mode = WEAR_MODES[row]
        lo, hi = wear.final_phase_h
        draws = [
            (self._part_rngs[column].uniform(lo, hi), self._part_rngs[column].weibull(wear.life_shape))
            for column in columns
        ]
        tau = np.array([draw[0] for draw in draws])
        life_h = wear.life_scale_h[mode] * np.array([draw[1] for draw in draws])
        # At least two final phases long, so that every wear failure gives some warning.
        life_h = np.maximum(life_h, 2.0 * tau)
        self.final_phase_h[row, columns] = tau
        self.wear_rate[row, columns] = self.config.wear_scale
        self.injected[row, columns] = False
        self.health[row, columns] = 0.0
        self.onset[row, columns] = _onset_rate(life_h, tau)

    def _ambient_c(self, now_ms: int) -> F64:
        """Plant air: a season (coldest mid-January), a day (warmest mid-afternoon), and weather."""
        t = now_ms / 1000
        season = -math.cos(2 * math.pi * ((t % SEASON_S) - 15 * DAY_S) / SEASON_S)
        day = -math.cos(2 * math.pi * ((t % DAY_S) - 3 * HOUR_S) / DAY_S)
        return 18.0 + 8.0 * season + 3.5 * day + self.ambient_offset_c + self.ambient_noise_c

    def _scheduled(self, now_ms: int) -> NDArray[np.bool_]:
        """Whether each motor's plant schedule has it on duty: always, or 06:00-22:00 on weekdays."""
        t = now_ms / 1000
        weekday = int((t // DAY_S + 3) % 7)  # 1970-01-01 was a Thursday: 0 is Monday
        hour = (t % DAY_S) / HOUR_S
        on_shift = weekday < 5 and 6.0 <= hour < 22.0
        return self.continuous | on_shift


def make_reading(
    *,
    motor_id: str,
    motor_type: str,
    ts_ms: int,
    seq: int,
    running: bool,
    failed_mode: FailureMode | None,
    signals: dict[str, float],
) -> Telemetry:
    """A reading as the device reports it: signals at sensor resolution, validated."""
    # A missing value (NaN: the sensor dropped out) is left out of the reading.
    values = {name: round(signals[name], ROUNDING[name]) for name in SIGNAL_COLUMNS if not math.isnan(signals[name])}
    if "pressure_bar" in values:
        values["pressure_bar"] = max(values["pressure_bar"], -1.0)  # a gauge reads no lower than vacuum
    return Telemetry(
        motor_id=motor_id,
        motor_type=motor_type,
        ts=datetime.fromtimestamp(ts_ms / 1000, tz=UTC),
        seq=seq,
        running=running,
        fault=FAULT_CODES[failed_mode] if failed_mode is not None else None,
        **values,
    )


def _onset_rate(life_h: F64 | float, tau_h: F64 | float) -> Any:
    """The slow onset `a` of h' = a + h / tau that brings h from 0 to 1 in `life_h` stress-hours."""
    ratio = np.minimum(np.asarray(life_h) / np.asarray(tau_h), 700.0)
    return 1.0 / (np.asarray(tau_h) * np.expm1(ratio))


def _ou(x: F64, mean: F64 | float, *, tau_h: float, sigma: float, dt_h: float, noise: F64) -> F64:
    """Exact Ornstein-Uhlenbeck step: mean-reverting with time constant tau_h and stationary std sigma."""
    decay = math.exp(-dt_h / tau_h)
    return mean + (x - mean) * decay + sigma * math.sqrt(1.0 - decay * decay) * noise


def _lag(value: F64, target: F64, decay: F64) -> F64:
    """First-order thermal lag toward `target`; `decay` is exp(-step / time constant)."""
    return target + (value - target) * decay
