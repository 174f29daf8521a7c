"""The rules engine on one machine: template.yaml's IoT rules applied to every message on the local broker.

For each message the router evaluates the SQL of every enabled rule whose topic filter matches, and
hands the resulting event to each of the rule's Lambda actions as an asynchronous invocation, as AWS
IoT Core does, and puts it (as JSON) into the stream of each Kinesis action, with the partition key
its substitution template (`${topic(2)}`) gives for the original message, and into the delivery stream
of each Firehose action (local.firehose: the archive), followed by the action's Separator. When a rule cannot deliver
(the SQL fails on the payload, the function refuses the event because its queue is full, the
PutRecord fails), the rule's error action parks IoT Core's error record in its SQS queue: the same
record scripts/redrive.py reads. A rule the router cannot evaluate fails when the
stack starts, naming the construct (local.iot_sql.UnsupportedSql); nothing is skipped silently.

Every message a rule receives is counted and settled in local.accounting, whoever published it; no
exception of a rule escapes `handle`: one the router did not foresee is logged and the message goes to
the rule's error action as IoT Core's rules engine would report an internal failure.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local.accounting import Accounts
from local.iot_sql import CompiledRule, RuleEvaluationError, UnsupportedSql, compile_sql
from local.lambdas import InvokeRefused, LocalFunction
from local.mqtt_client import Message
from local.specs import KinesisActionSpec, RuleSpec

log = logging.getLogger("local.router")

SUPPORTED_SQL_VERSION = "2016-03-23"
UNKNOWN_CLIENT_ID = "n/a"
"""What clientid() gives when the publisher is unknown (IoT Core: a message not published over MQTT)."""


class RuleSetupError(Exception):
    """A rule the local rules engine cannot run as the template defines it."""


@dataclass(frozen=True, slots=True)
class Routed:
    """What a rule did with one message, for counters and the live view."""

    rule: str
    topic: str
    function: str | None
    event: dict[str, Any] | None
    error: str | None = None
    parked: bool = False
    stream: str | None = None
    """The stream (logical id) of a Kinesis action; `function` is then None."""


Park = Callable[[str, dict[str, Any]], None]
PutRecord = Callable[[bytes, str], str | None]
"""Kinesis PutRecord of (data, partition key) into one stream: the record's sequence number; raises on failure."""
Archive = Callable[[bytes], None]
"""Firehose PutRecord into one delivery stream; raises on failure."""
_SUBSTITUTION = re.compile(r"\$\{([^}]*)\}")


class SubstitutionTemplate:
    """An action parameter with `${expression}` parts, evaluated per message as IoT Core does.

    The expressions are IoT SQL (local.iot_sql), evaluated against the original message, not the
    SELECT's result (so an AS alias is not visible), as AWS documents for substitution templates.
    An Undefined expression gives an empty part.
    """

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self._parts: list[str | CompiledRule] = []
        position = 0
        for found in _SUBSTITUTION.finditer(text):
            self._parts.append(text[position : found.start()])
            try:
                # The template's own expression, from the template: the SQL parser is the expression parser.
                self._parts.append(compile_sql(f"SELECT {found.group(1)} AS part FROM '#'"))  # noqa: S608
            except UnsupportedSql as exc:
                raise RuleSetupError(f"{where}: substitution template {found.group(0)!r}: {exc.construct}") from exc
            position = found.end()
        self._parts.append(text[position:])

    def render(self, payload: bytes, *, topic: str, client_id: str, now_ms: int) -> str:
        rendered = []
        for part in self._parts:
            if isinstance(part, str):
                rendered.append(part)
                continue
            value = (part.evaluate(payload, topic=topic, client_id=client_id, now_ms=now_ms) or {}).get("part")
            rendered.append("" if value is None else value if isinstance(value, str) else json.dumps(value))
        return "".join(rendered)


@dataclass(frozen=True, slots=True)
class _Rule:
    spec: RuleSpec
    sql: CompiledRule
    partition_keys: tuple[tuple[KinesisActionSpec, SubstitutionTemplate], ...] = ()


class Router:
    """Rules compiled once; `handle` is called on the MQTT client's thread and never blocks on a function."""

    def __init__(
        self,
        rules: Sequence[RuleSpec],
        functions: Mapping[str, LocalFunction],
        *,
        park: Park,
        streams: Mapping[str, PutRecord] | None = None,
        delivery_streams: Mapping[str, Archive] | None = None,
        on_routed: Callable[[Routed], None] = lambda routed: None,
        clock_ms: Callable[[], int] = lambda: round(time.time() * 1000),
        accounts: Accounts | None = None,
    ) -> None:
        self._functions = functions
        self.accounts = accounts if accounts is not None else Accounts()
        self._streams = dict(streams or {})
        self._delivery_streams = dict(delivery_streams or {})
        self._park = park
        self._on_routed = on_routed
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self.last_message_s = 0.0
        self.messages = 0
        """Messages handled (each counted once, however many rules it matched)."""
        """When the last message came (time.monotonic()): a backlog on the broker's side shows as recent ones."""
        self.counts: Counter[str] = Counter()
        self.rules: list[_Rule] = []
        self.disabled: list[str] = []
        for spec in rules:
            if spec.disabled:
                self.disabled.append(spec.name)
                continue
            if spec.sql_version != SUPPORTED_SQL_VERSION:
                raise RuleSetupError(
                    f"{spec.name}: AwsIotSqlVersion {spec.sql_version!r} is not supported locally "
                    f"(only {SUPPORTED_SQL_VERSION})"
                )
            missing = [target for target in spec.actions if target not in functions]
            if missing:
                raise RuleSetupError(f"{spec.name}: its Lambda action names {missing}, which the stack does not run")
            no_stream = [action.stream for action in spec.kinesis if action.stream not in self._streams]
            if no_stream:
                raise RuleSetupError(
                    f"{spec.name}: its Kinesis action names {no_stream}, which the stack did not create"
                )
            keys = tuple(
                (action, SubstitutionTemplate(action.partition_key, f"{spec.name}.Kinesis.PartitionKey"))
                for action in spec.kinesis
            )
            no_delivery = [a.stream for a in spec.firehose if a.stream not in self._delivery_streams]
            if no_delivery:
                raise RuleSetupError(
                    f"{spec.name}: its Firehose action names {no_delivery}, which the stack did not create"
                )
            self.rules.append(_Rule(spec, compile_sql(spec.sql), keys))

    def topic_filters(self) -> list[str]:
        """Every topic filter to subscribe to, once each."""
        return sorted({rule.sql.topic_filter for rule in self.rules})

    def handle(self, message: Message) -> None:
        self.last_message_s = time.monotonic()
        self.messages += 1
        for rule in self.rules:
            if not rule.sql.matches(message.topic):
                continue
            self.accounts.received(rule.spec.name)
            try:
                self._apply(rule, message)
            except Exception as exc:  # a bug of the local rules engine must cost no message, unlogged
                log.exception("%s: the rules engine failed on a message of %s", rule.spec.name, message.topic)
                error = f"internal error: {type(exc).__name__}: {exc}"
                parked = self._failed(rule, message, None, error, "RulesEngine")
                self.accounts.settle(rule.spec.name, "dead_lettered" if parked else None)

    def _apply(self, rule: _Rule, message: Message) -> None:
        name = rule.spec.name
        now_ms = self._clock_ms()
        client_id = message.publisher or UNKNOWN_CLIENT_ID
        try:
            event = rule.sql.evaluate(message.payload, topic=message.topic, client_id=client_id, now_ms=now_ms)
        except RuleEvaluationError as exc:
            parked = self._failed(rule, message, None, f"SQL evaluation failed: {exc}", "SqlEvaluation")
            self.accounts.settle(name, "dead_lettered" if parked else None)
            return
        if event is None:
            self._count(f"{name}.filtered")
            self.accounts.settle(name, "filtered")
            return
        self._count(f"{name}.matched")
        owner = True
        """The next Lambda or Kinesis action decides the message's fate in the accounting (Firehose only archives)."""
        for target in rule.spec.actions:
            source, owner = (name if owner else None), False
            try:
                self._functions[target].invoke_async(event, source=source)
            except InvokeRefused as exc:
                parked = self._failed(rule, message, target, f"Failed to invoke lambda function: {exc}", "LambdaAction")
                if source is not None:
                    self.accounts.settle(name, "dead_lettered" if parked else None)
                continue
            self._count(f"{name}.invoked")
            self._on_routed(Routed(name, message.topic, target, event))
        for action, template in rule.partition_keys:
            decides, owner = owner, False
            key = template.render(message.payload, topic=message.topic, client_id=client_id, now_ms=now_ms)
            try:
                if not key:  # Kinesis refuses an empty partition key (ValidationException)
                    raise ValueError(f"partition key {template.text!r} is empty for this message")
                sequence_number = self._streams[action.stream](json.dumps(event).encode(), key)
            except Exception as exc:  # whatever the put raised, IoT Core runs the error action
                parked = self._failed(rule, message, action.stream, f"Failed to put record: {exc}", "KinesisAction")
                if decides:
                    self.accounts.settle(name, "dead_lettered" if parked else None)
                continue
            if decides:
                self.accounts.streamed(name, sequence_number)
            self._count(f"{name}.put")
            self._on_routed(Routed(name, message.topic, None, event, stream=action.stream))
        for archive in rule.spec.firehose:
            try:
                self._delivery_streams[archive.stream](json.dumps(event).encode() + archive.separator.encode())
            except Exception as exc:  # whatever the put raised, IoT Core runs the error action
                self._failed(rule, message, archive.stream, f"Failed to put record: {exc}", "FirehoseAction")
                continue
            self._count(f"{name}.archived")
        if owner:  # a rule that only archives: the message is done once its actions took it
            self.accounts.settle(name, "processed")

    def _failed(self, rule: _Rule, message: Message, target: str | None, error: str, action: str) -> bool:
        """IoT Core's error action for a message a rule could not deliver; whether the record was parked."""
        name = rule.spec.name
        self._count(f"{name}.errors")
        parked = False
        if rule.spec.error_action is not None:
            record = {
                "ruleName": name,
                "topic": message.topic,
                "cloudwatchTraceId": str(uuid.uuid4()),
                "clientId": message.publisher or UNKNOWN_CLIENT_ID,
                "base64OriginalPayload": base64.b64encode(message.payload).decode(),
                "failures": [{"failedAction": action, "failedResource": target or name, "errorMessage": error}],
            }
            try:
                self._park(rule.spec.error_action, record)
                parked = True
                self._count(f"{name}.parked")
            except Exception:
                log.exception("%s: could not park a message of %s in %s", name, message.topic, rule.spec.error_action)
        log.warning(
            "%s: message on %s from client %s not delivered (%s)%s",
            name,
            message.topic,
            message.publisher or UNKNOWN_CLIENT_ID,
            error[:500],
            "; parked" if parked else "; LOST: no error action took it",
        )
        self._on_routed(Routed(name, message.topic, target, None, error=error, parked=parked))
        return parked

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1
