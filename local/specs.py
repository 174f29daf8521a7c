"""template.yaml as the local stack starts from it: each resource it emulates, as a spec.

`local.template.load` reads the document into these; the stack creates the resources, runs the
functions and applies the rules they describe. Values that name other resources (environment
variables, parameter names and values) stay raw here, for a `Resolver` (local.cfn) that knows the
local physical names; `Fn::If` between rule actions keeps both branches (`RuleSpec.choices`) until
the stack decides them with its own parameters (`RuleSpec.for_conditions`); a rule's SQL is read with the
parameters' defaults and kept as written too, so a stack with another TopicNamespace runs it on its own
topics (`RuleSpec.for_stack`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from local.cfn import Resolver, TemplateError, as_text
from local.delivery import DeliveryStreamSpec

LAMBDA_DEFAULT_RETRIES = 2
LAMBDA_DEFAULT_MAX_EVENT_AGE_S = 21600
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
        "AWS::Kinesis::Stream",
        "AWS::Lambda::EventSourceMapping",
        "AWS::KinesisFirehose::DeliveryStream",
    }
)


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
            name: as_text(value, f"{self.logical_id}.Environment.Variables.{name}") for name, value in variables.items()
        }


@dataclass(frozen=True)
class KinesisActionSpec:
    """A rule's Kinesis action: PutRecord of the SQL's result into a stream of the template."""

    stream: str
    """Logical id of the AWS::Kinesis::Stream (StreamName: !Ref Stream)."""
    partition_key: str
    """A substitution template (`${topic(2)}`), evaluated against the original message."""


@dataclass(frozen=True)
class FirehoseActionSpec:
    """A rule's Firehose action: PutRecord of the SQL's result (JSON, then the separator) into a delivery stream."""

    stream: str
    """Logical id of the AWS::KinesisFirehose::DeliveryStream (DeliveryStreamName: !Ref Stream)."""
    separator: str = ""
    """What follows each record: "\\n" (JSON lines), "\\t", "\\r\\n", "," or nothing."""


RuleAction = str | KinesisActionSpec | FirehoseActionSpec
"""A function's logical id (a Lambda action), a Kinesis action or a Firehose action."""


@dataclass(frozen=True)
class ActionChoice:
    """One item of a rule's Actions: an action, or `Fn::If` between two (None: `Ref AWS::NoValue`)."""

    condition: str | None
    """None for an unconditional action (then `if_true` is it)."""
    if_true: RuleAction | None
    """A function's logical id (a Lambda action), a Kinesis or a Firehose action."""
    if_false: RuleAction | None = None


@dataclass(frozen=True)
class RuleSpec:
    """An IoT rule: its SQL, the functions its Lambda actions invoke, the queue its error action parks in."""

    name: str
    """Logical id (for a SAM IoTRule event, SAM's: function id + event name)."""
    sql: str
    sql_version: str
    disabled: bool
    actions: tuple[str, ...]
    """Logical ids of the functions the rule invokes (an `Fn::If` decided with the parameters' defaults)."""
    error_action: str | None
    """Logical id of the SQS queue of the rule's error action."""
    source: str
    """Where the rule comes from: "AWS::IoT::TopicRule" or "IoTRule event of <Function>"."""
    error_action_base64: bool = False
    condition: str | None = None
    kinesis: tuple[KinesisActionSpec, ...] = ()
    """The rule's Kinesis actions."""
    choices: tuple[ActionChoice, ...] = ()
    """The Actions as written, `Fn::If` kept; `actions`, `kinesis` and `firehose` are them under the defaults."""
    firehose: tuple[FirehoseActionSpec, ...] = ()
    """The rule's Firehose actions."""
    sql_source: Any = None
    """The Sql as written (an `Fn::Sub` of TopicNamespace); `sql` is it under the parameters' defaults."""

    def for_stack(self, resolver: Resolver) -> RuleSpec:
        """The rule as a stack with the resolver's parameters runs it: its SQL resolved, each `Fn::If` decided."""
        rule = self.for_conditions(resolver.condition_holds)
        if self.sql_source is None:
            return rule
        sql = resolver.resolve(self.sql_source, f"{self.name}.Sql")
        if not isinstance(sql, str):
            raise TemplateError(f"{self.name}.Sql: expected the rule's SQL, got {sql!r}")
        return replace(rule, sql=sql)

    def for_conditions(self, holds: Callable[[str], bool]) -> RuleSpec:
        """The rule with each `Fn::If` action decided by `holds` (the stack's resolver's condition_holds)."""
        if not self.choices:
            return self
        actions, kinesis, firehose = chosen_actions(self.choices, holds)
        return replace(self, actions=actions, kinesis=kinesis, firehose=firehose)


def chosen_actions(
    choices: tuple[ActionChoice, ...], holds: Callable[[str], bool]
) -> tuple[tuple[str, ...], tuple[KinesisActionSpec, ...], tuple[FirehoseActionSpec, ...]]:
    """The Lambda targets, Kinesis and Firehose actions that `choices` come to when `holds` decides each condition."""
    chosen = [c.if_true if c.condition is None or holds(c.condition) else c.if_false for c in choices]
    return (
        tuple(a for a in chosen if isinstance(a, str)),
        tuple(a for a in chosen if isinstance(a, KinesisActionSpec)),
        tuple(a for a in chosen if isinstance(a, FirehoseActionSpec)),
    )


@dataclass(frozen=True)
class StreamSpec:
    """An AWS::Kinesis::Stream, created in moto with its shard count."""

    logical_id: str
    shard_count: int
    condition: str | None = None


@dataclass(frozen=True)
class EventSourceMappingSpec:
    """An AWS::Lambda::EventSourceMapping from a Kinesis stream, as local.kinesis polls it."""

    logical_id: str
    function: str
    """Logical id of the function (FunctionName: !Ref F or !GetAtt F.Arn)."""
    stream: str
    """Logical id of the AWS::Kinesis::Stream (EventSourceArn: !GetAtt Stream.Arn)."""
    starting_position: str
    batch_size: int = 100
    batching_window_s: float = 0.0
    report_batch_item_failures: bool = False
    bisect_on_error: bool = False
    max_retry_attempts: int = -1
    """-1: until the record expires (Lambda's default)."""
    max_record_age_s: int = -1
    """-1: until the record expires (Lambda's default)."""
    parallelization_factor: int = 1
    on_failure: str | None = None
    """Logical id of the on-failure destination queue."""
    enabled: bool = True
    condition: str | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    """A SAM `Schedule` event: EventBridge invokes the function every `period_s` with a scheduled event."""

    name: str
    """SAM's name for the rule: function id + event name."""
    function: str
    expression: str
    period_s: float
    enabled: bool = True
    input: Any = None
    """The event to send instead of EventBridge's own (the event's `Input`, parsed JSON)."""


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
    """Function event sources other than IoTRule and Schedule, by type: "Function.Events.Name"."""
    schedules: tuple[ScheduleSpec, ...] = ()
    streams: tuple[StreamSpec, ...] = ()
    event_source_mappings: tuple[EventSourceMappingSpec, ...] = ()
    delivery_streams: tuple[DeliveryStreamSpec, ...] = ()

    @property
    def conditions(self) -> dict[str, Any]:
        return dict(self.document.get("Conditions") or {})

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

    def layer_paths(self, function: FunctionSpec, resolver: Resolver | None = None) -> list[Path]:
        """The content folders of a function's layers, in order (as Lambda stacks them under /opt).

        A layer chosen by `Fn::If` follows the condition (with the template's defaults unless a
        resolver is given); a branch of `Ref AWS::NoValue` adds no layer.
        """
        resolver = resolver or self.resolver()
        paths = []
        for i, item in enumerate(function.layers):
            layer = item
            while isinstance(layer, dict) and len(layer) == 1 and "Fn::If" in layer:
                condition, if_true, if_false = layer["Fn::If"]
                layer = if_true if resolver.condition_holds(condition) else if_false
            name = layer.get("Ref") if isinstance(layer, dict) and len(layer) == 1 else None
            if name == "AWS::NoValue":
                continue
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
