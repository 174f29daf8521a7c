"""Each function's role allows exactly the AWS calls its code makes, on the resources it is told about.

The calls are derived from the code with `ast`, without running it:

1. template.yaml names each function's handler (CodeUri + Handler).
2. From the handler module the analysis follows calls into the layer's functions (the shell's
   wiring: `motor_lambda.wiring`, `.ingestion`, `.alerting`) and into the methods of the shell's
   classes the handler builds, and records every object built with a boto3 client made by
   `motor_adapters.clients.client(service)`, the only place that makes clients.
3. An adapter class of `motor_adapters` makes the calls it makes on its client
   (`self._client.put_item(...)`, or `client.put_item(...)` in a helper of its module), in its own
   methods and in those it inherits from adapter classes. A library class makes the calls
   LIBRARY_CALLERS names, read from the library's own source.
4. botocore's service model turns a method into its operation (`put_item` -> `PutItem`); the IAM
   prefix of the service makes it an action (`dynamodb:PutItem`).
5. The resource of an adapter is what the wiring gives it: `settings.state_table_name` is the
   environment variable STATE_TABLE_NAME (a field of the function's settings model, the handler's
   `settings = <Model>.from_env()`), which the template sets to `!Ref StateTable`; so the grant
   must name StateTable. An adapter given no setting has its
   target written in its code (TARGETS_IN_CODE).

A role must grant exactly these actions, on these resources, plus what Lambda needs to run the
function (PLATFORM_ACTIONS). Anything the analysis cannot follow is reported, not guessed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

import motor_adapters.clients
from motor_adapters.clients import client as real_client
from motor_adapters.config_source import ConfigSource
from tests.conftest import FakeAws
from tests.support import ROOT, FakeSageMakerRuntime, LambdaContext, load_event, load_handler
from tests.unit.test_template import (
    DESTINATION_ACTIONS,
    LOG_WRITE_ACTIONS,
    TEMPLATE,
    TRACE_ACTIONS,
    Template,
    arn_text,
    direct_reference,
    each,
    function_property,
    may_trace,
    problems_when_broken,
    referenced_names,
    resources,
    role_grants,
)

CLIENT_FACTORY = "motor_adapters.clients.client"
ADAPTERS = "motor_adapters"
"""The adapter classes: each makes its calls on the client it is given."""
SHELL = "motor_lambda"
"""The handlers' shell: its functions and the methods of its classes are followed as the handler's own code."""
LAYER = (ADAPTERS, SHELL, "motor_model")
"""Our packages in the layer, read from the code base being analysed (a copy, in the tests that change it)."""


def in_package(module: str, *packages: str) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


# IAM's prefix for a service whose boto3 name differs (the operation names are the same).
IAM_PREFIX = {"iot-data": "iot", "sagemaker-runtime": "sagemaker"}


@dataclass(frozen=True)
class LibraryCaller:
    """A library class that makes AWS calls with the boto3 client it is given."""

    module: str
    methods: frozenset[str] | None
    """The methods our code reaches (None: all of them); their `self.client.<call>(...)` are the calls."""
    reason: str


LIBRARY_CALLERS = {
    "DynamoDBPersistenceLayer": LibraryCaller(
        "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb",
        None,
        "Powertools idempotency (AlertFunction): reads, writes, completes and, when the function fails, "
        "deletes the record of an event id: GetItem, PutItem, UpdateItem, DeleteItem",
    ),
    "SSMProvider": LibraryCaller(
        "aws_lambda_powertools.utilities.parameters.ssm",
        frozenset({"_get"}),
        "Powertools parameters: ConfigSource calls only provider.get(name, ...), which reads one parameter "
        "through SSMProvider._get (GetParameter); test_config_source_only_reads_one_parameter checks it",
    ),
}
# Library names our code may call that make no AWS call of their own.
NON_CALLING = {
    "IdempotencyConfig": "settings of the idempotency utility",
    "idempotent_function": "calls the persistence layer it is given (analysed as DynamoDBPersistenceLayer)",
    "idempotent": "calls the persistence layer it is given",
}
# Library packages whose other names may make AWS calls with a client of their own.
AWS_CALLING_PACKAGES = (
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.feature_flags",
    "aws_lambda_powertools.utilities.streaming",
)

# An adapter given no setting calls a target written in its code (none now: the alarm publisher is given the
# stack's topic namespace, TOPIC_NAMESPACE).
TARGETS_IN_CODE: dict[str, str] = {}


ON_BEHALF_OF_A_CALL = {
    "kms:Decrypt": (
        "s3:GetObject",
        "S3 decrypts an SSE-KMS object with the reader's own kms:Decrypt (ArtifactKmsKeyArn; "
        "test_template_refusals checks the key and the kms:ViaService condition)",
    ),
}
"""Actions a service makes as the caller while serving one of the code's calls: allowed with that call, not required."""


STREAM_READ_ACTIONS = (
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
)
"""What Lambda's event source mapping does, as the function's role, to read a Kinesis stream (standard iterator)."""


def platform_actions(template: Template, function: dict[str, Any], name: str = "") -> dict[str, str]:
    """What Lambda itself does as the function's role, with the reason (test_template checks the resources)."""
    needs = dict.fromkeys(sorted(LOG_WRITE_ACTIONS), "Lambda writes the function's logs to its own log group")
    if may_trace(template, function):
        needs |= dict.fromkeys(sorted(TRACE_ACTIONS), "active tracing: Lambda sends the function's traces")
    config = function_property(template, function, "EventInvokeConfig") or {}
    on_failure = config.get("DestinationConfig", {}).get("OnFailure") or {}
    if on_failure.get("Type") in DESTINATION_ACTIONS:
        needs[DESTINATION_ACTIONS[on_failure["Type"]]] = "Lambda sends failed events to the on-failure destination"
    for _, mapping in resources(template, "AWS::Lambda::EventSourceMapping"):
        properties = mapping["Properties"]
        if direct_reference(properties["FunctionName"]) != name:
            continue
        source = direct_reference(properties["EventSourceArn"])
        if template["Resources"][source]["Type"] == "AWS::Kinesis::Stream":
            needs |= dict.fromkeys(STREAM_READ_ACTIONS, f"Lambda's event source mapping reads {source}")
        if properties.get("DestinationConfig", {}).get("OnFailure"):
            needs["sqs:SendMessage"] = "the event source mapping sends failed batches' records to its destination"
    return needs


# ------------------------------------------------------------------ reading the code


@dataclass(frozen=True)
class Source:
    """One module: its syntax tree, and the qualified names its imported names stand for."""

    name: str
    path: Path
    tree: ast.Module
    imports: dict[str, str]

    @classmethod
    def parse(cls, name: str, path: Path) -> Source:
        tree = ast.parse(path.read_text(), filename=str(path))
        imports = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:  # `import a.b` binds a; `import a.b as c` binds c to a.b
                    top = alias.name.split(".")[0]
                    imports[alias.asname or top] = alias.name if alias.asname else top
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                imports.setdefault(node.name, f"{name}.{node.name}")
        return cls(name, path, tree, imports)

    def definition(self, name: str) -> ast.FunctionDef | ast.ClassDef | None:
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
                return node
        return None

    def where(self, node: ast.AST) -> str:
        return f"{self.path.name}:{getattr(node, 'lineno', '?')}"

    def qualified(self, node: ast.expr) -> str | None:
        """`client` -> 'motor_adapters.clients.client'; `parameters.get_parameter` -> its full name."""
        if isinstance(node, ast.Name):
            return self.imports.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None


@dataclass(frozen=True)
class CodeBase:
    """Where the handlers and the layer live (a copy, in the tests that change the code)."""

    root: Path = ROOT

    def source(self, module: str) -> Source | None:
        if in_package(module, *LAYER):
            path = self.root / "layers" / "shared" / (module.replace(".", "/") + ".py")
            return _parse(module, path) if path.is_file() else None
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return None
        return _parse(module, Path(spec.origin))

    def handler(self, template: Template, function: dict[str, Any]) -> Source:
        code_uri = str(function_property(template, function, "CodeUri"))
        module = str(function_property(template, function, "Handler")).rpartition(".")[0]
        return _parse(f"handler:{code_uri}", self.root / code_uri / (module.replace(".", "/") + ".py"))


@cache
def _parse(name: str, path: Path) -> Source:
    return Source.parse(name, path)


@cache
def api_methods(service: str) -> dict[str, str]:
    """boto3 method name -> API operation name, from botocore's service model."""
    mapping: dict[str, str] = boto3.client(service, region_name="us-east-1").meta.method_to_api_mapping  # type: ignore[call-overload]
    return mapping


def iam_action(service: str, method: str) -> str:
    return f"{IAM_PREFIX.get(service, service)}:{api_methods(service)[method]}"


def receiver_is_client(node: ast.expr) -> bool:
    """`self._client`, `self.client` or `client`: the adapters' and libraries' name for their boto3 client."""
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name.lstrip("_") == "client"


def client_calls(source: Source, units: list[ast.AST]) -> set[str]:
    """Methods called on a client in `units`, following calls to functions of the same module."""
    methods: set[str] = set()
    todo, seen = list(units), set()
    while todo:
        unit = todo.pop()
        if id(unit) in seen:
            continue
        seen.add(id(unit))
        for node in ast.walk(unit):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute) and receiver_is_client(node.func.value):
                methods.add(node.func.attr)
            elif isinstance(node.func, ast.Name) and isinstance(
                helper := source.definition(node.func.id), ast.FunctionDef
            ):
                todo.append(helper)
    return methods


@dataclass(frozen=True)
class Use:
    """One object a function builds that makes AWS calls: what makes them, with which client, for which settings."""

    maker: str
    service: str
    settings: frozenset[str]
    where: str
    methods: frozenset[str] | None = None
    """The calls, when the code makes them on the client itself rather than through `maker`."""


@dataclass
class Reach:
    """What one handler builds and the problems that keep the analysis from being sure."""

    uses: list[Use] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def reach(code: CodeBase, handler: Source) -> Reach:
    """Follow the handler into the shell's wiring and collect every object built with a client."""
    found = Reach()
    todo: list[tuple[Source, ast.AST]] = [(handler, handler.tree)]
    seen: set[int] = set()
    while todo:
        source, unit = todo.pop()
        if id(unit) in seen:
            continue
        seen.add(id(unit))
        _reach_unit(code, source, unit, found, todo)
    return found


def _reach_unit(
    code: CodeBase, source: Source, unit: ast.AST, found: Reach, todo: list[tuple[Source, ast.AST]]
) -> None:
    # A name assigned once in this function (or module) stands for its value: `runtime = client(...)`.
    assigned = {
        node.targets[0].id: node.value
        for node in ast.walk(unit)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
    }
    clients = {id(node): node for node in ast.walk(unit) if _is_client(source, node)}
    consumed: set[int] = set()
    absorbed: set[int] = set()
    built: dict[int, list[Use]] = {}

    def value_of(node: ast.expr) -> ast.expr:
        return assigned.get(node.id, node) if isinstance(node, ast.Name) else node

    def build(call: ast.Call) -> list[Use]:
        """The uses an object built by `call` makes: its own client's, and those of the objects it is given."""
        if id(call) in built:
            return built[id(call)]
        maker = source.qualified(call.func) or ""
        arguments = [value_of(arg) for arg in [*call.args, *(keyword.value for keyword in call.keywords)]]
        settings = frozenset(
            arg.attr
            for arg in arguments
            if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "settings"
        )
        uses = []
        for arg in arguments:
            if isinstance(arg, ast.Call) and id(arg) in clients:
                consumed.add(id(arg))
                uses.append(Use(maker, _service(arg), settings, source.where(call)))
            elif isinstance(arg, ast.Call) and _is_maker(code, source, arg):
                absorbed.add(id(arg))
                uses += [replace(inner, settings=inner.settings | settings) for inner in build(arg)]
        if maker.rsplit(".", 1)[-1] in LIBRARY_CALLERS and not any(use.maker == maker for use in uses):
            found.problems.append(
                f"{source.where(call)}: {maker} is built without a client from {CLIENT_FACTORY}; it makes its own, "
                "which the analysis cannot see (and which has no bounded timeouts): pass boto3_client=client(...)"
            )
        built[id(call)] = uses
        return uses

    calls = [node for node in ast.walk(unit) if isinstance(node, ast.Call)]
    for call in calls:
        name = source.qualified(call.func) or ""
        module, _, attribute = name.rpartition(".")
        target = code.source(module) if in_package(module, *LAYER) else None
        definition = target.definition(attribute) if target else None
        if isinstance(definition, ast.FunctionDef) and target is not None:
            todo.append((target, definition))  # the wiring: follow it
        elif isinstance(definition, ast.ClassDef) and target is not None and in_package(module, SHELL):
            todo.append((target, definition))  # a class of the shell: follow its methods
        elif _is_maker(code, source, call):
            build(call)
        elif name.startswith(AWS_CALLING_PACKAGES) and attribute not in NON_CALLING:
            found.problems.append(
                f"{source.where(call)}: {name} may call AWS with a client of its own; "
                "teach LIBRARY_CALLERS what it calls"
            )
        elif isinstance(call.func, ast.Attribute) and id(client := value_of(call.func.value)) in clients:
            consumed.add(id(client))
            assert isinstance(client, ast.Call)
            calls = frozenset({call.func.attr})
            found.uses.append(Use("(the client itself)", _service(client), frozenset(), source.where(call), calls))
    for call_id, uses in built.items():
        if call_id not in absorbed:
            found.uses += uses
    for client_id, client in clients.items():
        if client_id not in consumed:
            found.problems.append(
                f"{source.where(client)}: a {_service(client)} client the analysis cannot follow to its calls; "
                "give it to an adapter class (or teach this test)"
            )


def _is_client(source: Source, node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and source.qualified(node.func) == CLIENT_FACTORY


def _service(call: ast.Call) -> str:
    first = call.args[0] if call.args else None
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        raise AssertionError(f"line {call.lineno}: client() with a service that is not a literal")
    return first.value


def _is_maker(code: CodeBase, source: Source, call: ast.Call) -> bool:
    """Whether `call` builds an adapter class of motor_adapters or a library class that calls AWS."""
    name = source.qualified(call.func) or ""
    module, _, attribute = name.rpartition(".")
    if in_package(module, ADAPTERS):
        target = code.source(module)
        return target is not None and isinstance(target.definition(attribute), ast.ClassDef)
    return attribute in LIBRARY_CALLERS and name.startswith("aws_lambda_powertools.")


def adapter_methods(
    code: CodeBase, source: Source, definition: ast.ClassDef
) -> tuple[list[tuple[Source, list[ast.FunctionDef]]], list[str]]:
    """An adapter class's methods with those it inherits from adapter classes (each with the module it is
    in, whose helpers it calls), overridden ones left out; and the bases the analysis cannot read."""
    found: list[tuple[Source, list[ast.FunctionDef]]] = []
    problems: list[str] = []
    defined: set[str] = set()
    todo = [(source, definition)]
    while todo:
        where, cls = todo.pop(0)
        methods = [node for node in cls.body if isinstance(node, ast.FunctionDef)]
        found.append((where, [method for method in methods if method.name not in defined]))
        defined |= {method.name for method in methods}
        for base in cls.bases:
            name = where.qualified(base) or ""
            module, _, attribute = name.rpartition(".")
            base_source = code.source(module) if in_package(module, ADAPTERS) else None
            base_definition = base_source.definition(attribute) if base_source else None
            if base_source is None or not isinstance(base_definition, ast.ClassDef):
                problems.append(f"{cls.name} inherits from {ast.unparse(base)}, which is no adapter class it can read")
                continue
            todo.append((base_source, base_definition))
    return found, problems


def calls_of(code: CodeBase, use: Use) -> tuple[set[str], list[str]]:
    """The IAM actions one use makes, and what could not be mapped."""
    if use.methods is not None:
        methods = set(use.methods)
    else:
        module, _, name = use.maker.rpartition(".")
        library = LIBRARY_CALLERS.get(name)
        source = code.source(library.module if library else module)
        definition = source.definition(name) if source else None
        if source is None or not isinstance(definition, ast.ClassDef):
            return set(), [f"{use.where}: cannot find class {use.maker}"]
        if library is not None:
            units: list[ast.AST] = [
                node
                for node in definition.body
                if isinstance(node, ast.FunctionDef) and (library.methods is None or node.name in library.methods)
            ]
            methods = client_calls(source, units)
        else:
            inherited, problems = adapter_methods(code, source, definition)
            if problems:
                return set(), [f"{use.where}: {problem}" for problem in problems]
            methods = set().union(*(client_calls(where, list(units)) for where, units in inherited))
        if not methods:
            return set(), [f"{use.where}: {use.maker} is given a {use.service} client but calls nothing on it"]
    unknown = sorted(method for method in methods if method not in api_methods(use.service))
    problems = [f"{use.where}: {use.maker} calls {method}, no API method of {use.service}" for method in unknown]
    return {iam_action(use.service, method) for method in methods - set(unknown)}, problems


# ------------------------------------------------------------------ comparing with the template


def environment(template: Template, function: dict[str, Any]) -> dict[str, Any]:
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
    return {**shared, **own}


def named(template: Template, node: Any) -> frozenset[str]:
    """The stack's resources and parameters a value names (through Ref, GetAtt, Sub)."""
    return frozenset(referenced_names(node) & (set(template["Resources"]) | set(template.get("Parameters", {}))))


def number_parameters(template: Template) -> frozenset[str]:
    """The template's parameters of type Number: counts, sizes, formats; never a resource."""
    return frozenset(
        name for name, parameter in template.get("Parameters", {}).items() if parameter["Type"] == "Number"
    )


def resource_key(template: Template, node: Any) -> frozenset[str]:
    """What a policy Resource names: the stack's resources and parameters, or else its ARN as written."""
    text = arn_text(node)
    return named(template, node) or frozenset({text if text else repr(node)})


@dataclass
class Needs:
    """For one function: each action its code makes, with the resources it may make it on."""

    actions: dict[str, set[frozenset[str]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def settings_model(handler: Source) -> type[Any] | None:
    """The settings model the handler reads its environment with: its module-level `settings = <Model>.from_env()`."""
    for node in handler.tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(call := node.value, ast.Call)):
            continue
        if [ast.unparse(target) for target in node.targets] != ["settings"] or not isinstance(call.func, ast.Attribute):
            continue
        if call.func.attr == "from_env" and (name := handler.qualified(call.func.value)):
            module, _, attribute = name.rpartition(".")
            model: type[Any] | None = getattr(importlib.import_module(module), attribute, None)
            return model
    return None


def code_needs(template: Template, name: str, function: dict[str, Any], code: CodeBase) -> Needs:
    needs = Needs()
    handler = code.handler(template, function)
    found = reach(code, handler)
    needs.problems += [f"{name}: {problem}" for problem in found.problems]
    variables = environment(template, function)
    model = settings_model(handler)
    if model is None:
        needs.problems.append(f"{name}: its handler reads no settings model (`settings = <Model>.from_env()`)")
    fields = model.model_fields if model is not None else {}
    for use in found.uses:
        actions, problems = calls_of(code, use)
        needs.problems += [f"{name}: {problem}" for problem in problems]
        targets: set[frozenset[str]] = set()
        for setting in sorted(use.settings):
            if setting not in fields:
                needs.problems.append(
                    f"{name}: {use.where} passes settings.{setting}, which its settings model does not define"
                )
            # A setting the template leaves unset, or sets to a plain value or a number parameter, is tuning: it
            # names no resource.
            for value, _ in each(variables.get(setting.upper(), [])):
                if target := named(template, value) - number_parameters(template):
                    targets.add(target)
        if not targets and use.maker in TARGETS_IN_CODE:
            targets.add(frozenset({TARGETS_IN_CODE[use.maker]}))
        if not targets:
            needs.problems.append(f"{name}: cannot tell what {use.maker} ({use.where}) calls AWS on")
        for action in actions:
            needs.actions.setdefault(action, set()).update(targets)
    return needs


def least_privilege_problems(template: Template, code: CodeBase | None = None) -> list[str]:
    """Each function's role grants exactly what its code calls plus what Lambda needs, on the right resources."""
    code = code or CodeBase()
    roles = dict(resources(template, "AWS::IAM::Role"))
    problems = []
    for name, function in resources(template, "AWS::Serverless::Function"):
        role_name = direct_reference(function_property(template, function, "Role"))
        if role_name not in roles:
            problems.append(f"{name}: runs as no role of the stack")
            continue
        needs = code_needs(template, name, function, code)
        problems += needs.problems
        platform = platform_actions(template, function, name)
        granted: dict[str, set[frozenset[str]]] = {}
        for where, actions, targets in role_grants(role_name, roles[role_name]):
            for action in actions:
                keys = {resource_key(template, target) for target in targets}
                granted.setdefault(action, set()).update(keys)
                if action in needs.actions and not keys <= needs.actions[action]:
                    problems.append(
                        f"{where}: {action} on {sorted(map(sorted, keys - needs.actions[action]))}; "
                        f"{name}'s code calls it only on {sorted(map(sorted, needs.actions[action]))}"
                    )
        on_behalf = {action for action, (call, _) in ON_BEHALF_OF_A_CALL.items() if call in needs.actions}
        for action in sorted(set(granted) - set(needs.actions) - set(platform) - on_behalf):
            problems.append(f"{role_name}: grants {action}, which {name}'s code never calls; remove it")
        for action, targets in sorted(needs.actions.items()):
            missing = targets - granted.get(action, set())
            if missing:
                problems.append(
                    f"{role_name}: does not grant {action} on {sorted(map(sorted, missing))}, which {name}'s code calls"
                )
        for action in sorted(set(platform) - set(granted)):
            problems.append(f"{role_name}: does not grant {action} ({platform[action]})")
    return problems


# ------------------------------------------------------------------ the template obeys it


def test_each_function_is_granted_exactly_the_calls_its_code_makes() -> None:
    problems = least_privilege_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_the_analysis_finds_the_calls_each_function_makes() -> None:
    """What the analysis derives, spelled out: a change in the code shows here first, by name."""
    derived = {
        name: {
            action: sorted(map(sorted, targets))
            for action, targets in code_needs(TEMPLATE, name, function, CodeBase()).actions.items()
        }
        for name, function in resources(TEMPLATE, "AWS::Serverless::Function")
    }
    state = [["StateTable"]]
    state_and_history = [["HistoryTable"], ["StateTable"]]  # each saved state feeds the console's history
    alarm_topics = [["TopicNamespace"]]  # {namespace}/*/alarms: the publisher is given TOPIC_NAMESPACE
    config = [["DetectorConfigParameter"]]
    assert derived == {
        "InferenceFunction": {
            "dynamodb:GetItem": state,
            "dynamodb:PutItem": state_and_history,
            "dynamodb:BatchGetItem": state,  # a batch's motors read together: only this function applies batches
            "iot:Publish": alarm_topics,
            "ssm:GetParameter": config,
            "sagemaker:InvokeEndpoint": [["ExistingEndpointName"], ["ModelEndpoint"]],
            "s3:GetObject": [["ModelDataUrl"]],  # InferenceMode embedded: the artifact, read once per environment
        },
        "ArchiveFunction": {
            "firehose:PutRecordBatch": [["TelemetryArchiveStream"]],  # IngestionMode batched: it archives the batches
        },
        "OperatorActionFunction": {
            "dynamodb:GetItem": state,
            "dynamodb:PutItem": state_and_history,
            "iot:Publish": alarm_topics,
            "ssm:GetParameter": config,
        },
        "OfflineCheckFunction": {
            "dynamodb:Query": state,  # on the index only: test_template checks the grant's ARN
            "dynamodb:GetItem": state,
            "dynamodb:PutItem": state_and_history,
            "iot:Publish": alarm_topics,
            "ssm:GetParameter": config,
        },
        "ConsoleFunction": {
            "dynamodb:Scan": state,  # the fleet page reads every motor
            "dynamodb:GetItem": state,
            "dynamodb:PutItem": state_and_history,
            "dynamodb:Query": [["HistoryTable"]],
            "iot:Publish": alarm_topics,
            "ssm:GetParameter": config,
        },
        "AlertFunction": {
            "dynamodb:GetItem": [["IdempotencyTable"]],
            "dynamodb:PutItem": [["IdempotencyTable"]],
            "dynamodb:UpdateItem": [["IdempotencyTable"]],
            "dynamodb:DeleteItem": [["IdempotencyTable"]],
            "sns:Publish": [["AlertTopic"]],
        },
    }


def test_docs_list_each_functions_calls_as_the_code_makes_them() -> None:
    """docs/security.md's IAM table: one row per function, its code's calls in the second column."""
    rows = {}
    for line in (ROOT / "docs" / "security.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+Function`", cells[0]):
            rows[cells[0].strip("`")] = set(re.findall(r"`([a-z0-9-]+:[A-Za-z]+)`", cells[1]))  # s3:, too

    derived = {name: _derived(name) for name, _ in resources(TEMPLATE, "AWS::Serverless::Function")}

    assert rows == derived


def test_every_boto3_client_is_made_by_the_one_factory_the_analysis_follows() -> None:
    """boto3 is imported only by motor_adapters/clients.py: no client escapes the analysis (nor the timeouts)."""
    sources = [*(ROOT / "functions").glob("*/app.py"), *(ROOT / "layers" / "shared").rglob("*.py")]
    importers = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(module.split(".")[0] == "boto3" for module in modules):
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"layers/shared/motor_adapters/clients.py"}


def test_an_adapter_makes_the_calls_it_inherits_from_an_adapter_class_too() -> None:
    """DynamoBatchStateStore defines load_many alone; load and save, inherited, make their calls as its own."""
    use = Use("motor_adapters.dynamodb_store.DynamoBatchStateStore", "dynamodb", frozenset(), "test")

    actions, problems = calls_of(CodeBase(), use)

    assert problems == []
    assert actions == {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"}


def test_config_source_only_reads_one_parameter() -> None:
    """The premise of LIBRARY_CALLERS['SSMProvider']: ConfigSource calls only get() on its provider."""
    source = Source.parse(ConfigSource.__module__, Path(inspect.getfile(ConfigSource)))
    called = {
        node.func.attr
        for node in ast.walk(source.tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "_provider"
    }
    assert called == {"get"}


def test_the_library_callers_named_are_where_the_library_defines_them() -> None:
    for name, library in LIBRARY_CALLERS.items():
        module = importlib.import_module(library.module)
        assert getattr(module, name).__module__ == library.module, name


# ------------------------------------------------------------------ and it can fail


def _statements(template: Template, role: str) -> list[Any]:
    found: list[Any] = template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    return found


def _granting_a_call_the_code_never_makes(template: Template) -> None:
    statement = next(s for s in _statements(template, "AlertRole") if s.get("Sid") == "IdempotencyRecords")
    statement["Action"].append("dynamodb:Query")


def _without_a_call_the_code_makes(template: Template) -> None:
    statements = _statements(template, "OperatorActionRole")
    statements[:] = [s for s in statements if s.get("Sid") != "ReadDetectorConfig"]


def _on_another_functions_table(template: Template) -> None:
    statement = next(s for s in _statements(template, "AlertRole") if s.get("Sid") == "IdempotencyRecords")
    statement["Resource"] = {"Fn::GetAtt": ["StateTable", "Arn"]}


def _with_the_model_for_operator_actions(template: Template) -> None:
    _statements(template, "OperatorActionRole").append(
        {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": {"Ref": "ModelEndpoint"}}
    )


def _publishing_on_every_motor_topic(template: Template) -> None:
    statement = next(s for s in _statements(template, "InferenceRole") if s.get("Sid") == "PublishAlarmEvents")
    statement["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/motors/*"}


def _without_the_failure_queue(template: Template) -> None:
    statements = _statements(template, "InferenceRole")
    statements[:] = [s for s in statements if s.get("Sid") != "ParkFailedEvents"]


def _batch_reads_for_operator_actions(template: Template) -> None:
    _statements(template, "OperatorActionRole").append(
        {"Effect": "Allow", "Action": "dynamodb:BatchGetItem", "Resource": {"Fn::GetAtt": ["StateTable", "Arn"]}}
    )


def _without_the_batch_read(template: Template) -> None:
    statements = _statements(template, "InferenceRole")
    statements[:] = [s for s in statements if "ReadMotorStatesOfABatch" not in str(s)]


def _decrypting_for_a_function_that_reads_no_object(template: Template) -> None:
    _statements(template, "OperatorActionRole").append(
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Ref": "ArtifactKmsKeyArn"}}
    )


@pytest.mark.parametrize(
    ("breakage", "culprit"),
    [
        (_granting_a_call_the_code_never_makes, "AlertRole: grants dynamodb:Query"),
        (_without_a_call_the_code_makes, "OperatorActionRole: does not grant ssm:GetParameter"),
        (_on_another_functions_table, "dynamodb:GetItem on [['StateTable']]"),
        (_with_the_model_for_operator_actions, "OperatorActionRole: grants sagemaker:InvokeEndpoint"),
        (_publishing_on_every_motor_topic, "iot:Publish on"),
        (_without_the_failure_queue, "InferenceRole: does not grant sqs:SendMessage"),
        (_batch_reads_for_operator_actions, "OperatorActionRole: grants dynamodb:BatchGetItem"),
        (_without_the_batch_read, "InferenceRole: does not grant dynamodb:BatchGetItem"),
        (_decrypting_for_a_function_that_reads_no_object, "OperatorActionRole: grants kms:Decrypt"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_a_template_that_grants_more_or_less_than_the_code_calls_is_reported(
    breakage: Callable[[Template], None], culprit: str
) -> None:
    problems = problems_when_broken(least_privilege_problems, breakage)

    assert any(culprit in problem for problem in problems), problems


APPENDED_IMPORTS = "\nfrom motor_adapters.clients import client as _client_for_test\n"


@pytest.mark.parametrize(
    ("path", "old", "new", "culprit"),
    [
        # An adapter that starts querying the state table needs dynamodb:Query.
        (
            "layers/shared/motor_adapters/dynamodb_store.py",
            "client.get_item(",
            "client.query(",
            "does not grant dynamodb:Query",
        ),
        # Functions whose wiring builds the batch-reading store need dynamodb:BatchGetItem.
        (
            "layers/shared/motor_lambda/wiring.py",
            "import DynamoDueIndex, DynamoStateStore\n",
            "import DynamoDueIndex\n"
            "from motor_adapters.dynamodb_store import DynamoBatchStateStore as DynamoStateStore\n",
            "OperatorActionRole: does not grant dynamodb:BatchGetItem",
        ),
        # What a class of the shell builds is the handler's too (Ingestion, then inference_ports), and a
        # setting must be one of the function's own.
        (
            "layers/shared/motor_lambda/ingestion.py",
            "    store = DynamoBatchStateStore(",
            "    DynamoHealthStore(settings.alert_topic_arn, clients.client('dynamodb'))\n"
            "    store = DynamoBatchStateStore(",
            "passes settings.alert_topic_arn, which its settings model does not define",
        ),
        # What an adapter inherits from a class the analysis cannot read is reported, not ignored.
        (
            "layers/shared/motor_adapters/dynamodb_store.py",
            "class DynamoBatchStateStore(DynamoStateStore):",
            "class DynamoBatchStateStore(DynamoStateStore, json.JSONDecoder):",
            "inherits from json.JSONDecoder",
        ),
        # A handler that starts publishing alarm events needs iot:Publish.
        (
            "functions/alerts/app.py",
            None,
            APPENDED_IMPORTS + "from motor_adapters.iot_publisher import IotAlarmPublisher as _Publisher\n"
            "_publisher = _Publisher(_client_for_test('iot-data'), settings.topic_namespace)\n",
            "AlertRole: does not grant iot:Publish",
        ),
        # A client used where the analysis cannot follow it is reported, not ignored.
        ("functions/actions/app.py", None, APPENDED_IMPORTS + "_bucket = _client_for_test('s3')\n", "a s3 client"),
        # A Powertools helper that makes its own client is reported too.
        (
            "functions/inference/app.py",
            None,
            "\nfrom aws_lambda_powertools.utilities.parameters import get_parameter as _get\n_value = _get('x')\n",
            "get_parameter may call AWS",
        ),
        (
            "functions/alerts/app.py",
            None,
            "\nfrom aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer as _Layer\n"
            "_layer = _Layer(table_name='x')\n",
            "built without a client",
        ),
    ],
    ids=[
        "adapter-queries",
        "batch-store-everywhere",
        "shell-class",
        "unreadable-base",
        "handler-publishes",
        "untraceable-client",
        "powertools-helper",
        "powertools-own-client",
    ],
)
def test_code_that_calls_more_than_the_role_grants_is_reported(
    tmp_path: Path, path: str, old: str | None, new: str, culprit: str
) -> None:
    for tree in ("functions", "layers/shared"):
        shutil.copytree(ROOT / tree, tmp_path / tree, ignore=shutil.ignore_patterns("__pycache__"))
    changed = tmp_path / path
    text = changed.read_text()
    if old is None:
        changed.write_text(text + new)
    else:
        assert old in text, f"{path} no longer contains {old!r}; update this test"
        changed.write_text(text.replace(old, new, 1))

    problems = least_privilege_problems(TEMPLATE, CodeBase(tmp_path))

    assert any(culprit in problem for problem in problems), problems


# ------------------------------------------------------------------ and the code, run, makes no other call


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(service, operation) of every call made through a boto3 client created from here on."""
    calls: list[tuple[str, str]] = []
    make = boto3.client

    def recording_client(*args: Any, **kwargs: Any) -> Any:
        made = make(*args, **kwargs)

        def record(model: Any, **_: Any) -> None:
            calls.append((made.meta.service_model.service_name, model.name))

        made.meta.events.register("before-call", record)
        return made

    monkeypatch.setattr(boto3, "client", recording_client)
    return calls


def _derived(name: str) -> set[str]:
    function = TEMPLATE["Resources"][name]
    return set(code_needs(TEMPLATE, name, function, CodeBase()).actions)


def _actions(calls: list[tuple[str, str]]) -> set[str]:
    return {f"{IAM_PREFIX.get(service, service)}:{operation}" for service, operation in calls}


def _run(module: ModuleType, events: list[dict[str, Any]]) -> None:
    for event in events:
        module.lambda_handler(event, LambdaContext())


def test_the_calls_the_handlers_make_under_moto_are_among_those_derived(
    aws: FakeAws, recorded: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given each handler run on its sample events against moto,
    when every AWS call is recorded,
    then each is one the analysis derived for that function: the analysis misses nothing these paths take.
    """
    inference = load_handler("inference")
    sagemaker = FakeSageMakerRuntime()  # moto has no SageMaker runtime; the analysis covers InvokeEndpoint

    def client(service: str, **kwargs: Any) -> Any:
        return sagemaker if service == "sagemaker-runtime" else real_client(service, **kwargs)

    monkeypatch.setattr(motor_adapters.clients, "client", client)
    breach = load_event("telemetry-condition-breach")
    _run(inference, [breach | {"ts": "2026-11-27T12:00:30Z", "seq": 1001}, breach, load_event("telemetry-legacy")])
    _run(inference, [load_event("telemetry-batch")])  # IngestionMode batched
    by_function = {"InferenceFunction": _actions(recorded)}

    recorded.clear()
    actions = load_handler("actions")
    _run(actions, [load_event(name) for name in ("action-acknowledge", "action-snooze", "action-service-complete")])
    by_function["OperatorActionFunction"] = _actions(recorded)

    recorded.clear()
    alerts = load_handler("alerts")
    _run(alerts, [load_event("alarm-raised"), load_event("alarm-raised")])
    by_function["AlertFunction"] = _actions(recorded)

    state_and_events = {"dynamodb:GetItem", "dynamodb:PutItem", "iot:Publish", "ssm:GetParameter"}
    assert by_function["InferenceFunction"] >= state_and_events | {"dynamodb:BatchGetItem"}
    assert "dynamodb:BatchGetItem" not in by_function["OperatorActionFunction"]
    assert by_function["AlertFunction"] >= {"dynamodb:PutItem", "sns:Publish"}
    for name, made in by_function.items():
        assert made <= _derived(name), f"{name} made {sorted(made - _derived(name))}, which the analysis missed"
