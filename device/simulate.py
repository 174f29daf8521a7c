"""Run a simulated fleet of pump motors and publish its readings over MQTT5 with mutual TLS (AWS IoT Core)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import queue
import re
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Protocol, TextIO

if not __package__:  # run as a script (python device/simulate.py): make `device` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.mqtt import ConnectionSettings, DeliveryCounts, DeviceConnection, IdentityUnusable, telemetry_topic
from device.physics import FailureMode, Fleet, FleetConfig, Sample
from motor_maintenance.alarms import ActionName, OperatorAction
from motor_maintenance.config import DetectorConfig
from motor_maintenance.telemetry import EARLIEST_TS, MOTOR_ID_PATTERN, parse_timestamp, to_epoch_ms

log = logging.getLogger("device.simulate")

MAX_CLOCK_SKEW_S: float = DetectorConfig.model_fields["max_clock_skew_s"].default
DEFAULT_FAIL_AFTER_S = 24 * 3600.0
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([smhd]?)$")

DESCRIPTION = """\
Simulate a fleet of pump motors and publish one JSON reading per motor every --interval seconds
to motors/{motor_id}/telemetry (QoS 1), over MQTT5 with X.509 mutual TLS, as AWS IoT Core expects.
Without --endpoint the readings go to the local stack, which this command starts and stops: the
whole pipeline on this machine (docs/local-stack.md). --demo is a two-minute tour of it.
--stdout prints the readings instead of publishing them.
"""

DEMO_ARGS = (
    "--motors", "4", "--interval", "0.3", "--speedup", "2000", "--duration", "2m",
    "--fail", "motor-002:bearing_wear:30h", "--fail", "motor-004:cooling_loss:34h",
    "--detector-config", '{"schedule": {"service_interval_h": 30}}',
)  # fmt: skip
"""--demo: 4 motors, 67 simulated hours in 2 minutes (a reading every 10 simulated minutes, as the
model was trained on), two wear failures of motors that run around the clock (with seed 1, motor-002
and motor-004; the others run weekday shifts, so their failures would depend on the start's weekday),
and a 30 h service interval so that the schedule alarm comes within the demo too (the default is 1000 h)."""

EPILOG = f"""\
connection model:
  --cert-dir DIR   one MQTT connection per motor, each with its own certificate and the motor id
                   (= its IoT thing name) as client id: DIR/<motor>.cert.pem and DIR/<motor>.private.key
                   for motor-001, motor-002, ... This is how AWS recommends scaling devices.
  --cert/--key with --thing-name NAME
                   one connection with client id NAME. With --motors 1 (the default then) the motor
                   is NAME itself: the stack's DevicePolicy lets a certificate connect only as its
                   thing and publish only to motors/<thing>/telemetry, so one certificate is one motor.
                   With --motors N > 1 the connection is a gateway publishing for motor-001..N; that
                   needs a policy allowing those topics (the stack's refuses them: counted as failed;
                   docs/security.md shows how to scope a gateway's own policy).
  The client is built with awsiotsdk's mqtt5_client_builder.mtls_from_path, whose AWS IoT Core
  defaults cap one client at 100 publishes/s and 512 KB/s (IoT Core's per-connection limits); the
  simulator also keeps at most 100 publishes per connection unacknowledged (IoT Core's in-flight
  limit). To go faster use one connection per motor, each its own thing and certificate with the
  motor id as client id (what AWS recommends), or several gateway identities; not one bigger
  connection.

delivery:
  Every reading is published at QoS 1 and counted once as acknowledged, failed (refused by the
  broker, or no acknowledgement within --ack-timeout; it may still have arrived) or dropped. While a
  connection is down its readings wait in a queue of --queue-size readings; when the queue is full
  the OLDEST reading is dropped and counted, so the cloud gets the most recent history after an
  outage. At the end, and on Ctrl-C/SIGTERM (which stop making readings; press it twice to quit at
  once), the queued and in-flight readings get --drain-timeout to be delivered and acknowledged;
  what is left then counts as dropped or failed, and the connections are closed. Exit status: 0
  if every reading was acknowledged, 1 if any failed or was dropped or a connection never came up,
  2 for bad arguments (also a private key others can read, or a certificate or key TLS cannot
  use). A reading may arrive twice (QoS 1); the cloud deduplicates by (motor_id, ts, seq).

simulated time:
  Each tick advances the physics --interval x --speedup simulated seconds. With --count or
  --duration the simulated clock starts in the past so that the last reading is stamped when it is
  sent: no reading is ever stamped in the future (the cloud refuses readings more than
  {MAX_CLOCK_SKEW_S:.0f} s ahead). Without them the first reading is stamped now, and with --speedup > 1
  later ones run ahead of the clock (a warning says so).
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown where there is one to show: not for flags, nor where the help explains it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.default in (None, False, []) or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


# -- argument types ------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds from '3600', '90s', '90m', '2h', '1.5d'."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use seconds or a number with s, m, h or d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration")
    return seconds


@dataclass(frozen=True, slots=True)
class FailureSpec:
    """A failure to inject: `motor_id` fails by `mode` after about `after_s` seconds of running."""

    motor_id: str
    mode: FailureMode
    after_s: float


def parse_failure(text: str) -> FailureSpec:
    """MOTOR:MODE[:AFTER], e.g. 'motor-002:bearing_wear:2h'."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: expected MOTOR:MODE or MOTOR:MODE:AFTER")
    motor_id, mode = parts[0], parts[1]
    if not re.fullmatch(MOTOR_ID_PATTERN, motor_id):
        raise argparse.ArgumentTypeError(f"{text!r}: {motor_id!r} is not a motor id")
    try:
        failure_mode = FailureMode(mode)
    except ValueError:
        modes = ", ".join(m.value for m in FailureMode)
        raise argparse.ArgumentTypeError(f"{text!r}: unknown failure mode {mode!r} (one of {modes})") from None
    after_s = parse_duration(parts[2]) if len(parts) == 3 else DEFAULT_FAIL_AFTER_S
    return FailureSpec(motor_id, failure_mode, after_s)


def parse_start(text: str) -> int:
    """Epoch ms from 'now', ISO-8601 with an offset, or epoch milliseconds."""
    if text == "now":
        return round(time.time() * 1000)
    try:
        return to_epoch_ms(parse_timestamp(int(text) if text.isdigit() else text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
        return value

    return convert


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python device/simulate.py", description=DESCRIPTION, epilog=EPILOG, formatter_class=_HelpFormatter
    )
    connection = parser.add_argument_group("connection (MQTT5 over mutual TLS)")
    connection.add_argument("--endpoint", help="broker host: aws iot describe-endpoint --endpoint-type iot:Data-ATS")
    connection.add_argument("--port", type=int, default=8883, help="broker port (MQTT over TLS)")
    connection.add_argument("--ca", metavar="PEM", help="CA bundle to trust, e.g. AmazonRootCA1.pem; default: system's")
    connection.add_argument("--cert", metavar="PEM", help="client certificate of one identity (with --key)")
    connection.add_argument("--key", metavar="PEM", help="private key of --cert")
    connection.add_argument(
        "--thing-name",
        "--client-id",
        dest="client_id",
        metavar="NAME",
        help="client id of the --cert connection: the IoT thing name, and the motor id with --motors 1",
    )
    connection.add_argument(
        "--cert-dir",
        metavar="DIR",
        type=Path,
        help="one connection per motor: DIR/<motor>.cert.pem and DIR/<motor>.private.key, client id = motor id",
    )
    connection.add_argument(
        "--listen-actions",
        action="store_true",
        help="subscribe to motors/<motor>/actions and apply service_complete to the simulated motor "
        "(the stack's DevicePolicy lets each thing subscribe to its own actions topic)",
    )
    connection.add_argument(
        "--connect-timeout", type=_positive(float), default=30.0, help="seconds to wait for the first connection"
    )
    connection.add_argument(
        "--ack-timeout", type=_positive(int), default=30, help="seconds to wait for each publish's acknowledgement"
    )
    connection.add_argument(
        "--drain-timeout",
        type=_non_negative,
        default=10.0,
        help="seconds to deliver queued and in-flight readings when stopping",
    )
    connection.add_argument(
        "--queue-size",
        type=_positive(int),
        default=10_000,
        help="readings each connection keeps while disconnected; when full the oldest is dropped",
    )

    fleet = parser.add_argument_group("fleet")
    fleet.add_argument("--motors", type=_positive(int), help="motors to simulate (default: 1 with --cert, else 3)")
    fleet.add_argument(
        "--seed",
        type=int,
        default=1,
        help="random seed: the same seed, options and --start give the same readings (without --start the "
        "simulated clock, and with it season and shifts, follows the wall clock)",
    )
    fleet.add_argument("--interval", type=_positive(float), default=5.0, help="wall-clock seconds between readings")
    fleet.add_argument(
        "--speedup", type=_positive(float), default=1.0, help="simulated seconds per wall second (at least 1)"
    )
    length = fleet.add_mutually_exclusive_group()
    length.add_argument(
        "--count", type=_positive(int), help="readings per motor, then stop (default: run until Ctrl-C)"
    )
    length.add_argument(
        "--duration",
        type=parse_duration,
        help="wall-clock time to run, e.g. 90s, 10m, 2h (ceil(duration/interval) readings)",
    )
    fleet.add_argument(
        "--start",
        type=parse_start,
        metavar="TIME",
        help="timestamp of the first reading: 'now', ISO-8601 with offset or epoch ms (default: see 'simulated time')",
    )

    failures = parser.add_argument_group("failures")
    failures.add_argument(
        "--fail",
        type=parse_failure,
        action="append",
        default=[],
        metavar="MOTOR:MODE[:AFTER]",
        help="make MOTOR fail by MODE after AFTER of running (e.g. 2h, 90m, 3600; default 24h); repeatable. "
        f"Modes: {', '.join(mode.value for mode in FailureMode)}",
    )
    failures.add_argument(
        "--random-failures-per-year",
        type=_non_negative,
        default=0.3,
        help="failures without warning per motor-year of running",
    )
    failures.add_argument(
        "--wear-scale", type=_positive(float), default=1.0, help="multiplies every wear rate (2 wears twice as fast)"
    )

    local = parser.add_argument_group("local stack (without --endpoint: the whole pipeline on this machine)")
    local.add_argument(
        "--demo",
        action="store_true",
        help=f"a two-minute demo: {' '.join(DEMO_ARGS)} (options given as well override these)",
    )
    local.add_argument("--no-ui", action="store_true", help="plain log lines instead of the live view (for CI)")
    local.add_argument(
        "--broker",
        choices=("auto", "mosquitto", "builtin"),
        default="auto",
        help="MQTT broker: mosquitto when installed (auto), or the built-in Python one",
    )
    local.add_argument(
        "--model",
        metavar="TAR",
        default="model/output/model.tar.gz",
        help="model artifact the local SageMaker endpoint serves; trained first if missing",
    )
    local.add_argument("--no-model", action="store_true", help="no endpoint: the predictive strategy is off")
    local.add_argument(
        "--inference-mode",
        choices=("endpoint", "embedded"),
        default="endpoint",
        help="the template's InferenceMode: the model behind the local endpoint, or evaluated in the function",
    )
    local.add_argument(
        "--ingestion-mode",
        choices=("direct", "batched"),
        default="direct",
        help="the template's IngestionMode: the rules invoke InferenceFunction per reading (direct), or put the "
        "readings into the Kinesis stream its event source mapping reads in batches (batched)",
    )
    local.add_argument(
        "--batch-window-s",
        type=_non_negative,
        metavar="S",
        help="batched: wall-clock seconds the mapping gathers a batch (default: the template's BatchWindowSeconds "
        "in simulated time, 60 / --speedup, at least 0.2)",
    )
    local.add_argument(
        "--detector-config",
        metavar="JSON|FILE",
        help='detector overrides put in the SSM parameter, e.g. \'{"schedule": {"service_interval_h": 500}}\'',
    )
    local.add_argument("--concurrency", type=_positive(int), default=1, help="execution environments per function")
    local.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="the stack's certificates, logs and stack.json (default: .local-stack in the repository, where "
        "scripts/operate.py looks)",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--stdout", "--dry-run", action="store_true", help="print the readings as JSON lines instead of publishing"
    )
    output.add_argument(
        "--progress-every", type=_non_negative, default=10.0, help="seconds between progress lines on stderr (0: none)"
    )
    output.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="also write every reading with its ground truth to FILE as JSON lines (for model/backtest.py replay)",
    )
    return parser


# -- options ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """The run the arguments describe, checked."""

    motor_ids: tuple[str, ...]
    readings: int | None
    connections: tuple[tuple[ConnectionSettings, tuple[str, ...]], ...]
    local: bool = False
    """No AWS IoT Core settings: run against the local stack."""


def plan(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Plan:
    """Check the combination of arguments; parser.error (exit 2) on anything that cannot work."""
    if args.speedup < 1:
        parser.error("--speedup must be at least 1 (it compresses simulated time)")
    if args.batch_window_s is not None and args.ingestion_mode != "batched":
        parser.error("--batch-window-s applies to --ingestion-mode batched only")
    if args.cert and args.cert_dir:
        parser.error("give either --cert/--key (one identity) or --cert-dir (one identity per motor), not both")
    if args.client_id is not None and not re.fullmatch(MOTOR_ID_PATTERN, args.client_id):
        parser.error(f"--thing-name {args.client_id!r} is not a valid thing name / motor id ([A-Za-z0-9_-]{{1,64}})")
    motors = args.motors or (1 if args.cert or args.client_id else 3)
    if motors == 1 and args.client_id:
        motor_ids: tuple[str, ...] = (args.client_id,)
    else:
        motor_ids = FleetConfig(motors=motors).ids()
    for spec in args.fail:
        if spec.motor_id not in motor_ids:
            parser.error(f"--fail names {spec.motor_id!r}, not one of the simulated motors ({', '.join(motor_ids)})")
    readings = args.count or (math.ceil(args.duration / args.interval) if args.duration is not None else None)
    if args.start is None:
        start_ms = default_start_ms(round(time.time() * 1000), readings, args.interval, args.speedup)
    else:
        start_ms = explicit_start_ms(args.start, args.interval, args.speedup)
    if start_ms < to_epoch_ms(EARLIEST_TS):
        parser.error(f"the simulated clock would start in {_iso(start_ms)}, before {EARLIEST_TS.year}: lower --speedup")

    if args.stdout:
        return Plan(motor_ids, readings, ())
    if not (args.endpoint or args.cert or args.key or args.cert_dir or args.client_id):
        if args.detector_config is not None:
            try:
                from local.session import detector_overrides  # noqa: PLC0415 - local stack only

                detector_overrides(args.detector_config)
            except (OSError, ValueError) as exc:
                parser.error(f"--detector-config: {exc}")
        return Plan(motor_ids, readings, (), local=True)
    if not args.endpoint or not (args.cert_dir or (args.cert and args.key)):
        parser.error(
            "publishing to AWS IoT Core needs --endpoint and a client identity: --cert, --key and --thing-name, "
            "or --cert-dir (plus --ca with the broker's CA, e.g. AmazonRootCA1.pem). Without any of these the "
            "readings go to the local stack; --stdout prints them instead."
        )

    def settings(cert: Path, key: Path, client_id: str) -> ConnectionSettings:
        return ConnectionSettings(
            endpoint=args.endpoint,
            port=args.port,
            cert_path=str(cert),
            key_path=str(key),
            client_id=client_id,
            ca_path=args.ca,
            ack_timeout_s=args.ack_timeout,
        )

    required = [Path(args.ca)] if args.ca else []
    if args.cert_dir:
        pairs = [(args.cert_dir / f"{m}.cert.pem", args.cert_dir / f"{m}.private.key", m) for m in motor_ids]
        required += [path for cert, key, _ in pairs for path in (cert, key)]
        connections: tuple[tuple[ConnectionSettings, tuple[str, ...]], ...] = tuple(
            (settings(cert, key, m), (m,)) for cert, key, m in pairs
        )
    else:
        if not args.client_id:
            parser.error("--cert needs --thing-name: the client id AWS IoT Core lets the certificate connect as")
        required += [Path(args.cert), Path(args.key)]
        connections = ((settings(Path(args.cert), Path(args.key), args.client_id), motor_ids),)
    missing = [str(path) for path in required if not path.is_file()]
    if missing:
        parser.error(f"cannot read {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    exposed = [key for key in (Path(c.key_path) for c, _ in connections) if key_readable_by_others(key)]
    if exposed:
        parser.error(
            f"private key {exposed[0]} is readable by other users: anyone who can read it can act as this device. "
            f"Fix it with: chmod 600 {exposed[0]}"
        )
    return Plan(motor_ids, readings, connections)


def key_readable_by_others(key: Path) -> bool:
    """Whether a private key grants access to its group or to everyone (POSIX permissions)."""
    return os.name == "posix" and bool(key.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def explicit_start_ms(first_reading_ms: int, interval_s: float, speedup: float) -> int:
    """Simulated time of the start for --start, which names the first reading's timestamp."""
    return first_reading_ms - round(interval_s * speedup * 1000)


def default_start_ms(now_ms: int, readings: int | None, interval_s: float, speedup: float) -> int:
    """Simulated time of the start, so that no reading is stamped after the moment it is sent.

    Reading k (1, 2, ...) is sent k-1 intervals after the start and stamped k simulated steps after
    it. With the number of readings known, the last one is stamped when it is sent (and all earlier
    ones before theirs, since simulated time runs at least as fast as real time); otherwise the first
    one is.
    """
    step_s = interval_s * speedup
    n = readings or 1
    return now_ms + round(((n - 1) * interval_s - n * step_s) * 1000)


# -- where readings go -----------------------------------------------------------------------------


class Sink(Protocol):
    def submit(self, sample: Sample) -> None: ...
    def counts(self) -> DeliveryCounts: ...
    def status(self) -> str: ...
    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts: ...


class StdoutSink:
    """JSON lines on standard output: what would be published, one reading per line."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._counts = DeliveryCounts()

    def submit(self, sample: Sample) -> None:
        self._out.write(json.dumps(sample.payload(), separators=(",", ":")) + "\n")
        self._out.flush()
        self._counts.submitted += 1
        self._counts.sent += 1
        self._counts.acknowledged += 1

    def counts(self) -> DeliveryCounts:
        return self._counts

    def status(self) -> str:
        return "stdout"

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        return self._counts


class RecordingSink:
    """Any sink, plus a JSON line per reading with its topic and the simulator's ground truth, flushed per line."""

    def __init__(self, inner: Sink, out: TextIO) -> None:
        self._inner = inner
        self._out = out

    def submit(self, sample: Sample) -> None:
        self._inner.submit(sample)
        truth = sample.truth
        record = {
            "topic": telemetry_topic(sample.reading.motor_id),
            "payload": sample.payload(),
            "truth": {
                "failed_mode": truth.failed_mode.value if truth.failed_mode is not None else None,
                "health": truth.health,
            },
        }
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._out.flush()

    def counts(self) -> DeliveryCounts:
        return self._inner.counts()

    def status(self) -> str:
        return self._inner.status()

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        return self._inner.close(timeout_s=timeout_s, deliver_queued=deliver_queued)


class MqttSink:
    """Routes each motor's readings to its connection."""

    def __init__(self, connections: Sequence[DeviceConnection]) -> None:
        self.connections = tuple(connections)
        self._by_motor = {motor: c for c in self.connections for motor in c.motors}
        self._closed = False

    def start(self, timeout_s: float, stop: threading.Event) -> list[str]:
        """Start every connection; the problems of those not connected within `timeout_s` (or by a stop)."""
        for connection in self.connections:
            connection.start()
        deadline = time.monotonic() + timeout_s
        problems = []
        for connection in self.connections:
            # In short slices, so that Ctrl-C while connecting is heard at once.
            while not (connection.ever_connected.wait(0.1) or stop.is_set() or time.monotonic() >= deadline):
                pass
            if not connection.ever_connected.is_set():
                # s2n reports a failed TLS handshake (e.g. an untrusted broker) only after 10-30 s.
                reason = connection.last_error or "no answer yet; a TLS failure (check --ca) is reported late"
                problems.append(f"{connection.settings.client_id}: {reason}")
        return problems

    def submit(self, sample: Sample) -> None:
        payload = json.dumps(sample.payload(), separators=(",", ":")).encode()
        motor_id = sample.reading.motor_id
        self._by_motor[motor_id].submit(telemetry_topic(motor_id), payload)

    def counts(self) -> DeliveryCounts:
        return sum((c.counts() for c in self.connections), DeliveryCounts())

    def status(self) -> str:
        reconnects = sum(max(c.connections - 1, 0) for c in self.connections)
        if self._closed:
            return f"{len(self.connections)} connections, {reconnects} reconnects"
        up = sum(c.connected for c in self.connections)
        return f"{up}/{len(self.connections)} connected, {reconnects} reconnects"

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        self._closed = True
        # One deadline for all: closing them one after another would multiply the wait.
        deadline = time.monotonic() + timeout_s
        threads = [
            threading.Thread(
                target=c.close, kwargs={"timeout_s": timeout_s, "deliver_queued": deliver_queued}, daemon=True
            )
            for c in self.connections
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + 10.0)
        return self.counts()


# -- the run ---------------------------------------------------------------------------------------


class ServiceDesk:
    """Operator actions arriving on the client's thread, applied to the fleet between steps."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[OperatorAction] = queue.SimpleQueue()
        self._applied: set[str] = set()

    def receive(self, action: OperatorAction) -> None:
        self._inbox.put(action)

    def apply(self, fleet: Fleet) -> None:
        while True:
            try:
                action = self._inbox.get_nowait()
            except queue.Empty:
                return
            # QoS 1 may deliver an action twice: apply each action id once.
            if action.action is not ActionName.SERVICE_COMPLETE or action.action_id in self._applied:
                continue
            self._applied.add(action.action_id)
            fleet.service(action.motor_id)
            log.info("%s: service complete (action %s by %s)", action.motor_id, action.action_id, action.operator)


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


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run(
    args: argparse.Namespace,
    the_plan: Plan,
    sink: Sink,
    *,
    stop: threading.Event,
    desk: ServiceDesk,
    start_ms: int,
) -> tuple[DeliveryCounts, int]:
    """Step the fleet and hand every reading to `sink` until the count, the duration or a stop."""
    fleet = Fleet(
        FleetConfig(
            motors=len(the_plan.motor_ids),
            motor_ids=the_plan.motor_ids,
            seed=args.seed,
            start_ms=start_ms,
            wear_scale=args.wear_scale,
            random_failures_per_year=args.random_failures_per_year,
        )
    )
    for spec in args.fail:
        fleet.inject(spec.motor_id, spec.mode, after_s=spec.after_s)
    step_s = args.interval * args.speedup
    warned_future = False
    ticks = 0
    next_tick = time.monotonic()
    next_progress = next_tick + args.progress_every
    while not stop.is_set():
        desk.apply(fleet)
        samples = fleet.step(step_s)
        ticks += 1
        ahead_s = fleet.time_ms / 1000 - time.time()
        if ahead_s > 1.0 and not warned_future:
            warned_future = True
            fix = (
                "give an earlier --start or a lower --speedup"
                if args.start is not None or the_plan.readings is not None
                else "give --count or --duration (the clock then starts in the past), or a lower --speedup"
            )
            log.warning(
                "readings are stamped ahead of the clock (%.0f s and growing); the cloud refuses readings more than "
                "%.0f s in the future: %s",
                ahead_s,
                MAX_CLOCK_SKEW_S,
                fix,
            )
        for sample in samples:
            sink.submit(sample)
        if the_plan.readings is not None and ticks >= the_plan.readings:
            break
        next_tick += args.interval
        while not stop.is_set():
            now = time.monotonic()
            if args.progress_every and now >= next_progress:
                next_progress = now + args.progress_every
                log.info("progress: %s; %s", sink.counts().describe(), sink.status())
            if now >= next_tick:
                break
            stop.wait(min(next_tick, next_progress) - now if args.progress_every else next_tick - now)
    # Finished or stopped, readings already made are delivered if the connection allows it in time.
    return sink.close(timeout_s=args.drain_timeout, deliver_queued=True), ticks


def fleet_runner(
    args: argparse.Namespace, the_plan: Plan, *, stop: threading.Event, desk: ServiceDesk
) -> Callable[[Sink], tuple[DeliveryCounts, int]]:
    """run() with the start time taken when it is called (connecting may have taken a while)."""

    def run_fleet(sink: Sink) -> tuple[DeliveryCounts, int]:
        start_ms = (
            default_start_ms(round(time.time() * 1000), the_plan.readings, args.interval, args.speedup)
            if args.start is None
            else explicit_start_ms(args.start, args.interval, args.speedup)
        )
        log.info(
            "simulating %d motors from %s, %.3g simulated s per reading every %.3g s",
            len(the_plan.motor_ids),
            _iso(start_ms),
            args.interval * args.speedup,
            args.interval,
        )
        record: Path | None = getattr(args, "record", None)
        if record is None:
            return run(args, the_plan, sink, stop=stop, desk=desk, start_ms=start_ms)
        with record.open("w", encoding="utf-8") as out:
            return run(args, the_plan, RecordingSink(sink, out), stop=stop, desk=desk, start_ms=start_ms)

    return run_fleet


def _run_local(args: argparse.Namespace, the_plan: Plan, *, stop: threading.Event, desk: ServiceDesk) -> int:
    """The fleet against the local stack (local.session), with the same loop and accounting as against AWS."""
    from local.session import run_local  # noqa: PLC0415 - the stack's dependencies load only when it runs

    status, counts, ticks = run_local(
        args,
        the_plan.motor_ids,
        stop=stop,
        make_sink=MqttSink,
        run_fleet=fleet_runner(args, the_plan, stop=stop, desk=desk),
        on_action=desk.receive,
    )
    if counts is None:
        return status
    print(
        f"summary: {counts.describe()}; {len(the_plan.motor_ids)} motors, {ticks} readings each",
        file=sys.stderr,
        flush=True,
    )
    return status or (1 if counts.failed + counts.dropped else 0)


def _log_to(stream: TextIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    device_log = logging.getLogger("device")
    device_log.addHandler(handler)
    device_log.setLevel(logging.INFO)
    device_log.propagate = False
    return handler


def main(argv: Sequence[str] | None = None, *, stop: threading.Event | None = None) -> int:
    """The command line; returns the exit status. `stop` lets a caller (a test) stop the run."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--demo" in argv:
        preset = list(DEMO_ARGS)
        if any(a in argv for a in ("--count", "--duration")):
            at = preset.index("--duration")
            del preset[at : at + 2]
        argv = preset + argv
    args = parser.parse_args(argv)
    the_plan = plan(parser, args)
    stop = stop or threading.Event()
    handler = _log_to(sys.stderr)
    desk = ServiceDesk()
    try:
        with _stop_on_signals(stop):
            sink: Sink
            if the_plan.local:
                return _run_local(args, the_plan, stop=stop, desk=desk)
            if args.stdout:
                sink = StdoutSink(sys.stdout)
            else:
                try:
                    mqtt = MqttSink(
                        [
                            DeviceConnection(
                                settings,
                                motors,
                                queue_size=args.queue_size,
                                on_action=desk.receive if args.listen_actions else None,
                            )
                            for settings, motors in the_plan.connections
                        ]
                    )
                except IdentityUnusable as exc:
                    log.error("%s", exc)
                    return 2
                problems = mqtt.start(args.connect_timeout, stop)
                if problems:
                    mqtt.close(timeout_s=0, deliver_queued=False)
                    why = (
                        "stopped before connecting"
                        if stop.is_set()
                        else f"could not connect within {args.connect_timeout:.0f} s"
                    )
                    for problem in problems:
                        log.error("%s: %s", why, problem)
                    return 1
                sink = mqtt
            counts, ticks = fleet_runner(args, the_plan, stop=stop, desk=desk)(sink)
    except KeyboardInterrupt:
        log.error("interrupted before every reading was accounted for")
        return 130
    except BrokenPipeError:
        # The reader of --stdout has gone (`| head`): stop quietly. Standard output points at
        # /dev/null from here, so that Python's own flush at exit does not fail on the pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        logging.getLogger("device").removeHandler(handler)
    lost = counts.failed + counts.dropped
    print(
        f"summary: {counts.describe()}; {len(the_plan.motor_ids)} motors, {ticks} readings each; {sink.status()}",
        file=sys.stderr,
        flush=True,
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
