"""`python device/simulate.py` without AWS IoT Core settings: the fleet against the local stack, with a live view.

Starts the local stack, connects one MQTT5 mTLS connection per motor (each with its own certificate
from the stack's throwaway CA, the motor id as client id, as on AWS IoT Core), runs the simulator's
own loop, shows the fleet as the cloud sees it, and at the end waits for the pipeline to settle,
prints a summary judged against the simulator's ground truth, and stops every part of the stack.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from device.mqtt import ConnectionSettings, DeliveryCounts, DeviceConnection
from local.stack import STATE_DIR, LocalStack, StackOptions
from local.view import LiveView, PlainView, View, summary_lines
from local.watch import Summary, Watch

log = logging.getLogger("device.simulate")

SETTLE_S = 60.0
"""After the last reading, the pipeline works off its backlog; it counts as stuck after this long without
finishing an invocation (retries wait seconds locally)."""
STATE_POLL_S = 2.0


class Sink(Protocol):
    connections: tuple[DeviceConnection, ...]

    def start(self, timeout_s: float, stop: threading.Event) -> list[str]: ...
    def submit(self, sample: Any) -> None: ...
    def counts(self) -> DeliveryCounts: ...
    def status(self) -> str: ...
    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts: ...


class WatchedSink:
    """The device's sink, telling the watch about every reading before it goes out."""

    def __init__(self, inner: Sink, watch: Watch) -> None:
        self.inner, self.watch = inner, watch

    def submit(self, sample: Any) -> None:
        self.watch.on_sample(sample)
        self.inner.submit(sample)

    def counts(self) -> DeliveryCounts:
        return self.inner.counts()

    def status(self) -> str:
        return self.inner.status()

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        return self.inner.close(timeout_s=timeout_s, deliver_queued=deliver_queued)


def detector_overrides(text: str | None) -> dict[str, Any] | None:
    """--detector-config: a JSON object, or a file holding one."""
    if text is None:
        return None
    source = Path(text).read_text() if not text.lstrip().startswith("{") else text
    value = json.loads(source)
    if not isinstance(value, dict):
        raise ValueError("the detector configuration must be a JSON object")
    return value


class _ConsoleHandler(logging.Handler):
    """Log lines printed above the live view rather than through it."""

    def __init__(self, console: Any) -> None:
        super().__init__()
        self._console = console
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self._console.print(self.format(record), markup=False, highlight=False)


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
        detector_config=detector_overrides(args.detector_config),
        concurrency=args.concurrency,
        devices=tuple(motor_ids),
        log=say,
    )


def run_local(
    args: argparse.Namespace,
    motor_ids: Sequence[str],
    *,
    stop: threading.Event,
    make_sink: Callable[[list[DeviceConnection]], Sink],
    run_fleet: Callable[[Any], tuple[DeliveryCounts, int]],
    on_action: Callable[[Any], None],
) -> tuple[int, DeliveryCounts | None, int]:
    """Start the stack, run the fleet through it, report, stop everything: (status, counts, ticks)."""
    say: Callable[[str], None] = lambda line: log.info("%s", line)  # noqa: E731 - a one-line adapter
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
        return 1, None, 0
    try:
        report = run_through(
            stack, args, motor_ids, stop=stop, make_sink=make_sink, run_fleet=run_fleet, on_action=on_action
        )
        if report is None:
            return 1, None, 0
        for line in report.lines():
            print(line, file=sys.stderr)
        return 0, report.counts, report.ticks
    finally:
        say("stopping the local stack")
        stack.stop(drain_s=0)
        say("local stack stopped: no process or port left behind")


@dataclass
class Report:
    """A fleet's run through the local stack."""

    counts: DeliveryCounts
    ticks: int
    watch: Watch
    summary: Summary
    settled: bool
    parked: dict[str, int]
    elapsed_s: float = 0.0
    """From the first reading to the pipeline settled."""
    endpoint: dict[str, int] | None = None
    """The local endpoint's counters (`invocations`, `rows`), when one ran."""
    ingestion_mode: str = "direct"

    def latency_ms(self) -> tuple[float, float] | None:
        """Publish -> alert latency, p50 and p99, over the alerts caused by a reading."""
        ordered = sorted(self.watch.latencies_ms)
        if not ordered:
            return None
        return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def lines(self) -> list[str]:
        lines = summary_lines(self.summary)
        latency = self.latency_ms()
        if latency is not None:
            count = len(self.watch.latencies_ms)
            lines.append(
                f"  publish -> alert latency: p50 {latency[0]:.0f} ms, p99 {latency[1]:.0f} ms "
                f"({count} alert{'s' if count != 1 else ''} caused by readings)"
            )
        if self.endpoint is not None and self.endpoint.get("rows"):
            calls, rows = self.endpoint["invocations"], self.endpoint["rows"]
            lines.append(
                f"  model endpoint: {calls} calls scored {rows} readings ({self.ingestion_mode} ingestion"
                + (f": {rows - calls} calls saved against one per reading)" if rows > calls else ")")
            )
        if not self.settled:
            lines.append(f"  WARNING: the pipeline stalled for {SETTLE_S:.0f} s with work still in flight")
        for queue, depth in self.parked.items():
            if depth:
                lines.append(f"  {queue} holds {depth} messages: the functions' logs say why")
        return lines


def run_through(
    stack: LocalStack,
    args: argparse.Namespace,
    motor_ids: Sequence[str],
    *,
    stop: threading.Event,
    make_sink: Callable[[list[DeviceConnection]], Sink],
    run_fleet: Callable[[Any], tuple[DeliveryCounts, int]],
    on_action: Callable[[Any], None],
) -> Report | None:
    """Run the fleet through a started stack, one mTLS connection per motor; None if they cannot connect."""
    watch = Watch(tuple(motor_ids))
    stack.subscribe(watch.on_stack)
    connections = []
    for motor_id in motor_ids:
        cert, key = stack.device_identity(motor_id)
        settings = ConnectionSettings(
            endpoint="127.0.0.1",
            port=stack.broker_port,
            cert_path=str(cert),
            key_path=str(key),
            client_id=motor_id,
            ca_path=str(stack.ca_path),
            ack_timeout_s=args.ack_timeout,
        )
        connections.append(DeviceConnection(settings, (motor_id,), queue_size=args.queue_size, on_action=on_action))
    sink = make_sink(connections)
    problems = sink.start(args.connect_timeout, stop)
    if problems:
        sink.close(timeout_s=0, deliver_queued=False)
        for problem in problems:
            log.error("could not connect to the local broker: %s", problem)
        return None

    sent = lambda: sink.counts().acknowledged  # noqa: E731
    polling = threading.Event()

    def poll_state() -> None:
        while not polling.wait(STATE_POLL_S):
            try:
                watch.update_state(stack.motor_items())
            except Exception as exc:  # the view goes on without run hours for a moment
                log.debug("state poll failed: %s", exc)

    poller = threading.Thread(target=poll_state, name="state-poll", daemon=True)
    poller.start()
    view, restore = _make_view(args, watch, sent, stack)
    view.start()
    started = time.monotonic()
    try:
        counts, ticks = run_fleet(WatchedSink(sink, watch))
        if not stop.is_set():
            log.info("fleet done; waiting for the pipeline to settle")
        # Stopped by Ctrl-C: a short grace for what is in flight (a second Ctrl-C ends it at once).
        settled = stack.settle(stall_s=SETTLE_S) if not stop.is_set() else stack.settle(stall_s=10, limit_s=30)
        watch.update_state(stack.motor_items())
    finally:
        polling.set()
        view.stop()
        restore()
    queues = ("RuleErrorQueue", "FunctionFailureQueue")
    parked: dict[str, int] = {q: stack.queue_depth(q) for q in queues if q in stack.queue_urls}
    elapsed_s = time.monotonic() - started
    endpoint = stack.endpoint_stats() if stack.model_url else None
    return Report(
        counts,
        ticks,
        watch,
        watch.summary(sent=counts.acknowledged),
        settled,
        parked,
        elapsed_s,
        endpoint,
        stack.options.ingestion_mode,
    )


def _make_view(
    args: argparse.Namespace, watch: Watch, sent: Callable[[], int], stack: LocalStack
) -> tuple[View, Callable[[], None]]:
    """The live view (or plain lines), and how to put the log handlers back once it is gone."""
    status = lambda: f"broker {stack.broker_kind}; logs in {stack.log_dir}; Ctrl-C stops"  # noqa: E731
    if args.no_ui or not sys.stderr.isatty():
        plain = PlainView(watch, sent, sys.stderr, every_s=args.progress_every or 0)
        stack.subscribe(plain.on_stack)
        return plain, lambda: None
    from rich.console import Console  # noqa: PLC0415 - rich only for the live view

    console = Console(file=sys.stderr)
    handler = _ConsoleHandler(console)
    device_log = logging.getLogger("device")
    previous = list(device_log.handlers)
    for existing in previous:
        device_log.removeHandler(existing)
    device_log.addHandler(handler)

    def restore() -> None:
        device_log.removeHandler(handler)
        for existing in previous:
            device_log.addHandler(existing)

    return LiveView(watch, sent, status, console), restore


def simulate_through(
    stack: LocalStack, argv: Sequence[str], *, wrap: Callable[[Any], Any] | None = None
) -> Report | None:
    """`python device/simulate.py ARGV` against an already started stack (tests and benchmarks use it).

    `wrap`, if given, wraps the fleet runner (e.g. to send extra readings along the fleet's).
    """
    from device import simulate  # noqa: PLC0415 - device/simulate.py imports this module lazily too

    parser = simulate.build_parser()
    args = parser.parse_args(list(argv))
    the_plan = simulate.plan(parser, args)
    stop, desk = threading.Event(), simulate.ServiceDesk()
    runner = simulate.fleet_runner(args, the_plan, stop=stop, desk=desk)
    return run_through(
        stack,
        args,
        the_plan.motor_ids,
        stop=stop,
        make_sink=simulate.MqttSink,
        run_fleet=wrap(runner) if wrap is not None else runner,
        on_action=desk.receive,
    )
