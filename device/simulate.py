"""Run a simulated fleet of pump motors and publish its readings over MQTT5 with mutual TLS (AWS IoT Core).

    python device/simulate.py --help

The options are device.options, the loop device.runner, the connections device.sinks; without AWS
IoT Core settings the run goes to the local stack (local.simulation), which this command starts and stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

if not __package__:  # run as a script (python device/simulate.py): make `device` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

SCRIPT = "device/simulate.py"

with setup_needed(SCRIPT):
    from device.mqtt import DeviceConnection, IdentityUnusable
    from device.options import Plan, parse
    from device.runner import FleetRunner, summary_line
    from device.sinks import MqttSink, Sink, StdoutSink

log = logging.getLogger("device.simulate")


def main(argv: Sequence[str] | None = None, *, stop: threading.Event | None = None) -> int:
    """The command line; returns the exit status. `stop` lets a caller (a test) stop the run."""
    args, plan = parse(sys.argv[1:] if argv is None else argv)
    runner = FleetRunner(plan.run, stop=stop or threading.Event())
    with _logging_to(sys.stderr):
        try:
            with _stop_on_signals(runner.stop):
                return _run(args, plan, runner)
        except IdentityUnusable as exc:
            log.error("%s", exc)
            return 2
        except KeyboardInterrupt:
            log.error("interrupted before every reading was accounted for")
            return 130
        except BrokenPipeError:
            # The reader of --stdout has gone (`| head`): stop quietly. Standard output points at
            # /dev/null from here, so that Python's own flush at exit does not fail on the pipe again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0


def _run(args: argparse.Namespace, plan: Plan, runner: FleetRunner) -> int:
    """The fleet into the local stack, stdout or AWS IoT Core; 0 if every reading was acknowledged."""
    if plan.local:
        with setup_needed(SCRIPT):
            from local.simulation import run_local  # noqa: PLC0415 - the stack's dependencies load only here

        return run_local(args, runner)
    sink: Sink
    if args.stdout:
        sink = StdoutSink(sys.stdout)
    else:
        connections = [
            DeviceConnection(
                settings,
                motors,
                queue_size=args.queue_size,
                on_action=runner.desk.receive if args.listen_actions else None,
            )
            for settings, motors in plan.connections
        ]
        mqtt = MqttSink(connections)
        if not _connected(mqtt, args.connect_timeout, runner.stop):
            return 1
        sink = mqtt
    counts, ticks = runner.run(sink)
    print(summary_line(counts, len(plan.run.motor_ids), ticks, sink.status()), file=sys.stderr, flush=True)
    return 1 if counts.failed + counts.dropped else 0


def _connected(mqtt: MqttSink, timeout_s: float, stop: threading.Event) -> bool:
    """Start the connections; False, with the reasons logged, if any is not up within `timeout_s`."""
    problems = mqtt.start(timeout_s, stop)
    if not problems:
        return True
    mqtt.close(timeout_s=0, deliver_queued=False)
    why = "stopped before connecting" if stop.is_set() else f"could not connect within {timeout_s:.0f} s"
    for problem in problems:
        log.error("%s: %s", why, problem)
    return False


@contextmanager
def _logging_to(stream: TextIO) -> Iterator[None]:
    """The device's log lines on `stream` for the run, with the time of day."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    device_log = logging.getLogger("device")
    device_log.addHandler(handler)
    device_log.setLevel(logging.INFO)
    device_log.propagate = False
    try:
        yield
    finally:
        device_log.removeHandler(handler)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop` (a clean stop); a second one interrupts the clean stop itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("stopping (%s): waiting for acknowledgements; again to quit now", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


if __name__ == "__main__":
    sys.exit(main())
