"""The simulator's command line and its delivery accounting, without a network."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from awscrt import mqtt5

from device import options, runner, simulate, sinks
from device.mqtt import IN_FLIGHT_LIMIT, ConnectionSettings, DeviceConnection, Outgoing, SendQueue
from device.physics import FailureMode
from device.requirements_check import setup_needed
from motor_maintenance.alarms import ActionName, OperatorAction
from motor_maintenance.telemetry import Telemetry
from tests.support import ROOT

# -- argument parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("90m", 5400), ("2h", 7200), ("1.5d", 129_600), ("0.5H", 1800), (".5m", 30)],
)
def test_durations_take_seconds_or_a_unit(text: str, seconds: float) -> None:
    assert options.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "2x", "-5", "2 hours", "1e3", "2h30m"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        options.parse_duration(text)


def test_fail_names_motor_mode_and_when() -> None:
    spec = options.parse_failure("motor-002:bearing_wear:2h")

    assert spec == runner.FailureSpec("motor-002", FailureMode.BEARING_WEAR, 7200.0)


def test_fail_without_when_means_after_a_day_of_running() -> None:
    assert options.parse_failure("motor-001:random").after_s == 24 * 3600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("motor-002", "expected MOTOR:MODE or MOTOR:MODE:AFTER"),
        ("motor-002:bearing_wear:2h:extra", "expected MOTOR:MODE or MOTOR:MODE:AFTER"),
        ("motor 2:bearing_wear", "is not a motor id"),
        ("motor-002:melting", "unknown failure mode 'melting' (one of bearing_wear, winding_insulation"),
        ("motor-002:random:soon", "'soon' is not a duration"),
    ],
)
def test_a_bad_fail_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("(", r"\(")):
        options.parse_failure(text)


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        simulate.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_fail_for_a_motor_that_is_not_simulated_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["--stdout", "--motors", "2", "--fail", "motor-007:random"], capsys)

    assert "--fail names 'motor-007', not one of the simulated motors (motor-001, motor-002)" in err


def test_fail_with_an_unknown_mode_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["--stdout", "--fail", "motor-001:rust"], capsys)

    assert "argument --fail: 'motor-001:rust': unknown failure mode 'rust'" in err


def test_without_any_aws_iot_setting_it_plans_a_run_against_the_local_stack() -> None:
    _, the_plan = options.parse(["--motors", "2"])

    assert the_plan.local
    assert the_plan.run.motor_ids == ("motor-001", "motor-002")
    assert the_plan.connections == ()


def test_a_partial_aws_iot_identity_says_what_publishing_to_aws_needs(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["--cert", "c.pem"], capsys)

    for needed in ("--endpoint", "--cert", "--key", "--ca", "local stack", "--stdout"):
        assert needed in err


def test_the_demo_preset_gives_way_to_options_given_with_it() -> None:
    parser = options.build_parser()
    args = parser.parse_args([*options.DEMO_ARGS, "--motors", "6", "--interval", "1"])

    assert (args.motors, args.interval, args.speedup) == (6, 1.0, 2000.0)
    assert [f.motor_id for f in args.fail] == ["motor-002", "motor-004"]


def test_the_demo_fails_motors_that_run_around_the_clock_so_it_shows_the_same_on_any_weekday() -> None:
    from device.physics import Fleet, FleetConfig

    parser = options.build_parser()
    args = parser.parse_args(list(options.DEMO_ARGS))
    fleet = Fleet(FleetConfig(motors=args.motors, seed=args.seed))

    assert all(fleet.continuous[fleet.index(spec.motor_id)] for spec in args.fail)


def test_a_detector_configuration_that_is_not_json_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(["--detector-config", "{not json"], capsys)

    assert "--detector-config" in err


def test_a_certificate_needs_the_thing_name_to_connect_as(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    err = usage_error(["--endpoint", "example.com", "--cert", "c.pem", "--key", "k.pem"], capsys)

    assert "--cert needs --thing-name" in err


def test_missing_certificate_files_are_named(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    err = usage_error(["--endpoint", "example.com", "--cert-dir", str(tmp_path), "--motors", "1"], capsys)

    assert f"cannot read {tmp_path}/motor-001.cert.pem, {tmp_path}/motor-001.private.key" in err


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_private_key_other_users_can_read_is_refused_with_the_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Any, mode: int
) -> None:
    cert, key = tmp_path / "motor-001.cert.pem", tmp_path / "motor-001.private.key"
    cert.write_text("cert")
    key.write_text("key")
    key.chmod(mode)
    argv = ["--endpoint", "example.com", "--cert", str(cert), "--key", str(key), "--thing-name", "motor-001"]

    err = usage_error(argv, capsys)

    assert f"private key {key} is readable by other users" in err
    assert f"chmod 600 {key}" in err
    key.chmod(0o600)
    assert not options.key_readable_by_others(key)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stdout", "--count", "3", "--duration", "1m"], "not allowed with argument"),
        (["--stdout", "--speedup", "0.5"], "--speedup must be at least 1"),
        (["--stdout", "--interval", "0"], "must be a positive number"),
        (["--stdout", "--queue-size", "0"], "must be a positive number"),
        (["--stdout", "--thing-name", "motor/1"], "is not a valid thing name"),
        (["--stdout", "--start", "2026-01-01T00:00:00"], "must carry a UTC offset"),
        (
            ["--stdout", "--count", "1000", "--interval", "1", "--speedup", "1000000"],
            "before 2000: lower --speedup",
        ),
    ],
)
def test_impossible_combinations_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in usage_error(argv, capsys)


def test_help_documents_every_option_and_the_connection_limits(capsys: pytest.CaptureFixture[str]) -> None:
    parser = options.build_parser()
    with pytest.raises(SystemExit):
        simulate.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())

    flags = [flag for action in parser._actions for flag in action.option_strings]
    assert len(flags) > 25
    for flag in flags:
        assert flag in text
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    assert "cap one client at 100 publishes/s" in text
    assert "one connection per motor, each its own thing and certificate with the motor id as client id" in text
    assert "the OLDEST reading is dropped and counted" in text


# -- what a run produces ---------------------------------------------------------------------------


def run_stdout(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[Telemetry], str]:
    status = simulate.main(["--stdout", "--progress-every", "0", *argv])
    captured = capsys.readouterr()
    return status, [Telemetry.model_validate_json(line) for line in captured.out.splitlines()], captured.err


def test_stdout_prints_every_reading_as_valid_telemetry(capsys: pytest.CaptureFixture[str]) -> None:
    status, readings, err = run_stdout(["--motors", "2", "--count", "3", "--interval", "0.01"], capsys)

    assert status == 0
    assert [(r.motor_id, r.seq) for r in readings] == [
        ("motor-001", 1), ("motor-002", 1), ("motor-001", 2), ("motor-002", 2), ("motor-001", 3), ("motor-002", 3),
    ]  # fmt: skip
    assert "summary: 6 readings: 6 acknowledged, 0 failed, 0 dropped" in err


def test_one_motor_with_a_thing_name_is_named_after_the_thing(capsys: pytest.CaptureFixture[str]) -> None:
    status, readings, _ = run_stdout(["--thing-name", "pump-7", "--count", "2", "--interval", "0.01"], capsys)

    assert status == 0
    assert {r.motor_id for r in readings} == {"pump-7"}


def test_duration_sets_the_number_of_readings(capsys: pytest.CaptureFixture[str]) -> None:
    _, readings, _ = run_stdout(["--motors", "1", "--duration", "0.05", "--interval", "0.02"], capsys)

    assert [r.seq for r in readings] == [1, 2, 3]


def test_a_known_run_ends_its_simulated_clock_now(capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC)
    _, readings, err = run_stdout(["--motors", "1", "--count", "4", "--interval", "0.01", "--speedup", "3600"], capsys)
    after = datetime.now(UTC)

    # 36 simulated seconds per reading; the last one is stamped about when it was printed.
    assert [(r.ts - readings[0].ts).total_seconds() for r in readings] == [0, 36, 72, 108]
    assert before.timestamp() - 2 <= readings[-1].ts.timestamp() <= after.timestamp()
    assert "ahead of the clock" not in err


def test_an_explicit_start_stamps_the_first_reading(capsys: pytest.CaptureFixture[str]) -> None:
    _, readings, _ = run_stdout(
        ["--motors", "1", "--count", "2", "--interval", "0.01", "--speedup", "6000", "--start", "2026-01-01T00:00:00Z"],
        capsys,
    )

    assert [r.ts for r in readings] == [datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 0, 1, tzinfo=UTC)]


def test_start_now_stamps_the_first_reading_now_not_one_step_ahead(capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC)
    _, readings, _ = run_stdout(
        ["--motors", "1", "--count", "1", "--interval", "1", "--speedup", "600", "--start", "now"], capsys
    )

    assert before.timestamp() - 5 <= readings[0].ts.timestamp() <= datetime.now(UTC).timestamp()


def test_ctrl_c_while_connecting_stops_at_once() -> None:
    """Given a broker that never answers, when a stop comes while connecting, the wait ends then, not at the timeout."""
    never = SimpleNamespace(
        start=lambda: None,
        ever_connected=threading.Event(),
        last_error=None,
        settings=SimpleNamespace(client_id="motor-001"),
        motors=("motor-001",),
    )
    sink = sinks.MqttSink([never])  # type: ignore[list-item]
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()

    started = time.monotonic()
    problems = sink.start(timeout_s=30.0, stop=stop)

    assert time.monotonic() - started < 5.0
    assert problems == ["motor-001: no answer yet; a TLS failure (check --ca) is reported late"]


def test_readings_stamped_in_the_future_are_warned_about_once(capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = run_stdout(
        ["--motors", "1", "--count", "3", "--interval", "0.01", "--start", "2099-01-01T00:00:00Z"], capsys
    )

    assert err.count("readings are stamped ahead of the clock") == 1
    assert "more than 300 s in the future" in err


@pytest.mark.parametrize("readings", [1, 2, 10, 1000])
@pytest.mark.parametrize(("interval_s", "speedup"), [(5.0, 1.0), (0.05, 60.0), (1.0, 3600.0), (10.0, 1.5)])
def test_the_default_start_stamps_no_reading_after_it_is_sent(readings: int, interval_s: float, speedup: float) -> None:
    now_ms = 1_795_780_800_000
    start_ms = runner.default_start_ms(now_ms, readings, interval_s, speedup)

    # Reading k is stamped k steps after the start and sent k-1 intervals after now.
    lead_ms = [
        start_ms + k * interval_s * speedup * 1000 - (now_ms + (k - 1) * interval_s * 1000)
        for k in range(1, readings + 1)
    ]
    assert max(lead_ms) == pytest.approx(0, abs=1)
    assert lead_ms[-1] == pytest.approx(0, abs=1)


def test_without_a_known_length_the_first_reading_is_stamped_now() -> None:
    now_ms = 1_795_780_800_000

    assert runner.default_start_ms(now_ms, None, 5.0, 60.0) + 300_000 == now_ms


# -- the send queue and the delivery counts ----------------------------------------------------------


def test_a_full_queue_drops_its_oldest_readings_and_counts_them() -> None:
    queue = SendQueue(3)
    for n in range(5):
        queue.put(Outgoing("t", str(n).encode()))

    assert queue.dropped == 2
    assert [queue.take().payload for _ in range(len(queue))] == [b"2", b"3", b"4"]


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


class FakeClient:
    """Stands in for awscrt's MQTT5 client: records publishes, lets the test connect and acknowledge."""

    def __init__(self, connection: DeviceConnection) -> None:
        self.connection = connection
        self.published: list[tuple[mqtt5.PublishPacket, Future[Any]]] = []
        self.subscribed: list[mqtt5.SubscribePacket] = []

    def start(self) -> None:
        pass

    def stop(self, disconnect_packet: Any = None) -> None:
        self.connection.on_stopped(SimpleNamespace())

    def publish(self, publish_packet: mqtt5.PublishPacket) -> Future[Any]:
        future: Future[Any] = Future()
        self.published.append((publish_packet, future))
        return future

    def subscribe(self, subscribe_packet: mqtt5.SubscribePacket) -> Future[Any]:
        self.subscribed.append(subscribe_packet)
        future: Future[Any] = Future()
        codes = [mqtt5.SubackReasonCode.GRANTED_QOS_1] * len(subscribe_packet.subscriptions)
        future.set_result(SimpleNamespace(reason_codes=codes))
        return future

    def connect(self) -> None:
        self.connection.on_connection_success(SimpleNamespace())

    def disconnect(self) -> None:
        self.connection.on_disconnection(SimpleNamespace(exception=ConnectionError("gone")))

    def ack(self, code: mqtt5.PubackReasonCode = mqtt5.PubackReasonCode.SUCCESS) -> None:
        for _, future in self.published:
            if not future.done():
                future.set_result(SimpleNamespace(puback=SimpleNamespace(reason_code=code)))


def connection(
    motors: tuple[str, ...] = ("motor-001",), queue_size: int = 100, on_action: Any = None
) -> tuple[DeviceConnection, FakeClient]:
    clients: list[FakeClient] = []

    def factory(conn: DeviceConnection) -> FakeClient:
        clients.append(FakeClient(conn))
        return clients[0]

    settings = ConnectionSettings("broker", 8883, "c.pem", "k.pem", "motor-001")
    conn = DeviceConnection(settings, motors, queue_size=queue_size, on_action=on_action, client_factory=factory)
    conn.start()
    return conn, clients[0]


def test_readings_wait_in_the_queue_while_disconnected_and_go_out_in_order_after_connecting() -> None:
    conn, client = connection()
    for n in range(5):
        conn.submit("motors/motor-001/telemetry", str(n).encode())

    assert client.published == []
    assert conn.counts().queued == 5

    client.connect()
    wait_for(lambda: len(client.published) == 5)
    assert [packet.payload for packet, _ in client.published] == [b"0", b"1", b"2", b"3", b"4"]
    assert all(packet.qos is mqtt5.QoS.AT_LEAST_ONCE for packet, _ in client.published)
    assert conn.counts().in_flight == 5

    client.ack()
    counts = conn.close(timeout_s=1, deliver_queued=True)
    assert (counts.submitted, counts.acknowledged, counts.failed, counts.dropped) == (5, 5, 0, 0)


def test_an_outage_longer_than_the_queue_drops_the_oldest_and_counts_every_drop() -> None:
    conn, client = connection(queue_size=3)
    client.connect()
    conn.submit("t", b"0")
    wait_for(lambda: len(client.published) == 1)
    client.disconnect()
    for n in range(1, 6):
        conn.submit("t", str(n).encode())

    client.connect()
    wait_for(lambda: len(client.published) == 4)
    client.ack()
    counts = conn.close(timeout_s=1, deliver_queued=True)

    assert [packet.payload for packet, _ in client.published] == [b"0", b"3", b"4", b"5"]
    assert (counts.submitted, counts.acknowledged, counts.failed, counts.dropped) == (6, 4, 0, 2)


def test_no_more_than_the_in_flight_limit_is_handed_to_the_client() -> None:
    conn, client = connection(queue_size=1000)
    client.connect()
    for n in range(IN_FLIGHT_LIMIT + 50):
        conn.submit("t", str(n).encode())

    wait_for(lambda: len(client.published) == IN_FLIGHT_LIMIT)
    time.sleep(0.05)
    assert len(client.published) == IN_FLIGHT_LIMIT
    assert conn.counts().queued == 50

    client.ack()
    wait_for(lambda: len(client.published) == IN_FLIGHT_LIMIT + 50)
    client.ack()
    assert conn.close(timeout_s=1, deliver_queued=True).acknowledged == IN_FLIGHT_LIMIT + 50


def test_refused_and_failed_publishes_count_as_failed() -> None:
    conn, client = connection()
    client.connect()
    conn.submit("motors/motor-002/telemetry", b"forged")
    conn.submit("motors/motor-001/telemetry", b"lost")
    conn.submit("motors/motor-001/telemetry", b"nobody listens")
    wait_for(lambda: len(client.published) == 3)

    client.published[0][1].set_result(
        SimpleNamespace(puback=SimpleNamespace(reason_code=mqtt5.PubackReasonCode.NOT_AUTHORIZED))
    )
    client.published[1][1].set_exception(TimeoutError("no PUBACK within ack_timeout_sec"))
    client.ack(mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS)
    counts = conn.close(timeout_s=1, deliver_queued=True)

    assert (counts.acknowledged, counts.failed) == (1, 2)


def test_at_the_deadline_queued_readings_are_dropped_and_unacknowledged_ones_failed() -> None:
    conn, client = connection()
    client.connect()
    conn.submit("t", b"sent, never acknowledged")
    wait_for(lambda: len(client.published) == 1)
    client.disconnect()
    conn.submit("t", b"never sent")

    counts = conn.close(timeout_s=0.1, deliver_queued=True)

    assert (counts.submitted, counts.acknowledged, counts.failed, counts.dropped) == (2, 0, 1, 1)
    assert (counts.queued, counts.in_flight) == (0, 0)
    client.ack()  # a late acknowledgement does not change final counts
    assert conn.counts() == counts


def action(motor_id: str = "motor-001", **fields: Any) -> bytes:
    body = {
        "motor_id": motor_id,
        "action": "service_complete",
        "action_id": "a-1",
        "ts": "2026-11-27T12:00:00Z",
        **fields,
    }
    return json.dumps(body).encode()


def received(topic: str, payload: bytes) -> Any:
    return SimpleNamespace(publish_packet=SimpleNamespace(topic=topic, payload=payload))


def test_actions_on_the_motors_own_topic_reach_the_simulator() -> None:
    actions: list[OperatorAction] = []
    conn, client = connection(motors=("motor-001",), on_action=actions.append)
    client.connect()

    conn.on_publish_received(received("motors/motor-001/actions", action()))
    conn.on_publish_received(received("motors/motor-001/actions", action(motor_id="motor-002")))
    conn.on_publish_received(received("motors/motor-001/actions", b"{not json"))
    conn.on_publish_received(received("motors/motor-002/actions", action(motor_id="motor-002")))

    assert [(a.motor_id, a.action) for a in actions] == [("motor-001", ActionName.SERVICE_COMPLETE)]
    assert [s.topic_filter for s in client.subscribed[0].subscriptions] == ["motors/motor-001/actions"]
    conn.close(timeout_s=0, deliver_queued=False)


def test_a_gateway_subscribes_in_packets_of_at_most_eight() -> None:
    motors = tuple(f"motor-{n:03d}" for n in range(1, 20))
    conn, client = connection(motors=motors, on_action=lambda _: None)
    client.connect()

    assert [len(packet.subscriptions) for packet in client.subscribed] == [8, 8, 3]
    conn.close(timeout_s=0, deliver_queued=False)


def test_the_service_desk_services_a_motor_once_per_action_id() -> None:
    serviced: list[str] = []
    fleet = SimpleNamespace(service=serviced.append)
    desk = runner.ServiceDesk()
    service = OperatorAction.model_validate_json(action())
    acknowledge = OperatorAction.model_validate_json(action(action="acknowledge", alarm="schedule", action_id="a-2"))

    for message in (service, service, acknowledge):
        desk.receive(message)
    desk.apply(fleet)  # type: ignore[arg-type]

    assert serviced == ["motor-001"]


def test_stdout_piped_into_a_reader_that_stops_early_ends_quietly() -> None:
    """`simulate.py --stdout | head -2`: no BrokenPipeError traceback once head has what it wants."""
    script = Path(simulate.__file__).resolve()
    command = [sys.executable, str(script), "--stdout", "--motors", "3", "--count", "50", "--interval", "0.01"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:  # noqa: S603
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # the reader goes away, as head does after its lines
        errors = process.stderr.read().decode()
        code = process.wait(timeout=60)

    assert json.loads(first)["motor_id"] == "motor-001"
    assert "Traceback" not in errors
    assert code == 0


# -- without the project's packages ------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["device/simulate.py", "--help"],
        ["device/history.py", "--help"],
        ["model/train.py", "--help"],
        ["model/backtest.py", "--help"],
        ["model/replay.py", "--help"],
        ["scripts/operate.py", "--help"],
        ["scripts/check_config.py", "--help"],
        ["scripts/costs.py", "--help"],
        ["scripts/redrive.py", "--stack", "motor-maintenance", "--dry-run"],
        ["scripts/sam_local_env.py", "--stack", "motor-maintenance"],
    ],
    ids=lambda command: command[0],
)
def test_on_a_bare_interpreter_a_script_says_in_one_line_how_to_set_up_and_exits_non_zero(command: list[str]) -> None:
    """A script run before `make setup`: one line naming the fix, no traceback."""
    # -I -S: no site-packages, no environment, as a fresh machine's python3 has it.
    result = subprocess.run(  # noqa: S603 - our own interpreter and scripts
        [sys.executable, "-I", "-S", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{command[0]} needs the Python package")
    assert "run `make setup`" in line
    assert "`source .venv/bin/activate`" in line


def test_a_missing_module_of_the_repository_itself_is_a_bug_and_keeps_its_traceback() -> None:
    with pytest.raises(ModuleNotFoundError), setup_needed("device/simulate.py"):
        import device.no_such_module  # noqa: F401


def test_a_missing_third_party_package_becomes_the_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info, setup_needed("model/train.py"):
        import no_such_package_anywhere  # noqa: F401

    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("model/train.py needs the Python package 'no_such_package_anywhere'")
