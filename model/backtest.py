"""Maintenance-strategy backtest: one fleet history replayed through the detector under each strategy.

    python model/backtest.py                                # 40 simulated motors x 365 days, seed 7
    python model/backtest.py --recording recording.jsonl    # a device/simulate.py --record file
    python model/backtest.py replay recording.jsonl         # print every alarm transition (model/replay.py)

Strategies: schedule only, condition only, predictive only, all three. "X only" is the detector
configuration in force with the other rules disabled: the schedule by a service interval no motor
reaches (NEVER_H run hours), conditions by an empty rule list, the prediction by raise and clear
threshold 1.0 with 100 consecutive predictions (a probability must be exactly 1.0, 100 times in a
row, which a sigmoid output in float32 does not reach in practice).

This is a counterfactual cost model over ONE fixed history: the simulated motors are not serviced
when an alarm is raised, so every failure happens as simulated, and a failure the strategy warned
of is costed as if its repair had been planned. The detector is told `service_complete` right after
each schedule alarm (the planned service resets its run-hours counter; the motor's wear is not reset).

Scoring, per motor, by the rule training's evaluation and the demo use (model/forewarning.py `judge`),
for every strategy alike: an alarm episode runs from a raise to the alarm's clear (or service, reset,
snooze, disable); a failure is caught if an episode of the strategy was up at some moment of the
warning window (24 calendar hours) before it, and its lead time is from the earliest such raise.
An episode that forewarned no failure is an unnecessary intervention: a planned service if it is a
schedule alarm, a false alarm otherwise. Raises while the motor is already down announce nothing
and are counted apart.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

if not __package__:  # run as a script: make `model` and `device` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

with setup_needed("model/backtest.py"):
    import numpy as np
    from numpy.typing import NDArray

    from device.history import History, generate
    from device.physics import DAY_S, NO_FAILURE, FleetConfig
    from model import svg
    from model.artifact import load_booster
    from model.dataset import build
    from model.forewarning import WARNING_WINDOW_H, Episode, Verdict, judge
    from model.replay import DEFAULT_MODEL, NO_TRUTH, detector_config, load_recording, probabilities
    from motor_maintenance.alarms import ActionName, AlarmEvent, OperatorAction, Transition
    from motor_maintenance.config import SCHEDULE_ALARM, DetectorConfig
    from motor_maintenance.detector import ReadingInput, step
    from motor_maintenance.state import MotorState
    from motor_maintenance.telemetry import Telemetry

NEVER_H = 1e12
"""A service interval in run hours that no motor reaches: the schedule rule never holds."""
PREDICTIVE_OFF = {"raise_threshold": 1.0, "clear_threshold": 1.0, "consecutive": 100}
STRATEGIES = ("schedule", "condition", "predictive", "all")
ENDS = frozenset({Transition.CLEARED, Transition.SERVICED, Transition.RESET, Transition.SNOOZED, Transition.DISABLED})
"""Transitions that take a raised alarm down: its episode ends there (model/forewarning.py)."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class Costs:
    """What an outcome costs (currency-neutral) and how long it keeps a motor down."""

    planned_service: float = 2000.0
    unplanned_failure: float = 15000.0
    false_alarm: float = 500.0
    planned_downtime_h: float = 8.0
    """Downtime of a planned service, and of a caught failure's planned repair."""
    false_alarm_downtime_h: float = 0.0
    """Downtime of an inspection that finds nothing (the motor keeps running by default)."""
    window_h: float = WARNING_WINDOW_H
    """Calendar hours before a failure in which an alarm that was up catches it."""


class Raised(NamedTuple):
    """One alarm episode: the reading index of its raise, the alarm, the index of its end (None: still up)."""

    at: int
    alarm: str
    ended: int | None = None


@dataclass(frozen=True)
class Track:
    """One motor's timeline: times, and (if known) when it was down and its failures."""

    motor_id: str
    ts_ms: NDArray[np.int64]
    down: NDArray[np.bool_] | None
    onsets: NDArray[np.intp] | None


@dataclass
class Outcome:
    """One strategy's tally over the fleet."""

    failures: int | None = 0
    caught: int | None = 0
    lead_h: list[float] = field(default_factory=list)
    raises: dict[str, int] = field(default_factory=dict)
    planned_services: int | None = 0
    false_alarms: int | None = 0
    raises_while_down: int | None = 0
    failure_downtime_h: float = 0.0
    """Downtime of the failures as simulated (missed ones keep it; caught ones get planned_downtime_h)."""

    def summary(self, costs: Costs) -> dict[str, Any]:
        known = self.failures is not None
        result: dict[str, Any] = {"raises_per_alarm": dict(sorted(self.raises.items()))}
        if not known:
            return {**result, "failures": "unknown (the recording carries no ground truth)"}
        return {**result, **score(self, costs)}


def score(o: Outcome, costs: Costs) -> dict[str, Any]:
    """Counts, lead times, downtime and cost of a strategy, from the tallies and the documented costs."""
    failures, caught = o.failures or 0, o.caught or 0
    services, false_alarms = o.planned_services or 0, o.false_alarms or 0
    missed = failures - caught
    cost = (
        caught * costs.planned_service
        + missed * costs.unplanned_failure
        + services * costs.planned_service
        + false_alarms * costs.false_alarm
    )
    downtime = (
        o.failure_downtime_h
        + (caught + services) * costs.planned_downtime_h
        + false_alarms * costs.false_alarm_downtime_h
    )
    leads = o.lead_h
    return {
        "failures": failures,
        "caught": caught,
        "missed": missed,
        "lead_h_median": round(float(np.median(leads)), 1) if leads else None,
        "lead_h_p10": round(float(np.percentile(leads, 10)), 1) if leads else None,
        "unnecessary_interventions": services + false_alarms,
        "planned_services": services,
        "false_alarms": false_alarms,
        "raises_while_down": o.raises_while_down,
        "downtime_h": round(downtime, 1),
        "cost": round(cost, 2),
    }


def strategy_configs(base: DetectorConfig) -> dict[str, DetectorConfig]:
    """Each strategy alone (the others disabled, as the module docstring says) and all three."""
    dumped: dict[str, Any] = base.model_dump()
    no_schedule = {**dumped["schedule"], "service_interval_h": NEVER_H}
    no_predictive = {**dumped["predictive"], **PREDICTIVE_OFF}
    variants: dict[str, dict[str, Any]] = {
        "schedule": {"conditions": [], "predictive": no_predictive},
        "condition": {"schedule": no_schedule, "predictive": no_predictive},
        "predictive": {"schedule": no_schedule, "conditions": []},
        "all": {},
    }
    return {name: DetectorConfig.model_validate({**dumped, **change}) for name, change in variants.items()}


def raises_of(readings: Sequence[Telemetry], chances: Sequence[float | None], config: DetectorConfig) -> list[Raised]:
    """Every alarm episode, in raise order; a schedule raise is followed by service_complete (which ends it)."""
    state: MotorState | None = None
    found: list[Raised] = []
    up: dict[str, int] = {}  # alarm -> position in `found` of its open episode

    def note(events: Sequence[AlarmEvent], index: int) -> None:
        for event in events:
            if event.transition is Transition.RAISED and event.alarm not in up:
                up[event.alarm] = len(found)
                found.append(Raised(index, event.alarm))
            elif event.transition in ENDS and event.alarm in up:
                position = up.pop(event.alarm)
                found[position] = found[position]._replace(ended=index)

    for index, (reading, chance) in enumerate(zip(readings, chances, strict=True)):
        now = datetime.fromtimestamp(reading.ts_ms / 1000, UTC)
        decision = step(state, ReadingInput(reading, failure_probability=chance), now, config)
        state = decision.state
        note(decision.events, index)
        if any(e.transition is Transition.RAISED and e.alarm == SCHEDULE_ALARM for e in decision.events):
            action = OperatorAction(
                motor_id=reading.motor_id,
                action=ActionName.SERVICE_COMPLETE,
                action_id=f"backtest-{reading.seq}",
                ts=reading.ts_ms,
                operator="backtest",
            )
            serviced = step(state, action, now, config)
            state = serviced.state
            note(serviced.events, index)
    return found


def tally(outcome: Outcome, track: Track, raised: Sequence[Raised], window_h: float) -> None:
    """Add one motor's alarm episodes under one strategy to the strategy's outcome (model/forewarning.py's rule)."""
    for episode in raised:
        outcome.raises[episode.alarm] = outcome.raises.get(episode.alarm, 0) + 1
    down, onsets = track.down, track.onsets
    if onsets is None or down is None or outcome.failures is None:
        outcome.failures = outcome.caught = outcome.planned_services = None
        outcome.false_alarms = outcome.raises_while_down = None
        return
    ts = track.ts_ms.tolist()
    spans = [Episode(ts[e.at], None if e.ended is None else ts[e.ended]) for e in raised]
    failures_ms = [ts[onset] for onset in onsets.tolist()]
    judged = judge(spans, failures_ms, window_h=window_h)
    services, false_alarms, while_down = 0, 0, 0
    for onset, lead_h in zip(onsets.tolist(), judged.lead_h(spans, failures_ms), strict=True):
        if lead_h is None:
            outcome.failure_downtime_h += _downtime_h(track.ts_ms, down, onset)
        else:
            outcome.lead_h.append(lead_h)
    for episode, verdict in zip(raised, judged.verdicts, strict=True):
        if down[episode.at]:
            while_down += 1
        elif verdict is Verdict.FOREWARNED:
            continue
        elif episode.alarm == SCHEDULE_ALARM:
            services += 1
        else:
            false_alarms += 1
    outcome.failures += len(failures_ms)
    outcome.caught = (outcome.caught or 0) + sum(index is not None for index in judged.earliest)
    outcome.planned_services = (outcome.planned_services or 0) + services
    outcome.false_alarms = (outcome.false_alarms or 0) + false_alarms
    outcome.raises_while_down = (outcome.raises_while_down or 0) + while_down


def _downtime_h(ts_ms: NDArray[np.int64], down: NDArray[np.bool_], onset: int) -> float:
    """Hours from a failure's first reading to the motor's next reading that is up (or the last reading)."""
    up = np.flatnonzero(~down[onset:])
    end = onset + int(up[0]) if len(up) else len(ts_ms) - 1
    return float(ts_ms[end] - ts_ms[onset]) / 3.6e6


def history_track(history: History, column: int) -> Track:
    """A simulated motor's timeline with its ground truth."""
    return Track(
        history.motor_ids[column],
        history.ts_ms,
        history.failed_mode[:, column] != NO_FAILURE,
        history.failure_onsets(column),
    )


def recorded_track(motor_id: str, readings: Sequence[Telemetry], failed: Sequence[str | None]) -> Track:
    """A recorded motor's timeline; its failures only if the recording carries the truth."""
    ts = np.asarray([r.ts_ms for r in readings], dtype=np.int64)
    if any(mode == NO_TRUTH for mode in failed):
        return Track(motor_id, ts, None, None)
    down = np.asarray([mode is not None for mode in failed], dtype=bool)
    onsets = np.flatnonzero(down & ~np.concatenate(([True], down[:-1])))
    return Track(motor_id, ts, down, onsets)


def _simulated_motor(
    history: History, chances: list[float | None], configs: dict[str, DetectorConfig]
) -> dict[str, list[Raised]]:
    """Worker: one motor's raises under every strategy."""
    readings = list(history.readings(0))
    return {name: raises_of(readings, chances, config) for name, config in configs.items()}


def backtest_history(
    history: History,
    booster: Any,
    configs: dict[str, DetectorConfig],
    costs: Costs,
    *,
    workers: int = 1,
    log: Log = print,
) -> dict[str, Outcome]:
    """Every strategy over a simulated history, motors in parallel processes."""
    started = time.perf_counter()
    data = build(history, workers=workers, log=log)
    predicted = np.asarray(booster.inplace_predict(data.features, missing=np.nan), dtype=np.float64)
    grid = np.full(history.running.shape, np.nan)
    grid[data.step, data.column] = predicted
    log(f"  predicted {len(predicted):,} readings in {time.perf_counter() - started:.0f} s")
    columns = range(len(history.motor_ids))

    def chances(column: int) -> list[float | None]:
        return [None if np.isnan(p) else float(p) for p in grid[:, column].tolist()]

    outcomes = {name: Outcome() for name in configs}
    results: dict[int, dict[str, list[Raised]]] = {}
    if workers <= 1:
        for column in columns:
            results[column] = _simulated_motor(history.motor(column), chances(column), configs)
            log(f"  replayed motor {column + 1}/{len(columns)} under {len(configs)} strategies")
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {c: pool.submit(_simulated_motor, history.motor(c), chances(c), configs) for c in columns}
            for column, future in futures.items():
                results[column] = future.result()
                log(f"  replayed motor {column + 1}/{len(columns)} under {len(configs)} strategies")
    for column in columns:
        track = history_track(history, column)
        for name, raised in results[column].items():
            tally(outcomes[name], track, raised, costs.window_h)
    return outcomes


def backtest_recording(
    path: Path, booster: Any, configs: dict[str, DetectorConfig], costs: Costs, *, log: Log = print
) -> dict[str, Outcome]:
    """Every strategy over a recording (device/simulate.py --record)."""
    outcomes = {name: Outcome() for name in configs}
    for motor_id, rows in load_recording(path).items():
        readings = [r.reading for r in rows]
        chances = probabilities(readings, booster)
        track = recorded_track(motor_id, readings, [r.failed_mode for r in rows])
        for name, config in configs.items():
            tally(outcomes[name], track, raises_of(readings, chances, config), costs.window_h)
        log(f"  replayed {motor_id}: {len(readings)} readings")
    return outcomes


def table(summaries: dict[str, dict[str, Any]]) -> str:
    """The plain-text table printed on stdout."""
    columns = [
        ("failures", "failures"),
        ("caught", "caught"),
        ("lead_h_median", "lead med h"),
        ("lead_h_p10", "lead p10 h"),
        ("planned_services", "sched svc"),
        ("false_alarms", "false alm"),
        ("downtime_h", "downtime h"),
        ("cost", "cost"),
    ]
    lines = [f"{'strategy':<11}" + "".join(f"{title:>12}" for _, title in columns)]
    for name, summary in summaries.items():
        cells = [summary.get(key) for key, _ in columns]
        lines.append(f"{name:<11}" + "".join(f"{'-' if c is None or isinstance(c, str) else c:>12}" for c in cells))
    return "\n".join(lines)


def plot(summaries: dict[str, dict[str, Any]], path: Path) -> Path:
    """Cost and caught failures per strategy, as bars (SVG)."""
    names = list(summaries)
    failures = [float(summaries[n].get("failures") or 0) for n in names]
    cost = svg.Chart(
        title="Cost per strategy", x_label="strategy", y_label="cost", width=500, categories=names, grid="y"
    )
    cost.bars([float(summaries[n].get("cost") or 0) for n in names], color=svg.ORANGE)
    caught = svg.Chart(
        title="Failures caught (alarm up in the window before)",
        x_label="strategy",
        y_label="failures",
        width=500,
        categories=names,
        grid="y",
        y_limits=(0.0, 1.25 * max([*failures, 1.0])),  # room for the legend
    )
    caught.bars(failures, color=svg.LIGHT_GREY, label="failures")
    caught.bars([float(summaries[n].get("caught") or 0) for n in names], color=svg.BLUE, label="caught")
    return svg.save(path, cost, caught)


def write(out: Path, summaries: dict[str, dict[str, Any]], meta: dict[str, Any]) -> tuple[Path, Path]:
    """backtest.json and backtest.svg in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    document = {**meta, "strategies": summaries}
    json_path = out / "backtest.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return json_path, plot(summaries, out / "backtest.svg")


def assumptions(costs: Costs, source: str) -> list[str]:
    """The assumptions of the cost model, printed and written."""
    return [
        f"source: {source}; one fixed history: motors are not serviced when alarmed (counterfactual costs)",
        f"a failure is caught if an alarm was up at some moment of the {costs.window_h:g} calendar hours before it "
        "(model/forewarning.py, as training's evaluation and the demo)",
        f"a caught failure is repaired as planned: cost {costs.planned_service:g}, "
        f"downtime {costs.planned_downtime_h:g} h instead of the simulated one",
        f"a missed failure: cost {costs.unplanned_failure:g}, downtime as simulated",
        f"a schedule alarm that caught no failure is a planned service: cost {costs.planned_service:g}, "
        f"downtime {costs.planned_downtime_h:g} h (the detector is told service_complete)",
        f"any other alarm that caught no failure is a false alarm: cost {costs.false_alarm:g}, "
        f"downtime {costs.false_alarm_downtime_h:g} h",
    ]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Backtest maintenance strategies (schedule, condition, predictive, all) on one history. "
        "'backtest.py replay FILE' prints a recording's alarm transitions instead (model/replay.py).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = p.add_argument_group("history")
    source.add_argument("--motors", type=int, default=40)
    source.add_argument("--days", type=float, default=365.0)
    source.add_argument("--seed", type=int, default=7, help="7: not training's seed 1")
    source.add_argument("--wear-scale", type=float, default=1.0)
    source.add_argument("--recording", type=Path, metavar="FILE", help="a device/simulate.py --record file instead")
    source.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    source.add_argument("--detector-config", metavar="JSON|FILE", help="detector overrides, as in the SSM parameter")
    source.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    cost = p.add_argument_group("costs (currency-neutral) and downtime")
    cost.add_argument("--planned-service-cost", type=float, default=Costs.planned_service)
    cost.add_argument("--unplanned-failure-cost", type=float, default=Costs.unplanned_failure)
    cost.add_argument("--false-alarm-cost", type=float, default=Costs.false_alarm)
    cost.add_argument("--planned-downtime-h", type=float, default=Costs.planned_downtime_h)
    cost.add_argument("--false-alarm-downtime-h", type=float, default=Costs.false_alarm_downtime_h)
    cost.add_argument("--window-h", type=float, default=Costs.window_h, help="warning window, calendar hours")
    p.add_argument("--out", type=Path, default=Path("model/output/backtest"))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["replay"]:
        from model import replay  # noqa: PLC0415 - the subcommand lives there

        return replay.main(argv[1:])
    args = parser().parse_args(argv)
    costs = Costs(
        args.planned_service_cost,
        args.unplanned_failure_cost,
        args.false_alarm_cost,
        args.planned_downtime_h,
        args.false_alarm_downtime_h,
        args.window_h,
    )
    try:
        configs = strategy_configs(detector_config(args.detector_config))
    except (OSError, ValueError) as exc:
        print(f"error: --detector-config: {exc}", file=sys.stderr)
        return 2
    booster = load_booster(args.model)
    started = time.perf_counter()
    log: Log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.recording is not None:
        source = f"recording {args.recording}"
        outcomes = backtest_recording(args.recording, booster, configs, costs, log=log)
    else:
        source = f"simulated {args.motors} motors x {args.days:g} days, seed {args.seed}"
        log(f"simulating {args.motors} motors x {args.days:g} days (seed {args.seed})")
        fleet = FleetConfig(motors=args.motors, seed=args.seed, wear_scale=args.wear_scale)
        quarters = iter((0.25, 0.5, 0.75, 1.0))
        due = [next(quarters)]

        def progress(fraction: float) -> None:
            if fraction >= due[0]:
                log(f"  simulated {fraction:.0%}")
                due[0] = next(quarters, 2.0)

        history = generate(fleet, duration_s=args.days * DAY_S, progress=progress)
        outcomes = backtest_history(history, booster, configs, costs, workers=args.workers, log=log)
    summaries = {name: outcome.summary(costs) for name, outcome in outcomes.items()}
    notes = assumptions(costs, source)
    print(table(summaries))
    print("\n".join(f"- {note}" for note in notes))
    meta = {"assumptions": notes, "costs": asdict(costs), "elapsed_s": round(time.perf_counter() - started, 1)}
    json_path, plot_path = write(args.out, summaries, meta)
    print(f"wrote {json_path} and {plot_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
