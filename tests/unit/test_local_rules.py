"""The local rules engine reads template.yaml's rules and evaluates their SQL as AWS IoT Core does.

local.template turns the template into specs (functions, rules, tables, queues, topics, parameters)
and resolves intrinsic functions; local.iot_sql evaluates the rules' SQL (version 2016-03-23). The
expected events are the repository's sample events (what the rules produce) and scripts/redrive.py's
hand-written mapping of the legacy rule, which must agree with the SQL it mirrors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.cfn import NO_VALUE, Resolver, TemplateError, parse
from local.iot_sql import RuleEvaluationError, UnsupportedSql, compile_sql, topic_matches
from local.specs import Template, unsupported_resources
from local.template import load, loads, rate_period_s
from scripts import redrive
from tests.support import ROOT, load_event

TEMPLATE = load(ROOT / "template.yaml")
DOCUMENT = parse((ROOT / "template.yaml").read_text())
NOW_MS = 1795780800120
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "motor-maintenance-local",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
PHYSICAL = {
    "StateTable": "state",
    "IdempotencyTable": "dedup",
    "HistoryTable": "history",
    "AlertTopic": "arn:topic",
    "DetectorConfigParameter": "/p",
}
ORIGINAL_SAMPLE = {"motorID": "AWS98765", "motorType": "Pump_GN12345", "TT01": 42.0, "TT02": 64, "TT03": 57}
ORIGINAL_SAMPLE |= {"TT04": 30, "FTO1": 231, "PT01": 27.3}  # FTO1: the original simulator's spelling


def rule_sql(name: str) -> str:
    return next(rule.sql for rule in TEMPLATE.rules if rule.name == name)


def run(sql: str, payload: Any, topic: str = "t", client_id: str | None = "motor-001") -> dict[str, Any] | None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return compile_sql(sql).evaluate(body, topic=topic, client_id=client_id, now_ms=NOW_MS)


def logical_ids(kind: str) -> set[str]:
    return {name for name, resource in DOCUMENT["Resources"].items() if resource["Type"] == kind}


# ---------------------------------------------------------------- the real template


def test_every_rule_of_the_template_compiles_and_targets_a_function_of_the_template() -> None:
    assert {rule.name for rule in TEMPLATE.rules} == logical_ids("AWS::IoT::TopicRule")
    for rule in TEMPLATE.rules:
        compiled = compile_sql(rule.sql)
        assert compiled.topic_filter
        assert rule.sql_version == "2016-03-23"
        assert set(rule.actions) <= set(TEMPLATE.functions)
        assert rule.error_action == "RuleErrorQueue"


def test_every_function_table_queue_topic_and_parameter_of_the_template_is_found() -> None:
    assert set(TEMPLATE.functions) == logical_ids("AWS::Serverless::Function")
    assert {t.logical_id for t in TEMPLATE.tables} == logical_ids("AWS::DynamoDB::Table")
    assert {q.logical_id for q in TEMPLATE.queues} == logical_ids("AWS::SQS::Queue")
    assert {t.logical_id for t in TEMPLATE.topics} == logical_ids("AWS::SNS::Topic")
    assert {s.logical_id for s in TEMPLATE.subscriptions} == logical_ids("AWS::SNS::Subscription")
    assert {p.logical_id for p in TEMPLATE.parameters} == logical_ids("AWS::SSM::Parameter")


def test_functions_take_globals_handler_and_invoke_config_from_the_template() -> None:
    inference = TEMPLATE.functions["InferenceFunction"]
    assert inference.code_uri == ROOT / "functions" / "inference"
    assert (inference.handler_module, inference.handler_attribute) == ("app", "lambda_handler")
    assert inference.timeout_s == DOCUMENT["Globals"]["Function"]["Timeout"]
    assert inference.environment["POWERTOOLS_SERVICE_NAME"] == "motor-maintenance"  # from Globals
    assert inference.environment["ENDPOINT_TIMEOUT_S"] == "3"  # the function's own
    assert (inference.max_retry_attempts, inference.max_event_age_s) == (2, 3600)
    assert inference.on_failure == "FunctionFailureQueue"
    assert TEMPLATE.layer_paths(inference) == [ROOT / "layers" / "shared"]
    # InferenceMode embedded evaluates the model with the shared layer's own code: no layer of its own
    embedded = TEMPLATE.resolver({"InferenceMode": "embedded", "ModelDataUrl": "s3://bucket/model.tar.gz"})
    assert TEMPLATE.layer_paths(inference, embedded) == [ROOT / "layers" / "shared"]
    assert TEMPLATE.layer_paths(TEMPLATE.functions["AlertFunction"], embedded) == [ROOT / "layers" / "shared"]


def test_a_layer_chosen_by_a_condition_follows_it() -> None:
    # Given a template whose function adds a second layer only under a condition
    text = (
        (ROOT / "template.yaml")
        .read_text()
        .replace(
            "      LoggingConfig:\n        LogGroup: !Ref InferenceLogGroup",
            "      Layers:\n        - !If [EmbeddedModel, !Ref SharedLayer, !Ref AWS::NoValue]\n"
            "      LoggingConfig:\n        LogGroup: !Ref InferenceLogGroup",
            1,
        )
    )
    template = loads(text, path=ROOT / "template.yaml")
    inference = template.functions["InferenceFunction"]
    embedded = template.resolver({"InferenceMode": "embedded", "ModelDataUrl": "s3://bucket/model.tar.gz"})
    # Then the layer is there when the condition holds, and AWS::NoValue adds none when it does not
    assert template.layer_paths(inference, embedded) == [ROOT / "layers" / "shared"] * 2
    assert template.layer_paths(inference) == [ROOT / "layers" / "shared"]


def test_tables_keep_their_keys_and_time_to_live() -> None:
    tables = {table.logical_id: table for table in TEMPLATE.tables}
    assert tables["StateTable"].key_schema == [{"AttributeName": "motor_id", "KeyType": "HASH"}]
    assert tables["IdempotencyTable"].ttl_attribute == "expiration"
    assert tables["StateTable"].ttl_attribute is None


def test_what_the_local_stack_leaves_out_is_listed_by_type() -> None:
    left_out = unsupported_resources(TEMPLATE)
    assert left_out["AWS::IAM::Role"] == sorted(logical_ids("AWS::IAM::Role"))
    assert "AWS::SageMaker::Endpoint" in left_out
    assert "AWS::Lambda::Permission" in left_out
    assert not {"AWS::Serverless::Function", "AWS::IoT::TopicRule", "AWS::SQS::Queue"} & set(left_out)
    assert TEMPLATE.unsupported_resource_types() == sorted(left_out)


# ---------------------------------------------------------------- the template's rules


def test_the_telemetry_rule_adds_the_topics_motor_id_and_the_receive_time_to_the_reading() -> None:
    expected = load_event("telemetry-normal")  # what TelemetryRule delivers
    reading = {k: v for k, v in expected.items() if k not in ("topic_motor_id", "received_at")}

    event = run(rule_sql("TelemetryRule"), reading, topic="motors/motor-001/telemetry")

    assert event == expected
    assert event["received_at"] == NOW_MS


def test_the_action_rule_adds_the_topics_motor_id_and_the_alarm_rule_copies_the_event() -> None:
    action = load_event("action-acknowledge")
    published = {k: v for k, v in action.items() if k != "topic_motor_id"}
    alarm = load_event("alarm-raised")

    assert run(rule_sql("ActionRule"), published, topic="motors/motor-001/actions") == action
    assert run(rule_sql("AlarmRule"), alarm, topic="motors/motor-001/alarms") == alarm


def test_the_legacy_rule_maps_the_original_sample_as_the_sample_event_shows() -> None:
    event = run(rule_sql("LegacyTelemetryRule"), ORIGINAL_SAMPLE, topic="iml_iotevents_data", client_id="AWS98765")

    assert event == load_event("telemetry-legacy") | {"ts": NOW_MS, "seq": NOW_MS, "received_at": NOW_MS}


@pytest.mark.parametrize(
    "original",
    [
        pytest.param(ORIGINAL_SAMPLE, id="original-sample"),
        pytest.param(ORIGINAL_SAMPLE | {"FT01": 80.5, "PTO1": 3.2}, id="FT01-wins-over-FTO1"),
        pytest.param({k: v for k, v in ORIGINAL_SAMPLE.items() if k != "PT01"} | {"PTO1": 4.5}, id="PTO1-fallback"),
        pytest.param(
            {k: v for k, v in ORIGINAL_SAMPLE.items() if k not in ("FTO1", "PT01")}, id="no-fluid-no-pressure"
        ),
        pytest.param(ORIGINAL_SAMPLE | {"TT01": 10}, id="TT01-10-is-stopped"),
        pytest.param(ORIGINAL_SAMPLE | {"TT01": 10.5}, id="TT01-above-10-is-running"),
        pytest.param({k: v for k, v in ORIGINAL_SAMPLE.items() if k != "TT01"}, id="no-TT01-no-running"),
        pytest.param(ORIGINAL_SAMPLE | {"TT01": "42"}, id="TT01-string-no-running"),
        pytest.param({"TT01": 11}, id="almost-empty"),
    ],
)
def test_the_legacy_rule_agrees_with_the_redrive_scripts_mapping(original: dict[str, Any]) -> None:
    """scripts/redrive.py maps the legacy rule by hand; the SQL itself must give the same event."""
    event = run(rule_sql("LegacyTelemetryRule"), original, topic="iml_iotevents_data", client_id="AWS98765")

    assert event == redrive.legacy_event(original, client_id="AWS98765", received_ms=NOW_MS)


def test_a_legacy_message_not_published_over_mqtt_has_client_id_n_a() -> None:
    event = run(rule_sql("LegacyTelemetryRule"), ORIGINAL_SAMPLE, topic="iml_iotevents_data", client_id=None)

    assert event is not None
    assert event["topic_motor_id"] == "n/a"


def test_whole_numbers_are_ints_in_sql_version_2016_03_23() -> None:
    """AWS: with SQL V2, whole numbers such as 10.0 are processed as Int (10); pydantic's strict int relies on it."""
    event = run("SELECT *, 2.5 * 2 AS product FROM 't'", {"seq": 1042.0, "speed_rpm": 1482.5})

    assert event == {"seq": 1042, "speed_rpm": 1482.5, "product": 5}
    assert isinstance(event["seq"], int)
    assert isinstance(event["product"], int)


def test_a_number_beyond_a_double_reaches_the_function_as_lambdas_json_would_read_it() -> None:
    assert run("SELECT * FROM 't'", b'{"x": 1e400}') == {"x": float("inf")}


# ---------------------------------------------------------------- IoT SQL semantics


def test_a_missing_field_is_left_out_and_so_is_any_expression_on_it() -> None:
    sql = "SELECT a, b, b + 1 AS c, b > 1 AS d, NOT b AS e, a.x AS f, isUndefined(b) AS g FROM 't'"

    assert run(sql, {"a": 1}) == {"a": 1, "g": True}


def test_null_is_a_value_not_undefined() -> None:
    assert run("SELECT a, isUndefined(a) AS u, a = null AS n FROM 't'", {"a": None}) == {
        "a": None,
        "u": False,
        "n": True,
    }


def test_nested_fields_are_read_by_path_and_named_by_their_last_part() -> None:
    assert run("SELECT state.reported.temp FROM 't'", {"state": {"reported": {"temp": 21}}}) == {"temp": 21}
    assert run("SELECT a.b FROM 't'", {"a": 5}) == {}


def test_star_copies_the_payload_and_later_items_overwrite_earlier_keys() -> None:
    assert run("SELECT *, 'x' AS a FROM 't'", {"a": 1, "b": 2}) == {"a": "x", "b": 2}
    assert run("SELECT 'x' AS a, * FROM 't'", {"a": 1, "b": 2}) == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("where", "kept"),
    [
        ("temperature > 50", True),
        ("temperature > 150", False),
        ("missing > 50", False),  # Undefined is not true
        ("'true'", False),  # only the Boolean true keeps a message
        ("temperature", False),
        ("temperature > 50 AND color = 'red'", True),
        ("temperature > 150 OR NOT (color <> 'red')", True),
        ("missing > 1 OR true", False),  # OR with an Undefined operand is Undefined
        ("'TRUE' AND true", True),  # the strings "true"/"false" are Booleans to AND, OR and NOT
    ],
)
def test_the_where_clause_keeps_a_message_only_when_it_is_exactly_true(where: str, kept: bool) -> None:
    sql = f"SELECT color AS rgb FROM 'topic/subtopic' WHERE {where}"  # noqa: S608 - IoT SQL, no database

    event = run(sql, {"color": "red", "temperature": 100})

    assert event == ({"rgb": "red"} if kept else None)


@pytest.mark.parametrize(
    ("color", "expected"),
    [("yellow", {"instructions": "caution"}), ("blue", {"instructions": "you are not at a stop light"}), (None, {})],
)
def test_a_simple_case_matches_its_subject_against_each_when(color: str | None, expected: dict[str, str]) -> None:
    """The example of AWS's CASE reference; an Undefined subject makes the CASE Undefined, ELSE or not."""
    sql = (
        "SELECT CASE color WHEN 'green' THEN 'go' WHEN 'yellow' THEN 'caution' WHEN 'red' THEN 'stop' "
        "ELSE 'you are not at a stop light' END as instructions FROM 'topic/subtopic'"
    )
    payload = {} if color is None else {"color": color}

    assert run(sql, payload) == expected


def test_a_case_without_a_match_or_else_is_undefined() -> None:
    assert run("SELECT CASE a WHEN 1 THEN 'one' END AS b FROM 't'", {"a": 2}) == {}


@pytest.mark.parametrize(("temp", "expected"), [(120, "hot"), (60, "warm"), (20, "cold"), (None, "cold")])
def test_a_searched_case_takes_the_first_true_condition(temp: int | None, expected: str) -> None:
    sql = "SELECT CASE WHEN t > 100 THEN 'hot' WHEN t > 50 THEN 'warm' ELSE 'cold' END AS feel FROM 'x'"

    assert run(sql, {} if temp is None else {"t": temp}) == {"feel": expected}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("7 / 2", 3),  # Int / Int is an Int
        ("-7 / 2", -3),  # truncated toward zero
        ("7.5 / 2", 3.75),
        ("1 / 0", None),  # division by zero is Undefined
        ("1.5 / 0", None),
        ("2 * 3 + 4", 10),
        ("2 * (3 + 4)", 14),
        ("10 - 2 - 3", 5),
        ("'a' + 1", None),  # arithmetic on a string is Undefined
        ("true + 1", None),
        ("'abc' > 1", None),  # comparing different types is Undefined
        ("true = 1", None),
        ("'1' = 1", None),
        ("1 = 1.0", True),  # Int and Decimal are both numbers
        ("'abc' < 'abd'", True),
        ("1 <> 2", True),
        ("1 != 1", False),
        ("2 >= 2", True),
        ("true < false", None),  # Booleans have no order
        ("NOT 1", None),
    ],
)
def test_operators_follow_the_types_of_their_operands(expression: str, value: Any) -> None:
    event = run(f"SELECT {expression} AS v FROM 't'", {})  # noqa: S608 - IoT SQL, no database

    assert event == ({} if value is None else {"v": value})


@pytest.mark.parametrize(
    ("expression", "value"),
    [("topic()", "motors/m-7/telemetry"), ("topic(1)", "motors"), ("topic(3)", "telemetry"), ("topic(4)", None)],
)
def test_topic_gives_the_whole_topic_or_one_level_counted_from_1(expression: str, value: str | None) -> None:
    sql = f"SELECT {expression} AS v FROM 'motors/+/telemetry'"  # noqa: S608 - IoT SQL, no database

    event = run(sql, {}, topic="motors/m-7/telemetry")

    assert event == ({} if value is None else {"v": value})


def test_topic_0_is_undefined() -> None:
    assert run("SELECT topic(0) AS v FROM '#'", {}, topic="a/b") == {}


def test_clientid_is_the_publishers_or_n_a_when_unknown() -> None:
    assert run("SELECT clientid() AS c FROM 't'", {}, client_id="motor-007") == {"c": "motor-007"}
    assert run("SELECT clientid() AS c FROM 't'", {}, client_id=None) == {"c": "n/a"}


def test_keywords_and_function_names_are_case_insensitive() -> None:
    sql = "select *, TOPIC(2) as m, IsUndefined(x) As u from 'a/+' where NOT isundefined(v) and v >= 1"

    assert run(sql, {"v": 1}, topic="a/b") == {"v": 1, "m": "b", "u": True}


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"\xff\xfe", b"", b"[1, 2]", b"42", b'{"a": NaN}'],
    ids=["text", "binary", "empty", "array", "number", "nan"],
)
def test_a_payload_that_is_not_a_json_object_cannot_be_evaluated(payload: bytes) -> None:
    """IoT Core would take it as a binary payload; our rules expect JSON, so the rule's error action gets it."""
    with pytest.raises(RuleEvaluationError):
        run(rule_sql("TelemetryRule"), payload, topic="motors/motor-001/telemetry")


# ---------------------------------------------------------------- what the local rules engine refuses


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        ("SELECT get_thing_shadow('motor-001', 'role') AS s FROM 'a'", "function get_thing_shadow()"),
        ("SELECT * FROM 'a' WHERE upper(x) = 'A'", "function upper()"),
        ("SELECT a[0] AS x FROM 'a'", "array access"),
        ("SELECT * FROM a", "FROM without a quoted topic filter"),
        ("SELECT (SELECT 1 FROM 'b') AS x FROM 'a'", "nested SELECT"),
        ("SELECT * FROM 'a' WHERE x IN (1, 2)", "IN operator"),
        ("SELECT * FROM 'a' WHERE x LIKE 'b%'", "LIKE operator"),
        ("SELECT VALUE x FROM 'a'", "SELECT VALUE"),
        ("SELECT a % 2 AS b FROM 'a'", "modulo"),
        ("SELECT \"a\" AS b FROM 'a'", "double-quoted"),
        ("SELECT `a-b` AS b FROM 'a'", "backquoted"),
        ("SELECT * FROM 'a' LIMIT 1", "LIMIT after the FROM clause"),
        ("SELECT * FROM 'a/#/b'", "invalid topic filter"),
        ("SELECT * FROM 'a/b+'", "invalid topic filter"),
        ("SELECT timestamp() FROM 'a'", "expression without an AS alias"),
        ("SELECT topic(1, 2) AS t FROM 'a'", "topic() with 2 argument(s)"),
        ("SELECT CASE a END AS b FROM 'a'", "CASE without a WHEN"),
        ("SELECT * FROM 'a' WHERE 1 < 2 < 3", "chained comparisons"),
        ("SELECT 'it\\'s' AS a FROM 'a'", "backslash escape"),
        ("SELECT * FROM 'a' -- comment", "comment"),
        ("SET @x = 1 SELECT * FROM 'a'", "the SET clause"),
    ],
)
def test_sql_outside_the_subset_fails_at_compile_time_naming_the_construct(sql: str, construct: str) -> None:
    with pytest.raises(UnsupportedSql) as raised:
        compile_sql(sql)

    message = str(raised.value)
    assert construct in message
    assert f"position {raised.value.position}" in message
    caret_line = message.splitlines()[-1]
    assert caret_line.index("^") - 4 == raised.value.position  # the caret points under the construct
    assert 0 <= raised.value.position <= len(sql)


def test_an_unsupported_function_is_pointed_at_where_it_is_called() -> None:
    sql = "SELECT *, get_thing_shadow(topic(2), 'arn') AS shadow FROM 'motors/+/telemetry'"

    with pytest.raises(UnsupportedSql) as raised:
        compile_sql(sql)

    assert raised.value.construct.startswith("the function get_thing_shadow()")
    assert sql[raised.value.position :].startswith("get_thing_shadow")


# ---------------------------------------------------------------- small templates


def write_template(root: Path, resources: str, schedule: str = "rate(1 day)") -> Template:
    """A template next to one function folder (functions/fn/app.py) and one layer folder."""
    (root / "functions" / "fn").mkdir(parents=True, exist_ok=True)
    (root / "functions" / "fn" / "app.py").write_text("def lambda_handler(event, context):\n    return event\n")
    (root / "layer").mkdir(exist_ok=True)
    base = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.13
    Timeout: 10
    Layers: [!Ref Layer]
    Environment:
      Variables: {SHARED: from-globals, OVERRIDDEN: from-globals}
Resources:
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layer/}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn/
      Handler: app.lambda_handler
      Environment:
        Variables: {OVERRIDDEN: own, TABLE: !Ref Table}
      Events:
        Telemetry:
          Type: IoTRule
          Properties:
            Sql: SELECT *, topic(2) AS device FROM 'devices/+/data' WHERE temp > 0
            AwsIotSqlVersion: "2016-03-23"
        Nightly:
          Type: Schedule
          Properties: {Schedule: "SCHEDULE"}
        Inbox:
          Type: SQS
          Properties: {Queue: !GetAtt Queue.Arn}
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
  Queue:
    Type: AWS::SQS::Queue
    Properties: {FifoQueue: true}
"""
    text = base.replace("SCHEDULE", schedule) + "".join(f"  {line}\n" for line in resources.strip("\n").splitlines())
    return loads(text, path=root / "template.yaml")


def test_a_sam_iot_rule_event_is_a_rule_that_targets_its_function(tmp_path: Path) -> None:
    template = write_template(tmp_path, "")

    [rule] = template.rules
    function = template.functions["Fn"]

    assert (rule.name, rule.actions, rule.error_action) == ("FnTelemetry", ("Fn",), None)
    assert rule.source == "IoTRule event of Fn"
    assert compile_sql(rule.sql).matches("devices/d1/data")
    assert function.environment == {"SHARED": "from-globals", "OVERRIDDEN": "own", "TABLE": {"Ref": "Table"}}
    assert (function.timeout_s, function.memory_mb) == (10, 128)
    assert (function.max_retry_attempts, function.max_event_age_s, function.on_failure) == (2, 21600, None)
    assert template.layer_paths(function) == [tmp_path / "layer"]
    assert template.queues[0].fifo is True
    assert unsupported_resources(template) == {"SQS event": ["Fn.Events.Inbox"]}
    [schedule] = template.schedules
    assert (schedule.name, schedule.function, schedule.period_s, schedule.enabled) == ("FnNightly", "Fn", 86400, True)


def test_the_templates_schedule_is_read_as_written() -> None:
    [schedule] = TEMPLATE.schedules
    assert (schedule.function, schedule.expression, schedule.period_s) == ("OfflineCheckFunction", "rate(1 minute)", 60)
    # The console's routes: served on loopback by local.console_server, not by a local API Gateway.
    assert TEMPLATE.unsupported_events == {
        "HttpApi": [f"ConsoleFunction.Events.{name}" for name in ("Fleet", "Motor", "History", "Action")]
    }


def test_tables_are_read_with_their_secondary_indexes() -> None:
    tables = {table.logical_id: table for table in TEMPLATE.tables}
    [index] = tables["StateTable"].global_secondary_indexes
    assert index["IndexName"] == "due-checks"


@pytest.mark.parametrize(
    ("expression", "period_s"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate( 1 day )", 86400)],
)
def test_a_rate_expression_gives_its_period(expression: str, period_s: float) -> None:
    assert rate_period_s(expression, "here") == period_s


@pytest.mark.parametrize(
    "expression", ["cron(0 12 * * ? *)", "rate(0 minutes)", "rate(1 minutes)", "rate(5 minute)", "rate(5 seconds)"]
)
def test_a_schedule_the_local_stack_cannot_run_stops_it_naming_where(tmp_path: Path, expression: str) -> None:
    with pytest.raises(TemplateError, match=r"Fn\.Properties\.Events\.Nightly\.Properties\.Schedule"):
        write_template(tmp_path, "", schedule=expression)


def test_a_topic_rule_with_a_lambda_action_and_an_sqs_error_action_is_read(tmp_path: Path) -> None:
    template = write_template(
        tmp_path,
        """
Rule:
  Type: AWS::IoT::TopicRule
  Properties:
    TopicRulePayload:
      Sql: SELECT * FROM 'a/#'
      AwsIotSqlVersion: "2016-03-23"
      RuleDisabled: true
      Actions:
        - Lambda: {FunctionArn: !Sub "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${Fn}"}
        - Lambda: {FunctionArn: !Ref Fn}
      ErrorAction:
        Sqs: {QueueUrl: !Ref Queue, RoleArn: arn:aws:iam::1:role/r, UseBase64: true}
""",
    )

    rule = next(rule for rule in template.rules if rule.name == "Rule")

    assert (rule.actions, rule.error_action, rule.error_action_base64, rule.disabled) == (
        ("Fn", "Fn"),
        "Queue",
        True,
        True,
    )


@pytest.mark.parametrize("action", ["Republish", "DynamoDBv2", "S3", "Kinesis"])
def test_a_rule_action_other_than_lambda_fails_naming_it(tmp_path: Path, action: str) -> None:
    rule = """
Rule:
  Type: AWS::IoT::TopicRule
  Properties:
    TopicRulePayload:
      Sql: SELECT * FROM 'a'
      Actions:
        - Lambda: {FunctionArn: !GetAtt Fn.Arn}
        - ACTION: {RoleArn: arn:aws:iam::1:role/r}
""".replace("ACTION", action)
    with pytest.raises(TemplateError, match=f"unsupported rule action {action} in Rule"):
        write_template(tmp_path, rule)


def test_an_error_action_other_than_sqs_fails_naming_it(tmp_path: Path) -> None:
    rule = """
Rule:
  Type: AWS::IoT::TopicRule
  Properties:
    TopicRulePayload:
      Sql: SELECT * FROM 'a'
      Actions: [{Lambda: {FunctionArn: !GetAtt Fn.Arn}}]
      ErrorAction: {CloudwatchLogs: {LogGroupName: x, RoleArn: y}}
"""
    with pytest.raises(TemplateError, match="unsupported error action CloudwatchLogs in Rule"):
        write_template(tmp_path, rule)


def test_a_lambda_action_naming_no_function_of_the_template_fails(tmp_path: Path) -> None:
    rule = """
Rule:
  Type: AWS::IoT::TopicRule
  Properties:
    TopicRulePayload:
      Sql: SELECT * FROM 'a'
      Actions: [{Lambda: {FunctionArn: "arn:aws:lambda:us-east-1:1:function:elsewhere"}}]
"""
    with pytest.raises(TemplateError, match=r"Rule\.Properties\.TopicRulePayload\.Actions\[0\]"):
        write_template(tmp_path, rule)


def test_an_on_failure_destination_that_is_not_a_queue_fails(tmp_path: Path) -> None:
    topic = """
Topic:
  Type: AWS::SNS::Topic
Other:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: functions/fn/
    Handler: app.lambda_handler
    EventInvokeConfig:
      DestinationConfig:
        OnFailure: {Type: SNS, Destination: !Ref Topic}
"""
    with pytest.raises(TemplateError, match=r"Other\.Properties\.EventInvokeConfig\.DestinationConfig\.OnFailure"):
        write_template(tmp_path, topic)


def test_a_handler_whose_module_does_not_exist_fails_at_load(tmp_path: Path) -> None:
    other = """
Other:
  Type: AWS::Serverless::Function
  Properties: {CodeUri: functions/fn/, Handler: missing.handler}
"""
    with pytest.raises(TemplateError, match=r"Other\.Properties\.Handler"):
        write_template(tmp_path, other)


# ---------------------------------------------------------------- the resolver


def resolver(**parameters: str) -> Resolver:
    attributes = {("ModelEndpoint", "EndpointName"): "ModelEndpoint-AbC123"}
    return Resolver(parameters, PSEUDO, PHYSICAL, attributes, template=TEMPLATE)


def endpoint_name(**parameters: str) -> str:
    return TEMPLATE.functions["InferenceFunction"].resolved_environment(resolver(**parameters))["ENDPOINT_NAME"]


def test_endpoint_name_follows_the_templates_conditions() -> None:
    """!If [CreateEndpoint, !GetAtt ModelEndpoint.EndpointName, !Ref ExistingEndpointName]."""
    assert endpoint_name() == ""  # neither parameter: the predictive strategy is off
    assert endpoint_name(ExistingEndpointName="my-endpoint") == "my-endpoint"
    assert endpoint_name(ModelDataUrl="s3://b/k/model.tar.gz") == "ModelEndpoint-AbC123"
    both = {"ModelDataUrl": "s3://b/k/model.tar.gz", "ExistingEndpointName": "my-endpoint"}
    assert endpoint_name(**both) == "my-endpoint"  # the existing endpoint takes precedence


def test_a_value_the_local_stack_does_not_have_fails_naming_it_and_where_it_is() -> None:
    plain = Resolver({"ModelDataUrl": "s3://b/k/model.tar.gz"}, PSEUDO, PHYSICAL, {}, template=TEMPLATE)

    with pytest.raises(TemplateError, match=r"InferenceFunction\.Environment\.Variables\.ENDPOINT_NAME.*ModelEndpoint"):
        TEMPLATE.functions["InferenceFunction"].resolved_environment(plain)


def test_conditions_are_evaluated_with_the_given_parameters_over_the_defaults() -> None:
    assert TEMPLATE.evaluate_conditions(resolver())["HasEndpoint"] is False
    with_email = TEMPLATE.evaluate_conditions(resolver(AlertEmail="ops@example.com", AllowLegacyTopic="true"))
    assert with_email["HasAlertEmail"] is True
    assert with_email["LegacyTopicAllowed"] is True


def test_sub_fills_in_pseudo_parameters_and_resources_and_keeps_escaped_variables() -> None:
    r = resolver()
    parameter = next(p for p in TEMPLATE.parameters if p.logical_id == "DetectorConfigParameter")

    assert r.resolve(parameter.name) == "/motor-maintenance-local/detector-config"
    assert (
        r.resolve({"Fn::Sub": "${AWS::StackName}-${StateTable}-${!Literal}"})
        == "motor-maintenance-local-state-${Literal}"
    )
    assert r.resolve({"Fn::Sub": "name=${ModelEndpoint.EndpointName}"}) == "name=ModelEndpoint-AbC123"
    assert r.resolve({"Fn::Sub": ["${A}/${B}", {"A": "x", "B": {"Ref": "ThingName"}}]}) == "x/motor-001"


def test_no_value_removes_the_key_or_the_list_item() -> None:
    publish = DOCUMENT["Resources"]["DevicePolicy"]["Properties"]["PolicyDocument"]["Statement"][1]["Resource"]

    assert len(resolver().resolve(publish)) == 1
    assert len(resolver(AllowLegacyTopic="true").resolve(publish)) == 2
    assert resolver().resolve({"a": 1, "b": {"Ref": "AWS::NoValue"}}) == {"a": 1}
    assert resolver().resolve({"Ref": "AWS::NoValue"}) is None
    assert repr(NO_VALUE) == "AWS::NoValue"


def test_select_split_and_find_in_map_build_the_model_roles_resources() -> None:
    statements = DOCUMENT["Resources"]["ModelExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    r = resolver(ModelDataUrl="s3://models/motor/model.tar.gz")

    assert r.resolve(statements[0]["Resource"]) == "arn:aws:s3:::models/motor/model.tar.gz"
    registry = DOCUMENT["Mappings"]["XGBoostRegistry"]["us-east-1"]["Account"]
    assert r.resolve(statements[1]["Resource"]) == f"arn:aws:ecr:us-east-1:{registry}:repository/sagemaker-xgboost"
    assert r.resolve({"Fn::Join": ["-", ["a", {"Ref": "ThingName"}]]}) == "a-motor-001"


@pytest.mark.parametrize(
    "value",
    [{"Fn::ImportValue": "shared-vpc"}, {"Fn::GetAZs": ""}, {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}, {"Fn::Length": [1]}],
)
def test_an_unknown_intrinsic_function_fails_naming_it_and_where(value: dict[str, Any]) -> None:
    [name] = value
    with pytest.raises(TemplateError, match=rf"Res\.Properties\.X: intrinsic function {name} is not supported"):
        resolver().resolve(value, "Res.Properties.X")


def test_the_loader_turns_short_form_tags_into_their_long_form() -> None:
    snippet = """
Resources:
  R:
    Properties:
      a: !Ref X
      b: !GetAtt A.B.C
      c: !GetAtt [A, B]
      d: !Sub "${X}"
      e: !Sub ["${Y}", {Y: !Ref X}]
      f: !If [C, !Equals [1, 1], !Not [!Condition D]]
      g: !And [!Or [!Condition C, !Condition D], !Condition E]
      h: !Select [0, !Split [",", !Join [",", [a, b]]]]
      i: !FindInMap [M, !Ref AWS::Region, K]
      j: !Base64 text
      m: !GetAZs ""
      k: !ImportValue shared
      l: !Cidr [10.0.0.0/16, 2, 8]
      n: !Contains [[a, b], !Ref X]
"""
    props = parse(snippet)["Resources"]["R"]["Properties"]

    assert props["a"] == {"Ref": "X"}
    assert props["b"] == {"Fn::GetAtt": ["A", "B.C"]}
    assert props["c"] == {"Fn::GetAtt": ["A", "B"]}
    assert props["d"] == {"Fn::Sub": "${X}"}
    assert props["e"] == {"Fn::Sub": ["${Y}", {"Y": {"Ref": "X"}}]}
    assert props["f"] == {"Fn::If": ["C", {"Fn::Equals": [1, 1]}, {"Fn::Not": [{"Condition": "D"}]}]}
    assert props["g"] == {"Fn::And": [{"Fn::Or": [{"Condition": "C"}, {"Condition": "D"}]}, {"Condition": "E"}]}
    assert props["h"] == {"Fn::Select": [0, {"Fn::Split": [",", {"Fn::Join": [",", ["a", "b"]]}]}]}
    assert props["i"] == {"Fn::FindInMap": ["M", {"Ref": "AWS::Region"}, "K"]}
    assert props["j"] == {"Fn::Base64": "text"}
    assert props["m"] == {"Fn::GetAZs": ""}
    assert props["k"] == {"Fn::ImportValue": "shared"}
    assert props["l"] == {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}
    assert props["n"] == {"Fn::Contains": [["a", "b"], {"Ref": "X"}]}


# ---------------------------------------------------------------- topic filters (property-based)


def reference_match(topic_filter: str, topic: str) -> bool:
    """MQTT matching written another way: the filter as a regular expression."""
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False
    levels = topic_filter.split("/")
    tail = levels[-1] == "#"
    body = "/".join("[^/]*" if level == "+" else re.escape(level) for level in (levels[:-1] if tail else levels))
    pattern = (f"{body}(/.*)?" if body or len(levels) > 1 else ".*") if tail else body
    return re.fullmatch(pattern, topic, flags=re.DOTALL) is not None


LEVELS = st.sampled_from(["a", "b", "motors", "", "$SYS", "x y"])
TOPICS = st.lists(LEVELS, min_size=1, max_size=5).map("/".join).filter(bool)
FILTERS = st.builds(
    lambda levels, tail: "/".join([*levels, *tail]) or "#",
    st.lists(st.one_of(LEVELS, st.just("+")), max_size=4),
    st.sampled_from([[], ["#"]]),
)


@given(topic_filter=FILTERS, topic=TOPICS)
def test_the_topic_filter_matcher_agrees_with_a_regular_expression(topic_filter: str, topic: str) -> None:
    assert topic_matches(topic_filter, topic) == reference_match(topic_filter, topic)


@given(topic=TOPICS)
def test_a_topic_filter_without_wildcards_matches_only_its_own_topic(topic: str) -> None:
    assert topic_matches(topic, topic)
    assert topic_matches("#", topic) != topic.startswith("$")
