"""Alarm states, operator actions and the alarm-event contract published on {namespace}/{id}/alarms."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from motor_maintenance.config import ADVICE_MAX, DESCRIPTION_MAX, FAILURE_MODE_PATTERN, Severity
from motor_maintenance.prediction import MODEL_VERSION_PATTERN, Drivers
from motor_maintenance.telemetry import SIGNALS, MotorId, Timestamp

ALARM_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
ACTION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
EVENT_ID_PATTERN = r"^[0-9a-f]{32}$"
"""What :func:`event_id` makes: the first 32 hex digits of a SHA-256."""
OPERATOR_MAX = 100
NOTE_MAX = 500
FAILURE_LOOKBACK_DAYS = 30
"""How far before the report a failure may have happened (`failed_at` at most this long before `ts`)."""
RULE_ITEMS_MAX = 8
"""A rule in an event has at most 6 items (a condition rule's); a few more are room to grow, not to fill."""

ALL_MOTORS = "all.motors"
"""The `motor_id` of a fleet-wide event (the model's health). The dot keeps it out of the motor-id pattern,
so it can never be a real motor; its events go to {namespace}/all.motors/alarms."""


class AlarmState(StrEnum):
    """The states of an AWS IoT Events alarm model (and of IoT SiteWise alarms)."""

    NORMAL = "NORMAL"
    ACTIVE = "ACTIVE"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    LATCHED = "LATCHED"
    SNOOZED = "SNOOZED"
    DISABLED = "DISABLED"


class AlarmKind(StrEnum):
    """Which maintenance strategy an alarm belongs to."""

    SCHEDULE = "schedule"
    CONDITION = "condition"
    PREDICTIVE = "predictive"
    OFFLINE = "offline"
    HEALTH = "health"
    """The system's own health (the prediction model unavailable), for all motors at once."""


class Transition(StrEnum):
    """Why an alarm changed state; part of every event's deterministic id."""

    RAISED = "raised"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    SNOOZE_EXPIRED = "snooze_expired"
    DISABLED = "disabled"
    ENABLED = "enabled"
    RESET = "reset"
    SERVICED = "serviced"
    FAILURE_REPORTED = "failure_reported"
    """An operator reported that the motor failed: a label for the predictive alarm, whose state it does not move."""


class ActionName(StrEnum):
    """What an operator can do to a motor's alarms."""

    ACKNOWLEDGE = "acknowledge"
    SNOOZE = "snooze"
    DISABLE = "disable"
    ENABLE = "enable"
    RESET = "reset"
    SERVICE_COMPLETE = "service_complete"
    REPORT_FAILURE = "report_failure"


class Verdict(StrEnum):
    """Whether an alarm was right, in the judgement of whoever acknowledged or reset it: a label for training."""

    CONFIRMED = "confirmed"
    FALSE_ALARM = "false_alarm"
    UNSURE = "unsure"


_NO_ALARM = (ActionName.SERVICE_COMPLETE, ActionName.REPORT_FAILURE)
_WITH_VERDICT = (ActionName.ACKNOWLEDGE, ActionName.RESET)


class OperatorAction(BaseModel):
    """An operator's command, published on {namespace}/{motor_id}/actions."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    motor_id: MotorId
    action: ActionName
    alarm: str | None = Field(
        default=None,
        pattern=ALARM_NAME_PATTERN,
        description="Alarm the action applies to; required except for service_complete and report_failure.",
    )
    action_id: str = Field(
        pattern=ACTION_ID_PATTERN,
        description="Unique per action (e.g. a UUID): a redelivered action is applied once.",
    )
    ts: Timestamp = Field(description="When the operator acted (ISO-8601 with offset, or epoch ms).")
    snooze_minutes: float | None = Field(default=None, gt=0, strict=True, description="For snooze: how long.")
    operator: str = Field(default="unknown", max_length=OPERATOR_MAX, description="Who acted, for the audit trail.")
    note: str = Field(default="", max_length=NOTE_MAX)
    failed_at: Timestamp | None = Field(
        default=None,
        description=f"For report_failure: when the motor failed; not after `ts`, at most {FAILURE_LOOKBACK_DAYS} "
        "days before it.",
    )
    failure_mode: str | None = Field(
        default=None,
        pattern=FAILURE_MODE_PATTERN,
        description="For report_failure: how it failed, one of the configuration's failure_modes.",
    )
    verdict: Verdict | None = Field(
        default=None,
        description="For acknowledge and reset of a predictive or condition alarm: was the alarm right?",
    )
    topic_motor_id: str | None = Field(default=None, description="Added by the IoT rule from topic(2).")

    @model_validator(mode="after")
    def _consistent(self) -> OperatorAction:
        if self.topic_motor_id is not None and self.topic_motor_id != self.motor_id:
            raise ValueError(f"motor_id {self.motor_id!r} does not match the topic's motor id {self.topic_motor_id!r}")
        if self.action not in _NO_ALARM and self.alarm is None:
            raise ValueError(f"action {self.action.value!r} needs the name of an alarm")
        if self.action is ActionName.REPORT_FAILURE and self.alarm is not None:
            raise ValueError("report_failure concerns the motor, not an alarm: leave out 'alarm'")
        if self.action is ActionName.SNOOZE and self.snooze_minutes is None:
            raise ValueError("snooze needs snooze_minutes")
        if self.action is not ActionName.SNOOZE and self.snooze_minutes is not None:
            raise ValueError("snooze_minutes only applies to snooze")
        if self.verdict is not None and self.action not in _WITH_VERDICT:
            raise ValueError("verdict only applies to acknowledge and reset")
        self._check_failure()
        return self

    def _check_failure(self) -> None:
        if self.action is not ActionName.REPORT_FAILURE:
            if self.failed_at is not None or self.failure_mode is not None:
                raise ValueError("failed_at and failure_mode only apply to report_failure")
            return
        if self.failed_at is None or self.failure_mode is None:
            raise ValueError("report_failure needs failed_at and failure_mode")
        if self.failed_at > self.ts:
            raise ValueError("failed_at is after the report's ts: a failure cannot be reported before it happens")
        if self.ts - self.failed_at > timedelta(days=FAILURE_LOOKBACK_DAYS):
            raise ValueError(f"failed_at is more than {FAILURE_LOOKBACK_DAYS} days before the report's ts")


def _known_signal(name: str) -> str:
    if name not in SIGNALS:
        raise ValueError(f"not a signal; expected one of {', '.join(SIGNALS)}")
    return name


SignalName = Annotated[str, AfterValidator(_known_signal)]
RuleText = Annotated[str, Field(max_length=DESCRIPTION_MAX)]
RuleNumber = Annotated[int, Field(ge=-(2**53), le=2**53)] | float
"""A threshold or a count: an int stays one on the wire, and one too large for a float is refused."""


class AlarmEvent(BaseModel):
    """One alarm transition: what people are told about and machines subscribe to.

    Every field is bounded: the alerts function turns an event into an SNS message (256 KB at most)
    and a log line, so an event that arrives on {namespace}/{id}/alarms, from the detector or from anyone
    allowed to publish there, must not be able to make either fail (a failure is retried, then
    dead-lettered). Constrained strings also refuse a lone surrogate, which JSON can spell and no
    UTF-8 encoder writes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(
        pattern=EVENT_ID_PATTERN, description="Deterministic: the same cause always yields the same id."
    )
    sequence: int = Field(
        default=0,
        ge=0,
        description="Per motor, one more for every alarm event. A consumer that sees an event whose sequence "
        "is not above the last it applied for that motor can drop it (a redelivery, or overtaken).",
    )
    motor_id: MotorId | Literal["all.motors"] = Field(description=f"The motor, or {ALL_MOTORS!r} for the fleet.")
    motor_type: str | None = Field(default=None, max_length=64)
    alarm: str = Field(pattern=ALARM_NAME_PATTERN)
    kind: AlarmKind
    transition: Transition
    from_state: AlarmState
    to_state: AlarmState
    severity: Severity
    at: Timestamp = Field(description="When it happened: the reading's or the action's time.")
    cause: Literal["reading", "action", "timer", "model"]
    reading_seq: int | None = None
    action_id: str | None = Field(default=None, pattern=ACTION_ID_PATTERN)
    value: float | None = Field(default=None, description="The watched signal or probability at the transition.")
    rule: dict[RuleText, RuleText | RuleNumber | None] = Field(
        default_factory=dict,
        max_length=RULE_ITEMS_MAX,
        description="The rule's thresholds and description, for the message (flat: no nested values).",
    )
    readings: dict[SignalName, float] = Field(
        default_factory=dict, max_length=len(SIGNALS), description="All signals of the causing reading."
    )
    failure_probability: float | None = None
    probability_at: Timestamp | None = Field(default=None, description="When the model gave that probability.")
    model_version: str | None = Field(
        default=None,
        pattern=MODEL_VERSION_PATTERN,
        description="The version of the model that gave that probability (None: the model did not say).",
    )
    drivers: Drivers = Field(
        default=(),
        description="On a predictive raise: the features that drove that probability up most, largest first.",
    )
    active_since: Timestamp | None = None
    run_hours: float | None = None
    snoozed_until: Timestamp | None = None
    operator: str | None = Field(default=None, max_length=OPERATOR_MAX)
    note: str | None = Field(
        default=None, max_length=NOTE_MAX, description="The operator's note; for the model's health, its last error."
    )
    advice: str = Field(default="", max_length=ADVICE_MAX)
    verdict: Verdict | None = Field(
        default=None, description="On acknowledged and reset: the operator's verdict on the alarm, if given."
    )
    failure_mode: str | None = Field(
        default=None, pattern=FAILURE_MODE_PATTERN, description="On failure_reported: how the motor failed."
    )
    failed_at: Timestamp | None = Field(default=None, description="On failure_reported: when the motor failed.")


def event_id(motor_id: str, alarm: str, transition: Transition, cause_key: str) -> str:
    """Deterministic id of a transition: a retried or redelivered message reproduces it exactly."""
    digest = hashlib.sha256(f"{motor_id}|{alarm}|{transition.value}|{cause_key}".encode()).hexdigest()
    return digest[:32]
