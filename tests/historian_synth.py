"""A plant historian's export in a layout this project did not write: the importer's and the trainer's test fleet.

    python tests/historian_synth.py OUT_DIR [--motors 48] [--days 365] [--seed 0]

writes a year of a pump station's history as a historian would export it, and the mapping that imports
it (`python model/import_history.py OUT_DIR/mapping.yaml --out ARCHIVE`):

- `telemetry/YYYY-MM.csv`: one file per local month, rows by time then asset, every 15 minutes, US
  units (degF, in/s, psi, US gallons per minute), local time with its UTC offset (America/Chicago,
  daylight saving included), a text run status (RUN/STOP), blank cells, rows missing where the
  historian lost the link, and now and then a sensor's bad-quality sentinel (-999.9).
- `failures.csv`: the maintenance system's failure log (work order, asset, ISO time with offset, a
  free-text description); `services.csv`: repairs and planned services, completed at a local time
  without offset ("04/13/2025 08:15 AM").
- `ground_truth.csv`: what no historian knows, for evaluations only (the mapping does not read it):
  per failure its mode and how many hours before it its signature stood out from the pump's normal
  variation (WARNING_SIGMAS standard deviations; 0: no warning), in calendar and running hours.

The model behind the numbers is documented in docs/import.md ("The test fleet").
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from device.columnar import Table, connect, literal, register

SITE_TZ = ZoneInfo("America/Chicago")
STEP_S = 900
"""The historian's interval: 15 minutes."""
MOTOR_TYPE = "pump-37kw"
"""50 hp (37 kW) pump sets: the project's own motor type, so the mapping names it as a constant."""
SENTINEL = -999.9
"""What this historian writes for a bad-quality value (the importer refuses such rows: out of range)."""
HOURS_PER_STEP = STEP_S / 3600

TELEMETRY_COLUMNS = (
    "Asset",
    "Timestamp",
    "Run_Status",
    "Speed_rpm",
    "Motor_Current_A",
    "Temp_Bearing_degF",
    "Temp_Winding_degF",
    "Temp_Ambient_degF",
    "Vib_RMS_in_s",
    "Discharge_P_psi",
    "Flow_gpm",
)
MAPPING = """\
# A historian export (tests/historian_synth.py): US units, local time with offset, 15-minute interval.
telemetry:
  files: ["telemetry/*.csv"]
  motor_id: Asset
  timestamp: Timestamp
  running: {column: Run_Status, true_values: [RUN]}
  motor_type: pump-37kw
  signals:
    speed_rpm: Speed_rpm
    current_a: {column: Motor_Current_A, unit: A}
    bearing_temp_c: {column: Temp_Bearing_degF, unit: degF}
    winding_temp_c: {column: Temp_Winding_degF, unit: degF}
    ambient_temp_c: {column: Temp_Ambient_degF, unit: degF}
    vibration_mm_s: {column: Vib_RMS_in_s, unit: in/s}
    pressure_bar: {column: Discharge_P_psi, unit: psi}
    flow_m3h: {column: Flow_gpm, unit: gallon/minute}
failures:
  files: [failures.csv]
  motor_id: Asset
  timestamp: Failure_Time
  mode: Failure_Description
services:
  files: [services.csv]
  motor_id: Asset
  timestamp: {column: Completed, format: "%m/%d/%Y %I:%M %p", timezone: America/Chicago}
"""

# Failure modes: (description in the log, share of failures, effect on the signals at full severity).
MODES: dict[str, tuple[str, float]] = {
    "bearing": ("Bearing failure - drive end", 0.32),
    "winding": ("Motor winding insulation fault", 0.16),
    "hydraulic": ("Impeller / wear ring damage", 0.18),
    "cooling": ("Motor overheating - cooling fan blocked", 0.12),
    "sudden": ("Coupling sheared - no prior indication", 0.22),
}
FAILURES_PER_MOTOR_YEAR = 1.75
SIGNATURE_H = (12.0, 120.0)
"""How long before its failure a fault starts developing, in operating hours, drawn log-uniformly."""
WARNING_SIGMAS = 3.0
"""A signature gives warning once it is this many standard deviations of the signal's normal variation."""
EFFECTS = ("vib", "bearing", "winding", "current", "flow", "pressure")
SIGNATURE_SIGNALS: dict[str, tuple[str, ...]] = {
    "bearing": ("vibration", "bearing"),
    "winding": ("winding", "current"),
    "hydraulic": ("flow", "pressure", "vibration", "current"),
    "cooling": ("winding", "bearing"),
}
"""The signals each mode's wear moves (the ones its warning is measured on)."""
REPAIR_H = (6.0, 72.0)
SERVICE_INTERVAL_DAYS = (75.0, 105.0)
SERVICE_H = (3.0, 8.0)
UPSETS_PER_MONTH = 1.0
"""Process upsets (cavitation, a throttled valve): short signatures that precede no failure."""
BLANK_CELL = 0.006
SENSOR_OUTAGES_PER_YEAR = 1.5
LINK_GAPS_PER_YEAR = 4.0
SENTINEL_SHARE = 0.0002


@dataclass
class Motor:
    """One pump set's timeline: its readings' inputs and its maintenance records."""

    asset: str
    two_shift: bool
    running: NDArray[np.bool_]
    down: NDArray[np.bool_]
    failures: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)


def generate(out_dir: Path, *, motors: int = 48, days: int = 365, seed: int = 0) -> Path:
    """Write the export of `motors` pumps over `days` days under `out_dir`; return its mapping.yaml."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 1, tzinfo=SITE_TZ)
    steps = days * 24 * 3600 // STEP_S
    epoch_s = int(start.timestamp()) + STEP_S * np.arange(steps, dtype=np.int64)
    local = [datetime.fromtimestamp(int(t), SITE_TZ) for t in epoch_s]
    local_hour = np.array([moment.hour + moment.minute / 60 for moment in local])
    weekday = np.array([moment.weekday() for moment in local])
    fleet = [_timeline(index, rng, local_hour, weekday) for index in range(motors)]
    signals = _signals(fleet, rng, epoch_s, local_hour)
    _write_telemetry(out_dir, fleet, signals, rng, local)
    _write_logs(out_dir, fleet, epoch_s)
    mapping = out_dir / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return mapping


def _asset(index: int) -> str:
    return f"P-{101 + index // 2}{'AB'[index % 2]}"


def _episodes(rng: np.random.Generator, steps: int, per_year: float, hours: tuple[float, float]) -> list[slice]:
    """Random spans: Poisson starts, log-uniform durations."""
    count = rng.poisson(per_year * steps * HOURS_PER_STEP / 8760)
    spans = []
    for begin in rng.integers(0, steps, size=count).tolist():
        length = int(math.exp(rng.uniform(math.log(hours[0]), math.log(hours[1]))) / HOURS_PER_STEP) + 1
        spans.append(slice(begin, min(steps, begin + length)))
    return spans


def _timeline(index: int, rng: np.random.Generator, local_hour: NDArray[Any], weekday: NDArray[Any]) -> Motor:
    """When the pump runs, fails, is repaired and serviced (the failures' signatures are laid on later)."""
    steps = len(local_hour)
    two_shift = bool(rng.random() < 0.4)
    scheduled = (weekday < 5) & (local_hour >= 6) & (local_hour < 22) if two_shift else np.ones(steps, dtype=bool)
    for span in _episodes(rng, steps, 36.0 if not two_shift else 6.0, (1.0, 24.0)):
        scheduled[span] = False  # process stops: no demand, tank full, line shut
    motor = Motor(_asset(index), two_shift, scheduled.copy(), np.zeros(steps, dtype=bool))
    rate = rng.gamma(4.0, FAILURES_PER_MOTOR_YEAR / 4.0)
    t = int(rng.exponential(8760 / rate) / HOURS_PER_STEP)
    next_service = int(rng.uniform(*SERVICE_INTERVAL_DAYS) * 96)
    available = 0  # the first step the current signature may start from (after the last repair)
    while True:
        if next_service < min(t, steps):  # planned service first: the pump is stopped for hours
            length = int(rng.uniform(*SERVICE_H) / HOURS_PER_STEP) + 1
            end = min(steps, next_service + length)
            motor.running[next_service:end] = False
            if end < steps:
                motor.services.append({"step": end, "kind": "Planned PM", "shift": False})
            available = max(available, end)
            next_service += int(rng.uniform(*SERVICE_INTERVAL_DAYS) * 96)
            t = max(t, end + 96)
            continue
        if t >= steps:
            break
        while t < steps and not motor.running[t]:
            t += 1  # a stopped pump does not fail: the failure comes when it runs again
        if t >= steps - 4:
            break
        mode = str(rng.choice(list(MODES), p=[share for _, share in MODES.values()]))
        warning_op_h = 0.0 if mode == "sudden" else math.exp(rng.uniform(*np.log(SIGNATURE_H)))
        onset = t
        if warning_op_h:  # in operating time: a pump wears while it runs
            operating_h = np.cumsum(motor.running[: t + 1]) * HOURS_PER_STEP
            onset = int(np.searchsorted(operating_h, operating_h[t] - warning_op_h))
            onset = max(onset, available)
        # It fails minutes after its reading at t (the last one that runs) and is down until repaired.
        repair = int(rng.uniform(*REPAIR_H) / HOURS_PER_STEP) + 1
        end = min(steps, t + 1 + repair)
        motor.running[t + 1 : end] = False
        motor.down[t + 1 : end] = True
        motor.failures.append(
            {
                "step": t + 1,
                "onset": onset,
                "mode": mode,
                "severity": float(rng.uniform(0.7, 1.3)),
                "linear": float(rng.uniform(0.25, 0.75)),
                "trip_min": int(rng.integers(1, 15)),
            }
        )
        if end < steps:
            motor.services.append({"step": end, "kind": "Corrective repair", "shift": True})
        available = end
        next_service = max(next_service, end + 14 * 96)  # a repaired pump is not serviced again soon
        t = end + int(rng.exponential(8760 / rate) / HOURS_PER_STEP) + 96
    return motor


def _signals(
    fleet: list[Motor], rng: np.random.Generator, epoch_s: NDArray[np.int64], local_hour: NDArray[Any]
) -> dict[str, NDArray[np.float64]]:
    """The physical signals, SI units, shape (steps, motors); notes on each failure when its signature shows."""
    steps, motors = len(epoch_s), len(fleet)
    running = np.stack([motor.running for motor in fleet], axis=1)
    day_of_year = (epoch_s - epoch_s[0]) / 86400.0
    ambient = 22 + 7 * np.sin(2 * np.pi * (day_of_year - 110) / 365) + 3 * np.sin(2 * np.pi * (local_hour - 9) / 24)
    ambient = ambient[:, None] + rng.normal(0, 0.8, (1, motors)) + _walk(rng, steps, motors, 0.03, 0.995)
    # Process demand: a slow random load between 55 and 100 % of rating, lower at night.
    load = 0.8 + 0.08 * np.sin(2 * np.pi * (local_hour - 14) / 24)[:, None] + _walk(rng, steps, motors, 0.02, 0.99)
    load = np.clip(load, 0.55, 1.0)
    flow_nominal = rng.uniform(110, 180, motors)  # m3/h (480..800 gpm)
    head_bar = rng.uniform(3.8, 5.9, motors)  # 55..85 psi
    current_full = rng.uniform(56, 64, motors)  # A at 460 V
    vib_base = rng.uniform(1.2, 2.8, motors)  # mm/s
    bearing_offset = np.zeros((steps, motors))
    vib_gain = np.ones((steps, motors))
    # Wear and upsets as multipliers/increments per signal, built motor by motor, kept apart so that the
    # signals can be composed with and without the wear: the difference is each failure's signature.
    wear = {name: np.zeros((steps, motors)) for name in EFFECTS}
    upsets = {name: np.zeros((steps, motors)) for name in EFFECTS}
    for column, motor in enumerate(fleet):
        operating_h = np.cumsum(motor.running) * HOURS_PER_STEP
        for failure in motor.failures:
            if failure["mode"] == "sudden" or failure["onset"] >= failure["step"]:
                continue
            span = slice(failure["onset"], failure["step"])
            done = operating_h[span] - operating_h[failure["onset"]]
            total = max(operating_h[failure["step"] - 1] - operating_h[failure["onset"]], HOURS_PER_STEP)
            progress = np.clip(done / total, 0, 1)
            # Wear that develops steadily: linear to quadratic in operating time, not all in the last hours.
            severity = failure["severity"] * (failure["linear"] * progress + (1 - failure["linear"]) * progress**2)
            _wear(wear, span, column, failure["mode"], severity)
        for upset in _episodes(rng, steps, UPSETS_PER_MONTH * 12, (1.0, 6.0)):
            strength = rng.uniform(0.3, 1.0)
            upsets["vib"][upset, column] += strength
            upsets["pressure"][upset, column] -= 0.08 * strength
            upsets["flow"][upset, column] += 0.06 * strength
        # Sensor drift (a slow walk of the bearing probe, a vibration transmitter's gain) and shifts
        # after each repair (a new bearing runs smoother or rougher than the old one did when new).
        bearing_offset[:, column] = np.cumsum(rng.normal(0, 2.0 / math.sqrt(steps), steps))
        vib_gain[:, column] = 1 + np.linspace(0, rng.normal(0, 0.08), steps)
        for service in motor.services:
            if service["shift"]:
                vib_gain[service["step"] :, column] *= rng.uniform(0.8, 1.25)
                bearing_offset[service["step"] :, column] += rng.uniform(-2.5, 2.5)
    on = running.astype(float)
    noise = {
        "flow": rng.normal(0, 0.02, (steps, motors)),
        "pressure": rng.normal(0, 0.05, (steps, motors)),
        "pressure_stopped": rng.normal(0, 0.02, (steps, motors)),
        "current": rng.normal(0, 0.015, (steps, motors)),
        "speed": rng.normal(0, 1.5, (steps, motors)),
        "vibration": np.exp(rng.normal(0, 0.09, (steps, motors))),
        "bearing": rng.normal(0, 0.4, (steps, motors)),
        "winding": rng.normal(0, 0.6, (steps, motors)),
        "ambient": rng.normal(0, 0.3, (steps, motors)),
    }

    def compose(effects: dict[str, NDArray[np.float64]]) -> dict[str, NDArray[np.float64]]:
        flow = flow_nominal * load * (1 - effects["flow"]) * (1 + noise["flow"])
        flow = np.clip(flow * on, 0, None)
        relative = flow / flow_nominal
        pressure = head_bar * (1.25 - 0.3 * relative**2) * (1 + effects["pressure"]) + noise["pressure"]
        pressure = np.where(running, pressure, 0.3 + noise["pressure_stopped"])
        current = current_full * (0.35 + 0.6 * load) * (1 + effects["current"]) * (1 + noise["current"]) * on
        vibration = vib_base * (1 + 0.15 * load) * (1 + effects["vib"]) * vib_gain * noise["vibration"]
        # Temperatures follow their targets with thermal lags (bearing 1.5 h, winding 45 min).
        bearing_target = ambient + on * (4 + 18 * load) + effects["bearing"]
        winding_target = ambient + on * (10 + 45 * load**2) + effects["winding"]
        return {
            "speed": np.where(running, 1778 + 6 * (1 - load) + noise["speed"], 0.0),
            "current": current,
            "bearing": _lag(bearing_target, 1.5) + bearing_offset + noise["bearing"],
            "winding": _lag(winding_target, 0.75) + noise["winding"],
            "ambient": ambient + noise["ambient"],
            "vibration": np.where(running, vibration, 0.02 * noise["vibration"]),
            "pressure": pressure,
            "flow": flow,
        }

    healthy = compose(upsets)
    signals = compose({name: upsets[name] + wear[name] for name in EFFECTS})
    _note_warnings(fleet, signals, healthy)
    return signals


def _note_warnings(
    fleet: list[Motor], signals: dict[str, NDArray[np.float64]], healthy: dict[str, NDArray[np.float64]]
) -> None:
    """Set each failure's "warned_from": the step from which its signature stands out, or None.

    A signature stands out from the step on which, in one of the signals its mode moves, the difference
    the wear makes (`signals` minus `healthy`, the same motor with the same noise, load, drift and upsets
    but no wear) reaches WARNING_SIGMAS standard deviations of that signal's normal variation and stays
    there, on every running reading, until the failure. Normal variation: a healthy running reading's
    departure from the mean of the 96 running readings (24 operating hours) before it, over the year,
    with the windows of developing faults left out; so noise, upsets, the daily load and temperature
    swings and drift within a day all count.
    """
    for column, motor in enumerate(fleet):
        on = np.flatnonzero(motor.running)
        developing = np.zeros(len(motor.running), dtype=bool)
        for failure in motor.failures:
            developing[failure["onset"] : failure["step"]] = True
        sigma: dict[str, float] = {}
        for name in {signal for mode in SIGNATURE_SIGNALS.values() for signal in mode}:
            values = healthy[name][on, column]
            window = 96
            sums = np.concatenate(([0.0], np.cumsum(values)))
            before = (sums[window:-1] - sums[: -window - 1]) / window  # mean of the `window` readings before
            departure = values[window:] - before
            sigma[name] = float(np.std(departure[~developing[on[window:]]])) if len(departure) else math.inf
        for failure in motor.failures:
            failure["warned_from"] = None
            if failure["mode"] == "sudden" or failure["onset"] >= failure["step"]:
                continue
            mine = on[(on >= failure["onset"]) & (on < failure["step"])]
            for name in SIGNATURE_SIGNALS[failure["mode"]]:
                shown = (
                    np.abs(signals[name][mine, column] - healthy[name][mine, column]) >= WARNING_SIGMAS * sigma[name]
                )
                if not len(shown) or not shown[-1]:
                    continue
                below = np.flatnonzero(~shown)
                first = int(mine[below[-1] + 1]) if len(below) else int(mine[0])
                if failure["warned_from"] is None or first < failure["warned_from"]:
                    failure["warned_from"] = first


def _wear(effects: dict[str, NDArray[np.float64]], span: slice, column: int, mode: str, s: NDArray[Any]) -> None:
    """A failure mode's signature, at severity `s` (0 at its onset, ~1 at the failure)."""
    if mode == "bearing":
        effects["vib"][span, column] += 1.8 * s
        effects["bearing"][span, column] += 14 * s
    elif mode == "winding":
        effects["winding"][span, column] += 22 * s
        effects["current"][span, column] += 0.06 * s
    elif mode == "hydraulic":
        effects["flow"][span, column] += 0.2 * s
        effects["pressure"][span, column] -= 0.15 * s
        effects["vib"][span, column] += 0.6 * s
        effects["current"][span, column] -= 0.04 * s
    elif mode == "cooling":
        effects["winding"][span, column] += 28 * s
        effects["bearing"][span, column] += 6 * s


def _walk(rng: np.random.Generator, steps: int, motors: int, sigma: float, keep: float) -> NDArray[np.float64]:
    """A mean-reverting random walk (AR(1)) per motor."""
    return _recur(rng.normal(0, sigma, (steps, motors)), keep, np.zeros(motors))


def _lag(target: NDArray[np.float64], tau_h: float) -> NDArray[np.float64]:
    """First-order thermal lag along time, starting settled at the first target."""
    keep = math.exp(-HOURS_PER_STEP / tau_h)
    return _recur((1 - keep) * target, keep, keep * target[0])


def _recur(drive: NDArray[np.float64], keep: float, carried: NDArray[np.float64]) -> NDArray[np.float64]:
    """out[t] = drive[t] + keep * out[t - 1] along time, `carried` standing in for keep * out[-1]."""
    out = np.empty_like(drive)
    for t, row in enumerate(drive):
        out[t] = row + carried
        carried = keep * out[t]
    return out


def _write_telemetry(
    out_dir: Path,
    fleet: list[Motor],
    signals: dict[str, NDArray[np.float64]],
    rng: np.random.Generator,
    local: list[datetime],
) -> None:
    """Monthly CSV files in US units, rows by time then asset, with the historian's gaps and blanks."""
    steps, motors = signals["speed"].shape
    us = {
        "Speed_rpm": (np.round(signals["speed"], 0), 0),
        "Motor_Current_A": (signals["current"], 1),
        "Temp_Bearing_degF": (signals["bearing"] * 1.8 + 32, 1),
        "Temp_Winding_degF": (signals["winding"] * 1.8 + 32, 1),
        "Temp_Ambient_degF": (signals["ambient"] * 1.8 + 32, 1),
        "Vib_RMS_in_s": (signals["vibration"] / 25.4, 4),
        "Discharge_P_psi": (signals["pressure"] * 14.5038, 1),
        "Flow_gpm": (signals["flow"] * 4.402868, 0),
    }
    blank: dict[str, NDArray[np.bool_]] = {}
    for name in us:
        blank[name] = rng.random((steps, motors)) < BLANK_CELL
        for column in range(motors):
            for span in _episodes(rng, steps, SENSOR_OUTAGES_PER_YEAR, (2.0, 72.0)):
                blank[name][span, column] = True
    present = np.ones((steps, motors), dtype=bool)
    for column in range(motors):
        for span in _episodes(rng, steps, LINK_GAPS_PER_YEAR, (1.0, 12.0)):
            present[span, column] = False
    sentinel = rng.random((steps, motors)) < SENTINEL_SHARE
    running = np.stack([motor.running for motor in fleet], axis=1)
    stamps = np.array([moment.isoformat() for moment in local])
    months = np.array([moment.strftime("%Y-%m") for moment in local])
    assets = np.array([motor.asset for motor in fleet])
    folder = out_dir / "telemetry"
    folder.mkdir(exist_ok=True)
    for month in dict.fromkeys(months.tolist()):
        rows = np.flatnonzero(months == month)
        keep = present[rows].ravel()
        columns: dict[str, NDArray[Any]] = {
            "Asset": np.tile(assets, len(rows))[keep],
            "Timestamp": np.repeat(stamps[rows], motors)[keep],
            "Run_Status": np.where(running[rows], "RUN", "STOP").ravel()[keep],
        }
        for name, (values, decimals) in us.items():
            written = np.round(values[rows], decimals)
            if name == "Temp_Bearing_degF":
                written = np.where(sentinel[rows], SENTINEL, written)
            columns[name] = np.ma.masked_array(written.ravel()[keep], mask=blank[name][rows].ravel()[keep])
        path = folder / f"{month}.csv"
        path.write_text(",".join(TELEMETRY_COLUMNS) + "\n", encoding="utf-8")
        with path.open("ab") as sink:
            sink.write(_csv_rows(columns, path.with_name(f".{path.name}.part")))


def _csv_rows(columns: dict[str, NDArray[Any]], scratch: Path) -> bytes:
    """Columns as CSV lines without a header, a masked (blank) cell empty, written by DuckDB through `scratch`."""
    texts = {name: values.astype(object) if values.dtype.kind == "U" else values for name, values in columns.items()}
    db = connect()
    register(db, "rows_out", Table(texts))
    db.execute(f"COPY rows_out TO {literal(str(scratch))} (FORMAT csv, HEADER false)")
    db.close()
    body = scratch.read_bytes()
    scratch.unlink()
    return body


def _write_logs(out_dir: Path, fleet: list[Motor], epoch_s: NDArray[np.int64]) -> None:
    """The failure log, the service log and the ground truth."""
    failures = ["Work_Order,Asset,Failure_Time,Failure_Description,Downtime_h"]
    services = ["Work_Order,Asset,Completed,Service_Type,Technician"]
    truth = ["asset,failed_at,mode,warning_h,warning_running_h"]
    order = 40_000
    technicians = ("D. Ruiz", "K. Patel", "L. Novak", "T. Brooks")
    for motor in fleet:
        repairs = iter([service for service in motor.services if service["shift"]])
        for failure in motor.failures:
            order += 1
            step = failure["step"]
            failed_s = int(epoch_s[step - 1]) + failure["trip_min"] * 60
            failed_local = datetime.fromtimestamp(failed_s, SITE_TZ)
            repair = next(repairs, None)
            downtime_h = (repair["step"] - step) * HOURS_PER_STEP if repair is not None else ""
            description = MODES[failure["mode"]][0]
            failures.append(f"WO-{order},{motor.asset},{failed_local.isoformat()},{description},{downtime_h}")
            shown = failure.get("warned_from")
            warning = 0.0 if shown is None else (failed_s - epoch_s[shown]) / 3600
            running_h = 0.0 if shown is None else motor.running[shown:step].sum() * HOURS_PER_STEP
            failed_utc = datetime.fromtimestamp(failed_s, UTC).isoformat().replace("+00:00", "Z")
            truth.append(f"{motor.asset},{failed_utc},{failure['mode']},{warning:.2f},{running_h:.2f}")
        for index, service in enumerate(motor.services):
            order += 1
            done = datetime.fromtimestamp(int(epoch_s[service["step"]]), SITE_TZ) - timedelta(minutes=5)
            technician = technicians[(index + len(motor.asset)) % len(technicians)]
            services.append(
                f"WO-{order},{motor.asset},{done.strftime('%m/%d/%Y %I:%M %p')},{service['kind']},{technician}"
            )
    for name, lines in (("failures.csv", failures), ("services.csv", services), ("ground_truth.csv", truth)):
        (out_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate_bulk(out_dir: Path, *, motors: int = 100, days: int = 30, interval_s: int = 60, seed: int = 0) -> Path:
    """One large CSV file in the same layout (no failures, no logs) for measuring import speed; its mapping.yaml.

    100 pumps for 30 days every minute is 4.32 million rows (about 450 MB), written a day at a time.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = int(datetime(2025, 3, 1, tzinfo=SITE_TZ).timestamp())
    per_day = 86400 // interval_s
    assets = np.array([_asset(index) for index in range(motors)])
    path = out_dir / "telemetry" / "bulk.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text(",".join(TELEMETRY_COLUMNS) + "\n", encoding="utf-8")
    with path.open("ab") as sink:
        for day in range(days):
            epoch_s = start + interval_s * (day * per_day + np.arange(per_day))
            stamps = np.array([datetime.fromtimestamp(int(t), SITE_TZ).isoformat() for t in epoch_s])
            size = per_day * motors
            running = rng.random(size) < 0.9
            columns: dict[str, NDArray[Any]] = {
                "Asset": np.tile(assets, per_day),
                "Timestamp": np.repeat(stamps, motors),
                "Run_Status": np.where(running, "RUN", "STOP"),
            }
            typical = {
                "Speed_rpm": (1780, 2, 0),
                "Motor_Current_A": (48, 3, 1),
                "Temp_Bearing_degF": (150, 8, 1),
                "Temp_Winding_degF": (200, 15, 1),
                "Temp_Ambient_degF": (75, 5, 1),
                "Vib_RMS_in_s": (0.08, 0.01, 4),
                "Discharge_P_psi": (70, 4, 1),
                "Flow_gpm": (600, 40, 0),
            }
            for name, (mean, spread, decimals) in typical.items():
                values = np.round(np.abs(rng.normal(mean, spread, size)), decimals) * np.where(running, 1, 0.1)
                columns[name] = np.ma.masked_array(values, mask=rng.random(size) < BLANK_CELL)
            sink.write(_csv_rows(columns, path.with_name(f".{path.name}.part")))
    mapping = out_dir / "mapping.yaml"
    telemetry_only = MAPPING.split("failures:", maxsplit=1)[0].replace('["telemetry/*.csv"]', "[telemetry/bulk.csv]")
    mapping.write_text(telemetry_only.replace("15-minute interval", f"{interval_s} s interval"), encoding="utf-8")
    return mapping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the export and its mapping.yaml into")
    parser.add_argument("--motors", type=int, default=48)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bulk-interval-s",
        type=int,
        help="instead: one large CSV file of readings every this many seconds, to measure import speed",
    )
    args = parser.parse_args(argv)
    if args.bulk_interval_s:
        kwargs = {"motors": args.motors, "days": args.days, "interval_s": args.bulk_interval_s, "seed": args.seed}
        mapping = generate_bulk(args.out_dir, **kwargs)
        rows = args.motors * args.days * 86400 // args.bulk_interval_s
        print(f"wrote {mapping.parent / 'telemetry' / 'bulk.csv'}: {rows:,} rows")
        return 0
    mapping = generate(args.out_dir, motors=args.motors, days=args.days, seed=args.seed)
    truth = (args.out_dir / "ground_truth.csv").read_text(encoding="utf-8").splitlines()[1:]
    warned = sum(1 for line in truth if float(line.split(",")[3]) >= 6)
    print(f"wrote {mapping.parent}: {args.motors} pumps, {args.days} days, {len(truth)} failures", end="")
    print(f" ({warned} with 6 h or more of warning)")
    print(f"import: python model/import_history.py {mapping} --out ARCHIVE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
