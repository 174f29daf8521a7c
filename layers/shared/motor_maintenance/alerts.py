"""Turn an alarm event into words a maintenance engineer acts on: subject, body and an SMS line."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from motor_maintenance.alarms import AlarmEvent, AlarmKind, AlarmState, Transition

SUBJECT_MAX = 100  # SNS rejects longer e-mail subjects
SMS_MAX = 160

UNITS = {
    "speed_rpm": "rpm",
    "torque_nm": "N m",
    "current_a": "A",
    "winding_temp_c": "C",
    "bearing_temp_c": "C",
    "fluid_temp_c": "C",
    "ambient_temp_c": "C",
    "vibration_mm_s": "mm/s",
    "pressure_bar": "bar",
    "flow_m3h": "m3/h",
}

_HEADLINES = {
    Transition.RAISED: "ALARM",
    Transition.CLEARED: "cleared",
    Transition.ACKNOWLEDGED: "acknowledged",
    Transition.SNOOZED: "snoozed",
    Transition.SNOOZE_EXPIRED: "snooze over",
    Transition.DISABLED: "disabled",
    Transition.ENABLED: "enabled",
    Transition.RESET: "reset",
    Transition.SERVICED: "service recorded",
}


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert ready for SNS: e-mail subject and body, and a short SMS form."""

    subject: str
    body: str
    sms: str


def format_alert(event: AlarmEvent) -> Alert:
    """Subject, body and SMS text for one alarm transition."""
    what = describe_alarm(event)
    headline = _HEADLINES[event.transition]
    subject = _ascii(f"[{event.severity.value.upper()}] {event.motor_id}: {what} - {headline}")[:SUBJECT_MAX]

    lines = [
        f"Motor {event.motor_id}" + (f" ({event.motor_type})" if event.motor_type else ""),
        f"{what}: {headline}.",
        "",
        "What happened",
        f"  The {event.kind.value} alarm '{event.alarm}' went from {event.from_state.value} to "
        f"{event.to_state.value} at {_when(event.at)}.",
    ]
    cause = _cause(event)
    if cause:
        lines.append(f"  {cause}")
    if event.active_since and event.to_state not in (AlarmState.NORMAL, AlarmState.DISABLED):
        lines.append(f"  Active since {_when(event.active_since)}.")
    if event.snoozed_until:
        lines.append(f"  Snoozed until {_when(event.snoozed_until)}.")
    if event.operator:
        lines.append(f"  By {event.operator}" + (f": {event.note}" if event.note else "."))
    if event.failure_probability is not None:
        as_of = (
            f" (as of {_when(event.probability_at)})"
            if event.probability_at and event.probability_at != event.at
            else ""
        )
        lines.append(f"  Model's probability of failure within 24 h: {event.failure_probability:.0%}{as_of}.")
    if event.run_hours is not None:
        lines.append(f"  Run hours since last service: {event.run_hours:,.1f} h.")

    if event.readings:
        lines += ["", "Readings at that moment"]
        width = max(len(name) for name in event.readings)
        for name, value in event.readings.items():
            lines.append(f"  {name.ljust(width)}  {value:,.2f} {UNITS.get(name, '')}".rstrip())

    lines += ["", "What to do next"]
    if event.transition in (Transition.RAISED, Transition.SNOOZE_EXPIRED) and event.advice:
        lines.append(f"  {event.advice}")
    lines.extend(f"  {hint}" for hint in _operator_hints(event))
    lines += ["", f"Event id {event.event_id}"]

    sms = _ascii(f"{event.severity.value.upper()} {event.motor_id} {what}: {headline}")
    if cause:
        sms = f"{sms}. {_ascii(cause)}"
    return Alert(subject=subject, body="\n".join(lines) + "\n", sms=sms[:SMS_MAX])


def describe_alarm(event: AlarmEvent) -> str:
    """A short human name for the alarm: the rule's description, or its strategy."""
    if event.kind is AlarmKind.SCHEDULE:
        return "Scheduled service due"
    if event.kind is AlarmKind.PREDICTIVE:
        return "Failure predicted within 24 h"
    if event.kind is AlarmKind.OFFLINE:
        return "Motor offline"
    return str(event.rule.get("description") or event.alarm.replace("_", " ").capitalize())


def _cause(event: AlarmEvent) -> str:
    """The evidence in one line. Tolerates an event whose rule lacks fields: alerting must not fail."""
    rule = event.rule
    if event.transition not in (Transition.RAISED, Transition.CLEARED, Transition.SERVICED):
        return ""
    if event.kind is AlarmKind.CONDITION and event.value is not None:
        signal = str(rule.get("signal", "value"))
        unit = UNITS.get(signal, "")
        text = f"{signal} = {event.value:,.2f} {unit}".rstrip()
        raise_at, clear_at = _number(rule, "raise_threshold"), _number(rule, "clear_threshold")
        if raise_at is not None and clear_at is not None:
            direction = "below" if rule.get("direction") == "below" else "above"
            held = _duration(_number(rule, "min_duration_s") or 0.0)
            text += f" (raises {direction} {raise_at} {unit} held {held}, clears at {clear_at} {unit})"
        return text
    if event.kind is AlarmKind.PREDICTIVE and event.failure_probability is not None:
        text = f"failure probability {event.failure_probability:.0%}"
        raise_at, clear_at = _number(rule, "raise_threshold"), _number(rule, "clear_threshold")
        consecutive = _number(rule, "consecutive")
        if raise_at is not None and clear_at is not None and consecutive is not None:
            text += (
                f" (raises at {raise_at:.0%} on {consecutive:.0f} predictions in a row, clears below {clear_at:.0%})"
            )
        return text
    if event.kind is AlarmKind.SCHEDULE and event.value is not None:
        interval = _number(rule, "service_interval_h")
        text = f"{event.value:,.1f} run hours since the last service"
        return text + (f" (interval {interval} h)" if interval is not None else "")
    return ""


def _number(rule: dict[str, object], key: str) -> float | None:
    value = rule.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _operator_hints(event: AlarmEvent) -> list[str]:
    topic = f"motors/{event.motor_id}/actions"
    hints = []
    if event.to_state is AlarmState.ACTIVE:
        ack = {
            "motor_id": event.motor_id,
            "action": "acknowledge",
            "alarm": event.alarm,
            "action_id": "<unique id>",
            "ts": "<now>",
        }
        hints.append(f"Acknowledge by publishing to {topic}: {json.dumps(ack)}")
    if event.to_state is AlarmState.LATCHED:
        hints.append(f"The condition cleared but nobody acknowledged it: acknowledge it on {topic} to close it.")
    if event.kind is AlarmKind.SCHEDULE and event.to_state is not AlarmState.NORMAL:
        done = {"motor_id": event.motor_id, "action": "service_complete", "action_id": "<unique id>", "ts": "<now>"}
        hints.append(f"When the service is done, publish to {topic}: {json.dumps(done)}")
    return hints or ["Nothing to do."]


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "at once"
    if seconds < 120:
        return f"for {seconds:.0f} s"
    return f"for {seconds / 60:.0f} min"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ascii(text: str) -> str:
    """SNS subjects must be ASCII without control characters."""
    return "".join(ch if 32 <= ord(ch) < 127 else " " for ch in text)
