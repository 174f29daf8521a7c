"""The dashboard and the CloudWatch alarms watch what the code emits and what the template creates.

Everything is derived: the metric names and dimensions from the source (read with `ast`) and from
what Powertools prints, the functions and queues from template.yaml. A metric renamed in the code, a
function or queue added to the template without an alarm, or an alarm that cannot notify anyone
fails here. The tests at the end break the template on purpose to prove the rules can fail.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from motor_lambda.observability import KIND_DIMENSION, count_alarms_raised
from motor_maintenance.alarms import AlarmEvent, AlarmKind, Transition
from tests.support import ROOT, load_event
from tests.unit.test_template import TEMPLATE, Template, When, alternatives, direct_reference, each, resources

SOURCE_ROOTS = (ROOT / "functions", ROOT / "layers")
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
GLOBAL_VARIABLES = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
NAMESPACE = GLOBAL_VARIABLES["POWERTOOLS_METRICS_NAMESPACE"]
SERVICE = GLOBAL_VARIABLES["POWERTOOLS_SERVICE_NAME"]
# Powertools adds `service` to every metric it writes, from POWERTOOLS_SERVICE_NAME (Metrics, and
# single_metric unless the code set it), and emits ColdStart itself (log_metrics(capture_cold_start_metric=True)).
POWERTOOLS_DIMENSION = "service"
POWERTOOLS_METRICS = {"ColdStart"}
# The model's health is one fleet-wide alarm, counted as ModelOutages; every other kind is a motor's.
MOTOR_ALARM_KINDS = {kind.value for kind in AlarmKind} - {AlarmKind.HEALTH.value}

Metric = tuple[str, str, dict[str, str]]  # namespace, name, dimensions


# ------------------------------------------------------------------ what the code emits


def _constants(tree: ast.Module) -> dict[str, Any]:
    """The module's top-level `NAME = "literal"` (and annotated) assignments."""
    found = {}
    for node in tree.body:
        target = (
            node.targets[0]
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            else getattr(node, "target", None)
        )
        value = getattr(node, "value", None)
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(target, ast.Name)
            and isinstance(value, ast.Constant)
        ):
            found[target.id] = value.value
    return found


def _literal(call: ast.Call, keyword: str, position: int, constants: dict[str, Any]) -> Any:
    """The argument's value if it is a literal or a module constant, else None."""
    node = next((item.value for item in call.keywords if item.arg == keyword), None)
    if node is None and len(call.args) > position:
        node = call.args[position]
    if isinstance(node, ast.Constant):
        return node.value
    return constants.get(node.id) if isinstance(node, ast.Name) else None


def _called(call: ast.Call) -> str | None:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"


def source_files() -> Iterator[Path]:
    for root in SOURCE_ROOTS:
        yield from sorted(root.rglob("*.py"))


def emitted_metrics(files: Iterator[Path] | None = None) -> tuple[dict[str, set[frozenset[str]]], list[str]]:
    """Metric name -> the dimension sets the code emits it with; and what the analysis could not read.

    `metrics.add_metric(name=...)` joins the handler's Metrics, which Powertools writes with `service`
    only. `with single_metric(name=...) as m:` is written on its own line with `service` and whatever
    its body adds with `m.add_dimension(name=...)` (or its `default_dimensions`).
    """
    found: dict[str, set[frozenset[str]]] = {}
    unreadable: list[str] = []
    for path in files if files is not None else source_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = _constants(tree)
        in_single_metric: set[int] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.With):
                continue
            for item in node.items:
                call = item.context_expr
                if not (isinstance(call, ast.Call) and _called(call) == "single_metric"):
                    continue
                name = _literal(call, "name", 0, constants)
                dimensions = {POWERTOOLS_DIMENSION}
                defaults = next((k.value for k in call.keywords if k.arg == "default_dimensions"), None)
                if isinstance(defaults, ast.Dict):
                    dimensions |= {key.value for key in defaults.keys if isinstance(key, ast.Constant)}
                for inner in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                    if isinstance(inner, ast.Call) and _called(inner) == "add_dimension":
                        in_single_metric.add(id(inner))
                        dimension = _literal(inner, "name", 0, constants)
                        if dimension is None:
                            unreadable.append(f"{_where(path, inner.lineno)}: add_dimension name")
                        dimensions.add(dimension)
                in_single_metric.add(id(call))
                if name is None:
                    unreadable.append(f"{_where(path, call.lineno)}: single_metric name")
                else:
                    found.setdefault(name, set()).add(frozenset(dimensions))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or id(node) in in_single_metric:
                continue
            called = _called(node)
            where = _where(path, node.lineno)
            if called == "add_metric":
                name = _literal(node, "name", 0, constants)
                if name is None:
                    unreadable.append(f"{where}: add_metric name")
                else:
                    found.setdefault(name, set()).add(frozenset({POWERTOOLS_DIMENSION}))
            elif called in {"add_dimension", "add_dimensions", "set_default_dimensions", "single_metric"}:
                # A dimension on a handler's Metrics applies to all its metrics; the dashboard would miss them.
                unreadable.append(f"{where}: {called} outside `with single_metric(...)`")
    return found, unreadable


EMITTED, UNREADABLE = emitted_metrics()


# ------------------------------------------------------------------ what the template watches


VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


def rendered(node: Any) -> list[str]:
    """Every string a value can be (one per branch of its Fn::If), references written `<Name>` or `<Name.Attr>`."""
    return [text for text, _ in _rendered(node)]


def _rendered(node: Any) -> list[tuple[str, When]]:
    """`rendered`, each string with the conditions it takes: a Fn::Sub's variables that test one condition
    take the same branch of it (no string has IngestionMode both batched and direct)."""
    if isinstance(node, str):
        return [(node, ())]
    if isinstance(node, dict) and "Fn::If" in node:
        return [(text, (*when, *inner)) for value, when in alternatives(node) for text, inner in _rendered(value)]
    if isinstance(node, dict) and "Ref" in node:
        return [(f"<{node['Ref']}>", ())]
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        target = node["Fn::GetAtt"]
        return [(f"<{'.'.join(target) if isinstance(target, list) else target}>", ())]
    if isinstance(node, dict) and "Fn::Sub" in node:
        sub = node["Fn::Sub"]
        pattern, local = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
        options = {name: _rendered(value) for name, value in local.items()}
        texts = []
        for combination in itertools.product(*options.values()):
            when = tuple(condition for _, conditions in combination for condition in conditions)
            if any(f"!{condition}" in when for condition in when):
                continue
            values = {name: text for name, (text, _) in zip(options, combination, strict=True)}
            texts.append(
                (VARIABLE.sub(lambda match, values=values: values.get(match[1], f"<{match[1]}>"), pattern), when)
            )
        return texts
    raise AssertionError(f"cannot render {node!r}")


def sub_references(node: Any) -> set[str]:
    """The names the ${...} of every Fn::Sub in a value refer to, its own variables excepted."""
    names: set[str] = set()
    if isinstance(node, list):
        for item in node:
            names |= sub_references(item)
    elif isinstance(node, dict):
        if "Fn::Sub" in node:
            sub = node["Fn::Sub"]
            pattern, local = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
            names |= {name for name in VARIABLE.findall(pattern) if name not in local}
            names |= sub_references(list(local.values()))
        else:
            names |= sub_references(list(node.values()))
    return names


def dashboards(template: Template) -> list[tuple[str, list[dict[str, Any]]]]:
    """(dashboard, its body as JSON) for every dashboard and every combination of the body's conditions."""
    return [
        (name, json.loads(text))
        for name, dashboard in resources(template, "AWS::CloudWatch::Dashboard")
        for text in rendered(dashboard["Properties"]["DashboardBody"])
    ]


def widget_metrics(body: dict[str, Any]) -> Iterator[tuple[str, Metric]]:
    """(widget title, metric) for each metric line of each metric widget: [ns, name, k, v, ..., {options}]."""
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []) if widget["type"] == "metric" else []:
            items = line[:-1] if isinstance(line[-1], dict) else line
            namespace, name, pairs = items[0], items[1], items[2:]
            yield widget["properties"]["title"], (namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)))


def alarm_metrics(alarm: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, name, dimensions as written) of a single-metric alarm or each metric of a metric-math one."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        metrics = [properties]
    else:
        metrics = [query["MetricStat"]["Metric"] for query in properties["Metrics"] if "MetricStat" in query]
    for metric in metrics:
        dimensions = {item["Name"]: item["Value"] for item in metric.get("Dimensions", [])}
        yield metric["Namespace"], metric["MetricName"], dimensions


def custom_metrics(template: Template) -> Iterator[tuple[str, Metric]]:
    """(where, metric) for every metric of a namespace not AWS's, in the dashboards and the alarms."""
    for dashboard, body in dashboards(template):
        for title, (namespace, name, dimensions) in widget_metrics(body):
            if not namespace.startswith("AWS/"):
                yield f"{dashboard} widget {title!r}", (namespace, name, dimensions)
    for alarm_name, alarm in resources(template, "AWS::CloudWatch::Alarm"):
        for namespace, name, dimensions in alarm_metrics(alarm):
            if not namespace.startswith("AWS/"):
                yield alarm_name, (namespace, name, dimensions)


# ------------------------------------------------------------------ the rules


def metric_problems(template: Template) -> list[str]:
    """Custom metrics are the functions' namespace and service, with a name and dimensions the code emits."""
    problems = []
    for where, (namespace, name, dimensions) in custom_metrics(template):
        if namespace != NAMESPACE:
            problems.append(f"{where}: namespace {namespace!r}; the functions emit into {NAMESPACE!r}")
        if name not in EMITTED:
            problems.append(f"{where}: {name} is emitted nowhere in functions/ or layers/")
        elif frozenset(dimensions) not in EMITTED[name]:
            emitted = sorted(sorted(dimension_set) for dimension_set in EMITTED[name])
            problems.append(f"{where}: {name} with dimensions {sorted(dimensions)}; the code emits it with {emitted}")
        if dimensions.get(POWERTOOLS_DIMENSION) != SERVICE:
            problems.append(f"{where}: {name} with service {dimensions.get(POWERTOOLS_DIMENSION)!r}, not {SERVICE!r}")
        if KIND_DIMENSION in dimensions and dimensions[KIND_DIMENSION] not in MOTOR_ALARM_KINDS:
            problems.append(f"{where}: {name} of kind {dimensions[KIND_DIMENSION]!r}, which no alarm has")
    return problems


def _watches(alarm: dict[str, Any], namespace: str, name: str, dimension: str, target: Any) -> bool:
    return any(
        (alarm_namespace, alarm_name) == (namespace, name) and dimensions == {dimension: target}
        for alarm_namespace, alarm_name, dimensions in alarm_metrics(alarm)
    )


def _fires_on_any(alarm: dict[str, Any]) -> bool:
    properties = alarm["Properties"]
    return properties.get("ComparisonOperator") == "GreaterThanThreshold" and properties.get("Threshold") == 0


def coverage_problems(template: Template) -> list[str]:
    """Each function has an Errors alarm and Errors and Duration on the dashboard; each queue a depth alarm and line."""
    alarms = list(resources(template, "AWS::CloudWatch::Alarm"))
    lines = {metric_key(metric) for _, body in dashboards(template) for _, metric in widget_metrics(body)}
    problems = []
    for function, _ in resources(template, "AWS::Serverless::Function", "AWS::Lambda::Function"):
        if not any(
            _watches(a, "AWS/Lambda", "Errors", "FunctionName", {"Ref": function}) and _fires_on_any(a)
            for _, a in alarms
        ):
            problems.append(f"{function}: no alarm on AWS/Lambda Errors > 0 (FunctionName !Ref {function})")
        for name in ("Errors", "Duration"):
            if ("AWS/Lambda", name, (("FunctionName", f"<{function}>"),)) not in lines:
                problems.append(f"{function}: no dashboard line for AWS/Lambda {name} of FunctionName ${{{function}}}")
    for queue, _ in resources(template, "AWS::SQS::Queue"):
        target = {"Fn::GetAtt": [queue, "QueueName"]}
        depth = "ApproximateNumberOfMessagesVisible"
        if not any(_watches(a, "AWS/SQS", depth, "QueueName", target) and _fires_on_any(a) for _, a in alarms):
            problems.append(f"{queue}: no alarm on AWS/SQS {depth} > 0 (QueueName !GetAtt {queue}.QueueName)")
        if ("AWS/SQS", depth, (("QueueName", f"<{queue}.QueueName>"),)) not in lines:
            problems.append(f"{queue}: no dashboard line for AWS/SQS {depth} of ${{{queue}.QueueName}}")
    return problems


def metric_key(metric: Metric) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    namespace, name, dimensions = metric
    return namespace, name, tuple(sorted(dimensions.items()))


def ops_topic_publishers(template: Template) -> dict[str, list[str]]:
    """Topic -> the alarm ARN patterns its policy lets CloudWatch publish for (only with aws:SourceAccount)."""
    found: dict[str, list[str]] = {}
    for _, policy in resources(template, "AWS::SNS::TopicPolicy"):
        topics = [direct_reference(topic) for topic, _ in each(policy["Properties"]["Topics"])]
        for statement, _ in each(policy["Properties"]["PolicyDocument"]["Statement"]):
            condition = statement.get("Condition", {})
            if (
                statement.get("Effect") == "Allow"
                and statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
                and "sns:Publish" in {action for action, _ in each(statement.get("Action", []))}
                and condition.get("StringEquals", {}).get("aws:SourceAccount") == {"Ref": "AWS::AccountId"}
            ):
                for topic in topics:
                    found.setdefault(str(topic), []).extend(rendered(condition["ArnLike"]["aws:SourceArn"]))
    return found


def notification_problems(template: Template) -> list[str]:
    """Every alarm notifies only topics CloudWatch may publish to, with keys CloudWatch may use, for that alarm."""
    publishers = ops_topic_publishers(template)
    problems = []
    for name, alarm in resources(template, "AWS::CloudWatch::Alarm"):
        properties = alarm["Properties"]
        actions = [
            direct_reference(a) for key in ("AlarmActions", "OKActions") for a, _ in each(properties.get(key, []))
        ]
        if not properties.get("AlarmActions"):
            problems.append(f"{name}: no AlarmActions; nobody hears of it")
        [alarm_name] = rendered(properties.get("AlarmName", f"<generated {name}>"))
        arn = f"arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:{alarm_name}"
        for topic in actions:
            if topic not in publishers:
                problems.append(f"{name}: notifies {topic}, whose policy does not let CloudWatch publish")
            elif not any(fnmatch.fnmatchcase(arn, pattern) for pattern in publishers[topic]):
                problems.append(f"{name}: {topic}'s policy lets CloudWatch publish for {publishers[topic]}, not {arn}")
            elif cloudwatch_key_problem := _key_problem(template, str(topic)):
                problems.append(f"{name}: notifies {topic}, {cloudwatch_key_problem}")
    return problems


def _key_problem(template: Template, topic: str) -> str | None:
    """Why CloudWatch could not publish to `topic` encrypted with its key, or None."""
    key = template["Resources"][topic]["Properties"].get("KmsMasterKeyId")
    if key is None:
        return None
    if direct_reference(key) not in dict(resources(template, "AWS::KMS::Key")):
        return f"encrypted with {key!r}, whose policy (an AWS managed key's) CloudWatch cannot be added to"
    policy = template["Resources"][direct_reference(key)]["Properties"]["KeyPolicy"]
    for statement, _ in each(policy["Statement"]):
        actions = [action for action, _ in each(statement.get("Action", []))]
        if (
            statement.get("Effect") == "Allow"
            and statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
            and all(
                any(fnmatch.fnmatchcase(need, a) for a in actions) for need in ("kms:Decrypt", "kms:GenerateDataKey")
            )
        ):
            return None
    return (
        f"whose key {direct_reference(key)} does not let cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey"
    )


def dashboard_problems(template: Template) -> list[str]:
    """Each dashboard's body resolves (every ${...} names something of the template) and shows every alarm."""
    declared = set(template["Resources"]) | set(template.get("Parameters", {}))
    alarms = {
        f"<{name}.Arn>" for name, alarm in resources(template, "AWS::CloudWatch::Alarm") if "Condition" not in alarm
    }
    # An alarm that exists only under a condition (IngestionMode batched) is shown in the bodies of that branch.
    conditional = {
        f"<{name}.Arn>" for name, alarm in resources(template, "AWS::CloudWatch::Alarm") if "Condition" in alarm
    }
    problems = []
    for name, dashboard in resources(template, "AWS::CloudWatch::Dashboard"):
        for reference in sorted(sub_references(dashboard["Properties"]["DashboardBody"])):
            if not reference.startswith("AWS::") and reference.split(".")[0] not in declared:
                problems.append(f"{name}: ${{{reference}}} names nothing in the template")
    for name, body in dashboards(template):
        shown = {
            arn for widget in body["widgets"] if widget["type"] == "alarm" for arn in widget["properties"]["alarms"]
        }
        problems += [f"{name}: the alarm widget does not show {arn}" for arn in sorted(alarms - shown)]
        conditional -= shown
    problems += [f"no branch of a dashboard shows the conditional alarm {arn}" for arn in sorted(conditional)]
    for name, body in dashboards(template):
        for widget in body["widgets"]:
            if widget["type"] == "metric" and widget["properties"].get("region") != "<AWS::Region>":
                problems.append(f"{name}: widget {widget['properties'].get('title')!r} is not in the stack's region")
    return problems


RULES: dict[str, Callable[[Template], list[str]]] = {
    "metric": metric_problems,
    "coverage": coverage_problems,
    "notification": notification_problems,
    "dashboard": dashboard_problems,
}


# ------------------------------------------------------------------ the code and the template obey them


def test_the_analysis_reads_every_metric_the_code_emits() -> None:
    assert not UNREADABLE, "\n".join(UNREADABLE)
    assert {"ReadingsProcessed", "PredictionsFailed", "AlarmsRaised", "ConfigInvalid"} <= set(EMITTED)


def test_every_metric_the_dashboard_and_alarms_use_is_one_the_code_emits_with_those_dimensions() -> None:
    problems = metric_problems(TEMPLATE)
    assert not problems, "\n".join(problems)
    assert list(custom_metrics(TEMPLATE)), "no custom metric found; is the dashboard read at all?"


def test_every_function_and_queue_has_an_alarm_and_a_dashboard_line() -> None:
    problems = coverage_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_every_alarm_notifies_the_ops_topic_which_cloudwatch_may_publish_to() -> None:
    problems = notification_problems(TEMPLATE)
    assert not problems, "\n".join(problems)
    alarms = list(resources(TEMPLATE, "AWS::CloudWatch::Alarm"))
    assert alarms
    for name, alarm in alarms:
        for key in ("AlarmActions", "OKActions"):
            assert [direct_reference(a) for a, _ in each(alarm["Properties"][key])] == ["OpsTopic"], (name, key)


def test_the_ops_topic_key_rotates_and_lets_cloudwatch_encrypt_for_this_account_only() -> None:
    key_name = direct_reference(TEMPLATE["Resources"]["OpsTopic"]["Properties"]["KmsMasterKeyId"])
    key = TEMPLATE["Resources"][str(key_name)]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    [statement] = [
        s
        for s, _ in each(key["Properties"]["KeyPolicy"]["Statement"])
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert _key_problem(TEMPLATE, "OpsTopic") is None


def test_the_dashboard_body_is_json_that_names_the_stacks_resources_and_shows_every_alarm() -> None:
    problems = dashboard_problems(TEMPLATE)
    assert not problems, "\n".join(problems)
    # One body per branch of its conditions: a model endpoint created, named, the model embedded, or none;
    # each with the stream's backlog alarm (IngestionMode batched) or without.
    latency = [
        any(name == "ModelLatency" for _, (_, name, _) in widget_metrics(body)) for _, body in dashboards(TEMPLATE)
    ]
    assert sorted(latency) == [False] * 4 + [True] * 4


def test_alarms_raised_are_shown_for_every_kind_a_motor_alarm_can_have() -> None:
    for _, body in dashboards(TEMPLATE):
        kinds = {
            dimensions[KIND_DIMENSION]
            for _, (_, name, dimensions) in widget_metrics(body)
            if name == "AlarmsRaised" and KIND_DIMENSION in dimensions
        }
        assert kinds == MOTOR_ALARM_KINDS


def test_the_endpoint_latency_is_that_of_the_endpoint_the_inference_function_calls() -> None:
    endpoint = TEMPLATE["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]["ENDPOINT_NAME"]
    [variant] = TEMPLATE["Resources"]["ModelEndpointConfig"]["Properties"]["ProductionVariants"]
    latencies = [
        dimensions
        for _, body in dashboards(TEMPLATE)
        for _, (namespace, name, dimensions) in widget_metrics(body)
        if (namespace, name) == ("AWS/SageMaker", "ModelLatency")
    ]
    assert {d["EndpointName"] for d in latencies} == set(rendered(endpoint))
    assert {d["VariantName"] for d in latencies} == {variant["VariantName"]}


def _calls(path: Path, function: str | None = None) -> set[str]:
    """The names called in a module, or in one of its functions or methods."""
    tree: ast.AST = ast.parse(path.read_text())
    if function is not None:
        tree = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    return _calls_in(tree)


def _calls_in(tree: ast.AST) -> set[str]:
    return {name for node in ast.walk(tree) if isinstance(node, ast.Call) and (name := _called(node))}


def test_every_handler_that_publishes_alarm_events_counts_the_raised_ones() -> None:
    shell = ROOT / "layers" / "shared" / "motor_lambda"
    # The shell's reporters count them: a reading's result (InferenceFunction's Ingestion), an action's, a tick's.
    assert "count_alarms_raised" in _calls(shell / "reports.py", "report")
    assert "ReadingReporter" in _calls(shell / "ingestion.py")
    assert "count_alarms_raised" in _calls(shell / "reports.py", "report_action")
    assert "count_alarms_raised" in _calls(shell / "timers.py", "report_tick")
    assert "report_action" in _calls(shell / "console_api.py", "console_api")
    counting = {"count_alarms_raised", "Ingestion", "report_action", "report_tick", "console_api"}
    # What gives a use case the alarm publisher: the wiring's builders that make one, and the shell's users of them.
    modules = [ast.parse(path.read_text()) for path in shell.glob("*.py")]
    builders = {
        node.name
        for module in modules
        for node in module.body
        if isinstance(node, ast.FunctionDef) and "alarm_publisher" in _calls_in(node)
    }
    builders |= {
        node.name
        for module in modules
        for node in module.body
        if isinstance(node, ast.ClassDef) and _calls_in(node) & builders
    }
    assert {"motor_ports", "inference_ports", "timer_ports", "Ingestion"} <= builders
    publishing = 0
    for handler in sorted((ROOT / "functions").glob("*/app.py")):
        calls = _calls(handler)
        if calls & builders:
            publishing += 1
            assert calls & counting, f"{handler.relative_to(ROOT)} publishes alarm events uncounted"
    assert publishing == 4  # InferenceFunction, OperatorActionFunction, OfflineCheckFunction, ConsoleFunction


def test_the_operations_doc_lists_every_metric_the_code_emits_and_no_other() -> None:
    section = OPERATIONS_DOC.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}

    assert documented == set(EMITTED) | POWERTOOLS_METRICS


# ------------------------------------------------------------------ the helper, as Powertools prints it


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    # Powertools' Metrics instances share one metric set: start and end empty for the handlers' sake.
    instance = Metrics(namespace=NAMESPACE, service=SERVICE)
    instance.clear_metrics()
    yield instance
    instance.clear_metrics()


def _event(sample: str, **changes: Any) -> AlarmEvent:
    return AlarmEvent.model_validate(load_event(sample) | changes)


def _emf_lines(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_raised_alarms_are_counted_for_the_fleet_and_per_kind_as_the_dashboard_reads_them(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    condition, predictive = _event("alarm-raised"), _event("alarm-predictive-raised")
    assert (condition.kind, predictive.kind) == (AlarmKind.CONDITION, AlarmKind.PREDICTIVE)
    events = [condition, predictive, condition.model_copy(update={"transition": Transition.CLEARED}), condition]

    counted = count_alarms_raised(metrics, events)

    assert counted == {"condition": 2, "predictive": 1}
    per_kind = {}
    for line in _emf_lines(capsys.readouterr().out):
        [directive] = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        assert [m["Name"] for m in directive["Metrics"]] == ["AlarmsRaised"]
        [dimension_set] = directive["Dimensions"]
        per_kind[line[KIND_DIMENSION]] = (line["AlarmsRaised"], sorted(dimension_set), line["service"])
    assert per_kind == {
        "condition": ([2.0], [KIND_DIMENSION, "service"], SERVICE),
        "predictive": ([1.0], [KIND_DIMENSION, "service"], SERVICE),
    }
    total = metrics.serialize_metric_set()
    assert total["AlarmsRaised"] == [3.0]
    assert total["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    # What Powertools printed is what the analysis of the source says, which the dashboard is checked against.
    assert EMITTED["AlarmsRaised"] == {frozenset({"service"}), frozenset({"service", KIND_DIMENSION})}


def test_no_raised_alarm_writes_no_metric(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    cleared = _event("alarm-raised", transition="cleared", from_state="ACTIVE", to_state="LATCHED")

    assert count_alarms_raised(metrics, [cleared]) == {}

    assert _emf_lines(capsys.readouterr().out) == []
    assert "AlarmsRaised" not in metrics.provider.metric_set


# ------------------------------------------------------------------ and each rule can fail


def _resource(template: Template, name: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][name]
    return found


def _replaced(node: Any, old: str, new: str) -> Any:
    if isinstance(node, str):
        return node.replace(old, new)
    if isinstance(node, list):
        return [_replaced(item, old, new) for item in node]
    if isinstance(node, dict):
        return {key: _replaced(value, old, new) for key, value in node.items()}
    return node


def _replace_in_body(old: str, new: str) -> Callable[[Template], None]:
    def breakage(template: Template) -> None:
        properties = _resource(template, "OperationsDashboard")["Properties"]
        assert old in json.dumps(properties["DashboardBody"]).replace('\\"', '"'), f"no {old!r} in the dashboard"
        properties["DashboardBody"] = _replaced(properties["DashboardBody"], old, new)

    breakage.__name__ = f"dashboard {old} -> {new}"
    return breakage


def _function_without_alarm(template: Template) -> None:
    del template["Resources"]["AlertFunctionErrorsAlarm"]


def _new_queue(template: Template) -> None:
    template["Resources"]["ThirdQueue"] = copy.deepcopy(_resource(template, "RuleErrorQueue"))


def _alarm_to_the_alert_topic(template: Template) -> None:
    _resource(template, "InferenceFunctionErrorsAlarm")["Properties"]["AlarmActions"] = [{"Ref": "AlertTopic"}]


def _alarm_named_outside_the_policy(template: Template) -> None:
    _resource(template, "PredictionsFailingAlarm")["Properties"]["AlarmName"] = "predictions-failing"


def _key_without_cloudwatch(template: Template) -> None:
    statements = _resource(template, "OpsTopicKey")["Properties"]["KeyPolicy"]["Statement"]
    statements[:] = [s for s in statements if s["Principal"] != {"Service": "cloudwatch.amazonaws.com"}]


def _alarm_metric_in_another_namespace(template: Template) -> None:
    [failed, *_] = _resource(template, "PredictionsFailingAlarm")["Properties"]["Metrics"]
    failed["MetricStat"]["Metric"]["Namespace"] = "MotorMaintenanceTest"


@pytest.mark.parametrize(
    ("rule", "breakage", "culprit"),
    [
        ("metric", _replace_in_body('"ReadingsRejected"', '"ReadingRejected"'), "ReadingRejected is emitted nowhere"),
        ("metric", _replace_in_body('"kind", "offline"', '"kind", "health"'), "of kind 'health'"),
        ("metric", _replace_in_body('"PredictionsMade", "service"', '"PredictionsMade", "kind"'), "PredictionsMade"),
        (
            "metric",
            _replace_in_body('"service", "motor-maintenance"', '"service", "motors"'),
            "not 'motor-maintenance'",
        ),
        ("metric", _alarm_metric_in_another_namespace, "PredictionsFailingAlarm: namespace"),
        ("coverage", _function_without_alarm, "AlertFunction: no alarm"),
        (
            "coverage",
            _replace_in_body('"Duration", "FunctionName", "${InferenceFunction}"', '"Duration", "FunctionName", "x"'),
            "InferenceFunction: no dashboard line for AWS/Lambda Duration",
        ),
        ("coverage", _new_queue, "ThirdQueue: no alarm"),
        ("notification", _alarm_to_the_alert_topic, "notifies AlertTopic"),
        ("notification", _alarm_named_outside_the_policy, "not arn:"),
        ("notification", _key_without_cloudwatch, "does not let cloudwatch.amazonaws.com"),
        (
            "dashboard",
            _replace_in_body('"${AlertFunctionErrorsAlarm.Arn}",', ""),
            "does not show <AlertFunctionErrorsAlarm.Arn>",
        ),
        (
            "dashboard",
            _replace_in_body("${RuleErrorQueue.QueueName}", "${RuleErrorQ.QueueName}"),
            "RuleErrorQ.QueueName} names nothing",
        ),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_each_rule_reports_a_template_broken_on_purpose(
    rule: str, breakage: Callable[[Template], None], culprit: str
) -> None:
    broken = copy.deepcopy(TEMPLATE)
    breakage(broken)

    problems = RULES[rule](broken)

    assert any(culprit in problem for problem in problems), f"{rule} rule missed it; it said: {problems}"


def test_the_metric_analysis_reports_what_it_cannot_read(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text(
        "metrics.add_metric(name=f'{prefix}Count', unit='Count', value=1)\n"
        "metrics.add_dimension(name='motor_id', value='m1')\n"
        "with single_metric(name='PerMotor', unit='Count', value=1) as metric:\n"
        "    metric.add_dimension(name='motor_id', value='m1')\n"
    )

    found, unreadable = emitted_metrics(iter([source]))

    assert found == {"PerMotor": {frozenset({"service", "motor_id"})}}
    assert any("add_metric name" in problem for problem in unreadable)
    assert any("add_dimension outside" in problem for problem in unreadable)
