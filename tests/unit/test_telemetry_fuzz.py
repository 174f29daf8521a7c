"""The telemetry parser against generated hostile payloads: a reading it can vouch for, or a one-line reason.

The same categories of bad input as the handler campaigns (tests/fuzzing.py), without AWS, so many
more of them: the parser must never raise anything but a ValidationError, the reason it gives must
fit on one log line, and a reading it accepts must honour every promise of the schema. A second
campaign checks that a payload gets the same verdict as JSON text (how ``sam local invoke`` and
Powertools' parser may see it) as it gets decoded (how Lambda hands it over).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given
from pydantic import ValidationError

from motor_maintenance.telemetry import (
    EARLIEST_TS,
    LATEST_TS,
    MAX_REASON_ERRORS,
    SIGNALS,
    Telemetry,
    TelemetryEvent,
    describe_validation_error,
)
from tests.fuzzing import (
    ALWAYS_REFUSED,
    SECURITY_CATEGORIES,
    TELEMETRY_SAMPLES,
    Target,
    campaign,
    campaign_size,
    fresh_reading,
    tally,
    valid_reading,
)

TARGET = Target(TELEMETRY_SAMPLES, topic_field="topic_motor_id", valid=valid_reading, fresh=fresh_reading)
DECODED_PAYLOADS = 3000
AS_TEXT_PAYLOADS = 800
LONGEST_REASON = MAX_REASON_ERRORS * 400
"""Ten fields named (at most 64 characters, quoted and escaped) with their message (at most 300)."""


def parse(payload: Any) -> TelemetryEvent:
    """What the inference handler's Powertools parser does: JSON text is parsed as JSON, anything else validated."""
    if isinstance(payload, str | bytes):
        return TelemetryEvent.model_validate_json(payload)
    return TelemetryEvent.model_validate(payload)


def verdict(payload: Any) -> tuple[TelemetryEvent | None, str]:
    """The reading, or the reason it was refused. Any exception but a ValidationError escapes."""
    try:
        return parse(payload), ""
    except ValidationError as exc:
        return None, describe_validation_error(exc)


def assert_fit_for_a_log_line(reason: str) -> None:
    assert reason
    assert reason.isascii()
    assert reason.isprintable(), "no line breaks, no control characters"
    assert len(reason) <= LONGEST_REASON


def assert_keeps_the_schemas_promises(event: TelemetryEvent) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", event.motor_id, flags=re.ASCII)
    assert event.topic_motor_id in (None, event.motor_id)
    assert EARLIEST_TS <= event.ts < LATEST_TS
    assert event.ts.utcoffset() is not None
    assert event.ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert 0 <= event.seq < 2**53
    assert isinstance(event.running, bool)
    for name, value in event.reading().signals().items():
        bounds = {type(m).__name__: m for m in Telemetry.model_fields[name].metadata}
        assert math.isfinite(value)
        assert bounds["Ge"].ge <= value <= bounds["Le"].le, name
    assert set(event.reading().signals()) <= set(SIGNALS)
    assert Telemetry.model_validate(event.reading().model_dump()) == event.reading()


def test_every_generated_payload_is_a_reading_that_keeps_the_schemas_promises_or_a_one_line_reason(
    pytestconfig: pytest.Config,
) -> None:
    sent: dict[str, int] = {}

    @campaign(DECODED_PAYLOADS)
    @given(TARGET.payloads())
    def parse_one(case: tuple[str, Any]) -> None:
        category, payload = case
        sent[category] = sent.get(category, 0) + 1

        event, reason = verdict(payload)

        if event is None:
            assert_fit_for_a_log_line(reason)
        else:
            assert_keeps_the_schemas_promises(event)
        if category in ALWAYS_REFUSED:
            assert event is None, f"{category} payload accepted"
        if category in SECURITY_CATEGORIES:
            assert "motor" in reason
        if category == "valid":
            assert event is not None, reason

    parse_one()

    for category, n in sent.items():
        tally(pytestconfig).add("telemetry parser", category, n)
    assert sum(sent.values()) == campaign_size(DECODED_PAYLOADS)
    assert sorted(sent) == sorted(TARGET.categories()), "every category was sent"


def test_a_payload_gets_the_same_verdict_as_json_text_as_it_gets_decoded(pytestconfig: pytest.Config) -> None:
    sent: dict[str, int] = {}

    @campaign(AS_TEXT_PAYLOADS)
    @given(TARGET.payloads())
    def parse_both(case: tuple[str, Any]) -> None:
        category, payload = case
        sent[category] = sent.get(category, 0) + 1
        text = payload if isinstance(payload, str | bytes) else json.dumps(payload)

        as_text, reason = verdict(text)

        try:
            decoded = json.loads(text)
        except ValueError:  # not JSON, or not UTF-8: Lambda would not have been invoked with it
            assert as_text is None
            assert_fit_for_a_log_line(reason)
            return
        as_object, _ = verdict(decoded)
        assert as_text == as_object

    parse_both()

    for category, n in sent.items():
        tally(pytestconfig).add("telemetry parser, as JSON text", category, n)
    assert sum(sent.values()) == campaign_size(AS_TEXT_PAYLOADS)
