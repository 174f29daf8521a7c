"""template.yaml as the local stack reads it: short-form tags, intrinsic functions, and what each resource is.

Nothing here is copied from the template by hand: `load` reads the functions (SAM Globals merged in),
the IoT rules (`AWS::IoT::TopicRule` resources and SAM `IoTRule` events), tables, queues, topics,
subscriptions and SSM parameters into specs. Values that name other resources (environment
variables, parameter names and values) are kept raw, and resolved by a `Resolver` the stack builds
once it knows the local physical names. Values the local stack needs at start-up (a handler, a
timeout, a rule's SQL) are resolved at load with the template's parameter defaults. Whatever cannot
be emulated faithfully (a rule action other than Lambda, an on-failure destination that is not a
queue, an intrinsic function this module does not know) raises `TemplateError`, naming it and where.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml  # type: ignore[import-untyped, unused-ignore]

LAMBDA_DEFAULT_RETRIES = 2
LAMBDA_DEFAULT_MAX_EVENT_AGE_S = 21600
IOT_DEFAULT_SQL_VERSION = "2015-10-08"
"""What IoT Core uses when a rule names no AwsIotSqlVersion."""
EMULATED_TYPES = frozenset(
    {
        "AWS::Serverless::Function",
        "AWS::Serverless::LayerVersion",
        "AWS::IoT::TopicRule",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::SNS::Subscription",
        "AWS::SSM::Parameter",
    }
)


class TemplateError(Exception):
    """The template uses something the local stack cannot read or emulate; the message says what and where."""


# ---------------------------------------------------------------- YAML with CloudFormation's tags


class CfnLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """A safe YAML loader that turns CloudFormation's short-form tags into their long form."""


def _long_form(name: str) -> Callable[[Any, Any], dict[str, Any]]:
    def construct(loader: Any, node: Any) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if name == "Fn::GetAtt" and isinstance(value, str):
            resource, dot, attribute = value.partition(".")
            if not dot:
                raise TemplateError(f"!GetAtt {value!r} is not Resource.Attribute (line {node.start_mark.line + 1})")
            value = [resource, attribute]
        return {name: value}

    return construct


for _tag in ("Ref", "Condition"):
    CfnLoader.add_constructor(f"!{_tag}", _long_form(_tag))
for _tag in (
    *("GetAtt", "Sub", "If", "Equals", "Not", "And", "Or", "Select", "Split", "Join", "FindInMap"),
    *("GetAZs", "ImportValue", "Base64", "Cidr"),
):
    CfnLoader.add_constructor(f"!{_tag}", _long_form(f"Fn::{_tag}"))


def parse(text: str) -> dict[str, Any]:
    """A template's text as a plain document, short-form tags in their long form."""
    try:
        document = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise TemplateError(f"template is not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError("template has no Resources mapping")
    return document


# ---------------------------------------------------------------- intrinsic functions


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {type(value).__name__} {value!r}")


def _pair(value: Any, where: str, what: str, length: int = 2) -> list[Any]:
    if not isinstance(value, list) or len(value) != length:
        raise TemplateError(f"{where}: {what} takes a list of {length}, got {value!r}")
    return value


class Resolver:
    """Evaluates intrinsic functions against local values: parameters, pseudo parameters, physical names.

    `parameters` override the template's defaults; `physical` gives what Ref of a resource returns
    and `attributes` what Fn::GetAtt returns, keyed by (logical id, attribute). Conditions, parameter
    definitions and mappings come from `template` (a Template or a parsed document).
    """

    def __init__(
        self,
        parameters: Mapping[str, str],
        pseudo: Mapping[str, str],
        physical: Mapping[str, str],
        attributes: Mapping[tuple[str, str], str],
        *,
        template: Template | Mapping[str, Any] | None = None,
    ) -> None:
        document: Mapping[str, Any] = template.document if isinstance(template, Template) else (template or {})
        self._definitions: Mapping[str, Any] = document.get("Parameters") or {}
        self._mappings: Mapping[str, Any] = document.get("Mappings") or {}
        self._conditions: Mapping[str, Any] = document.get("Conditions") or {}
        self._resources: Mapping[str, Any] = document.get("Resources") or {}
        self.parameters = dict(parameters)
        self.pseudo = dict(pseudo)
        self.physical = dict(physical)
        self.attributes = dict(attributes)
        self._known: dict[str, bool] = {}
        self._evaluating: set[str] = set()
        self._functions: dict[str, Callable[[Any, str], Any]] = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Join": self._join,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": lambda arg, where: base64.b64encode(_text(self._value(arg, where), where).encode()).decode(),
        }

    def resolve(self, value: Any, where: str = "value") -> Any:
        """`value` with every intrinsic function evaluated; AWS::NoValue removes its key or list item (None at top)."""
        resolved = self._value(value, where)
        return None if resolved is NO_VALUE else resolved

    def parameter(self, name: str, where: str = "Parameters") -> Any:
        """A template parameter's value: given, else its default; a list for list types."""
        definition = self._definitions.get(name) or {}
        if name in self.parameters:
            value: Any = self.parameters[name]
        elif "Default" in definition:
            value = definition["Default"]
        else:
            raise TemplateError(f"{where}: parameter {name} has no value and no default")
        text = value if isinstance(value, list) else _text(value, where)
        kind = str(definition.get("Type", "String"))
        if isinstance(text, str) and (kind == "CommaDelimitedList" or kind.startswith("List<")):
            return text.split(",")
        return text

    def condition_holds(self, name: str | None, where: str = "Conditions") -> bool:
        """Whether a template condition is true for these parameters (no condition: true)."""
        if name is None:
            return True
        if name in self._known:
            return self._known[name]
        if name not in self._conditions:
            hint = "" if self._conditions else " (was the Resolver built without template=...?)"
            raise TemplateError(f"{where}: unknown condition {name!r}{hint}")
        if name in self._evaluating:
            raise TemplateError(f"{where}: condition {name} depends on itself")
        self._evaluating.add(name)
        try:
            self._known[name] = self._truth(self._conditions[name], f"Conditions.{name}")
        finally:
            self._evaluating.discard(name)
        return self._known[name]

    def _value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    function = self._functions.get(key)
                    if function is None:
                        raise TemplateError(f"{where}: intrinsic function {key} is not supported by the local stack")
                    return function(arg, f"{where}.{key}")
            resolved = {key: self._value(item, f"{where}.{key}") for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        if isinstance(value, list):
            items = [self._value(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    def _truth(self, value: Any, where: str) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Condition":
                return self.condition_holds(arg, where)
            if key == "Fn::Equals":
                left, right = (self._value(side, f"{where}.Fn::Equals") for side in _pair(arg, where, key))
                return bool(self._comparable(left, where) == self._comparable(right, where))
            if key == "Fn::Not":
                return not self._truth(_pair(arg, where, key, 1)[0], f"{where}.Fn::Not")
            if key in ("Fn::And", "Fn::Or") and isinstance(arg, list) and arg:
                truths = (self._truth(item, f"{where}.{key}[{i}]") for i, item in enumerate(arg))
                return all(truths) if key == "Fn::And" else any(truths)
        raise TemplateError(f"{where}: {value!r} is not a condition (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)")

    @staticmethod
    def _comparable(value: Any, where: str) -> Any:
        return [_text(item, where) for item in value] if isinstance(value, list) else _text(value, where)

    def _ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref takes a name, got {name!r}")
        if name == "AWS::NoValue":
            return NO_VALUE
        if name.startswith("AWS::"):
            if name not in self.pseudo:
                raise TemplateError(f"{where}: pseudo parameter {name} has no local value")
            return self.pseudo[name]
        if name in self.parameters or name in self._definitions:
            return self.parameter(name, where)
        if name in self.physical:
            return self.physical[name]
        if name in self._resources:
            kind = self._resources[name].get("Type", "?")
            raise TemplateError(f"{where}: Ref {name} ({kind}): the local stack has no physical name for it")
        raise TemplateError(f"{where}: Ref to {name!r}, which is neither a parameter nor a resource")

    def _get_att(self, arg: Any, where: str) -> Any:
        resource, attribute = _pair(arg, where, "Fn::GetAtt")
        key = (resource, _text(self._value(attribute, where), where))
        if key not in self.attributes:
            raise TemplateError(f"{where}: Fn::GetAtt {key[0]}.{key[1]} has no local value")
        return self.attributes[key]

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
            text = arg[0]
            variables = {name: self._value(value, f"{where}.{name}") for name, value in arg[1].items()}
        else:
            raise TemplateError(f"{where}: Fn::Sub takes a string or [string, {{variables}}], got {arg!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} writes ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self._get_att(name.split(".", 1), f"{where}.${{{name}}}")
            else:
                value = self._ref(name, f"{where}.${{{name}}}")
            return _text(value, f"{where}.${{{name}}}")

        return _SUB_VARIABLE.sub(substitute, text)

    def _if(self, arg: Any, where: str) -> Any:
        condition, if_true, if_false = _pair(arg, where, "Fn::If", 3)
        holds = self.condition_holds(condition, where)
        return self._value(if_true if holds else if_false, f"{where}[{1 if holds else 2}]")

    def _select(self, arg: Any, where: str) -> Any:
        index, items = (self._value(item, where) for item in _pair(arg, where, "Fn::Select"))
        if not isinstance(items, list) or not _text(index, where).isdigit() or int(index) >= len(items):
            raise TemplateError(f"{where}: Fn::Select index {index!r} is not within {items!r}")
        return items[int(index)]

    def _split(self, arg: Any, where: str) -> list[str]:
        delimiter, text = (_text(self._value(item, where), where) for item in _pair(arg, where, "Fn::Split"))
        return text.split(delimiter)

    def _join(self, arg: Any, where: str) -> str:
        delimiter, items = _pair(arg, where, "Fn::Join")
        values = self._value(items, where)
        if not isinstance(values, list):
            raise TemplateError(f"{where}: Fn::Join takes a list, got {values!r}")
        return _text(delimiter, where).join(_text(value, where) for value in values)

    def _find_in_map(self, arg: Any, where: str) -> Any:
        name, top, second = (_text(self._value(item, where), where) for item in _pair(arg, where, "Fn::FindInMap", 3))
        try:
            return self._mappings[name][top][second]
        except (KeyError, TypeError) as exc:
            raise TemplateError(f"{where}: Fn::FindInMap [{name}, {top}, {second}] is not in Mappings") from exc


# ---------------------------------------------------------------- specs


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the local Lambda runs it (SAM Globals.Function merged in, the function's own values win)."""

    logical_id: str
    code_uri: Path
    """The CodeUri folder, relative to the template's folder (an absolute path when the template's is)."""
    handler: str
    runtime: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, Any]
    """Environment.Variables, raw: resolve with a Resolver (or `resolved_environment`)."""
    layers: tuple[Any, ...]
    max_retry_attempts: int = LAMBDA_DEFAULT_RETRIES
    max_event_age_s: int = LAMBDA_DEFAULT_MAX_EVENT_AGE_S
    on_failure: str | None = None
    """Logical id of the on-failure destination queue."""
    condition: str | None = None

    @property
    def handler_module(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]

    def resolved_environment(self, resolver: Resolver) -> dict[str, str]:
        variables = resolver.resolve(self.environment, f"{self.logical_id}.Environment.Variables") or {}
        return {
            name: _text(value, f"{self.logical_id}.Environment.Variables.{name}") for name, value in variables.items()
        }


@dataclass(frozen=True)
class RuleSpec:
    """An IoT rule: its SQL, the functions its Lambda actions invoke, the queue its error action parks in."""

    name: str
    """Logical id (for a SAM IoTRule event, SAM's: function id + event name)."""
    sql: str
    sql_version: str
    disabled: bool
    actions: tuple[str, ...]
    """Logical ids of the functions the rule invokes."""
    error_action: str | None
    """Logical id of the SQS queue of the rule's error action."""
    source: str
    """Where the rule comes from: "AWS::IoT::TopicRule" or "IoTRule event of <Function>"."""
    error_action_base64: bool = False
    condition: str | None = None


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    ttl_attribute: str | None
    global_secondary_indexes: list[Any] = field(default_factory=list)
    local_secondary_indexes: list[Any] = field(default_factory=list)
    condition: str | None = None


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    fifo: bool
    retention_s: int | None
    visibility_timeout_s: int | None = None
    condition: str | None = None


@dataclass(frozen=True)
class TopicSpec:
    logical_id: str
    fifo: bool = False
    display_name: str | None = None
    condition: str | None = None


@dataclass(frozen=True)
class SubscriptionSpec:
    logical_id: str
    topic: str
    """Logical id of the topic (TopicArn: !Ref Topic)."""
    protocol: str
    endpoint: Any
    """Raw: often a Ref to a parameter."""
    filter_policy: Any = None
    raw_message_delivery: bool = False
    condition: str | None = None


@dataclass(frozen=True)
class ParameterSpec:
    logical_id: str
    name: Any
    """Raw Name (without one CloudFormation makes up a name; here it is CFN-<LogicalId>)."""
    value: Any
    type: str
    condition: str | None = None


@dataclass(frozen=True)
class Template:
    """What the local stack emulates of a template, and the document itself."""

    path: Path
    document: dict[str, Any]
    functions: dict[str, FunctionSpec]
    rules: tuple[RuleSpec, ...]
    tables: tuple[TableSpec, ...]
    queues: tuple[QueueSpec, ...]
    topics: tuple[TopicSpec, ...]
    subscriptions: tuple[SubscriptionSpec, ...]
    parameters: tuple[ParameterSpec, ...]
    layers: dict[str, Path]
    """Content folders of the template's AWS::Serverless::LayerVersion resources, by logical id."""
    unsupported_events: dict[str, list[str]]
    """Function event sources other than IoTRule, by type: "Function.Events.Name"."""

    @property
    def conditions(self) -> dict[str, Any]:
        return dict(self.document.get("Conditions") or {})

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.document.get("Outputs") or {})

    @property
    def parameters_defaults(self) -> dict[str, str | None]:
        definitions = self.document.get("Parameters") or {}
        return {
            name: None if "Default" not in spec else _text(spec["Default"], f"Parameters.{name}.Default")
            for name, spec in definitions.items()
        }

    def resolver(
        self,
        parameters: Mapping[str, str] | None = None,
        pseudo: Mapping[str, str] | None = None,
        physical: Mapping[str, str] | None = None,
        attributes: Mapping[tuple[str, str], str] | None = None,
    ) -> Resolver:
        return Resolver(parameters or {}, pseudo or {}, physical or {}, attributes or {}, template=self)

    def evaluate_conditions(self, resolver: Resolver) -> dict[str, bool]:
        return {name: resolver.condition_holds(name) for name in self.conditions}

    def layer_paths(self, function: FunctionSpec) -> list[Path]:
        """The content folders of a function's layers, in order (as Lambda stacks them under /opt)."""
        paths = []
        for i, layer in enumerate(function.layers):
            name = layer.get("Ref") if isinstance(layer, dict) and len(layer) == 1 else None
            if name not in self.layers:
                raise TemplateError(
                    f"{function.logical_id}.Layers[{i}]: {layer!r} is not an AWS::Serverless::LayerVersion of this "
                    "template with a local ContentUri, so the local stack cannot provide it"
                )
            paths.append(self.layers[name])
        return paths

    def unsupported_resource_types(self) -> list[str]:
        return sorted(unsupported_resources(self))


def unsupported_resources(template: Template) -> dict[str, list[str]]:
    """What the local stack leaves out, by type: resources it does not emulate and non-IoT event sources."""
    left_out: dict[str, list[str]] = {}
    for logical_id, resource in template.document["Resources"].items():
        kind = str(resource.get("Type", "?"))
        if kind not in EMULATED_TYPES:
            left_out.setdefault(kind, []).append(logical_id)
    for kind, events in template.unsupported_events.items():
        left_out.setdefault(f"{kind} event", []).extend(events)
    return {kind: sorted(ids) for kind, ids in sorted(left_out.items())}


# ---------------------------------------------------------------- reading the template


def load(path: Path) -> Template:
    """Read template.yaml (or any SAM template) into specs; raise TemplateError for what cannot be emulated."""
    return loads(path.read_text(encoding="utf-8"), path=path)


def loads(text: str, *, path: Path) -> Template:
    """Like `load`, for a template's text; `path` places CodeUri and ContentUri folders."""
    return _Reader(parse(text), path.resolve()).template()


def _merge(defaults: Any, own: Any) -> Any:
    """SAM's Globals: maps merge (the resource's keys win), lists add up (globals first), other values are replaced."""
    plain = [isinstance(v, dict) and not any(k == "Ref" or k.startswith("Fn::") for k in v) for v in (defaults, own)]
    if all(plain):
        merged = dict(defaults)
        for key, value in own.items():
            merged[key] = _merge(defaults[key], value) if key in defaults else value
        return merged
    if isinstance(defaults, list) and isinstance(own, list):
        return defaults + own
    return own


def _target(value: Any, attribute: str) -> str | None:
    """The logical id a reference names: !GetAtt X.<attribute>, !Ref X, or !Sub "${X.<attribute>}"."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((key, arg),) = value.items()
    if key == "Fn::GetAtt" and isinstance(arg, list) and len(arg) == 2 and arg[1] == attribute:
        return str(arg[0])
    if key == "Ref" and isinstance(arg, str):
        return arg
    text = arg if isinstance(arg, str) else (arg[0] if isinstance(arg, list) and arg else None)
    if key == "Fn::Sub" and isinstance(text, str):
        arn = r"arn:\$\{AWS::Partition\}:lambda:\$\{AWS::Region\}:\$\{AWS::AccountId\}:function:\$\{(\w+)\}"
        match = re.fullmatch(rf"\$\{{(\w+)\.{attribute}\}}", text) or re.fullmatch(arn, text)
        return match.group(1) if match else None
    return None


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TemplateError(f"{where}: expected true or false, got {value!r}")


class _Reader:
    def __init__(self, document: dict[str, Any], path: Path) -> None:
        self.document = document
        self.path = path
        self.root = path.parent
        self.resources: dict[str, dict[str, Any]] = document["Resources"]
        self.static = Resolver({}, {}, {}, {}, template=document)
        """Resolves what the stack needs before it has physical names, with the parameters' defaults."""
        self.unsupported_events: dict[str, list[str]] = {}
        self.event_rules: list[RuleSpec] = []

    def of_type(self, kind: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        found = []
        for logical_id, resource in self.resources.items():
            if isinstance(resource, dict) and resource.get("Type") == kind:
                found.append((logical_id, resource, resource.get("Properties") or {}))
        return found

    def value(self, raw: Any, where: str) -> Any:
        return self.static.resolve(raw, where)

    def integer(self, raw: Any, where: str) -> int:
        value = self.value(raw, where)
        try:
            return int(_text(value, where))
        except ValueError as exc:
            raise TemplateError(f"{where}: expected a whole number, got {value!r}") from exc

    def kind(self, logical_id: str | None) -> str:
        resource = self.resources.get(logical_id or "")
        return str(resource.get("Type")) if isinstance(resource, dict) else "nothing"

    def template(self) -> Template:
        functions = {
            f.logical_id: f for f in (self.function(*found) for found in self.of_type("AWS::Serverless::Function"))
        }
        rules = [self.topic_rule(*found, functions) for found in self.of_type("AWS::IoT::TopicRule")]
        return Template(
            path=self.path,
            document=self.document,
            functions=functions,
            rules=tuple(rules + self.event_rules),
            tables=tuple(self.table(*found) for found in self.of_type("AWS::DynamoDB::Table")),
            queues=tuple(self.queue(*found) for found in self.of_type("AWS::SQS::Queue")),
            topics=tuple(self.topic(*found) for found in self.of_type("AWS::SNS::Topic")),
            subscriptions=tuple(self.subscription(*found) for found in self.of_type("AWS::SNS::Subscription")),
            parameters=tuple(self.parameter(*found) for found in self.of_type("AWS::SSM::Parameter")),
            layers={lid: self.layer(lid, props) for lid, _, props in self.of_type("AWS::Serverless::LayerVersion")},
            unsupported_events=self.unsupported_events,
        )

    def layer(self, logical_id: str, props: dict[str, Any]) -> Path:
        content = self.value(props.get("ContentUri"), f"{logical_id}.Properties.ContentUri")
        if not isinstance(content, str) or content.startswith("s3://") or not (self.root / content).is_dir():
            raise TemplateError(f"{logical_id}.Properties.ContentUri: {content!r} is not a folder next to the template")
        return self.root / content

    def function(self, logical_id: str, resource: dict[str, Any], own: dict[str, Any]) -> FunctionSpec:
        where = f"{logical_id}.Properties"
        props = _merge((self.document.get("Globals") or {}).get("Function") or {}, own)
        for unsupported in ("InlineCode", "ImageUri", "DeadLetterQueue"):
            if unsupported in props:
                raise TemplateError(f"{where}.{unsupported}: not supported by the local stack")
        if self.value(props.get("PackageType", "Zip"), f"{where}.PackageType") != "Zip":
            raise TemplateError(f"{where}.PackageType: only Zip functions run locally")
        code_uri, handler = (self.value(props.get(key), f"{where}.{key}") for key in ("CodeUri", "Handler"))
        runtime = _text(self.value(props.get("Runtime"), f"{where}.Runtime"), f"{where}.Runtime")
        if not isinstance(code_uri, str) or not (self.root / code_uri).is_dir():
            raise TemplateError(f"{where}.CodeUri: {code_uri!r} is not a folder next to the template")
        if not isinstance(handler, str) or "." not in handler.strip("."):
            raise TemplateError(f"{where}.Handler: {handler!r} is not module.function")
        module = self.root / code_uri / (handler.rpartition(".")[0].replace(".", "/") + ".py")
        if not module.is_file():
            raise TemplateError(f"{where}.Handler: {handler!r} names {module}, which does not exist")
        if not runtime.startswith("python"):
            raise TemplateError(f"{where}.Runtime: {runtime} - the local stack runs Python functions only")
        invoke = props.get("EventInvokeConfig") or {}
        self.events(logical_id, props.get("Events") or {})
        return FunctionSpec(
            logical_id=logical_id,
            code_uri=self.root / code_uri,
            handler=handler,
            runtime=runtime,
            timeout_s=self.integer(props.get("Timeout", 3), f"{where}.Timeout"),
            memory_mb=self.integer(props.get("MemorySize", 128), f"{where}.MemorySize"),
            environment=dict((props.get("Environment") or {}).get("Variables") or {}),
            layers=tuple(props.get("Layers") or ()),
            max_retry_attempts=self.integer(
                invoke.get("MaximumRetryAttempts", LAMBDA_DEFAULT_RETRIES), f"{where}.EventInvokeConfig"
            ),
            max_event_age_s=self.integer(
                invoke.get("MaximumEventAgeInSeconds", LAMBDA_DEFAULT_MAX_EVENT_AGE_S), f"{where}.EventInvokeConfig"
            ),
            on_failure=self.on_failure(invoke.get("DestinationConfig") or {}, f"{where}.EventInvokeConfig"),
            condition=resource.get("Condition"),
        )

    def on_failure(self, destinations: dict[str, Any], where: str) -> str | None:
        if "OnSuccess" in destinations:
            raise TemplateError(f"{where}.DestinationConfig.OnSuccess: not supported by the local stack")
        if "OnFailure" not in destinations:
            return None
        raw = (destinations["OnFailure"] or {}).get("Destination")
        queue = _target(raw, "Arn")
        if self.kind(queue) != "AWS::SQS::Queue" or not isinstance(raw, dict) or "Ref" in raw:  # Ref is its URL
            raise TemplateError(
                f"{where}.DestinationConfig.OnFailure: {raw!r} is not !GetAtt <Queue>.Arn of an AWS::SQS::Queue "
                f"({self.kind(queue)}); the local stack parks failed events in queues only"
            )
        return queue

    def events(self, function: str, events: dict[str, Any]) -> None:
        for name, event in events.items():
            where = f"{function}.Properties.Events.{name}"
            kind = str((event or {}).get("Type"))
            if kind != "IoTRule":
                self.unsupported_events.setdefault(kind, []).append(f"{function}.Events.{name}")
                continue
            props = event.get("Properties") or {}
            sql = self.value(props.get("Sql"), f"{where}.Properties.Sql")
            if not isinstance(sql, str):
                raise TemplateError(f"{where}.Properties.Sql: expected the rule's SQL, got {sql!r}")
            version = self.value(props.get("AwsIotSqlVersion", IOT_DEFAULT_SQL_VERSION), f"{where}.Properties")
            self.event_rules.append(
                RuleSpec(
                    f"{function}{name}", sql, str(version), False, (function,), None, f"IoTRule event of {function}"
                )
            )

    def topic_rule(
        self, logical_id: str, resource: dict[str, Any], props: dict[str, Any], functions: dict[str, FunctionSpec]
    ) -> RuleSpec:
        where = f"{logical_id}.Properties.TopicRulePayload"
        payload = props.get("TopicRulePayload") or {}
        sql = self.value(payload.get("Sql"), f"{where}.Sql")
        if not isinstance(sql, str):
            raise TemplateError(f"{where}.Sql: expected the rule's SQL, got {sql!r}")
        actions = []
        for i, action in enumerate(payload.get("Actions") or []):
            kind = next(iter(action)) if isinstance(action, dict) and len(action) == 1 else repr(action)
            if kind != "Lambda":
                raise TemplateError(f"unsupported rule action {kind} in {logical_id} ({where}.Actions[{i}])")
            target = _target((action["Lambda"] or {}).get("FunctionArn"), "Arn")
            if target not in functions:
                raise TemplateError(
                    f"{where}.Actions[{i}].Lambda.FunctionArn: {action['Lambda'].get('FunctionArn')!r} names no "
                    "AWS::Serverless::Function of this template (!GetAtt F.Arn, !Ref F or !Sub of its ARN)"
                )
            actions.append(str(target))
        error_action, base64_body = self.error_action(logical_id, payload.get("ErrorAction"), where)
        return RuleSpec(
            name=logical_id,
            sql=sql,
            sql_version=_text(self.value(payload.get("AwsIotSqlVersion", IOT_DEFAULT_SQL_VERSION), where), where),
            disabled=_flag(self.value(payload.get("RuleDisabled", False), f"{where}.RuleDisabled"), where),
            actions=tuple(actions),
            error_action=error_action,
            source="AWS::IoT::TopicRule",
            error_action_base64=base64_body,
            condition=resource.get("Condition"),
        )

    def error_action(self, rule: str, action: Any, where: str) -> tuple[str | None, bool]:
        if action is None:
            return None, False
        kind = next(iter(action)) if isinstance(action, dict) and len(action) == 1 else repr(action)
        if kind != "Sqs":
            raise TemplateError(f"unsupported error action {kind} in {rule} ({where}.ErrorAction)")
        queue = _target((action["Sqs"] or {}).get("QueueUrl"), "QueueUrl")
        if self.kind(queue) != "AWS::SQS::Queue":
            raise TemplateError(f"{where}.ErrorAction.Sqs.QueueUrl: expected !Ref <Queue> of an AWS::SQS::Queue")
        use_base64 = _flag(self.value(action["Sqs"].get("UseBase64", False), where), f"{where}.ErrorAction")
        return queue, use_base64

    def table(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> TableSpec:
        where = f"{logical_id}.Properties"
        ttl = self.value(props.get("TimeToLiveSpecification") or {}, f"{where}.TimeToLiveSpecification")
        enabled = _flag(ttl.get("Enabled", False), f"{where}.TimeToLiveSpecification.Enabled")
        return TableSpec(
            logical_id=logical_id,
            key_schema=self.value(props.get("KeySchema") or [], f"{where}.KeySchema"),
            attribute_definitions=self.value(props.get("AttributeDefinitions") or [], f"{where}.AttributeDefinitions"),
            ttl_attribute=str(ttl["AttributeName"]) if enabled else None,
            global_secondary_indexes=list(props.get("GlobalSecondaryIndexes") or []),
            local_secondary_indexes=list(props.get("LocalSecondaryIndexes") or []),
            condition=resource.get("Condition"),
        )

    def queue(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> QueueSpec:
        where = f"{logical_id}.Properties"
        optional = {key: props.get(key) for key in ("MessageRetentionPeriod", "VisibilityTimeout")}
        retention, visibility = (
            None if raw is None else self.integer(raw, f"{where}.{key}") for key, raw in optional.items()
        )
        return QueueSpec(
            logical_id=logical_id,
            fifo=_flag(self.value(props.get("FifoQueue", False), f"{where}.FifoQueue"), f"{where}.FifoQueue"),
            retention_s=retention,
            visibility_timeout_s=visibility,
            condition=resource.get("Condition"),
        )

    def topic(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> TopicSpec:
        where = f"{logical_id}.Properties"
        display_name = self.value(props.get("DisplayName"), f"{where}.DisplayName")
        return TopicSpec(
            logical_id=logical_id,
            fifo=_flag(self.value(props.get("FifoTopic", False), f"{where}.FifoTopic"), f"{where}.FifoTopic"),
            display_name=None if display_name is None else str(display_name),
            condition=resource.get("Condition"),
        )

    def subscription(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> SubscriptionSpec:
        where = f"{logical_id}.Properties"
        topic = _target(props.get("TopicArn"), "TopicArn")
        if self.kind(topic) != "AWS::SNS::Topic":
            raise TemplateError(f"{where}.TopicArn: expected !Ref <Topic> of an AWS::SNS::Topic of this template")
        raw_delivery = self.value(props.get("RawMessageDelivery", False), f"{where}.RawMessageDelivery")
        return SubscriptionSpec(
            logical_id=logical_id,
            topic=str(topic),
            protocol=_text(self.value(props.get("Protocol"), f"{where}.Protocol"), f"{where}.Protocol"),
            endpoint=props.get("Endpoint"),
            filter_policy=props.get("FilterPolicy"),
            raw_message_delivery=_flag(raw_delivery, f"{where}.RawMessageDelivery"),
            condition=resource.get("Condition"),
        )

    def parameter(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> ParameterSpec:
        where = f"{logical_id}.Properties"
        return ParameterSpec(
            logical_id=logical_id,
            name=props.get("Name", f"CFN-{logical_id}"),
            value=props.get("Value"),
            type=_text(self.value(props.get("Type", "String"), f"{where}.Type"), f"{where}.Type"),
            condition=resource.get("Condition"),
        )
