"""The topic namespace (template.yaml's TopicNamespace): every topic of the stack under it, and nothing else.

Two stacks in one account share IoT Core's topics; each keeps to its own first topic level. These tests
hold the template (rules, device policy, roles, outputs, the functions' TOPIC_NAMESPACE, the layer's
name), the publishers, the simulator, scripts/operate.py and the local stack's rules and brokers to it.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.iot_core import IotCore
from local.iot_sql import compile_sql
from local.mqtt_broker import DevicePolicy
from local.options import StackOptions
from local.pki import LocalPki
from local.provision import PSEUDO_PARAMETERS
from local.template import load
from motor_adapters.iot_publisher import IotAlarmPublisher
from motor_lambda.settings import AlertSettings, MotorStateSettings
from motor_lambda.wiring import alarm_publisher
from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.alerts import format_alert
from motor_maintenance.topics import DEFAULT_NAMESPACE, check_namespace
from scripts import operate
from tests.support import ROOT, load_event
from tests.unit.test_operate import Clients
from tests.unit.test_template import TEMPLATE, each

NAMESPACE = "${TopicNamespace}"
LEGACY_TOPIC = "iml_iotevents_data"
IOT_ARN = re.compile(r"^arn:\$\{AWS::Partition\}:iot:\$\{AWS::Region\}:\$\{AWS::AccountId\}:(topic|topicfilter)/(.*)$")
INVALID = ["", "a/b", "motors/", "+", "#", "plant+", "$aws", "a b", "x" * 65, "caf\u00e9"]


def strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string of the template with where it is (Fn::Sub's text included)."""
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, dict):
        return [found for key, value in node.items() for found in strings(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [found for index, value in enumerate(node) for found in strings(value, f"{path}[{index}]")]
    return []


def sub_text(node: Any) -> str:
    assert isinstance(node, dict), node
    assert "Fn::Sub" in node, node
    sub = node["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


# ---------------------------------------------------------------- the template


def test_the_namespace_is_a_parameter_of_one_topic_level_defaulting_to_motors() -> None:
    parameter = TEMPLATE["Parameters"]["TopicNamespace"]
    pattern = re.compile(parameter["AllowedPattern"])

    assert parameter["Default"] == DEFAULT_NAMESPACE == "motors"
    assert pattern.pattern == r"^[A-Za-z0-9_-]{1,64}$"
    for valid in ("motors", "plant-a", "Prod_2", "x" * 64):
        assert pattern.fullmatch(valid)
        assert check_namespace(valid) == valid
    for invalid in INVALID:
        assert not pattern.fullmatch(invalid), invalid
        with pytest.raises(ValueError, match="one topic level"):
            check_namespace(invalid)
    groups = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert any("TopicNamespace" in group["Parameters"] for group in groups)


def test_no_topic_of_the_template_is_written_without_the_namespace() -> None:
    found = [
        (path, text)
        for path, text in strings(TEMPLATE["Resources"]) + strings(TEMPLATE["Outputs"])
        if "motors/" in text and not text.startswith("/motors")  # the console's HTTP routes are no topics
    ]
    assert found == []


def test_every_rule_reads_its_topics_under_the_namespace() -> None:
    rules = {
        name: resource["Properties"]["TopicRulePayload"]["Sql"]
        for name, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::IoT::TopicRule"
    }
    assert len(rules) == 4
    for name, sql in rules.items():
        if name == "LegacyTelemetryRule":  # the original sample's topic names no motor and no stack
            assert sql.endswith(f"FROM '{LEGACY_TOPIC}'")
            continue
        assert re.search(r"FROM '\$\{TopicNamespace\}/\+/(telemetry|alarms|actions)'$", sub_text(sql)), name


def test_every_topic_the_device_policy_and_the_roles_name_is_under_the_namespace() -> None:
    named = []
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] not in ("AWS::IoT::Policy", "AWS::IAM::Role"):
            continue
        for path, text in strings(resource["Properties"], name):
            match = IOT_ARN.match(text)
            if match:
                named.append((path, match.group(2)))
    assert len(named) >= 9  # the device's five topics and filters, four roles' alarm topics
    for path, topic in named:
        assert topic == LEGACY_TOPIC or topic.startswith(f"{NAMESPACE}/"), (path, topic)
        assert topic.count("/") == 2 or topic == LEGACY_TOPIC, (path, topic)


def test_the_outputs_name_the_namespace_and_the_device_s_topics_under_it() -> None:
    outputs = TEMPLATE["Outputs"]

    assert outputs["TopicNamespace"]["Value"] == {"Ref": "TopicNamespace"}
    assert sub_text(outputs["TelemetryTopic"]["Value"]) == "${TopicNamespace}/${ThingName}/telemetry"
    assert sub_text(outputs["ActionTopic"]["Value"]) == "${TopicNamespace}/${ThingName}/actions"


def test_every_function_is_told_the_namespace_and_the_layer_is_named_after_the_stack() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    layer = TEMPLATE["Resources"]["SharedLayer"]["Properties"]

    assert variables["TOPIC_NAMESPACE"] == {"Ref": "TopicNamespace"}
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            own = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert "TOPIC_NAMESPACE" not in own, name
    assert sub_text(layer["LayerName"]) == "${AWS::StackName}-shared"
    assert [value for value, _ in each(TEMPLATE["Globals"]["Function"]["Layers"])] == [{"Ref": "SharedLayer"}]


# ---------------------------------------------------------------- the local stack's reading of it


def test_the_local_rules_run_on_the_stack_s_namespace_and_topic_2_is_still_the_motor() -> None:
    template = load(ROOT / "template.yaml")
    resolver = template.resolver({"TopicNamespace": "plant-b"}, PSEUDO_PARAMETERS)
    rules = {rule.name: rule.for_stack(resolver) for rule in template.rules}
    reading = json.dumps({"motor_id": "motor-007", "ts": 1, "seq": 1}).encode()

    assert {name: compile_sql(rule.sql).topic_filter for name, rule in rules.items()} == {
        "TelemetryRule": "plant-b/+/telemetry",
        "LegacyTelemetryRule": LEGACY_TOPIC,
        "AlarmRule": "plant-b/+/alarms",
        "ActionRule": "plant-b/+/actions",
    }
    event = compile_sql(rules["TelemetryRule"].sql).evaluate(
        reading, topic="plant-b/motor-007/telemetry", client_id="motor-007", now_ms=5
    )
    assert event is not None
    assert event["topic_motor_id"] == "motor-007"
    # Under the defaults, as the template is read, the rules are those of namespace motors
    assert {compile_sql(rule.sql).topic_filter for rule in template.rules} >= {"motors/+/telemetry"}


def test_a_stack_s_options_refuse_a_namespace_that_is_not_one_topic_level() -> None:
    StackOptions(topic_namespace="plant-a").check()
    with pytest.raises(ValueError, match="one topic level"):
        StackOptions(topic_namespace="plant/a").check()


def test_the_built_in_broker_s_device_policy_follows_the_namespace() -> None:
    policy = DevicePolicy(["local-rules-engine"], namespace="plant-a")

    assert policy.can_publish("motor-001", "plant-a/motor-001/telemetry")
    assert not policy.can_publish("motor-001", "motors/motor-001/telemetry")
    assert not policy.can_publish("motor-001", "plant-b/motor-001/telemetry")
    assert policy.can_subscribe("motor-001", "plant-a/motor-001/actions")
    assert policy.can_receive("motor-001", "plant-a/motor-001/alarms")
    assert not policy.can_subscribe("motor-001", "motors/motor-001/actions")
    assert policy.can_publish("local-rules-engine", "plant-b/motor-001/alarms")  # IoT Core's own services
    with pytest.raises(ValueError, match="one topic level"):
        DevicePolicy(namespace="a/b")


def test_mosquitto_s_acl_follows_the_namespace(tmp_path: Path) -> None:
    core = IotCore(LocalPki(tmp_path / "pki"), tmp_path, tmp_path)

    acl_config = core._mosquitto_config("plant-a").read_text()
    acl = (tmp_path / "mosquitto.acl").read_text()

    assert "acl_file" in acl_config
    patterns = [line for line in acl.splitlines() if line.startswith("pattern ")]
    assert patterns == [
        "pattern write plant-a/%u/telemetry",
        "pattern read plant-a/%u/actions",
        "pattern read plant-a/%u/alarms",
    ]


# ---------------------------------------------------------------- the functions


class RecordingIotData:
    def __init__(self) -> None:
        self.topics: list[str] = []

    def publish(self, *, topic: str, qos: int, payload: bytes) -> None:
        self.topics.append(topic)


def alarm_event(motor_id: str = "motor-001") -> AlarmEvent:
    return AlarmEvent.model_validate(load_event("alarm-raised") | {"motor_id": motor_id})


def test_the_functions_read_the_namespace_from_topic_namespace_and_refuse_a_bad_one() -> None:
    env = {"STATE_TABLE_NAME": "state", "ALERT_TOPIC_ARN": "arn:t", "IDEMPOTENCY_TABLE_NAME": "i"}

    assert MotorStateSettings.from_env(env).topic_namespace == "motors"
    assert MotorStateSettings.from_env(env | {"TOPIC_NAMESPACE": "plant-b"}).topic_namespace == "plant-b"
    assert AlertSettings.from_env(env | {"TOPIC_NAMESPACE": "plant-b"}).topic_namespace == "plant-b"
    with pytest.raises(RuntimeError, match="TOPIC_NAMESPACE"):
        MotorStateSettings.from_env(env | {"TOPIC_NAMESPACE": "plant/b"})


def test_alarm_events_are_published_under_the_function_s_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    client = RecordingIotData()
    monkeypatch.setattr("motor_lambda.wiring.clients.client", lambda *args, **kwargs: client)
    settings = MotorStateSettings.from_env({"STATE_TABLE_NAME": "state", "TOPIC_NAMESPACE": "plant-b"})

    alarm_publisher(settings).publish(alarm_event())
    IotAlarmPublisher(client).publish(alarm_event("motor-002"))

    assert client.topics == ["plant-b/motor-001/alarms", "motors/motor-002/alarms"]


def test_an_alert_tells_operators_the_actions_topic_of_its_namespace() -> None:
    failure = AlarmEvent.model_validate(load_event("alarm-failure-reported"))

    for event in (alarm_event(), failure):
        body = format_alert(event, "plant-b").body
        assert f"plant-b/{event.motor_id}/actions" in body, event.transition
        assert "motors/" not in body
    assert "motors/motor-001/actions" in format_alert(alarm_event()).body


# ---------------------------------------------------------------- the simulator and operate.py


def test_the_simulator_takes_the_namespace_from_its_option_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from device import options, simulate
    from local.simulation import stack_options

    monkeypatch.delenv("TOPIC_NAMESPACE", raising=False)
    assert options.parse([])[0].topic_namespace == "motors"
    monkeypatch.setenv("TOPIC_NAMESPACE", "plant-env")
    args, plan = options.parse([])
    assert (args.topic_namespace, plan.run.topic_namespace) == ("plant-env", "plant-env")
    args, plan = options.parse(["--topic-namespace", "plant-b"])
    assert stack_options(args, ("motor-001",), lambda line: None).topic_namespace == "plant-b"
    with pytest.raises(SystemExit) as exit_info:
        simulate.main(["--topic-namespace", "plant/b"])
    assert exit_info.value.code == 2
    assert "is not one topic level" in capsys.readouterr().err


def test_the_simulator_publishes_and_listens_under_its_namespace(tmp_path: Path) -> None:
    from device.mqtt import ConnectionSettings, DeviceConnection
    from device.physics import Fleet, FleetConfig
    from device.sinks import MqttSink
    from tests.unit.test_simulate_cli import FakeClient, action, received, wait_for

    clients: list[FakeClient] = []

    def factory(conn: DeviceConnection) -> FakeClient:
        clients.append(FakeClient(conn))
        return clients[0]

    settings = ConnectionSettings("broker", 8883, "c.pem", "k.pem", "motor-001", topic_namespace="plant-b")
    actions: list[Any] = []
    connection = DeviceConnection(
        settings, ("motor-001",), queue_size=10, on_action=actions.append, client_factory=factory
    )
    connection.start()
    clients[0].connect()
    try:
        connection.on_publish_received(received("motors/motor-001/actions", action()))
        connection.on_publish_received(received("plant-b/motor-001/actions", action()))
        assert [s.topic_filter for s in clients[0].subscribed[0].subscriptions] == ["plant-b/motor-001/actions"]
        assert len(actions) == 1

        MqttSink([connection]).submit(Fleet(FleetConfig(motors=1)).step(600.0)[0])
        wait_for(lambda: len(clients[0].published) == 1)
        assert [packet.topic for packet, _ in clients[0].published] == ["plant-b/motor-001/telemetry"]
    finally:
        connection.close(timeout_s=0, deliver_queued=False)


def test_operate_publishes_on_the_namespace_of_its_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TOPIC_NAMESPACE", raising=False)
    argv = ["acknowledge", "motor-001", "schedule", "--operator", "t"]

    def topic(extra: list[str], outputs: dict[str, str] | None = None) -> str:
        clients = Clients()
        if outputs is not None:
            real = clients.__call__

            def made(service: str, **kwargs: Any) -> Any:
                if service != "cloudformation":
                    return real(service, **kwargs)
                listed = [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()]
                return type("Cfn", (), {"describe_stacks": lambda self, StackName: {"Stacks": [{"Outputs": listed}]}})()

            assert operate.main([*extra, *argv], make_client=made, out=io.StringIO()) == 0
        else:
            assert operate.main([*extra, *argv], make_client=clients, out=io.StringIO()) == 0
        return str(clients.iot_data.published[-1]["topic"])

    endpoint = ["--endpoint-url", "https://x"]
    assert topic(endpoint) == "motors/motor-001/actions"
    assert topic(["--topic-namespace", "plant-b", *endpoint]) == "plant-b/motor-001/actions"
    monkeypatch.setenv("TOPIC_NAMESPACE", "plant-env")
    assert topic(endpoint) == "plant-env/motor-001/actions"
    assert topic(["--stack", "s"], outputs={"TopicNamespace": "plant-c"}) == "plant-c/motor-001/actions"
    assert topic(["--stack", "s", "--topic-namespace", "plant-d"], outputs={}) == "plant-d/motor-001/actions"
