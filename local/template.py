"""template.yaml read into specs (local.specs): what the local stack starts from, with nothing copied by hand.

`load` reads the functions (SAM Globals merged in), the IoT rules (`AWS::IoT::TopicRule` resources and
SAM `IoTRule` events), tables, queues, topics, subscriptions, SSM parameters, SAM `Schedule` events,
Kinesis streams and their event source mappings, and Firehose delivery streams (local.delivery). Values
the local stack needs at start-up (a handler, a timeout, a rule's SQL) are resolved at load with the
template's parameter defaults. Whatever cannot be emulated faithfully (a rule action other than Lambda,
Kinesis or Firehose, an on-failure destination that is not a queue, an event source mapping property the
local poller does not implement, a schedule that is not a rate, an intrinsic function local.cfn does not
know) raises `TemplateError`, naming it and where.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from local.cfn import Resolver, TemplateError, as_text, parse
from local.delivery import delivery_stream
from local.specs import (
    LAMBDA_DEFAULT_MAX_EVENT_AGE_S,
    LAMBDA_DEFAULT_RETRIES,
    ActionChoice,
    EventSourceMappingSpec,
    FirehoseActionSpec,
    FunctionSpec,
    KinesisActionSpec,
    ParameterSpec,
    QueueSpec,
    RuleSpec,
    ScheduleSpec,
    StreamSpec,
    SubscriptionSpec,
    TableSpec,
    Template,
    TopicSpec,
    chosen_actions,
)

IOT_DEFAULT_SQL_VERSION = "2015-10-08"
"""What IoT Core uses when a rule names no AwsIotSqlVersion."""
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
"""What the local poller starts a shard at; AT_TIMESTAMP is refused."""
ESM_PROPERTIES = frozenset(
    {
        *("FunctionName", "EventSourceArn", "StartingPosition", "BatchSize", "MaximumBatchingWindowInSeconds"),
        *("FunctionResponseTypes", "BisectBatchOnFunctionError", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds"),
        *("ParallelizationFactor", "DestinationConfig", "Enabled", "Tags"),
    }
)
"""The AWS::Lambda::EventSourceMapping properties local.kinesis emulates (Tags have no local meaning)."""
STREAM_PROPERTIES = frozenset(
    {"Name", "ShardCount", "StreamModeDetails", "RetentionPeriodHours", "StreamEncryption", "Tags"}
)
"""The AWS::Kinesis::Stream properties the local stack reads or may ignore: a Name (the stack names its streams, and
Ref gives that name, as for tables), the retention, encryption at rest and tags."""
KINESIS_ACTION_PROPERTIES = frozenset({"StreamName", "PartitionKey", "RoleArn"})
FIREHOSE_ACTION_PROPERTIES = frozenset({"DeliveryStreamName", "RoleArn", "Separator", "BatchMode"})
FIREHOSE_SEPARATORS = ("", "\n", "\t", "\r\n", ",")
"""What IoT Core allows as a Firehose action's Separator."""

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_RATE_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def rate_period_s(expression: str, where: str) -> float:
    """Seconds between runs of an EventBridge `rate(...)` expression; TemplateError for anything else (cron)."""
    found = _RATE.match(expression.strip())
    if found is None:
        raise TemplateError(
            f"{where}: schedule {expression!r} is not supported by the local stack (only rate(N minutes|hours|days))"
        )
    value, unit = int(found.group(1)), found.group(2).rstrip("s")
    if value < 1 or (value == 1) != (found.group(2) == unit):
        raise TemplateError(f"{where}: {expression!r} is not a valid rate (rate(1 minute), rate(5 minutes), ...)")
    return float(value * _RATE_UNIT_S[unit])


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
        self.schedules: list[ScheduleSpec] = []

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
            return int(as_text(value, where))
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
            schedules=tuple(self.schedules),
            streams=tuple(self.stream(*found) for found in self.of_type("AWS::Kinesis::Stream")),
            event_source_mappings=tuple(
                self.event_source_mapping(*found, functions)
                for found in self.of_type("AWS::Lambda::EventSourceMapping")
            ),
            delivery_streams=tuple(
                delivery_stream(*found, self.document, self.value)
                for found in self.of_type("AWS::KinesisFirehose::DeliveryStream")
            ),
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
        runtime = as_text(self.value(props.get("Runtime"), f"{where}.Runtime"), f"{where}.Runtime")
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
            if kind == "Schedule":
                self.schedule(function, name, event.get("Properties") or {}, where)
                continue
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
                    f"{function}{name}",
                    sql,
                    str(version),
                    False,
                    (function,),
                    None,
                    f"IoTRule event of {function}",
                    sql_source=props.get("Sql"),
                )
            )

    def schedule(self, function: str, name: str, props: dict[str, Any], where: str) -> None:
        expression = self.value(props.get("Schedule"), f"{where}.Properties.Schedule")
        if not isinstance(expression, str):
            raise TemplateError(f"{where}.Properties.Schedule: expected a rate(...) expression, got {expression!r}")
        for unsupported in ("InputPath", "InputTransformer", "DeadLetterConfig", "RetryPolicy", "Target"):
            if unsupported in props:
                raise TemplateError(f"{where}.Properties.{unsupported}: not supported by the local stack")
        enabled = _flag(self.value(props.get("Enabled", True), f"{where}.Properties.Enabled"), where)
        state = self.value(props.get("State", "ENABLED"), f"{where}.Properties.State")
        raw_input = self.value(props.get("Input"), f"{where}.Properties.Input")
        try:
            parsed = json.loads(raw_input) if isinstance(raw_input, str) else None
        except json.JSONDecodeError as exc:
            raise TemplateError(f"{where}.Properties.Input: not JSON ({exc})") from exc
        self.schedules.append(
            ScheduleSpec(
                name=f"{function}{name}",
                function=function,
                expression=expression,
                period_s=rate_period_s(expression, f"{where}.Properties.Schedule"),
                enabled=enabled and str(state).upper() == "ENABLED",
                input=parsed,
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
        choices = []
        for i, item in enumerate(payload.get("Actions") or []):
            here = f"{where}.Actions[{i}]"
            if isinstance(item, dict) and len(item) == 1 and "Fn::If" in item:
                arg = item["Fn::If"]
                if not isinstance(arg, list) or len(arg) != 3 or not isinstance(arg[0], str):
                    raise TemplateError(f"{here}.Fn::If: expected [condition, action, action], got {arg!r}")
                condition, if_true, if_false = arg
                choice = ActionChoice(
                    condition,
                    self.rule_action(logical_id, if_true, f"{here}.Fn::If[1]", functions),
                    self.rule_action(logical_id, if_false, f"{here}.Fn::If[2]", functions),
                )
                if condition not in (self.document.get("Conditions") or {}):
                    raise TemplateError(f"{here}.Fn::If: unknown condition {condition!r}")
                choices.append(choice)
            else:
                choices.append(ActionChoice(None, self.rule_action(logical_id, item, here, functions)))
        actions, kinesis, firehose = chosen_actions(tuple(choices), self.static.condition_holds)
        error_action, base64_body = self.error_action(logical_id, payload.get("ErrorAction"), where)
        return RuleSpec(
            name=logical_id,
            sql=sql,
            sql_version=as_text(self.value(payload.get("AwsIotSqlVersion", IOT_DEFAULT_SQL_VERSION), where), where),
            disabled=_flag(self.value(payload.get("RuleDisabled", False), f"{where}.RuleDisabled"), where),
            actions=actions,
            error_action=error_action,
            source="AWS::IoT::TopicRule",
            error_action_base64=base64_body,
            condition=resource.get("Condition"),
            kinesis=kinesis,
            choices=tuple(choices),
            firehose=firehose,
            sql_source=payload.get("Sql"),
        )

    def rule_action(
        self, rule: str, action: Any, where: str, functions: dict[str, FunctionSpec]
    ) -> str | KinesisActionSpec | FirehoseActionSpec | None:
        """One rule action: a function's logical id (Lambda), a Kinesis or Firehose action, or None (AWS::NoValue)."""
        if action == {"Ref": "AWS::NoValue"}:
            return None
        kind = next(iter(action)) if isinstance(action, dict) and len(action) == 1 else repr(action)
        if kind == "Kinesis":
            return self.kinesis_action(rule, action["Kinesis"] or {}, where)
        if kind == "Firehose":
            return self.firehose_action(rule, action["Firehose"] or {}, where)
        if kind != "Lambda":
            raise TemplateError(f"unsupported rule action {kind} in {rule} ({where})")
        target = _target((action["Lambda"] or {}).get("FunctionArn"), "Arn")
        if target not in functions:
            raise TemplateError(
                f"{where}.Lambda.FunctionArn: {action['Lambda'].get('FunctionArn')!r} names no "
                "AWS::Serverless::Function of this template (!GetAtt F.Arn, !Ref F or !Sub of its ARN)"
            )
        return str(target)

    def _action_stream(
        self, rule: str, action: str, props: dict[str, Any], *, known: frozenset[str], name: str, kind: str, where: str
    ) -> str:
        """The stream a Kinesis or Firehose rule action names: !Ref of a `kind` resource of this template."""
        unknown = sorted(set(props) - known)
        if unknown:
            raise TemplateError(
                f"unsupported rule action {action} in {rule} ({where}.{action}): {', '.join(unknown)} "
                "not emulated by the local stack"
            )
        raw = props.get(name)
        stream = raw.get("Ref") if isinstance(raw, dict) and len(raw) == 1 else None
        if self.kind(stream) != kind:
            raise TemplateError(
                f"unsupported rule action {action} in {rule} ({where}.{action}.{name}): {raw!r} is not "
                f"!Ref of an {kind} of this template, the only streams the local stack has"
            )
        return str(stream)

    def kinesis_action(self, rule: str, props: dict[str, Any], where: str) -> KinesisActionSpec:
        stream = self._action_stream(
            rule,
            "Kinesis",
            props,
            known=KINESIS_ACTION_PROPERTIES,
            name="StreamName",
            kind="AWS::Kinesis::Stream",
            where=where,
        )
        key = props.get("PartitionKey")
        if not isinstance(key, str) or not key:
            # IoT Core would pick a random key: the records would lose the per-motor order the template relies on.
            raise TemplateError(f"{where}.Kinesis.PartitionKey: expected a substitution template, got {key!r}")
        return KinesisActionSpec(stream=stream, partition_key=key)

    def firehose_action(self, rule: str, props: dict[str, Any], where: str) -> FirehoseActionSpec:
        stream = self._action_stream(
            rule,
            "Firehose",
            props,
            known=FIREHOSE_ACTION_PROPERTIES,
            name="DeliveryStreamName",
            kind="AWS::KinesisFirehose::DeliveryStream",
            where=where,
        )
        if _flag(self.value(props.get("BatchMode", False), f"{where}.Firehose.BatchMode"), where):
            raise TemplateError(f"{where}.Firehose.BatchMode: true is not emulated by the local stack")
        separator = self.value(props.get("Separator", ""), f"{where}.Firehose.Separator")
        if separator not in FIREHOSE_SEPARATORS:
            raise TemplateError(f"{where}.Firehose.Separator: {separator!r} is not one of {FIREHOSE_SEPARATORS}")
        return FirehoseActionSpec(stream=stream, separator=str(separator))

    def stream(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> StreamSpec:
        where = f"{logical_id}.Properties"
        unknown = sorted(set(props) - STREAM_PROPERTIES)
        if unknown:
            raise TemplateError(f"{where}: {', '.join(unknown)} not emulated by the local stack")
        mode = self.value(props.get("StreamModeDetails") or {}, f"{where}.StreamModeDetails").get("StreamMode")
        if mode not in (None, "PROVISIONED"):
            raise TemplateError(
                f"{where}.StreamModeDetails.StreamMode: {mode} - the local stack makes PROVISIONED streams"
            )
        shards = self.integer(props.get("ShardCount", 1), f"{where}.ShardCount")
        if shards < 1:
            raise TemplateError(f"{where}.ShardCount: {shards} - a stream has at least one shard")
        return StreamSpec(logical_id, shards, resource.get("Condition"))

    def event_source_mapping(
        self, logical_id: str, resource: dict[str, Any], props: dict[str, Any], functions: dict[str, FunctionSpec]
    ) -> EventSourceMappingSpec:
        where = f"{logical_id}.Properties"
        unknown = sorted(set(props) - ESM_PROPERTIES)
        if unknown:
            raise TemplateError(f"{where}: {', '.join(unknown)} not emulated by the local stack (local.kinesis)")
        function = _target(props.get("FunctionName"), "Arn")
        if function not in functions:
            raise TemplateError(
                f"{where}.FunctionName: {props.get('FunctionName')!r} names no AWS::Serverless::Function of this "
                "template (!Ref F or !GetAtt F.Arn)"
            )
        raw_source = props.get("EventSourceArn")
        stream = _target(raw_source, "Arn")
        if self.kind(stream) != "AWS::Kinesis::Stream" or not isinstance(raw_source, dict) or "Ref" in raw_source:
            raise TemplateError(
                f"{where}.EventSourceArn: {raw_source!r} is not !GetAtt <Stream>.Arn of an AWS::Kinesis::Stream "
                f"({self.kind(stream)}); the local stack polls Kinesis streams only, without enhanced fan-out consumers"
            )
        position = self.value(props.get("StartingPosition"), f"{where}.StartingPosition")
        if position not in STARTING_POSITIONS:
            raise TemplateError(
                f"{where}.StartingPosition: {position!r} - the local stack starts at {' or '.join(STARTING_POSITIONS)}"
            )
        types = self.value(props.get("FunctionResponseTypes") or [], f"{where}.FunctionResponseTypes")
        if not isinstance(types, list) or set(types) - {"ReportBatchItemFailures"}:
            raise TemplateError(f"{where}.FunctionResponseTypes: {types!r} - only ReportBatchItemFailures is known")
        batch_size = self.integer(props.get("BatchSize", 100), f"{where}.BatchSize")
        window_s = self.integer(
            props.get("MaximumBatchingWindowInSeconds", 0), f"{where}.MaximumBatchingWindowInSeconds"
        )
        retries = self.integer(props.get("MaximumRetryAttempts", -1), f"{where}.MaximumRetryAttempts")
        max_age_s = self.integer(props.get("MaximumRecordAgeInSeconds", -1), f"{where}.MaximumRecordAgeInSeconds")
        parallel = self.integer(props.get("ParallelizationFactor", 1), f"{where}.ParallelizationFactor")
        for name, value, low, high in (
            ("BatchSize", batch_size, 1, 10000),
            ("MaximumBatchingWindowInSeconds", window_s, 0, 300),
            ("MaximumRetryAttempts", retries, -1, 10000),
            ("ParallelizationFactor", parallel, 1, 10),
        ):
            if not low <= value <= high:
                raise TemplateError(f"{where}.{name}: {value} is outside {low}..{high}")
        if max_age_s != -1 and not 60 <= max_age_s <= 604800:
            raise TemplateError(f"{where}.MaximumRecordAgeInSeconds: {max_age_s} is neither -1 nor within 60..604800")
        if parallel != 1:
            raise TemplateError(
                f"{where}.ParallelizationFactor: {parallel} - the local stack reads each shard with one batch in "
                "flight (1); concurrent batches per shard with per-key order are not emulated"
            )
        on_failure = self.on_failure(props.get("DestinationConfig") or {}, where)
        return EventSourceMappingSpec(
            logical_id=logical_id,
            function=str(function),
            stream=str(stream),
            starting_position=str(position),
            batch_size=batch_size,
            batching_window_s=float(window_s),
            report_batch_item_failures="ReportBatchItemFailures" in types,
            bisect_on_error=_flag(
                self.value(props.get("BisectBatchOnFunctionError", False), where), f"{where}.BisectBatchOnFunctionError"
            ),
            max_retry_attempts=retries,
            max_record_age_s=max_age_s,
            parallelization_factor=parallel,
            on_failure=on_failure,
            enabled=_flag(self.value(props.get("Enabled", True), where), f"{where}.Enabled"),
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
            protocol=as_text(self.value(props.get("Protocol"), f"{where}.Protocol"), f"{where}.Protocol"),
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
            type=as_text(self.value(props.get("Type", "String"), f"{where}.Type"), f"{where}.Type"),
            condition=resource.get("Condition"),
        )
