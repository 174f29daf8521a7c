"""What the handlers answer, one model each; the handler returns its `model_dump()`.

Lambda discards what an asynchronously invoked function returns: these answers are read by `sam local
invoke`, the local stack and the tests, and by Lambda's event source mapping (`batchItemFailures`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Self

from pydantic import BaseModel, ConfigDict

from motor_maintenance.prediction import Driver

if TYPE_CHECKING:  # AlertFunction answers without the use cases: its cold start does not import them
    from motor_maintenance.service import Result


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class Rejected(Response):
    """Bad input, refused with the reason (see motor_lambda.rejection)."""

    status: Literal["rejected"] = "rejected"
    reason: str


class ReadingSummary(Response):
    """InferenceFunction's answer about one reading: the invocation's, or an item of a batch's `readings`."""

    status: str
    """The detector's outcome: applied, duplicate, stale, future."""
    motor_id: str
    reason: str
    failure_probability: float | None
    drivers: list[Driver]
    model_version: str | None = None
    """The version of the model that gave `failure_probability`."""
    not_scored: str | None = None
    """Why the model was not asked about this running motor's reading (no signal to judge wear by)."""
    alarm_states: dict[str, str]
    events: list[str]
    """The ids of the alarm events the reading caused."""

    @classmethod
    def of(cls, result: Result, **extra: str) -> Self:
        return cls(
            status=result.outcome.value,
            motor_id=result.motor_id,
            reason=result.reason,
            failure_probability=result.failure_probability,
            drivers=list(result.drivers),
            model_version=result.model_version,
            not_scored=result.not_scored,
            alarm_states=result.alarm_states,
            events=[event.event_id for event in result.events],
            **extra,
        )


class BatchedReading(ReadingSummary):
    """A reading of a batch, applied: its summary and the stream record it came in."""

    sequence_number: str


class BatchedRejection(Rejected):
    """A record of a batch the schema refused."""

    sequence_number: str


class BatchResponse(Response):
    """A batch from TelemetryStream: the records Lambda must deliver again, and what became of the others."""

    batchItemFailures: list[dict[str, str]]  # the name Lambda reads
    readings: list[BatchedReading | BatchedRejection]


class BatchArchived(Response):
    """ArchiveFunction's answer: the batch's records put into the archive, packed or alone, and those skipped."""

    readings: int
    """Readings the schema accepts, packed several to a Firehose record."""
    alone: int
    """Documents it refuses, each in a Firehose record of its own."""
    skipped: int
    """Records whose data is not base64: no rule wrote them."""


class ActionResponse(Response):
    """OperatorActionFunction's answer."""

    status: str
    """The detector's outcome: applied, duplicate, ignored, rejected, future."""
    motor_id: str
    reason: str
    alarm_states: dict[str, str]
    events: list[str]

    @classmethod
    def of(cls, result: Result) -> Self:
        return cls(
            status=result.outcome.value,
            motor_id=result.motor_id,
            reason=result.reason,
            alarm_states=result.alarm_states,
            events=[event.event_id for event in result.events],
        )


class AlertSent(Response):
    """AlertFunction's answer: the alert sent for an alarm event (the first delivery's, for a redelivered event)."""

    status: Literal["sent"] = "sent"
    event_id: str
    message_id: str
    subject: str


class TickResponse(Response):
    """OfflineCheckFunction's answer for one tick."""

    status: Literal["ok"] = "ok"
    checked: int
    changed: int
    left_for_next_tick: int
    events: list[str]
