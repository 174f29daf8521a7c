"""Feature values are bit-for-bit those the model was trained on, over a recorded stream.

A faster `compute_features` must not move a single bit: the trained model's splits sit on these
values. The digest below was recorded with the implementation the model was trained with; a change
that alters any feature, or the running statistics stored with the state, changes it.
"""

from __future__ import annotations

import hashlib
import math

from device.history import generate
from device.physics import DAY_S, FleetConfig
from motor_maintenance.features import RunningStats, compute_features
from motor_maintenance.telemetry import SIGNALS, Telemetry

RECORDED_DIGEST = "0ff1feba3ecb3c5abb1ffedd70bcc97e38222823dca2c82c20adc91a64a6c210"
"""sha256 of every vector and every statistics dict of `_stream()`, recorded with the hydraulic power per ampere and
its shares against the pump's normal (six features more); before them with the averages that mean the same at any
reporting interval (each running reading steps by its gap, a silence by one interval, a start by half its gap);
first recorded before features.py was optimised."""


def _stream() -> list[Telemetry]:
    """Three simulated motors over three days (wearing fast, so some fail and stop), some signals missing."""
    history = generate(FleetConfig(motors=3, seed=11, wear_scale=6.0), duration_s=3 * DAY_S, interval_s=120.0)
    readings = []
    for t in range(history.steps):
        if t % 97 == 50:  # a reading missed: the gap counts in full
            continue
        if 100 <= t % 211 < 106:  # a silence of seven intervals: the reading after it counts as one
            continue
        for column in range(3):
            reading = history.reading(t, column)
            if (t + column) % 7 == 3:  # a sensor that did not answer this time
                missing = SIGNALS[(t * 3 + column) % len(SIGNALS)]
                reading = Telemetry.model_validate({**reading.model_dump(), missing: None})
            readings.append(reading)
    return readings


def _hex(value: float) -> str:
    return "nan" if math.isnan(value) else float.hex(value)


def _digest(readings: list[Telemetry]) -> tuple[str, int]:
    digest = hashlib.sha256()
    stats: dict[str, RunningStats | None] = {}
    for index, reading in enumerate(readings):
        previous = stats.get(reading.motor_id)
        if previous is not None and index % 11 == 0:  # as stored in DynamoDB and read back
            stored = previous.to_dict()
            if index % 13 == 0:  # stored before the baseline existed
                del stored["baseline"]
            previous = RunningStats.from_dict(stored)
        vector, new_stats = compute_features(reading, previous)
        stats[reading.motor_id] = new_stats
        digest.update(",".join(map(_hex, vector)).encode())
        saved = new_stats.to_dict()
        for part in ("fast", "slow", "baseline"):
            digest.update(",".join(f"{name}={_hex(value)}" for name, value in sorted(saved[part].items())).encode())
        interval = "none" if saved["interval_s"] is None else _hex(saved["interval_s"])
        digest.update(
            f"{saved['last_ts_ms']}|{_hex(saved['operating_s'])}|{interval}|{saved['last_running']};".encode()
        )
    return digest.hexdigest(), len(readings)


def test_features_of_a_recorded_stream_are_bit_identical_to_the_recorded_ones() -> None:
    readings = _stream()
    assert any(not reading.running for reading in readings), "the stream must include a stopped motor"

    digest, count = _digest(readings)

    assert count == len(readings) > 2000
    assert digest == RECORDED_DIGEST
