"""Load through the local stack: a burst of 10,000 readings from 100 motors, every one accounted for, no alarm missed.

The burst is the simulator's own: 100 motors, each with its own mTLS connection, publishing 100 readings
each as fast as the device's client lets them (the stack queues what the inference function cannot take
at once, as Lambda's asynchronous invocation queue does). The reference for "no alarm missed" is the
same readings sent slowly: applied one at a time, in order, through the same use case, the same
detector configuration and the same model (the artifact's inference.py), in this process. Alarm events
have deterministic ids, so the two runs must produce the same set of events, id for id.

The same burst goes through batched ingestion too (about a minute, where the direct path takes three): the
rules put the readings into the Kinesis stream and InferenceFunction takes them in batches, one model call
each. It must raise the same events as the same readings sent slowly, id for id, with far fewer endpoint
calls.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import xgboost as xgb

from device.physics import Sample
from local.iot_core import find_mosquitto
from local.options import StackOptions
from local.report import Report
from local.simulation import simulate_through
from local.stack import LocalStack
from motor_adapters.sagemaker_predictor import SageMakerPredictor
from motor_maintenance.config import DetectorConfig
from motor_maintenance.service import process_reading
from tests.reports import StackReport
from tests.support import MemoryStore, Recorder

pytestmark = pytest.mark.load

MOTORS, READINGS = 100, 100
DETECTOR = {"schedule": {"service_interval_h": 10}}
BURST = [
    "--motors", str(MOTORS), "--count", str(READINGS), "--interval", "0.01", "--speedup", "60000",
    "--random-failures-per-year", "0", "--no-ui", "--progress-every", "0", "--drain-timeout", "120",
    *(arg for motor in (7, 23, 42, 77) for arg in ("--fail", f"motor-{motor:03d}:bearing_wear:8h")),
    "--fail", "motor-051:impeller_wear:12h",
]  # fmt: skip
BATCH_WINDOW_S = 1.0


class InProcessEndpoint:
    """sagemaker-runtime's InvokeEndpoint answered in this process by the artifact's own inference.py."""

    def __init__(self, model_dir: Path) -> None:
        from importlib.util import module_from_spec, spec_from_file_location

        spec = spec_from_file_location("artifact_inference", model_dir / "code" / "inference.py")
        assert spec is not None
        assert spec.loader is not None
        self.inference = module_from_spec(spec)
        sys.modules[spec.name] = self.inference  # its dataclasses look their module up there
        spec.loader.exec_module(self.inference)
        self.booster: xgb.Booster = self.inference.model_fn(str(model_dir))

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        data = self.inference.input_fn(kwargs["Body"], kwargs["ContentType"])
        body, content_type = self.inference.output_fn(self.inference.predict_fn(data, self.booster), kwargs["Accept"])
        return {"Body": io.BytesIO(body.encode()), "ContentType": content_type}


def sent_slowly(payloads: list[dict[str, Any]], model: Path, unpack_to: Path) -> set[str]:
    """The alarm event ids of the same readings applied one at a time, in the order they were sent."""
    with tarfile.open(model) as archive:
        archive.extractall(unpack_to, filter="data")
    predictor = SageMakerPredictor("reference", InProcessEndpoint(unpack_to))
    store, publisher = MemoryStore(), Recorder()
    config = DetectorConfig.with_overrides(DETECTOR)
    from motor_maintenance.telemetry import Telemetry

    for payload in payloads:
        reading = Telemetry.model_validate(payload)
        process_reading(
            reading, store=store, predictor=predictor, publisher=publisher, config=config, now=datetime.now(UTC)
        )
    return {event.event_id for event in publisher.events}


@dataclass
class Burst:
    report: Report
    payloads: list[dict[str, Any]]
    model: Path
    endpoint_stats: dict[str, int]


def run_burst(state_dir: Path, args: list[str], model: Path, **options: Any) -> Iterator[Burst]:
    """The simulator's burst through a local stack serving `model`, every payload it sent recorded in order."""
    stack_options = StackOptions(
        state_dir=state_dir,
        model=model,
        broker="mosquitto" if find_mosquitto() else "builtin",
        detector_config=DETECTOR,
        log=lambda line: print(line, flush=True),
        **options,
    )
    payloads: list[dict[str, Any]] = []

    def recording(runner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run_fleet(sink: Any) -> Any:
            class Recording:
                def submit(self, sample: Sample) -> None:
                    payloads.append(sample.payload())
                    sink.submit(sample)

                def __getattr__(self, name: str) -> Any:
                    return getattr(sink, name)

            return runner(Recording())

        return run_fleet

    with LocalStack(stack_options) as stack:
        report = simulate_through(stack, args, wrap=recording)
        assert report is not None
        for line in report.lines():
            print(line)
        yield Burst(report, payloads, model, stack.aws.endpoint_stats())


@pytest.fixture(scope="module")
def burst(
    tmp_path_factory: pytest.TempPathFactory, default_model: Path
) -> Iterator[tuple[Report, list[dict[str, Any]], Path]]:
    for run in run_burst(tmp_path_factory.mktemp("load"), BURST, default_model):
        yield run.report, run.payloads, run.model


@pytest.fixture(scope="module")
def batched_burst(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[Burst]:
    yield from run_burst(
        tmp_path_factory.mktemp("load-batched"),
        BURST,
        default_model,
        ingestion_mode="batched",
        batch_window_s=BATCH_WINDOW_S,
    )


class TestDirectBurst:
    """The burst applied one reading per invocation (a class of its own: pytest-xdist runs the two bursts at once)."""

    def test_every_reading_of_the_burst_is_processed_rejected_or_dead_lettered(
        self, burst: tuple[Report, list[dict[str, Any]], Path], stack_report: StackReport
    ) -> None:
        report, payloads, _ = burst
        counts = report.summary.counts
        sent = counts["readings.sent"]
        processed, rejected = counts.get("readings.processed", 0), counts.get("readings.rejected", 0)
        dead_lettered = counts.get("readings.dead_lettered", 0)
        stack_report.lines.append(
            f"load burst: {sent} readings sent by {MOTORS} motors = {processed} processed + {rejected} rejected + "
            f"{dead_lettered} dead-lettered (worked off in {report.elapsed_s:.0f} s)"
        )
        assert sent == len(payloads) == MOTORS * READINGS
        assert report.counts.failed == report.counts.dropped == 0
        assert processed + rejected + dead_lettered == sent
        assert report.settled

    def test_the_burst_raises_every_alarm_the_same_readings_raise_when_sent_slowly(
        self, burst: tuple[Report, list[dict[str, Any]], Path], tmp_path: Path, stack_report: StackReport
    ) -> None:
        report, payloads, model = burst
        reference = sent_slowly(payloads, model, tmp_path / "model")
        assert len(reference) >= 10, "the burst's readings raise alarms at all"
        through_the_stack = set(report.watch.events)
        missed = reference - through_the_stack
        extra = through_the_stack - reference
        stack_report.lines.append(
            f"load burst: {len(reference)} alarm events when sent slowly, {len(through_the_stack)} through the stack, "
            f"{len(reference & through_the_stack)} the same"
        )
        assert not missed, json.dumps(sorted(missed)[:10])
        assert not extra, json.dumps(sorted(extra)[:10])


class TestBatchedBurst:
    """The burst through the Kinesis stream, in batches."""

    def test_the_batched_burst_raises_the_alarms_the_same_readings_raise_when_sent_slowly_in_far_fewer_calls(
        self, batched_burst: Burst, tmp_path: Path, stack_report: StackReport
    ) -> None:
        report, payloads = batched_burst.report, batched_burst.payloads
        counts = report.summary.counts
        sent = counts["readings.sent"]
        processed, rejected = counts.get("readings.processed", 0), counts.get("readings.rejected", 0)
        assert sent == len(payloads) == MOTORS * READINGS
        assert report.counts.failed == report.counts.dropped == 0
        assert processed + rejected + counts.get("readings.dead_lettered", 0) == sent
        assert report.settled

        reference = sent_slowly(payloads, batched_burst.model, tmp_path / "model")
        assert len(reference) >= 10, "the burst's readings raise alarms at all"
        through_the_stack = set(report.watch.events)
        calls, rows = batched_burst.endpoint_stats["invocations"], batched_burst.endpoint_stats["rows"]
        stack_report.lines.append(
            f"load burst, batched ingestion: {sent} readings by {MOTORS} motors, {len(reference)} alarm events "
            f"when sent slowly, {len(through_the_stack)} through the stack, {len(reference & through_the_stack)} the "
            f"same; {calls} endpoint calls scored {rows} readings ({rows - calls} calls saved against direct)"
        )
        assert not reference - through_the_stack, json.dumps(sorted(reference - through_the_stack)[:10])
        assert not through_the_stack - reference, json.dumps(sorted(through_the_stack - reference)[:10])
        assert calls <= rows / 5
