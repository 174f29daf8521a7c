"""The telemetry contract: what a reading may carry, and how bad ones are turned away."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from motor_maintenance.telemetry import Telemetry, TelemetryEvent, describe_validation_error
from tests.support import load_event, reading_payload


def rejection(payload: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        TelemetryEvent.model_validate(payload)
    return describe_validation_error(caught.value)


def test_a_normal_reading_parses_with_units_in_its_field_names() -> None:
    event = TelemetryEvent.model_validate(load_event("telemetry-normal"))

    assert event.motor_id == "motor-001"
    assert event.ts == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert event.reading().signals()["fluid_temp_c"] == 84.0
    assert "topic_motor_id" not in event.reading().model_dump()


def test_epoch_milliseconds_and_iso_timestamps_mean_the_same_instant() -> None:
    iso = Telemetry.model_validate(reading_payload(ts="2026-11-27T12:00:00+00:00"))
    epoch = Telemetry.model_validate(reading_payload(ts=1_795_780_800_000))
    offset = Telemetry.model_validate(reading_payload(ts="2026-11-27T13:00:00+01:00"))

    assert iso.ts == epoch.ts == offset.ts
    assert iso.ts_ms == 1_795_780_800_000


@pytest.mark.parametrize(
    ("override", "field", "why"),
    [
        ({"speed_rpm": -1480.0}, "speed_rpm", "greater than or equal to 0"),
        ({"fluid_temp_c": 5000.0}, "fluid_temp_c", "less than or equal to 500"),
        ({"vibration_mm_s": "2.4"}, "vibration_mm_s", "valid number"),
        ({"vibration_mm_s": float("nan")}, "vibration_mm_s", "finite number"),
        ({"winding_temp_c": float("inf")}, "winding_temp_c", "finite number"),
        ({"running": "yes"}, "running", "valid boolean"),
        ({"ts": "2026-11-27T12:00:00"}, "ts", "UTC offset"),
        ({"ts": "yesterday"}, "ts", "not ISO-8601"),
        ({"ts": 0}, "ts", "outside 2000..2100"),
        ({"ts": "0001-01-01T00:30:00+01:00"}, "ts", "out of range"),
        ({"ts": "9999-12-31T23:59:59-01:00"}, "ts", "out of range"),
        ({"ts": 1e300}, "ts", "out of range"),
        ({"seq": -1}, "seq", "greater than or equal to 0"),
        ({"motor_id": "../../etc/passwd"}, "motor_id", "should match pattern"),
        ({"motor_id": "motor/+/#"}, "motor_id", "should match pattern"),
        ({"motor_id": "m" * 65}, "motor_id", "should match pattern"),
        ({"motor_id": "m\u043etor-001"}, "motor_id", "should match pattern"),  # Cyrillic o look-alike
        ({"fluid_temp": 80.0}, "fluid_temp", "Extra inputs are not permitted"),
        ({"received_at": 10**400}, "received_at", "less than 4102444800000"),
    ],
)
def test_an_impossible_reading_is_rejected_naming_the_field_and_why(override: dict, field: str, why: str) -> None:
    message = rejection(reading_payload(**override))

    assert f"{field}: " in message
    assert why in message


def test_a_reason_names_ten_fields_and_counts_the_rest() -> None:
    message = rejection(reading_payload(**{f"extra_{i}": i for i in range(25)}))

    assert message.count("Extra inputs are not permitted") == 10
    assert message.endswith("; and 15 more")


def test_a_field_name_from_the_payload_is_quoted_and_escaped_so_the_reason_stays_one_ascii_line() -> None:
    message = rejection(reading_payload(**{"a\nb": 1, "m\u043etor_id": "motor-001", "\u202eevil": 2}))

    assert "'a\\nb': Extra inputs" in message
    assert "'m\\u043etor_id': Extra inputs" in message  # not a second motor_id
    assert "'\\u202eevil': Extra inputs" in message
    assert message.isascii()
    assert message.isprintable()


def test_a_huge_topic_motor_id_is_cut_short_in_the_reason() -> None:
    message = rejection(reading_payload(topic_motor_id="x" * 200_000))

    assert "does not match the topic's motor id 'xxx" in message
    assert message.endswith("...")
    assert len(message) < 400


def test_missing_required_fields_are_each_named() -> None:
    message = rejection({"motor_id": "motor-001"})

    for field in ("motor_type", "ts", "seq", "running"):
        assert f"{field}: Field required" in message


def test_a_payload_whose_motor_id_differs_from_its_topic_is_rejected() -> None:
    message = rejection(load_event("telemetry-topic-mismatch"))

    assert "does not match the topic's motor id 'motor-001'" in message


def test_a_faulted_motor_cannot_claim_to_be_running() -> None:
    message = rejection(reading_payload(fault="bearing_failure", running=True))

    assert "must report running=false" in message


def test_a_legacy_reading_mapped_by_the_rule_is_a_valid_reading() -> None:
    event = TelemetryEvent.model_validate(load_event("telemetry-legacy"))

    assert event.motor_id == "AWS98765"
    assert event.reading().fluid_temp_c == 231


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(
            ("motor_id", "motor_type", "ts", "seq", "running", "speed_rpm", "vibration_mm_s", "fault"), json_values
        ),
    ),
    st.dictionaries(st.text(max_size=12), json_values, max_size=3),
)
def test_any_json_payload_either_parses_or_is_rejected_with_a_reason(known: dict, extra: dict) -> None:
    payload = {**reading_payload(), **known, **extra}
    try:
        event = TelemetryEvent.model_validate(payload)
    except ValidationError as exc:
        reason = describe_validation_error(exc)
    else:
        reason = ""
        assert event.reading().motor_id == payload["motor_id"]
    assert reason or event
