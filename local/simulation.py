"""`python device/simulate.py` without AWS IoT Core settings: the fleet through the local stack, with a live view.

`run_local` is where device/simulate.py hands over. It starts the local stack, connects one MQTT5
mTLS connection per motor (each with its own certificate from the stack's throwaway CA, the motor
id as client id, as on AWS IoT Core), runs the simulator's own loop (device.runner), shows the fleet
as the cloud sees it, and at the end waits for the pipeline to settle, prints a summary judged
against the simulator's ground truth, and stops every part of the stack. `simulate_through` does
the same against a stack already running (tests and benchmarks).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from device.mqtt import ConnectionSettings, DeliveryCounts, DeviceConnection
from device.options import parse
from device.physics import Sample
from device.runner import FleetRunner, summary_line
from device.sinks import MqttSink, Sink
from local.firehose import marks, tally
from local.options import STATE_DIR, StackOptions
from local.report import SETTLE_S, Report
from local.stack import LocalStack
from local.view import make_view
from local.watch import Watch

log = logging.getLogger("device.simulate")

STATE_POLL_S = 2.0
DEAD_LETTER_QUEUES = ("RuleErrorQueue", "FunctionFailureQueue")

FleetRun = Callable[[Sink], tuple[DeliveryCounts, int]]


class WatchedSink:
    """The device's sink, telling the watch about every reading before it goes out."""

    def __init__(self, inner: Sink, watch: Watch) -> None:
        self.inner, self.watch = inner, watch

    def submit(self, sample: Sample) -> None:
        self.watch.on_sample(sample)
        self.inner.submit(sample)

    def counts(self) -> DeliveryCounts:
        return self.inner.counts()

    def status(self) -> str:
        return self.inner.status()

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        return self.inner.close(timeout_s=timeout_s, deliver_queued=deliver_queued)


def stack_options(args: argparse.Namespace, motor_ids: Sequence[str], say: Callable[[str], None]) -> StackOptions:
    """The local stack the simulator's options ask for."""
    return StackOptions(
        state_dir=Path(args.state_dir).resolve() if args.state_dir else STATE_DIR,
        model=None if args.no_model else Path(args.model),
        inference_mode=args.inference_mode,
        ingestion_mode=args.ingestion_mode,
        batch_window_s=args.batch_window_s,
        speedup=args.speedup,
        broker=args.broker,
        allow_legacy_topic=args.allow_legacy_topic,
        topic_namespace=args.topic_namespace,
        detector_config=args.detector_config,
        concurrency=args.concurrency,
        devices=tuple(motor_ids),
        archive_dir=Path(args.archive).resolve() if args.archive else None,
        log=say,
    )


def run_local(args: argparse.Namespace, runner: FleetRunner) -> int:
    """Start the stack, run the fleet through it, report, stop everything; the exit status."""
    say: Callable[[str], None] = lambda line: log.info("%s", line)  # noqa: E731 - a one-line adapter
    motor_ids = runner.settings.motor_ids
    stack = LocalStack(stack_options(args, motor_ids, say))
    try:
        say("starting the local stack (Ctrl-C stops it and everything it started)")
        stack.start()
    except KeyboardInterrupt:
        stack.stop(drain_s=0)
        raise
    except Exception as exc:
        log.error("the local stack could not start: %s", exc)
        stack.stop(drain_s=0)
        return 1
    try:
        report = run_through(stack, args, runner)
        if report is None:
            return 1
        for line in report.lines():
            print(line, file=sys.stderr)
    finally:
        say("stopping the local stack")
        stack.stop(drain_s=0)
        say("local stack stopped: no process or port left behind")
    counts = report.counts
    print(summary_line(counts, len(motor_ids), report.ticks), file=sys.stderr, flush=True)
    return 1 if counts.failed + counts.dropped else 0


def simulate_through(
    stack: LocalStack, argv: Sequence[str], *, wrap: Callable[[FleetRun], FleetRun] | None = None
) -> Report | None:
    """`python device/simulate.py ARGV` against an already started stack (tests and benchmarks use it).

    `wrap`, if given, wraps the fleet's run (e.g. to send extra readings along the fleet's).
    """
    args, plan = parse(argv)
    return run_through(stack, args, FleetRunner(plan.run, stop=threading.Event()), wrap=wrap)


def run_through(
    stack: LocalStack,
    args: argparse.Namespace,
    runner: FleetRunner,
    *,
    wrap: Callable[[FleetRun], FleetRun] | None = None,
) -> Report | None:
    """Run the fleet through a started stack, one mTLS connection per motor; None if they cannot connect."""
    motor_ids = runner.settings.motor_ids
    watch = Watch(motor_ids)
    stack.subscribe(watch.on_stack)
    sink = MqttSink([_device(stack, args, runner, motor_id) for motor_id in motor_ids])
    problems = sink.start(args.connect_timeout, runner.stop)
    if problems:
        sink.close(timeout_s=0, deliver_queued=False)
        for problem in problems:
            log.error("could not connect to the local broker: %s", problem)
        return None

    sent = lambda: sink.counts().acknowledged  # noqa: E731
    status = lambda: f"broker {stack.iot.broker_kind}; logs in {stack.log_dir}; Ctrl-C stops"  # noqa: E731
    view, listener, restore = make_view(watch, sent, status, plain=args.no_ui, every_s=args.progress_every or 0)
    if listener is not None:
        stack.subscribe(listener)
    archived_before = marks(stack.pipeline.delivery_streams)
    polling = threading.Event()
    poller = threading.Thread(target=_poll_state, args=(stack, watch, polling), name="state-poll", daemon=True)
    poller.start()
    view.start()
    started = time.monotonic()
    try:
        run = wrap(runner.run) if wrap is not None else runner.run
        counts, ticks = run(WatchedSink(sink, watch))
        if not runner.stop.is_set():
            log.info("fleet done; waiting for the pipeline to settle")
        # Stopped by Ctrl-C: a short grace for what is in flight (a second Ctrl-C ends it at once).
        settled = stack.settle(stall_s=SETTLE_S) if not runner.stop.is_set() else stack.settle(stall_s=10, limit_s=30)
        watch.update_state(stack.resources.motor_items())
    finally:
        polling.set()
        view.stop()
        restore()
    resources = stack.resources
    parked = {queue: resources.queue_depth(queue) for queue in DEAD_LETTER_QUEUES if queue in resources.queue_urls}
    return Report(
        counts,
        ticks,
        watch,
        watch.summary(sent=counts.acknowledged),
        settled,
        parked,
        time.monotonic() - started,
        stack.aws.endpoint_stats() if stack.aws.model_url else None,
        stack.options.ingestion_mode,
        tally(stack.pipeline.delivery_streams, archived_before, stack.options.archive)
        if stack.pipeline.delivery_streams
        else None,
        stack.observer.accounts.snapshot(),
    )


def _device(stack: LocalStack, args: argparse.Namespace, runner: FleetRunner, motor_id: str) -> DeviceConnection:
    """A motor's own connection to the stack's broker, with its certificate, as on AWS IoT Core."""
    cert, key = stack.device_identity(motor_id)
    settings = ConnectionSettings(
        endpoint="127.0.0.1",
        port=stack.iot.broker_port,
        cert_path=str(cert),
        key_path=str(key),
        client_id=motor_id,
        ca_path=str(stack.ca_path),
        ack_timeout_s=args.ack_timeout,
        topic_namespace=stack.options.topic_namespace,
    )
    return DeviceConnection(settings, (motor_id,), queue_size=args.queue_size, on_action=runner.desk.receive)


def _poll_state(stack: LocalStack, watch: Watch, polling: threading.Event) -> None:
    """Run hours and alarm states from the state table every STATE_POLL_S, until `polling` is set."""
    while not polling.wait(STATE_POLL_S):
        try:
            watch.update_state(stack.resources.motor_items())
        except Exception as exc:  # the view goes on without run hours for a moment
            log.debug("state poll failed: %s", exc)
