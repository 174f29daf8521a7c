"""The simulator's command line: its options, their help, and the checks that turn them into a plan.

`parse` reads the arguments (with --demo's preset) and `plan` says what the run will be: the fleet's
settings, and where its readings go (AWS IoT Core's connections, stdout, or the local stack).
Any combination that cannot work is a usage error here (exit status 2), before anything starts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.mqtt import ConnectionSettings
from device.physics import FailureMode, FleetConfig
from device.runner import MAX_CLOCK_SKEW_S, FailureSpec, RunSettings, iso
from motor_maintenance.telemetry import EARLIEST_TS, MOTOR_ID_PATTERN, parse_timestamp, to_epoch_ms
from motor_maintenance.topics import DEFAULT_NAMESPACE, check_namespace

DEFAULT_FAIL_AFTER_S = 24 * 3600.0
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([smhd]?)$")

DESCRIPTION = """\
Simulate a fleet of pump motors and publish one JSON reading per motor every --interval seconds
to {namespace}/{motor_id}/telemetry (QoS 1), over MQTT5 with X.509 mutual TLS, as AWS IoT Core expects.
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
                   thing and publish only to <namespace>/<thing>/telemetry, so one certificate is one motor.
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


def topic_namespace(text: str) -> str:
    """--topic-namespace: one topic level (template.yaml's TopicNamespace)."""
    try:
        return check_namespace(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def detector_overrides(text: str) -> dict[str, Any]:
    """--detector-config: a JSON object, or a file holding one."""
    try:
        value = json.loads(text if text.lstrip().startswith("{") else Path(text).read_text())
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("the detector configuration must be a JSON object")
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
        help="subscribe to <namespace>/<motor>/actions and apply service_complete to the simulated motor "
        "(the stack's DevicePolicy lets each thing subscribe to its own actions topic)",
    )
    connection.add_argument(
        "--topic-namespace",
        type=topic_namespace,
        default=os.environ.get("TOPIC_NAMESPACE") or DEFAULT_NAMESPACE,
        metavar="NAME",
        help="first level of the topics: the stack's TopicNamespace parameter (default: $TOPIC_NAMESPACE, else "
        f"{DEFAULT_NAMESPACE!r}); the local stack runs with it too",
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
        help="MQTT broker: mosquitto when installed (auto), or the built-in Python one, which also enforces the "
        "device policy's client-id rule and serves MQTT 3.1.1",
    )
    local.add_argument(
        "--allow-legacy-topic",
        action="store_true",
        help="the template's AllowLegacyTopic=true: devices of the original sample may publish on "
        "iml_iotevents_data (MQTT 3.1.1 or 5; needs the built-in broker, which auto then picks)",
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
        type=detector_overrides,
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
    local.add_argument(
        "--archive",
        type=Path,
        metavar="DIR",
        help="where the template's Firehose streams archive every reading, alarm event and action "
        "(default: archive/ in the state directory; docs/archive.md)",
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


# -- the plan --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """The run the arguments describe, checked."""

    run: RunSettings
    connections: tuple[tuple[ConnectionSettings, tuple[str, ...]], ...]
    """AWS IoT Core: each connection's settings and the motors it publishes for."""
    local: bool = False
    """No AWS IoT Core settings: run against the local stack."""


def with_demo_preset(argv: Sequence[str]) -> list[str]:
    """--demo's options first, so that options given with it override them (--count replaces its --duration)."""
    argv = list(argv)
    if "--demo" not in argv:
        return argv
    preset = list(DEMO_ARGS)
    if any(a in argv for a in ("--count", "--duration")):
        at = preset.index("--duration")
        del preset[at : at + 2]
    return preset + argv


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, Plan]:
    """The arguments and the run they describe; exits with status 2 (usage) on what cannot work."""
    parser = build_parser()
    args = parser.parse_args(with_demo_preset(argv))
    return args, plan(parser, args)


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
    run = RunSettings(
        motor_ids=motor_ids,
        readings=args.count or (math.ceil(args.duration / args.interval) if args.duration is not None else None),
        interval_s=args.interval,
        speedup=args.speedup,
        seed=args.seed,
        first_reading_ms=args.start,
        failures=tuple(args.fail),
        wear_scale=args.wear_scale,
        random_failures_per_year=args.random_failures_per_year,
        progress_every_s=args.progress_every,
        drain_timeout_s=args.drain_timeout,
        record=args.record,
        topic_namespace=args.topic_namespace,
    )
    start_ms = run.start_ms(round(time.time() * 1000))
    if start_ms < to_epoch_ms(EARLIEST_TS):
        parser.error(f"the simulated clock would start in {iso(start_ms)}, before {EARLIEST_TS.year}: lower --speedup")

    if args.stdout:
        return Plan(run, ())
    if not (args.endpoint or args.cert or args.key or args.cert_dir or args.client_id):
        return Plan(run, (), local=True)
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
            topic_namespace=args.topic_namespace,
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
    return Plan(run, connections)


def key_readable_by_others(key: Path) -> bool:
    """Whether a private key grants access to its group or to everyone (POSIX permissions)."""
    return os.name == "posix" and bool(key.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
