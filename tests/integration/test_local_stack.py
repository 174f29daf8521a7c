"""End to end through the local stack: the simulator's fleet over mTLS MQTT -> rules -> functions -> alerts.

One accelerated fleet run (about 67 simulated hours) with two injected wear failures, a service
interval short enough for the schedule alarm, and a few malformed readings, all through the real
broker, the template's rules, the three handlers in execution environments of their own, moto's
server and the model served through its inference.py. The checks are the ones a user relies on:
failures forewarned, healthy motors quiet, one alert per transition, operator actions applied,
every reading accounted for. They run for each way of serving the model: the SageMaker endpoint
(the direct path, with each broker) and the model evaluated inside the function (InferenceMode
embedded, the artifact fetched from S3); and for batched ingestion (IngestionMode batched: the rules put
the readings into the Kinesis stream, the event source mapping hands InferenceFunction batches).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from device.archive_layout import TELEMETRY_COLUMNS
from device.columnar import read_parquet
from device.mqtt import DeliveryCounts
from local.iot_core import find_mosquitto
from local.options import StackOptions
from local.report import Report
from local.simulation import simulate_through
from local.stack import LocalStack
from model.archive import Archive
from scripts import operate
from tests.integration.conftest import device_client
from tests.integration.dead_letters import parked_report
from tests.reports import StackReport

MOTORS = ("motor-001", "motor-002", "motor-003", "motor-004")
FAILING = {"motor-002": "bearing_wear", "motor-004": "cooling_loss"}
FLEET_ARGS = [
    "--motors", "4", "--interval", "0.05", "--speedup", "12000", "--count", "400",
    "--fail", "motor-002:bearing_wear:30h", "--fail", "motor-004:cooling_loss:34h",
    "--random-failures-per-year", "0", "--no-ui", "--progress-every", "0", "--drain-timeout", "30",
]  # fmt: skip
MALFORMED = 3


@dataclass
class Run:
    stack: LocalStack
    report: Report
    malformed_sent: int


BATCH_WINDOW_S = 1.0
"""Batched ingestion: the mapping gathers a batch for 1 s instead of the template's 60."""


@pytest.fixture(
    scope="module",
    params=[
        ("mosquitto", "endpoint", "direct"),
        ("builtin", "endpoint", "direct"),
        ("builtin", "embedded", "direct"),
        ("builtin", "endpoint", "batched"),
    ],
    ids=["mosquitto", "builtin", "embedded", "batched"],
)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[Run]:
    """The local stack with the default model, and one fleet run through it (the model is trained if missing).

    Once with each broker: mosquitto (skipped where it is not installed, never in CI) and the built-in one;
    once with the model embedded in InferenceFunction instead of behind the endpoint; and once with the
    readings ingested in batches through the Kinesis stream.
    """
    broker, inference_mode, ingestion_mode = request.param
    if broker == "mosquitto" and find_mosquitto() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the end-to-end tests with mosquitto, but it is not installed")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("local-stack"),
        model=default_model,
        broker=broker,
        inference_mode=inference_mode,
        ingestion_mode=ingestion_mode,
        batch_window_s=BATCH_WINDOW_S if ingestion_mode == "batched" else None,
        detector_config={"schedule": {"service_interval_h": 30}},
        devices=MOTORS,
        retry_delays_s=(0.2, 0.4),
        log=lambda line: print(line, flush=True),
    )
    with LocalStack(options) as stack:
        malformed = _send_malformed(stack)

        def count_malformed(runner: Callable[[Any], tuple[DeliveryCounts, int]]) -> Callable[[Any], Any]:
            def run_fleet(sink: Any) -> tuple[DeliveryCounts, int]:
                counts, ticks = runner(sink)
                counts.acknowledged += malformed  # published by motor-001's own identity, before the fleet
                return counts, ticks

            return run_fleet

        report = simulate_through(stack, FLEET_ARGS, wrap=count_malformed)
        assert report is not None
        for line in report.lines():
            print(line)
        yield Run(stack, report, malformed)


def _send_malformed(stack: LocalStack) -> int:
    """Readings motor-001's own certificate may publish but the schema refuses (negative speed, a string)."""
    device = device_client(stack, "motor-001")
    device.start()
    try:
        for seq, bad in enumerate(({"speed_rpm": -5.0}, {"vibration_mm_s": "high"}, {"fluid_temp_c": 5000.0})):
            payload = {"motor_id": "motor-001", "motor_type": "pump-37kw", "ts": int(time.time() * 1000), "seq": seq}
            device.publish("motors/motor-001/telemetry", json.dumps({**payload, "running": True, **bad}).encode())
    finally:
        device.stop()
    return 3


def test_every_injected_wear_failure_was_forewarned_by_a_predictive_or_condition_alarm(run: Run) -> None:
    failures = run.report.summary.predictable
    assert {f.motor_id for f, _, _ in failures} == set(FAILING), "the injected failures happened within the run"
    for failure, lead_h, alarm in failures:
        assert lead_h is not None, f"{failure} came without a warning"
        assert lead_h > 0
        assert alarm is not None
    assert any(alarm == "predictive" for _, _, alarm in failures), "the model forewarned at least one failure"


def test_the_model_ran_where_the_inference_mode_put_it(run: Run) -> None:
    stack = run.stack
    environment = stack.pipeline.functions["InferenceFunction"].config.environment
    if stack.options.inference_mode == "embedded":
        assert stack.aws.model_url is None, "no SageMaker endpoint in embedded mode"
        assert stack.resources.model_data_url is not None
        assert environment["MODEL_S3_URL"] == stack.resources.model_data_url
        assert environment["ENDPOINT_NAME"] == ""
    else:
        assert stack.aws.model_url is not None
        assert environment["MODEL_S3_URL"] == ""
    probabilities = [item for item in stack.resources.motor_items() if "failure_probability" in item]
    assert probabilities, "the readings were scored by the model"


def test_the_endpoint_scores_a_batch_in_one_call_and_a_direct_reading_in_a_call_of_its_own(
    run: Run, stack_report: StackReport
) -> None:
    stack = run.stack
    if stack.aws.model_url is None:
        pytest.skip("the model is evaluated inside the function: no endpoint to count calls on")
    stats = stack.aws.endpoint_stats()
    calls, rows = stats["invocations"], stats["rows"]
    mode = stack.options.ingestion_mode
    line = f"endpoint ({stack.iot.broker_kind}, {mode} ingestion): {calls} InvokeEndpoint calls scored {rows} readings"
    print(line)
    stack_report.lines.append(line)
    assert rows > 0, "the readings were scored by the endpoint"
    if mode == "batched":
        assert calls <= rows / 5, "a batch of readings is scored in one call"
        pipeline = stack.pipeline
        assert pipeline.mappings["TelemetryStreamMapping"].finished == pipeline.records_put["TelemetryStream"]
    else:
        assert calls == rows, "direct ingestion scores each reading in a call of its own"


def test_healthy_motors_raised_no_predictive_or_condition_alarm(run: Run) -> None:
    healthy = set(MOTORS) - set(FAILING)
    raised = [r for r in run.report.watch.raises if r.motor_id in healthy and r.kind in ("predictive", "condition")]
    assert raised == []
    assert run.report.summary.false_alarms == []


def test_the_schedule_alarm_is_raised_for_a_motor_past_its_service_interval(run: Run) -> None:
    assert run.report.summary.schedule_alarms >= 1


def test_every_alarm_transition_produced_exactly_one_alert(run: Run) -> None:
    watch = run.report.watch
    events = Counter(watch.events)
    alerted = Counter(alert.attributes.get("event_id") for alert, _ in watch.alerts)
    assert events, "the run produced alarm events"
    assert set(alerted) == set(events)
    assert all(count == 1 for count in alerted.values()), [e for e, n in alerted.items() if n > 1]


def test_every_reading_sent_was_processed_rejected_or_dead_lettered(run: Run, stack_report: StackReport) -> None:
    counts = run.report.summary.counts
    sent = counts["readings.sent"]
    assert sent == 4 * 400 + run.malformed_sent
    assert counts.get("readings.rejected", 0) == run.malformed_sent
    assert (
        counts.get("readings.processed", 0)
        + counts.get("readings.rejected", 0)
        + counts.get("readings.dead_lettered", 0)
        == sent
    )
    processed, rejected = counts.get("readings.processed", 0), counts.get("readings.rejected", 0)
    stack_report.lines.append(
        f"end to end ({run.stack.iot.broker_kind}, model {run.stack.options.inference_mode}, "
        f"{run.stack.options.ingestion_mode} ingestion): "
        f"{sent} readings sent = {processed} processed + {rejected} rejected + "
        f"{counts.get('readings.dead_lettered', 0)} dead-lettered; {len(run.report.watch.events)} alarm events, "
        f"{len(run.report.watch.alerts)} alerts"
    )


def test_an_operator_acknowledge_moves_the_alarm_to_acknowledged(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    stack = run.stack
    # Given an alarm that is ACTIVE now
    active = [
        (item["motor_id"]["S"], name)
        for item in stack.resources.motor_items()
        for name, state in item.get("alarm_states", {}).get("M", {}).items()
        if state["S"] == "ACTIVE"
    ]
    assert active, "the run left an alarm active to acknowledge"
    motor_id, alarm = active[0]
    alerts_before = len(stack.observer.alerts)

    # When the operator acknowledges it from the command line
    status = operate.main(
        ["--state-dir", str(stack.state_dir), "acknowledge", motor_id, alarm, "--operator", "test", "--note", "on it"]
    )
    assert status == 0
    assert f"published to motors/{motor_id}/actions" in capsys.readouterr().out
    assert stack.settle(stall_s=30)

    # Then the state table says ACKNOWLEDGED and one 'acknowledged' alert went out
    [item] = [i for i in stack.resources.motor_items() if i["motor_id"]["S"] == motor_id]
    assert item["alarm_states"]["M"][alarm]["S"] == "ACKNOWLEDGED"
    new = stack.observer.alerts[alerts_before:]
    assert [(a.motor_id, a.attributes["alarm"], a.attributes["transition"]) for a in new] == [
        (motor_id, alarm, "acknowledged")
    ]


def test_the_archive_holds_every_reading_sent_every_alarm_event_and_every_action(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = run.stack
    # Given operator actions sent during the run, from the command line: a failure report and a service
    common = ["--state-dir", str(stack.state_dir)]
    failed = [
        *common,
        "report-failure",
        "motor-003",
        "--mode",
        "bearing_wear",
        "--at",
        "1h",
        "--operator",
        "archive-check",
    ]
    assert operate.main(failed) == 0
    assert operate.main([*common, "service-complete", "motor-003", "--operator", "archive-check"]) == 0
    capsys.readouterr()
    assert stack.settle(stall_s=30)
    for delivery in stack.pipeline.delivery_streams.values():  # what stopping the stack would deliver
        delivery.flush()
    archive = stack.options.archive

    # Then the telemetry objects open with a plain Parquet reader, with the telemetry columns, one row per reading
    # the devices published, the one of the wrong type whole under errors/ (local.firehose's counters agree)
    tables = [read_parquet(path) for path in sorted((archive / "telemetry").rglob("*.parquet"))]
    assert tables
    assert all(table.column_names == [name for name, _ in TELEMETRY_COLUMNS] for table in tables)
    rows = sum(table.num_rows for table in tables)
    errors = Archive.open(archive).errors()
    assert errors == {"telemetry/format-conversion-failed": 1}  # {"vibration_mm_s": "high"}
    assert rows + 1 == run.report.summary.counts["readings.sent"] == 4 * 400 + run.malformed_sent
    assert run.report.archive is not None
    assert run.report.archive.readings == rows

    # And the reader finds the two other malformed readings invalid, by reason
    readings = Archive.open(archive).readings()
    assert readings.counts.invalid_total == run.malformed_sent - 1
    assert readings.counts.kept + readings.counts.duplicates == 4 * 400

    # And the events archive holds every alarm event raised, and every operator action
    alarms = Archive.open(archive).events("alarms")
    assert set(run.report.watch.events) <= {event["event_id"] for event in alarms.records}
    actions = Archive.open(archive).events("actions").records
    checked = [a for a in actions if a.get("operator") == "archive-check"]
    assert [a["action"] for a in checked] == ["report_failure", "service_complete"]
    assert checked[0]["failure_mode"] == "bearing_wear"
    # And the failure report's own event is archived with its label
    [reported] = [e for e in alarms.records if e["transition"] == "failure_reported" and e["motor_id"] == "motor-003"]
    assert (reported["failure_mode"], reported["operator"]) == ("bearing_wear", "archive-check")


def test_nothing_was_parked_in_the_dead_letter_queues(run: Run) -> None:
    parked = run.report.parked
    assert parked == {"RuleErrorQueue": 0, "FunctionFailureQueue": 0}, parked_report(run.stack, parked)


def test_stopping_the_stack_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    from local.processes import port_open

    stack = LocalStack(StackOptions(state_dir=tmp_path, model=None, broker="builtin", log=lambda line: None))
    stack.start()
    children = [child.process for child in stack.children]
    ports = [stack.iot.broker_port, int(stack.aws.url.rsplit(":", 1)[1])]
    stack.stop()
    assert all(process is not None and process.poll() is not None for process in children)
    assert not any(port_open(port) for port in ports)
    assert not (tmp_path / "stack.json").exists()
