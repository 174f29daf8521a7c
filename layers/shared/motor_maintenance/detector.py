"""The maintenance detector: a pure function (state, input, now, config) -> (state, alarm events).

It replaces the original sample's AWS IoT Events detector model and alarm models. Three
strategies feed one alarm lifecycle per alarm:

- schedule: run hours since the last service reach the service interval;
- condition: a signal past its raise threshold for a minimum duration, until it is back past its
  clear threshold (hysteresis);
- predictive: the model's failure probability at or above its threshold on N predictions in a
  row, until it falls below the clear threshold;
- offline: a motor whose last reading said it was running has sent nothing for a while (checked by
  `check_timers`, which a scheduled function calls), until a reading arrives again.

Lifecycle (IoT Events alarm-model semantics): NORMAL -> ACTIVE when the rule holds; ACTIVE ->
ACKNOWLEDGED by an operator; ACTIVE -> LATCHED when the rule stops holding unacknowledged (or
NORMAL with latching off); ACKNOWLEDGED -> NORMAL when it stops holding; LATCHED -> NORMAL on
acknowledge, -> ACTIVE if the rule holds again; any -> SNOOZED until a time, then NORMAL; any ->
DISABLED until enabled; reset returns ACTIVE, ACKNOWLEDGED or LATCHED to NORMAL and restarts the
rule's evaluation. An operator's report_failure moves no alarm: it is recorded and announced (a label).

No clock reads and no I/O: `now` is a parameter, so the function replays deterministically.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from motor_maintenance.alarms import (
    FAILURE_LOOKBACK_DAYS,
    ActionName,
    AlarmEvent,
    AlarmKind,
    AlarmState,
    OperatorAction,
    Transition,
)
from motor_maintenance.config import (
    OFFLINE_ALARM,
    PREDICTIVE_ALARM,
    SCHEDULE_ALARM,
    ConditionRule,
    DetectorConfig,
)
from motor_maintenance.features import RunningStats
from motor_maintenance.prediction import DRIVERS_MAX, Driver
from motor_maintenance.state import RECENT_ACTIONS_KEPT, AlarmStatus, FailureRecord, MotorState
from motor_maintenance.telemetry import Telemetry, to_epoch_ms
from motor_maintenance.transitions import EventContext, alarm_kind


class ReadingInput(NamedTuple):
    """A validated reading, the model's failure probability for it (None: no prediction) and what drove it."""

    reading: Telemetry
    failure_probability: float | None = None
    drivers: tuple[Driver, ...] = ()
    """The features that pushed the probability up most, largest first (empty: the model did not say)."""
    received_ms: int | None = None
    """When IoT Core received the reading (the rule's timestamp()); None: when it is processed."""
    stats: RunningStats | None = None
    """The feature statistics after this reading (`compute_features`), stored with the state it applies to;
    None keeps the state's."""
    model_version: str | None = None
    """The version of the model that gave the probability (None: it did not say)."""


class Outcome(StrEnum):
    """What the detector did with an input."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    """Already seen: the same reading (ts, seq) or action id."""
    STALE = "stale"
    """Older than the newest reading already applied: arrived out of order."""
    FUTURE = "future"
    """Stamped further in the future than the allowed clock skew."""
    IGNORED = "ignored"
    """A valid action that does not apply in the alarm's current state."""
    REJECTED = "rejected"
    """An action naming an alarm this motor does not have, or an out-of-range request."""


class Decision(NamedTuple):
    """The detector's answer: the next state, the transitions to announce, and why."""

    state: MotorState
    events: tuple[AlarmEvent, ...]
    outcome: Outcome
    reason: str = ""


def new_state(motor_id: str) -> MotorState:
    """The state of a motor never seen before."""
    return MotorState(motor_id=motor_id)


def screen(state: MotorState | None, reading: Telemetry, now: datetime, config: DetectorConfig) -> Decision | None:
    """The decision for a reading the detector will not apply (duplicate, stale, future), else None.

    Callers use it to skip work (features, a model call) for a reading that would be dropped.
    """
    current = state if state is not None else new_state(reading.motor_id)
    return _screen(current, reading, reading.ts_ms, to_epoch_ms(now), config)


def screen_in_order(
    state: MotorState | None, readings: Sequence[Telemetry], now: datetime, config: DetectorConfig
) -> list[tuple[Outcome, str] | None]:
    """`screen` of each reading of one motor as if the ones before it that pass had been applied.

    A batch's readings are screened before any is applied, to know which need features and a model call.
    """
    last_ts_ms, last_seq = (state.last_ts_ms, state.last_seq) if state is not None else (None, None)
    now_ms = to_epoch_ms(now)
    refusals: list[tuple[Outcome, str] | None] = []
    for reading in readings:
        refusal = _refusal(reading.ts_ms, reading.seq, (last_ts_ms, last_seq), now_ms, config)
        refusals.append(refusal)
        if refusal is None:
            last_ts_ms, last_seq = reading.ts_ms, reading.seq
    return refusals


def _screen(state: MotorState, reading: Telemetry, ts_ms: int, now_ms: int, config: DetectorConfig) -> Decision | None:
    refusal = _refusal(ts_ms, reading.seq, (state.last_ts_ms, state.last_seq), now_ms, config)
    return None if refusal is None else Decision(state, (), *refusal)


def _refusal(
    ts_ms: int, seq: int, last: tuple[int | None, int | None], now_ms: int, config: DetectorConfig
) -> tuple[Outcome, str] | None:
    """Why a reading stamped (ts_ms, seq) is not applied after the newest applied one, `last` (ts_ms, seq), or None."""
    last_ts_ms, last_seq = last
    if _beyond_skew(ts_ms, now_ms, config):
        return Outcome.FUTURE, f"reading stamped {(ts_ms - now_ms) / 1000:.0f} s in the future"
    if last_ts_ms is not None and (ts_ms, seq) <= (last_ts_ms, last_seq if last_seq is not None else -1):
        same = ts_ms == last_ts_ms and seq == last_seq
        return (
            (Outcome.DUPLICATE, "reading already applied")
            if same
            else (Outcome.STALE, "reading older than the newest applied")
        )
    return None


def _beyond_skew(at_ms: int, now_ms: int, config: DetectorConfig) -> bool:
    """Stamped further ahead of `now` than clocks are allowed to disagree."""
    return at_ms > now_ms + config.max_clock_skew_s * 1000


def step(
    state: MotorState | None,
    item: ReadingInput | OperatorAction,
    now: datetime,
    config: DetectorConfig,
) -> Decision:
    """Apply one reading or operator action to a motor's state."""
    motor_id = item.reading.motor_id if isinstance(item, ReadingInput) else item.motor_id
    if state is not None and state.motor_id != motor_id:
        raise ValueError(f"state of motor {state.motor_id!r} given an input for {motor_id!r}")
    current = state if state is not None else new_state(motor_id)
    if isinstance(item, ReadingInput):
        return _apply_reading(current, item, to_epoch_ms(now), config)
    return _apply_action(current, item, to_epoch_ms(now), config)


def check_timers(state: MotorState, now: datetime, config: DetectorConfig) -> Decision:
    """What time alone does to a motor, with no reading: snoozes run out, a running motor's silence turns offline.

    The scheduled timer function calls it for the motors whose `next_check_ms` has passed. APPLIED
    when the state changed (it must be saved, with any events), IGNORED when nothing did.
    """
    now_ms = to_epoch_ms(now)
    names = config.alarm_names()
    new = _prepared(state, names)
    events: list[AlarmEvent] = []
    _expire(new, now_ms, names, config, events)
    if config.offline.enabled:
        status = new.alarms[OFFLINE_ALARM]
        silence_ms = _silence_ms(new, now_ms)
        after_ms = config.offline.after_ms
        if not status.held and silence_ms is not None and silence_ms >= after_ms:
            status.held = True
            status.last_value = round(silence_ms / 1000, 3)
        if status.held and new.last_heard_ms is not None:
            # The event sequence is in the key: after a snooze runs out the alarm is raised again, a new event.
            context = EventContext(
                new,
                cause_key=f"o:{new.last_heard_ms}:{new.event_seq}",
                at_ms=new.last_heard_ms + after_ms,
                cause="timer",
                config=config,
                now_ms=now_ms,
            )
            _follow_rule(context, OFFLINE_ALARM, events)
    new.next_check_ms = next_check(new, now_ms, config)
    changed = bool(events) or new.to_dict() != state.to_dict()
    return Decision(new, tuple(events), Outcome.APPLIED if changed else Outcome.IGNORED)


def check_margin_ms(after_ms: int) -> int:
    """How near its stored check time a reading may come and leave it: a quarter of the silence limit (next_check)."""
    return after_ms // 4


def next_check(state: MotorState, now_ms: int, config: DetectorConfig) -> int | None:
    """When the timer must next look at the motor: the earliest snooze end or silence limit (None: never).

    The time is stored in an index the timer queries, and moving it costs an index write. A reading
    keeps the stored time while it is still more than a margin (`check_margin_ms`, a quarter of the
    offline window) away and not later than needed, so a steady stream of readings rewrites the index
    entry about once per three quarters of the window, not once per reading (at the defaults, every
    7.5 minutes of a running motor).

    The margin is what keeps the timer from visiting a live motor: the stored time falls due only if no
    reading of the motor is processed within the margin before it. At the template's defaults a motor
    reads once a minute (the simulator's and costs.py's rate) and a reading is processed at most one
    batch window late (BatchWindowSeconds, 60 s; direct ingestion: at once), so two of a motor's readings
    are processed at most 2 minutes apart, less than the margin of 150 s of the default 600 s window; the
    timer's own tick (a minute) adds slack. Motors that report less often, or batches gathered for longer,
    cost a visit now and then (a read and the entry moved on): never a false alarm, since the visit
    checks the silence itself (check_timers).
    """
    due: int | None = None
    snoozed = [(name, status) for name, status in state.alarms.items() if status.state is AlarmState.SNOOZED]
    if snoozed:  # rare: an operator snoozed an alarm
        names = config.alarm_names()  # an alarm whose rule was removed is frozen: its snooze does not end
        ends = [status.snoozed_until_ms for name, status in snoozed if name in names]
        due = min((end for end in ends if end is not None), default=None)
    margin_ms = 0
    if config.offline.enabled:
        after_ms = config.offline.after_ms
        margin_ms = check_margin_ms(after_ms)
        offline = state.alarms.get(OFFLINE_ALARM)
        if state.last_running and state.last_heard_ms is not None and offline is not None and not offline.held:
            silence_limit_ms = state.last_heard_ms + after_ms
            due = silence_limit_ms if due is None else min(due, silence_limit_ms)
    if due is None:
        return None
    kept = state.next_check_ms
    if kept is not None and now_ms + margin_ms < kept <= due:
        return kept
    return due


def _silence_ms(state: MotorState, now_ms: int) -> int | None:
    """How long a motor last heard running has been silent; None if it was not running (silence is expected)."""
    if not state.last_running or state.last_heard_ms is None:
        return None
    return now_ms - state.last_heard_ms


# --- readings -------------------------------------------------------------------------------


def _apply_reading(state: MotorState, item: ReadingInput, now_ms: int, config: DetectorConfig) -> Decision:
    reading = item.reading
    ts_ms = reading.ts_ms
    refused = _screen(state, reading, ts_ms, now_ms, config)
    if refused is not None:
        return refused
    probability = item.failure_probability
    if probability is not None and not 0.0 <= probability <= 1.0:
        raise ValueError(f"failure probability {probability} is not in [0, 1]")
    if item.drivers and probability is None:
        raise ValueError("drivers without a failure probability")
    drivers = item.drivers[:DRIVERS_MAX]

    names = config.alarm_names()
    new = _prepared(state, names)
    new.motor_type = reading.motor_type
    heard_ms = now_ms if item.received_ms is None else min(item.received_ms, now_ms)
    silence_ms = None if new.last_heard_ms is None else heard_ms - new.last_heard_ms
    new.last_heard_ms = heard_ms if new.last_heard_ms is None else max(new.last_heard_ms, heard_ms)
    if new.last_ts_ms is not None and new.last_running:
        # Run time since the previous reading, but not before a service that reset the counter.
        since_ms = max(new.last_ts_ms, new.last_service_ms or 0)
        gap_s = min((ts_ms - since_ms) / 1000, config.silence_s)
        new.run_hours += max(gap_s, 0.0) / 3600
    signals = reading.signals()

    events: list[AlarmEvent] = []
    _expire(new, now_ms, names, config, events)
    _track_rules(new, signals, probability, ts_ms, silence_ms=silence_ms, config=config)
    moving = [name for name in names if _rule_moves(new.alarms[name])]
    if moving:  # most readings move no alarm: only then are the events' shared details worth gathering
        context = EventContext(
            new, cause_key=f"r:{ts_ms}:{reading.seq}", at_ms=ts_ms, cause="reading", config=config, now_ms=now_ms
        )
        context.reading_seq = reading.seq
        context.readings = signals
        if probability is not None:
            context.probability, context.probability_at_ms, context.drivers = probability, ts_ms, drivers
            context.model_version = item.model_version
        for name in moving:
            _follow_rule(context, name, events)

    new.last_ts_ms = ts_ms
    new.last_seq = reading.seq
    new.last_running = reading.running
    new.last_readings = signals
    if item.stats is not None:
        new.stats = item.stats
    if probability is not None:
        new.failure_probability = probability
        new.probability_ts_ms = ts_ms
        new.probability_drivers = drivers
        new.probability_model_version = item.model_version
    new.next_check_ms = next_check(new, now_ms, config)
    return Decision(new, tuple(events), Outcome.APPLIED)


def _track_rules(
    state: MotorState,
    signals: dict[str, float],
    probability: float | None,
    ts_ms: int,
    *,
    silence_ms: int | None,
    config: DetectorConfig,
) -> None:
    """What a reading tells each rule: whether it holds now (`held`) and the value it last saw."""
    alarms = state.alarms
    schedule = alarms[SCHEDULE_ALARM]
    schedule.held = state.run_hours >= config.schedule.service_interval_h
    schedule.last_value = state.run_hours
    for rule in config.conditions:
        value = signals.get(rule.signal)
        if value is not None:
            _track_condition(alarms[rule.name], rule, value, ts_ms, config.silence_s)
    if probability is not None:
        _track_prediction(alarms[PREDICTIVE_ALARM], probability, config)
    offline = alarms.get(OFFLINE_ALARM) if config.offline.enabled else None
    if offline is not None and offline.held:  # it speaks again
        offline.held = False
        offline.last_value = None if silence_ms is None else round(silence_ms / 1000, 3)


def _track_condition(status: AlarmStatus, rule: ConditionRule, value: float, ts_ms: int, silence_s: float) -> None:
    # A duration is only "held" if the signal was watched throughout: after a longer silence
    # (readings without the signal, or none at all) the excursion starts again from this reading.
    silent = status.last_seen_ms is not None and ts_ms - status.last_seen_ms > silence_s * 1000
    status.last_value = value
    status.last_seen_ms = ts_ms
    if silent and not status.held:
        status.pending_since_ms = None
    if status.held:
        if rule.back_to_normal(value):
            status.held = False
            status.pending_since_ms = None
        return
    if not rule.crossed(value):
        status.pending_since_ms = None
        return
    if status.pending_since_ms is None:
        status.pending_since_ms = ts_ms
    if ts_ms - status.pending_since_ms >= rule.min_duration_s * 1000:
        status.held = True


def _track_prediction(status: AlarmStatus, probability: float, config: DetectorConfig) -> None:
    rule = config.predictive
    status.last_value = probability
    status.consecutive = status.consecutive + 1 if probability >= rule.raise_threshold else 0
    if status.held:
        if probability < rule.clear_threshold:
            status.held = False
    elif status.consecutive >= rule.consecutive:
        status.held = True


def _rule_moves(status: AlarmStatus) -> bool:
    """Whether the alarm is not where its rule says it should be: raised while the rule holds, else not."""
    if status.held:
        return status.state in (AlarmState.NORMAL, AlarmState.LATCHED)
    return status.state in (AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED)


def _follow_rule(context: EventContext, name: str, events: list[AlarmEvent]) -> None:
    """Level-triggered lifecycle: move the alarm to where its rule says it should be."""
    status = context.state.alarms[name]
    if not _rule_moves(status):
        return
    if status.held:
        if status.state is AlarmState.NORMAL:
            status.active_since_ms = context.at_ms
        events.append(context.event(name, Transition.RAISED, status.state, AlarmState.ACTIVE))
        status.state = AlarmState.ACTIVE
    else:
        latched = status.state is AlarmState.ACTIVE and context.config.latch
        target = AlarmState.LATCHED if latched else AlarmState.NORMAL
        events.append(context.event(name, Transition.CLEARED, status.state, target))
        status.state = target
        if target is AlarmState.NORMAL:
            status.active_since_ms = None


def _expire(
    state: MotorState, now_ms: int, names: Sequence[str], config: DetectorConfig, events: list[AlarmEvent]
) -> None:
    """Snoozes that have run out end: their alarms go back to NORMAL."""
    for name in names:
        status = state.alarms[name]
        if status.state is AlarmState.SNOOZED and (status.snoozed_until_ms or 0) <= now_ms:
            until_ms = status.snoozed_until_ms or now_ms
            context = EventContext(
                state, cause_key=f"s:{until_ms}", at_ms=until_ms, cause="timer", config=config, now_ms=now_ms
            )
            events.append(context.event(name, Transition.SNOOZE_EXPIRED, AlarmState.SNOOZED, AlarmState.NORMAL))
            status.state = AlarmState.NORMAL
            status.snoozed_until_ms = None
            status.active_since_ms = None


# --- operator actions -----------------------------------------------------------------------


def _apply_action(state: MotorState, action: OperatorAction, now_ms: int, config: DetectorConfig) -> Decision:
    if action.action_id in state.recent_action_ids:
        return Decision(state, (), Outcome.DUPLICATE, "action already applied")
    at_ms = to_epoch_ms(action.ts)
    if _beyond_skew(at_ms, now_ms, config):
        return Decision(state, (), Outcome.FUTURE, "action stamped in the future")
    refusal = _action_refusal(action, now_ms, config)
    if refusal:
        return Decision(state, (), Outcome.REJECTED, refusal)

    names = config.alarm_names()
    new = _prepared(state, names)
    new.recent_action_ids = (*new.recent_action_ids, action.action_id)[-RECENT_ACTIONS_KEPT:]
    events: list[AlarmEvent] = []
    _expire(new, now_ms, names, config, events)  # a snooze that ran out ends before the action applies
    context = EventContext(
        new, cause_key=f"a:{action.action_id}", at_ms=at_ms, cause="action", config=config, now_ms=now_ms
    )
    context.action = action
    reason = _ACTIONS[action.action](context, action, events)
    new.next_check_ms = next_check(new, now_ms, config)
    if reason:
        return Decision(new, tuple(events), Outcome.IGNORED, reason)
    return Decision(new, tuple(events), Outcome.APPLIED)


_DAY_MS = 86_400_000


def _action_refusal(action: OperatorAction, now_ms: int, config: DetectorConfig) -> str:
    """Why this configuration cannot apply the action now ('' if it can): what the action's schema alone cannot know."""
    names = config.alarm_names()
    # The schema holds failed_at within 30 days of the report's own ts; an old ts must not stretch that.
    if action.failed_at is not None and now_ms - to_epoch_ms(action.failed_at) > FAILURE_LOOKBACK_DAYS * _DAY_MS:
        return f"failed_at is more than {FAILURE_LOOKBACK_DAYS} days ago"
    if action.alarm is not None and action.action is not ActionName.SERVICE_COMPLETE and action.alarm not in names:
        return f"motor has no alarm {action.alarm!r}; alarms: {', '.join(names)}"
    if action.snooze_minutes is not None and action.snooze_minutes * 60 > config.max_snooze_s:
        return f"snooze longer than {config.max_snooze_s / 3600:.0f} h"
    if action.failure_mode is not None and action.failure_mode not in config.failure_modes:
        return f"unknown failure_mode {action.failure_mode!r}; modes: {', '.join(config.failure_modes)}"
    if action.verdict is not None and alarm_kind(action.alarm or "") not in _JUDGED_KINDS:
        return f"a verdict applies to a predictive or condition alarm, not to {action.alarm!r}"
    return ""


def _acknowledge(context: EventContext, action: OperatorAction, events: list[AlarmEvent]) -> str:
    name = action.alarm or ""
    status = context.state.alarms[name]
    if status.state is AlarmState.ACTIVE:
        target = AlarmState.ACKNOWLEDGED
    elif status.state is AlarmState.LATCHED:
        target = AlarmState.NORMAL
    else:
        return f"cannot acknowledge {name!r} in state {status.state.value}"
    # The event names the episode it ends (active_since), as a reset's does: a verdict is joined to its raise by it.
    events.append(context.event(name, Transition.ACKNOWLEDGED, status.state, target))
    status.state = target
    if target is AlarmState.NORMAL:
        status.active_since_ms = None
    return ""


def _snooze(context: EventContext, action: OperatorAction, events: list[AlarmEvent]) -> str:
    name = action.alarm or ""
    status = context.state.alarms[name]
    if status.state is AlarmState.DISABLED:
        return f"cannot snooze {name!r}: it is disabled"
    # From when the action is processed, not when it was stamped: "snooze for 2 h" means from now.
    # A redelivery cannot extend it: the action id is remembered.
    until_ms = context.now_ms + int((action.snooze_minutes or 0) * 60_000)
    from_state = status.state
    status.state = AlarmState.SNOOZED
    status.snoozed_until_ms = until_ms
    events.append(context.event(name, Transition.SNOOZED, from_state, AlarmState.SNOOZED))
    return ""


def _disable(context: EventContext, action: OperatorAction, events: list[AlarmEvent]) -> str:
    name = action.alarm or ""
    status = context.state.alarms[name]
    if status.state is AlarmState.DISABLED:
        return f"{name!r} is already disabled"
    events.append(context.event(name, Transition.DISABLED, status.state, AlarmState.DISABLED))
    status.state = AlarmState.DISABLED
    status.snoozed_until_ms = None
    status.active_since_ms = None
    return ""


def _enable(context: EventContext, action: OperatorAction, events: list[AlarmEvent]) -> str:
    name = action.alarm or ""
    status = context.state.alarms[name]
    if status.state is not AlarmState.DISABLED:
        return f"{name!r} is not disabled"
    events.append(context.event(name, Transition.ENABLED, AlarmState.DISABLED, AlarmState.NORMAL))
    _restart_rule(status)
    return ""


def _reset(context: EventContext, action: OperatorAction, events: list[AlarmEvent]) -> str:
    name = action.alarm or ""
    status = context.state.alarms[name]
    if status.state not in (AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED, AlarmState.LATCHED):
        return f"cannot reset {name!r} in state {status.state.value}"
    events.append(context.event(name, Transition.RESET, status.state, AlarmState.NORMAL))
    _restart_rule(status)
    return ""


def _service_complete(context: EventContext, action: OperatorAction, events: list[AlarmEvent]) -> str:
    state = context.state
    status = state.alarms[SCHEDULE_ALARM]
    context.run_hours_before = state.run_hours
    state.run_hours = 0.0
    state.last_service_ms = context.at_ms
    target = AlarmState.NORMAL if status.state in _RAISED_STATES else status.state
    events.append(context.event(SCHEDULE_ALARM, Transition.SERVICED, status.state, target))
    status.held = False
    status.last_value = 0.0
    if target is AlarmState.NORMAL:
        status.state = AlarmState.NORMAL
        status.active_since_ms = None
    return ""


def _report_failure(context: EventContext, action: OperatorAction, events: list[AlarmEvent]) -> str:
    """The motor failed: remember the newest failure and announce it on the predictive alarm, which stays as it is.

    The failure is the label the predictive alarm is judged against: its event quotes the model's last probability.
    """
    state = context.state
    failed_ms = to_epoch_ms(action.failed_at) if action.failed_at is not None else context.at_ms
    if state.last_failure is None or failed_ms >= state.last_failure.at_ms:  # a late report of an older one: kept out
        state.last_failure = FailureRecord(failed_ms, action.failure_mode or "", action.action_id)
    status = state.alarms[PREDICTIVE_ALARM]
    events.append(context.event(PREDICTIVE_ALARM, Transition.FAILURE_REPORTED, status.state, status.state))
    return ""


def _restart_rule(status: AlarmStatus) -> None:
    """Back to NORMAL with the rule's evaluation started afresh (durations and debounce re-run)."""
    status.state = AlarmState.NORMAL
    status.held = False
    status.pending_since_ms = None
    status.consecutive = 0
    status.active_since_ms = None
    status.snoozed_until_ms = None


_RAISED_STATES = (AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED, AlarmState.LATCHED)
_ACTIONS = {
    ActionName.ACKNOWLEDGE: _acknowledge,
    ActionName.SNOOZE: _snooze,
    ActionName.DISABLE: _disable,
    ActionName.ENABLE: _enable,
    ActionName.RESET: _reset,
    ActionName.SERVICE_COMPLETE: _service_complete,
    ActionName.REPORT_FAILURE: _report_failure,
}
_JUDGED_KINDS = (AlarmKind.PREDICTIVE, AlarmKind.CONDITION)
"""The alarms a verdict may judge: the ones that claim something is wrong with the motor."""


# --- shared ---------------------------------------------------------------------------------


def _prepared(state: MotorState, names: Sequence[str]) -> MotorState:
    """A copy of the state with a status for every alarm the configuration defines (`names`).

    An alarm whose rule is not in this configuration keeps its status untouched: it is neither
    evaluated nor dropped. Two containers may briefly run different configurations (one still
    caching the previous SSM document); dropping the state there would re-raise, and re-alert,
    an alarm that is already active as soon as the other configuration sees the motor again.
    """
    new = state.copy()
    for name in names:
        if name not in new.alarms:
            new.alarms[name] = AlarmStatus()
    return new
