"""The round trip on one machine: the fleet's own history becomes the model that watches it.

1. A fleet runs through the local stack with no model, as a stack deployed without `ModelDataUrl`
   does: 8 motors (fleet seed 30), a reading every simulated hour for 200 hours, each motor with
   three injected wear failures at 20, 60 and 100 running hours. The archive fills.
2. The maintenance crew reports each failure (`scripts/operate.py report-failure --at`, the user's
   command) and logs each repair as a `service_complete`, both through the stack's IoT data plane.
3. `python model/train.py --archive ARCHIVE --seeds 1 --workers 1` trains a model from that archive.
4. A second stack serves the new artifact from its local SageMaker endpoint; a second fleet (fleet
   seed 1, motors the model has never seen) runs through it with two injected wear failures.

Checked: the archive holds every reading the first run sent; the artifact's manifest names the
archive's period, its motors and the failures reported on the training motors; every predictive alarm
event of the second run carries the new model's version; and a predictive alarm was raised before at
least one of the second run's failures and still up within the 24 hours before it (model/evaluate.py's
rule for "forewarned").

Shortcuts, so that this fits in `make test` (measured: 4.9 minutes on 2 cores under a load average of 22,
the first run 129 s, the reports 35 s, training 37 s, the second run 62 s):
- One reading per simulated hour rather than the demo's ten minutes (the features mean the same at any
  interval), and failures injected on a schedule rather than drawn from natural wear, so that a small
  fleet yields the failures training needs (at least 10 with warning on the training motors) in 200
  readings per motor. Fleet seed 30 makes 7 of the 8 motors run around the clock, so the failures
  come within the run whatever weekday it starts on.
- The crew knows when each motor failed and came back from the simulator's ground truth, and its
  repair log is stamped with the repair's simulated time (an operator's `service-complete` is stamped
  with the wall clock, which in an accelerated run is days after the simulated readings). The physics
  repairs a failed motor by itself after 8 to 48 hours; a `service_complete` sent during the run would
  renew every part and undo the failures injected for later.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from device.physics import Sample
from local.options import StackOptions
from local.report import Report
from local.simulation import FleetRun, simulate_through
from local.stack import LocalStack, running_stack
from model.archive import Archive
from model.versions import VersionedModel, load_versioned
from motor_maintenance.alarms import AlarmKind, OperatorAction, Transition
from motor_maintenance.telemetry import parse_timestamp, to_epoch_ms
from scripts import operate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOUR_MS = 3_600_000
STEP = ["--interval", "0.02", "--speedup", "180000"]  # one reading per simulated hour, 50 a second
COMMON = [
    "--random-failures-per-year", "0", "--no-ui", "--progress-every", "0",
    "--drain-timeout", "180", "--ack-timeout", "120",  # time for the stack to work off its backlog: all delivered
]  # fmt: skip
FIRST_RUN = [
    "--motors", "8", "--seed", "30", "--count", "200", *STEP,
    *(
        arg
        for motor in range(1, 9)
        for mode, after in (("bearing_wear", "20h"), ("cooling_loss", "60h"), ("impeller_wear", "100h"))
        for arg in ("--fail", f"motor-{motor:03d}:{mode}:{after}")
    ),
    *COMMON,
]  # fmt: skip
SECOND_RUN = [
    "--motors", "4", "--seed", "1", "--count", "60", *STEP,
    "--fail", "motor-002:bearing_wear:40h", "--fail", "motor-004:cooling_loss:44h",
    *COMMON,
]  # fmt: skip
TRAINING_TIMEOUT_S = 300
BATCH_WINDOW_S = 1.0


@dataclass
class Truth:
    """What the simulator sent, with the ground truth behind it: every reading, each failure and repair."""

    sent: set[tuple[str, int]] = field(default_factory=set)
    """(motor_id, seq) of every reading handed to the device's connection."""
    ts_ms: list[int] = field(default_factory=list)
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    """(motor, mode, first reading that shows it down) of each failure."""
    repairs: list[tuple[str, int]] = field(default_factory=list)
    """(motor, first reading after the repair) of each failure the physics repaired within the run."""
    _down: dict[str, str | None] = field(default_factory=dict)

    def on_sample(self, sample: Sample) -> None:
        reading, truth = sample.reading, sample.truth
        motor_id, ts_ms = reading.motor_id, to_epoch_ms(reading.ts)
        self.sent.add((motor_id, reading.seq))
        self.ts_ms.append(ts_ms)
        mode = truth.failed_mode.value if truth.failed_mode is not None else None
        was = self._down.get(motor_id)
        if mode is not None and was is None:
            self.failures.append((motor_id, mode, ts_ms))
        elif mode is None and was is not None:
            self.repairs.append((motor_id, ts_ms))
        self._down[motor_id] = mode


class _Recording:
    """The fleet's sink, telling `Truth` about every reading it sends."""

    def __init__(self, inner: Any, truth: Truth) -> None:
        self.inner, self.truth = inner, truth

    def submit(self, sample: Sample) -> None:
        self.truth.on_sample(sample)
        self.inner.submit(sample)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _recording(truth: Truth) -> Any:
    def wrap(run: FleetRun) -> FleetRun:
        return lambda sink: run(_Recording(sink, truth))

    return wrap


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _log_repair(state_dir: Path, motor_id: str, at_ms: int) -> None:
    """The crew's repair log: a service_complete stamped when the motor came back, through the IoT data plane."""
    stack = running_stack(state_dir)
    assert stack is not None
    action = OperatorAction(
        motor_id=motor_id, action="service_complete", action_id=str(uuid.uuid4()), ts=_iso(at_ms),
        operator="maintenance-crew", note="repaired",
    )  # fmt: skip
    iot_data = boto3.client(
        "iot-data",
        endpoint_url=stack["iot_data_endpoint_url"],
        region_name=stack["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the local stack's fake credentials, as operate.py uses
    )
    payload = action.model_dump_json(exclude_none=True).encode()
    iot_data.publish(topic=f"motors/{motor_id}/actions", qos=1, payload=payload)


def _options(state_dir: Path, model: Path | None, motors: int, ingestion_mode: str = "direct") -> StackOptions:
    return StackOptions(
        state_dir=state_dir,
        model=model,
        ingestion_mode=ingestion_mode,
        batch_window_s=BATCH_WINDOW_S if ingestion_mode == "batched" else None,
        train_if_missing=False,
        broker="builtin",
        devices=tuple(f"motor-{index:03d}" for index in range(1, motors + 1)),
        retry_delays_s=(0.2, 0.4),
        log=lambda line: print(line, flush=True),
    )


@dataclass
class RoundTrip:
    first: Truth
    archive: Path
    reported: list[tuple[str, str, int]]
    model: VersionedModel
    trained: dict[str, Any]
    second: Truth
    report: Report
    timings: dict[str, float]


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> RoundTrip:
    timings: dict[str, float] = {}
    lap = time.monotonic()

    def timed(name: str) -> None:
        nonlocal lap
        now = time.monotonic()
        timings[name] = now - lap
        lap = now

    root = tmp_path_factory.mktemp("round-trip")
    archive = root / "archive"
    first = Truth()

    # Given a fleet run through a stack with no model yet: its archive fills
    options = _options(root / "first-stack", None, 8, "batched")
    options.archive_dir = archive
    with LocalStack(options) as stack:
        report = simulate_through(stack, FIRST_RUN, wrap=_recording(first))
        assert report is not None
        assert report.counts.acknowledged == len(first.sent), report.counts.describe()
        for line in report.lines():
            print(line)
        timed("first run")
        # When the crew reports every failure and logs every repair
        common = ["--state-dir", str(stack.state_dir)]
        for motor_id, mode, at_ms in first.failures:
            assert (
                operate.main([*common, "report-failure", motor_id, "--mode", mode, "--at", _iso(at_ms),
                              "--operator", "maintenance-crew"]) == 0
            )  # fmt: skip
        for motor_id, at_ms in first.repairs:
            _log_repair(stack.state_dir, motor_id, at_ms)
        assert stack.settle(stall_s=30)
    timed("reports")  # stopping the stack wrote what the archive's delivery streams held

    # And a model is trained from the archive
    out = root / "model"
    command = [
        sys.executable, "model/train.py", "--archive", str(archive), "--out", str(out), "--seeds", "1",
        "--workers", "1",  # 1,600 readings: starting processes would take longer than the features
    ]  # fmt: skip
    print("$", " ".join(command), flush=True)
    trained = subprocess.run(  # noqa: S603 - our own interpreter and script
        command, cwd=ROOT, capture_output=True, text=True, timeout=TRAINING_TIMEOUT_S, check=False
    )
    print(trained.stdout[-4000:], trained.stderr[-2000:], sep="\n")
    assert trained.returncode == 0, trained.stderr[-2000:]
    model = load_versioned(out / "model.tar.gz")
    metrics = json.loads((out / "metrics.json").read_text())
    timed("training")

    # Then a second stack serves it, and a fleet it has never seen runs through it
    second = Truth()
    with LocalStack(_options(root / "second-stack", out / "model.tar.gz", 4)) as stack:
        second_report = simulate_through(stack, SECOND_RUN, wrap=_recording(second))
        assert second_report is not None
        assert second_report.counts.acknowledged == len(second.sent), second_report.counts.describe()
        for line in second_report.lines():
            print(line)
    timed("second run")
    print("round trip:", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()), flush=True)
    return RoundTrip(first, archive, first.failures, model, metrics, second, second_report, timings)


def test_the_archive_holds_every_reading_the_first_run_sent(round_trip: RoundTrip) -> None:
    with Archive.open(round_trip.archive).connect() as db:
        rows = db.sql("SELECT motor_id, seq FROM telemetry").fetchall()
    assert len(rows) == len(round_trip.first.sent), "each reading once (the reader deduplicates)"
    assert set(rows) == round_trip.first.sent


def test_the_first_run_had_the_failures_training_needs(round_trip: RoundTrip) -> None:
    assert len(round_trip.reported) >= 20, round_trip.reported
    assert round_trip.first.repairs, "the physics repaired failed motors within the run"


def test_the_manifest_names_the_archives_period_motors_and_failures(round_trip: RoundTrip) -> None:
    manifest = round_trip.model.manifest
    assert manifest is not None
    first = round_trip.first
    assert manifest["data"]["source"] == f"archive {round_trip.archive}"
    assert to_epoch_ms(parse_timestamp(manifest["data"]["first_reading"])) == min(first.ts_ms)
    assert to_epoch_ms(parse_timestamp(manifest["data"]["last_reading"])) == max(first.ts_ms)
    motors = manifest["motors"]
    assert sorted(m for part in motors.values() for m in part) == sorted({m for m, _ in first.sent})
    training = set(motors["train"])
    reported = Counter(mode for motor_id, mode, _ in round_trip.reported if motor_id in training)
    assert manifest["failures"] == dict(reported)
    assert sum(reported.values()) >= 10, "train.py's --min-failures default"


def test_the_second_runs_predictive_alarm_events_carry_the_new_models_version(round_trip: RoundTrip) -> None:
    events = [e for e in round_trip.report.watch.events.values() if e.kind is AlarmKind.PREDICTIVE]
    raised = [e for e in events if e.transition is Transition.RAISED]
    assert raised, "the new model raised a predictive alarm"
    assert {e.model_version for e in events if e.transition is not Transition.FAILURE_REPORTED} == {
        round_trip.model.version
    }


def test_a_predictive_alarm_was_up_in_the_24_hours_before_a_failure_of_the_second_run(round_trip: RoundTrip) -> None:
    failures = round_trip.second.failures
    assert {motor_id for motor_id, _, _ in failures} == {"motor-002", "motor-004"}
    episodes: dict[str, list[tuple[int, int | None]]] = {}
    """Each motor's predictive alarm episodes: (raised, cleared or None), epoch ms."""
    events = sorted(round_trip.report.watch.events.values(), key=lambda e: (e.motor_id, to_epoch_ms(e.at)))
    for event in events:
        if event.kind is not AlarmKind.PREDICTIVE:
            continue
        mine = episodes.setdefault(event.motor_id, [])
        if event.transition is Transition.RAISED:
            mine.append((to_epoch_ms(event.at), None))
        elif event.transition is Transition.CLEARED and mine and mine[-1][1] is None:
            mine[-1] = (mine[-1][0], to_epoch_ms(event.at))
    # model/evaluate.py's rule: forewarned if the alarm was up at some time in the 24 hours before the failure
    forewarned = [
        (motor_id, round((failed - raised) / HOUR_MS, 1))
        for motor_id, _, failed in failures
        for raised, cleared in episodes.get(motor_id, [])
        if raised < failed and (cleared is None or cleared > failed - 24 * HOUR_MS)
    ]
    print(f"second run: predictive episodes {episodes}; forewarned (motor, hours ahead) {forewarned}")
    assert forewarned, f"no predictive alarm was up in the 24 h before {failures}"
