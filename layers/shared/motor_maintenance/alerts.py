"""Turn an alarm event into words a maintenance engineer acts on: subject, body and an SMS line."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from motor_maintenance.alarms import AlarmEvent, AlarmKind, AlarmState, Transition, Verdict
from motor_maintenance.features import feature_label
from motor_maintenance.topics import DEFAULT_NAMESPACE, actions_topic

SUBJECT_MAX = 100  # SNS rejects longer e-mail subjects
ELLIPSIS = "..."
SUBJECT_WHAT_MIN = 16
"""Characters the alarm's name keeps in a subject at least; the severity tag, then the motor id give way first."""
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
    Transition.FAILURE_REPORTED: "failure reported",
}

_VERDICTS = {
    Verdict.CONFIRMED: "confirmed, the alarm was right",
    Verdict.FALSE_ALARM: "false alarm, nothing was wrong",
    Verdict.UNSURE: "unsure whether the alarm was right",
}


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert ready for SNS: e-mail subject and body, and a short SMS form."""

    subject: str
    body: str
    sms: str


def format_alert(event: AlarmEvent, namespace: str = DEFAULT_NAMESPACE) -> Alert:
    """Subject, body and SMS text for one alarm transition; `namespace` is the stack's first topic level,
    where the body tells operators to publish their actions."""
    if event.kind is AlarmKind.HEALTH:
        return _health_alert(event)
    if event.transition is Transition.FAILURE_REPORTED:
        return _failure_alert(event, namespace)
    what = describe_alarm(event)
    headline = _HEADLINES[event.transition]
    if event.verdict is not None:
        headline = f"{headline}, {event.verdict.value.replace('_', ' ')}"
    subject = _subject(event.severity.value.upper(), event.motor_id, what, headline)

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
    if event.verdict is not None:
        lines.append(f"  Verdict on the alarm: {_VERDICTS[event.verdict]}.")
    if event.failure_probability is not None:
        as_of = (
            f" (as of {_when(event.probability_at)})"
            if event.probability_at and event.probability_at != event.at
            else ""
        )
        lines.append(f"  Model's probability of failure within 24 h: {event.failure_probability:.0%}{as_of}.")
        if event.model_version:
            lines.append(f"  Model version: {event.model_version}.")
    drivers = describe_drivers(event)
    if drivers:
        lines.append(f"  Main drivers: {drivers}.")
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
    lines.extend(f"  {hint}" for hint in _operator_hints(event, namespace))
    lines += ["", f"Event id {event.event_id}"]

    sms = _ascii(f"{event.severity.value.upper()} {event.motor_id} {what}: {headline}")
    if drivers and event.kind is AlarmKind.PREDICTIVE and event.failure_probability is not None:
        # Why, rather than the thresholds, is what fits in 160 characters.
        sms = f"{sms}. Failure probability {event.failure_probability:.0%}, main drivers: {_ascii(drivers)}"
    elif cause:
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
    if event.kind is AlarmKind.HEALTH:
        return "Failure-prediction model unavailable"
    return str(event.rule.get("description") or event.alarm.replace("_", " ").capitalize())


def describe_drivers(event: AlarmEvent) -> str:
    """The features that drove the event's failure probability up, in words, largest first ('' if none)."""
    return ", ".join(feature_label(driver.feature) for driver in event.drivers)


def _health_alert(event: AlarmEvent) -> Alert:
    """The model's health concerns every motor: say what still works, and that one notice ends it."""
    severity = event.severity.value.upper()
    streak = f"{event.value:.0f} " if event.value is not None and math.isfinite(event.value) else ""
    since = f" since {_when(event.active_since)}" if event.active_since else ""
    if event.transition is Transition.RAISED:
        headline, state = "failure-prediction model unavailable", "is unavailable"
        happened = [
            f"  The model failed {streak}predictions in a row; unavailable{since}.",
            *([f"  Last error: {event.note}"] if event.note else []),
            "  Readings are still stored, and the schedule and condition alarms of every motor still",
            "  work. Predictive alarms neither raise nor clear until the model answers again.",
        ]
        todo = [*([f"  {event.advice}"] if event.advice else []), "  One notice follows when the model answers again."]
        sms = f"{severity} all motors: prediction model unavailable{since}. Schedule and condition alarms still work."
    elif event.transition is Transition.CLEARED:
        headline, state = "failure-prediction model available again", "is available again"
        took = _elapsed(event.active_since, event.at) if event.active_since else ""
        happened = [
            f"  The model answered {streak}predictions in a row at {_when(event.at)}.",
            *([f"  It had been unavailable{since} ({took})."] if took else []),
            "  Predictive alarms resume with each running motor's next reading.",
        ]
        todo = [
            "  Nothing to do. The InferenceFunction log lines 'prediction failed' of that period say why it failed."
        ]
        sms = f"{severity} all motors: prediction model available again" + (f" after {took}." if took else ".")
    else:  # no other transition is made for it; worded anyway, alerting must not fail
        headline = f"failure-prediction model {_HEADLINES[event.transition]}"
        state = _HEADLINES[event.transition]
        happened = [
            f"  '{event.alarm}' went from {event.from_state.value} to {event.to_state.value} at {_when(event.at)}."
        ]
        todo = ["  Nothing to do."]
        sms = f"{severity} all motors: {headline}"
    lines = [
        "All motors (the model serves the whole fleet)",
        f"The failure-prediction model {state}.",
        "",
        "What happened",
        *happened,
        "",
        "What to do next",
        *todo,
        "",
        f"Event id {event.event_id}",
    ]
    subject = _subject(severity, "All motors", "", headline)
    return Alert(subject=subject, body="\n".join(lines) + "\n", sms=_ascii(sms)[:SMS_MAX])


def _failure_alert(event: AlarmEvent, namespace: str) -> Alert:
    """A reported failure: when and how the motor failed, who said so, and whether the model saw it coming."""
    mode = event.failure_mode or "mode not given"
    failed = _when(event.failed_at) if event.failed_at else "an unknown time"
    by = f", reported by {event.operator}" if event.operator else ""
    note = f", note: {event.note}" if event.note else ""
    said = f"{event.motor_id} failed at {failed} ({mode}){by}{note}"
    lines = [
        f"Motor {event.motor_id}" + (f" ({event.motor_type})" if event.motor_type else ""),
        f"Failure reported: {mode}.",
        "",
        "What happened",
        f"  {said}" + ("" if said.endswith(".") else "."),
        f"  Reported at {_when(event.at)}.",
    ]
    if event.failure_probability is not None:
        as_of = f" as of {_when(event.probability_at)}" if event.probability_at else ""
        lines.append(f"  Model's last probability of failure within 24 h{as_of}: {event.failure_probability:.0%}.")
        if event.model_version:
            lines.append(f"  Model version: {event.model_version}.")
    raised = event.to_state in (AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED, AlarmState.LATCHED)
    since = f" since {_when(event.active_since)}" if raised and event.active_since else ""
    forewarned = ": it did not forewarn of this failure" if event.to_state is AlarmState.NORMAL else ""
    lines.append(f"  The predictive alarm is {event.to_state.value}{since}{forewarned}.")
    if event.run_hours is not None:
        lines.append(f"  Run hours since last service: {event.run_hours:,.1f} h.")
    lines += [
        "",
        "What to do next",
        "  Repair the motor, then report 'service_complete' to reset its run-hours counter.",
        "  The failure is kept as a label: the predictive model is retrained and judged against such reports.",
    ]
    if raised:
        # An acknowledged alarm cannot be acknowledged again: it takes its verdict with a reset.
        action = "reset" if event.to_state is AlarmState.ACKNOWLEDGED else "acknowledge"
        hint = {"motor_id": event.motor_id, "action": action, "alarm": event.alarm, "verdict": "confirmed"}
        example = json.dumps(hint | {"action_id": "<unique id>", "ts": "<now>"})
        lines.append(
            f"  Say whether the predictive alarm was right with a verdict (confirmed, false_alarm or unsure) on "
            f"{actions_topic(event.motor_id, namespace)}: {example}"
        )
    lines += ["", f"Event id {event.event_id}"]
    severity = event.severity.value.upper()
    subject = _subject(severity, event.motor_id, f"failed at {failed} ({mode})", _HEADLINES[event.transition])
    sms = _ascii(f"{severity} {said}")[:SMS_MAX]
    return Alert(subject=subject, body="\n".join(lines) + "\n", sms=sms)


def _subject(severity: str, motor: str, what: str, headline: str) -> str:
    """`[SEVERITY] motor: what - headline` within SUBJECT_MAX, ASCII; the headline (the transition) is never cut.

    A long alarm description is shortened (with "..."); when even SUBJECT_WHAT_MIN characters of it do not
    fit, the severity tag goes (it is also a message attribute), then the motor id is shortened.
    """
    severity, motor, what, headline = _ascii(severity), _ascii(motor), _ascii(what), _ascii(headline)
    tail = f" - {headline}" if what else headline
    head = f"[{severity}] {motor}: "
    room = SUBJECT_MAX - len(head) - len(tail)
    if what and room < min(len(what), SUBJECT_WHAT_MIN):
        head = f"{motor}: "
        room = SUBJECT_MAX - len(head) - len(tail)
    if room < min(len(what), SUBJECT_WHAT_MIN):
        keep = max(SUBJECT_MAX - len(tail) - min(len(what), SUBJECT_WHAT_MIN) - len(": ") - len(ELLIPSIS), 1)
        head = f"{motor[:keep]}{ELLIPSIS}: "
        room = SUBJECT_MAX - len(head) - len(tail)
    return f"{head}{_shortened(what, room)}{tail}"[:SUBJECT_MAX]


def _shortened(text: str, room: int) -> str:
    """The text, or its start and "..." when it is longer than `room` characters."""
    if len(text) <= room:
        return text
    return text[: max(room - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def _elapsed(start: datetime, end: datetime) -> str:
    minutes = max((end - start).total_seconds(), 0) / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


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
    if event.kind is AlarmKind.OFFLINE and event.value is not None:
        silent = _elapsed_s(event.value)
        if event.transition is Transition.CLEARED:
            return f"Readings arrive again after {silent} of silence"
        after = _number(rule, "after_s")
        limit = f" (raises after {_elapsed_s(after)} without a reading while running)" if after is not None else ""
        return f"No reading for {silent}{limit}"
    return ""


def _elapsed_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _number(rule: Mapping[str, object], key: str) -> float | None:
    """A finite threshold from the rule, or None (missing, text, or too large for a float: 10**400)."""
    value = rule.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _operator_hints(event: AlarmEvent, namespace: str) -> list[str]:
    topic = actions_topic(event.motor_id, namespace)
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
