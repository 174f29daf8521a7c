"""The detector's decisions are those it made before it was optimised, over a recorded history.

What the detector decides is what operators are told and what is stored: a faster `step` must give
the same outcomes, the same events (ids, order, contents), the same stored states and the same timer
times. The digest below was recorded with the implementation before the hot path was optimised (an
event context made for every reading, two snooze scans); a change in any decision changes it.

The labels added later (an event's `verdict`, `failure_mode`, `failed_at`) are left out of the digest:
this history sends no action that carries one, `_record` checks they are all empty, and leaving them out
keeps the digest the one recorded before they existed, so the labels provably changed no other decision.
An event's `model_version`, added later still, is left out the same way: this history's probabilities
come from no versioned model, `_record` checks it is empty, and the state stores none.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

from device.history import generate
from device.physics import DAY_S, FleetConfig
from motor_maintenance.alarms import OperatorAction
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import Decision, ReadingInput, check_timers, step
from motor_maintenance.features import compute_features
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import Telemetry

RECORDED_DIGESTS_BEFORE_EPISODES = {
    "default": "292edc0838416fba995a95e2addf7583ad7bca238e8ff1bbcecefedd73395c1d",
    "short rules, no latch, no offline": "b25ce15f5a75ace70bb5746dbbd77b1ef00334d0566ddfef49392799ddad3fda",
}
"""sha256 of every decision of `_digest` per configuration, recorded before detector.py was optimised.

Since then one decision changed on purpose: acknowledging a LATCHED alarm announces the episode it ends
(`active_since`), as a reset does, so a verdict given then joins its raise. With that field blanked on
those events, as it was, the digest is still the one recorded; RECORDED_DIGESTS holds today's.

Both were recorded again when the running statistics stored with the state gained the motor's reporting
interval and whether its last reading ran (features that mean the same at any reporting interval): the
decisions, the events and every other field of the stored states were checked unchanged then (the same
digest with the statistics left out, before and after). They were recorded again, checked the same way,
when the statistics gained the hydraulic power per ampere (`hydraulic_kw_per_a`), a new tracked ratio.

The default configuration's were recorded again when a reading's margin before the stored timer time
became a quarter of the offline window (`detector.check_margin_ms`): only the stored `next_check_ms`
changed, which RECORDED_DIGESTS_WITHOUT_CHECK_TIMES holds the proof of (the digests with it left out, the
same under the half and the quarter)."""
RECORDED_DIGESTS = {
    "default": "aa99a302caaafb07d035b4435ec779457d1275f0986cbbadcb41652aa6240dbf",
    "short rules, no latch, no offline": "b25ce15f5a75ace70bb5746dbbd77b1ef00334d0566ddfef49392799ddad3fda",
}

RECORDED_DIGESTS_WITHOUT_CHECK_TIMES = {
    "default": (
        "cc8aed7816dc040b65bde53bca1aeb961b77c6e98c24957f6c8a78caba6bffcd",
        "715f4b39a416dba7d57da89cd3ab7efab19688ec7e92d0b439e271548918dc9e",
    ),
    "short rules, no latch, no offline": ("6fdcf654f039331b434688847a7f9ad514529d80cd1b3ce76175740c5936322b",) * 2,
}
"""(today's, as before episodes) digests with each stored state's `next_check_ms` left out: every decision, event
and other field of the states, whatever margin `next_check` keeps its stored time with."""

CONFIGS = {
    "default": DetectorConfig(),
    "short rules, no latch, no offline": DetectorConfig.with_overrides(
        {
            "schedule": {"service_interval_h": 5.0},
            "offline": {"enabled": False},
            "latch": False,
            "conditions": [
                {"name": "hot_winding", "signal": "winding_temp_c", "raise_threshold": 70, "clear_threshold": 65},
                {
                    "name": "low_flow",
                    "signal": "flow_m3h",
                    "direction": "below",
                    "raise_threshold": 20,
                    "clear_threshold": 25,
                    "min_duration_s": 300,
                },
            ],
        }
    ),
}
ACTIONS: tuple[tuple[str, str | None, float | None], ...] = (
    ("snooze", "predictive", 30.0),
    ("acknowledge", "predictive", None),
    ("snooze", "vibration_zone_d", 5.0),
    ("reset", "predictive", None),
    ("disable", "schedule", None),
    ("enable", "schedule", None),
    ("service_complete", None, None),
    ("acknowledge", "offline", None),
    ("snooze", "low_flow", 20.0),
    ("acknowledge", "hot_winding", None),
)
"""Operator actions, taken in turn every few readings; those naming an alarm a configuration lacks are skipped."""


def _stream() -> list[Telemetry]:
    """Three simulated motors over two days, wearing fast: they warm, vibrate, fail and stop."""
    history = generate(FleetConfig(motors=3, seed=7, wear_scale=6.0), duration_s=2 * DAY_S, interval_s=120.0)
    return [history.reading(t, column) for t in range(history.steps) for column in range(3)]


def _probability(index: int, reading: Telemetry) -> float | None:
    """A prediction for most readings of a running motor, rising and falling through the thresholds."""
    if not reading.running or index % 5 == 0:
        return None
    return ((index * 7919) % 1000) / 1000


LABELS = {"verdict", "failure_mode", "failed_at"}
ADDED_LATER = LABELS | {"model_version"}


def _record(digest: Any, decision: Decision, counts: Counter[str], *, as_before: bool, check_times: bool = True) -> int:
    digest.update(f"{decision.outcome}|{decision.reason};".encode())
    for event in decision.events:
        assert all(getattr(event, field) is None for field in ADDED_LATER), event
        recorded = event
        if event.transition == "acknowledged" and event.from_state == "LATCHED":
            counts["latched acknowledged"] += 1
            if as_before:
                recorded = event.model_copy(update={"active_since": None})
        digest.update(recorded.model_dump_json(exclude=ADDED_LATER).encode())
    stored = decision.state.to_dict()
    if not check_times:
        del stored["next_check_ms"]
    digest.update(json.dumps(stored, sort_keys=True, default=str).encode())
    return len(decision.events)


def _digest(
    readings: list[Telemetry],
    config: DetectorConfig,
    counts: Counter[str],
    *,
    as_before: bool = False,
    check_times: bool = True,
) -> tuple[str, int]:
    digest = hashlib.sha256()
    record = partial(_record, as_before=as_before, check_times=check_times)
    states: dict[str, MotorState] = {}
    events = 0
    for index, reading in enumerate(readings):
        state = states.get(reading.motor_id)
        _, stats = compute_features(reading, state.stats if state else None)
        now = datetime.fromtimestamp(reading.ts_ms / 1000 + 1 + index % 3, UTC)
        received_ms = reading.ts_ms + 500 if index % 4 == 0 else None
        item = ReadingInput(reading, _probability(index, reading), received_ms=received_ms, stats=stats)
        decision = step(state, item, now, config)
        events += record(digest, decision, counts)
        state = decision.state
        if index % 29 == 0:  # delivered twice
            events += record(digest, step(state, item, now, config), counts)
        if index % 37 == 0:
            name, alarm, minutes = ACTIONS[(index // 37) % len(ACTIONS)]
            if alarm is None or alarm in config.alarm_names():
                action = OperatorAction(
                    motor_id=reading.motor_id,
                    action=name,
                    alarm=alarm,
                    action_id=f"a-{index}",
                    ts=reading.ts_ms,
                    snooze_minutes=minutes,
                )
                decision = step(state, action, now, config)
                events += record(digest, decision, counts)
                state = decision.state
        if index % 53 == 0:  # the timer passes by, later
            decision = check_timers(state, datetime.fromtimestamp(reading.ts_ms / 1000 + 1800, UTC), config)
            events += record(digest, decision, counts)
            state = decision.state
        states[reading.motor_id] = state
    return digest.hexdigest(), events


def test_decisions_over_a_recorded_history_are_the_recorded_ones() -> None:
    readings = _stream()

    for label, config in CONFIGS.items():
        counts: Counter[str] = Counter()
        digest, events = _digest(readings, config, counts)
        before, _ = _digest(readings, config, Counter(), as_before=True)

        assert events > 50, label
        assert digest == RECORDED_DIGESTS[label], label
        assert before == RECORDED_DIGESTS_BEFORE_EPISODES[label], label
        without_check_times = tuple(
            _digest(readings, config, Counter(), as_before=as_before, check_times=False)[0]
            for as_before in (False, True)
        )
        assert without_check_times == RECORDED_DIGESTS_WITHOUT_CHECK_TIMES[label], label
        # the changed decision is exercised where alarms latch, and cannot occur where they don't
        assert (counts["latched acknowledged"] > 0) == config.latch, label
