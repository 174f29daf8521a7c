"""Forewarned failures and false alarms: the rule of model/forewarning.py, and the local demo's summary applying it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from device.physics import FailureMode, Sample, Truth
from local.report import summary_lines
from local.router import Routed
from local.watch import Watch
from model.forewarning import Episode, Verdict, judge
from motor_maintenance.telemetry import Telemetry
from tests.support import T0_MS, load_event, reading_payload

H = 3_600_000
FAILURE_MS = T0_MS + 100 * H


def test_an_alarm_up_through_the_day_before_a_failure_forewarned_it_from_its_raise() -> None:
    raised_long_before = Episode(FAILURE_MS - 30 * H, None)

    judged = judge([raised_long_before], [FAILURE_MS])

    assert judged.verdicts == [Verdict.FOREWARNED]
    assert judged.lead_h([raised_long_before], [FAILURE_MS]) == [pytest.approx(30.0)]


@pytest.mark.parametrize(("cleared_h_before", "verdict"), [(23.0, Verdict.FOREWARNED), (25.0, Verdict.FALSE)])
def test_an_alarm_cleared_more_than_24_h_before_the_failure_did_not_forewarn_it(
    cleared_h_before: float, verdict: Verdict
) -> None:
    episode = Episode(FAILURE_MS - 40 * H, FAILURE_MS - round(cleared_h_before * H))

    assert judge([episode], [FAILURE_MS]).verdicts == [verdict]


def test_the_earliest_raise_that_counts_gives_the_lead_time_and_one_alarm_can_forewarn_two_failures() -> None:
    episodes = [Episode(FAILURE_MS - 5 * H, FAILURE_MS + 2 * H), Episode(FAILURE_MS - 12 * H, None)]
    failures = [FAILURE_MS, FAILURE_MS + 10 * H]

    judged = judge(episodes, failures)

    assert judged.earliest == [1, 1]
    assert judged.lead_h(episodes, failures) == [pytest.approx(12.0), pytest.approx(22.0)]
    assert judged.verdicts == [Verdict.FOREWARNED, Verdict.FOREWARNED]


def test_an_alarm_raised_after_the_failure_is_false_and_the_failure_not_forewarned() -> None:
    judged = judge([Episode(FAILURE_MS + H, FAILURE_MS + 2 * H)], [FAILURE_MS])

    assert (judged.earliest, judged.verdicts) == ([None], [Verdict.FALSE])


def test_with_the_end_of_the_record_known_an_alarm_a_failure_could_still_follow_is_open() -> None:
    end_ms = T0_MS + 50 * H
    still_up, cleared_lately, cleared_long_ago = (
        Episode(T0_MS + 40 * H, None),
        Episode(T0_MS + 10 * H, T0_MS + 30 * H),
        Episode(T0_MS, T0_MS + 20 * H),
    )

    judged = judge([still_up, cleared_lately, cleared_long_ago], [], end_ms=end_ms)

    assert judged.verdicts == [Verdict.OPEN, Verdict.OPEN, Verdict.FALSE]


# --- the local demo's summary -------------------------------------------------------------------


def sample(at_h: float, *, failed: bool = False, motor_id: str = "motor-002") -> Sample:
    reading = Telemetry.model_validate(reading_payload(round(at_h * 60), at_s=at_h * 3600, motor_id=motor_id))
    mode = FailureMode.BEARING_WEAR if failed else None
    return Sample(reading, Truth({}, mode, at_h * 3600))


def alarm_event(transition: str, at_h: float, **extra: Any) -> Routed:
    states = {"raised": ("NORMAL", "ACTIVE"), "cleared": ("ACTIVE", "LATCHED")}[transition]
    event = load_event("alarm-predictive-raised") | {
        "event_id": hashlib.md5(f"{extra}-{transition}-{at_h:g}".encode()).hexdigest(),  # noqa: S324 - an id
        "motor_id": "motor-002",
        "transition": transition,
        "from_state": states[0],
        "to_state": states[1],
        "at": T0_MS + round(at_h * H),
        **extra,
    }
    return Routed("AlarmRule", "motors/motor-002/alarms", "AlertFunction", event)


def test_the_demo_summary_judges_failures_and_false_alarms_by_training_s_24_hour_rule() -> None:
    """Given a predictive alarm raised and cleared two days before a failure (which a raise-within-72-h rule
    would have credited) and one raised 40 h before it and up until it, the summary calls the first false
    and credits the second from its raise."""
    watch = Watch(("motor-002",))
    watch.on_stack("routed", alarm_event("raised", 50.0))
    watch.on_stack("routed", alarm_event("cleared", 54.0))
    watch.on_stack("routed", alarm_event("raised", 60.0))
    watch.on_sample(sample(99.5))
    watch.on_sample(sample(100.0, failed=True))
    watch.on_sample(sample(130.0, failed=True))

    summary = watch.summary(sent=3)

    [(failure, lead_h, alarm)] = summary.failures
    assert (failure.at_ms, alarm) == (FAILURE_MS, "predictive")
    assert lead_h == pytest.approx(40.0)
    assert [r.at_ms for r in summary.false_alarms] == [T0_MS + 50 * H]
    assert summary.open_warnings == []
    lines = "\n".join(summary_lines(summary))
    assert "forewarned (an alarm up in the 24 h before): 1 of 1" in lines
    assert "false alarms (a predictive or condition alarm up in none of the 24 h before a failure): 1" in lines


def test_the_demo_summary_leaves_an_alarm_a_failure_could_still_follow_unjudged() -> None:
    """Given, at the end of the run, a condition alarm still up and a predictive alarm cleared 29 h before,
    only the condition alarm is too early to judge: no failure after the end can have it up in its 24 h."""
    watch = Watch(("motor-002",))
    watch.on_stack("routed", alarm_event("raised", 10.0))
    watch.on_stack("routed", alarm_event("cleared", 11.0))
    vibration = {"alarm": "vibration_zone_d", "kind": "condition"}
    watch.on_stack("routed", alarm_event("raised", 35.0, **vibration))
    watch.on_sample(sample(40.0))

    summary = watch.summary(sent=1)

    assert [(r.alarm, r.at_ms) for r in summary.false_alarms] == [("predictive", T0_MS + 10 * H)]
    assert [(r.motor_id, r.alarm) for r in summary.open_warnings] == [("motor-002", "vibration_zone_d")]
    assert "too early to judge" in "\n".join(summary_lines(summary))
