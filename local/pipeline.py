"""The template's compute, running: its functions, event source mappings, IoT rules and schedules.

Each function runs in execution environments of its own (local.lambdas); the rules (local.router)
read every message on the broker through the rules engine's connection and invoke functions
asynchronously or put records into streams and delivery streams (local.firehose: the archive, flushed
when the pipeline stops); a poller per shard (local.kinesis) hands the streams'
records to their function in batches; a thread per `Schedule` event invokes its function as EventBridge does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local.firehose import DeliveryStream
from local.firehose_api import FirehoseApi
from local.iot_core import RULES_ENGINE, IotCore
from local.kinesis import EventSourceMapping, MappingConfig
from local.lambdas import FunctionConfig, InvokeRefused, LocalFunction
from local.mqtt_client import Message, ServiceClient
from local.observe import Observer
from local.options import ACCOUNT, REGION, STACK_NAME, StackOptions, batching_window_s
from local.provision import Resources
from local.router import Router
from local.specs import ScheduleSpec, Template

log = logging.getLogger("local.stack")

INHERITED = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "VIRTUAL_ENV"})
"""Variables of the stack's own environment its functions inherit; everything else comes from the template."""

Say = Callable[[str], None]
ROUTER_QUIET_S = 1.0
"""The pipeline is idle only once the rules have had no message for this long."""


class Pipeline:
    """Started once with the provisioned resources (`start`), stopped once (`stop`); `idle` says when work ran out."""

    def __init__(self, template: Template, options: StackOptions, observer: Observer, log_dir: Path) -> None:
        self.template, self.options, self.observer, self.log_dir = template, options, observer, log_dir
        self.functions: dict[str, LocalFunction] = {}
        self.mappings: dict[str, EventSourceMapping] = {}
        self.records_put: Counter[str] = Counter()
        """Records the rules put into each stream (by logical id)."""
        self.router: Router | None = None
        self.delivery_streams: dict[str, DeliveryStream] = {}
        """The template's Firehose delivery streams, writing the archive (by logical id)."""
        self.firehose_api: FirehoseApi | None = None
        """Their API for the functions (PutRecordBatch: ArchiveFunction archives the batches of batched ingestion)."""
        self._rules_client: ServiceClient | None = None
        self._resources: Resources | None = None
        self._stopping = threading.Event()
        self._timers_off = threading.Event()
        """Set when the schedules stop ticking (before the rest: a stack settles before it stops)."""
        self._schedules: list[threading.Thread] = []
        self._lock = threading.Lock()

    # -- start, in the order a message needs them: the archive, functions, mappings, rules, then the schedules

    def start(self, resources: Resources, iot: IotCore, say: Say) -> None:
        self._resources = resources
        self._start_delivery_streams(resources, say)
        self._start_functions(resources, say)
        self._start_mappings(resources, say)
        self._start_rules(resources, iot, say)
        self._start_schedules(say)

    def _start_functions(self, resources: Resources, say: Say) -> None:
        # A clean environment, as Lambda gives: the process basics, then only what the template sets.
        base_env = {key: value for key, value in os.environ.items() if key in INHERITED or key.startswith("LC_")}
        base_env.update(resources.aws.environment())
        # X-Ray has no local daemon: traces are off (docs/local-stack.md); everything else is as deployed.
        base_env["POWERTOOLS_TRACE_DISABLED"] = "true"
        resolver = resources.resolver
        for name, spec in self.template.functions.items():
            if not resolver.condition_holds(spec.condition):
                continue
            config = FunctionConfig(
                name=name,
                code_uri=spec.code_uri,
                handler=spec.handler,
                environment=spec.resolved_environment(resolver),
                layers=tuple(self.template.layer_paths(spec, resolver)),
                timeout_s=spec.timeout_s,
                memory_mb=spec.memory_mb,
                max_retry_attempts=spec.max_retry_attempts,
                max_event_age_s=spec.max_event_age_s,
                on_failure=spec.on_failure,
            )
            self.functions[name] = LocalFunction(
                config,
                base_env=base_env,
                log_dir=self.log_dir,
                park=self._park,
                on_outcome=self.observer.on_outcome,
                concurrency=self.options.concurrency,
                retry_delays_s=self.options.retry_delays_s,
                region=REGION,
                account=ACCOUNT,
            )
        say(f"functions: {', '.join(self.functions)} ({self.options.concurrency} execution environment(s) each)")

    def _start_mappings(self, resources: Resources, say: Say) -> None:
        """A poller per shard of each event source mapping (local.kinesis), before any rule puts a record."""
        for spec in self.template.event_source_mappings:
            if not resources.resolver.condition_holds(spec.condition):
                continue
            if not spec.enabled:
                say(f"event source mapping {spec.logical_id} is disabled in the template: not polled")
                continue
            function = self.functions.get(spec.function)
            if function is None or spec.stream not in resources.streams:
                raise RuntimeError(
                    f"{spec.logical_id}: {spec.function} or {spec.stream} does not exist under the template's "
                    "conditions with these parameters"
                )
            window_s = batching_window_s(spec.batching_window_s, self.options)
            name, arn = resources.streams[spec.stream]
            config = MappingConfig(
                name=spec.logical_id,
                function=spec.function,
                function_arn=function.arn,
                stream_name=name,
                stream_arn=arn,
                starting_position=spec.starting_position,
                batch_size=spec.batch_size,
                batching_window_s=window_s,
                report_batch_item_failures=spec.report_batch_item_failures,
                bisect_on_error=spec.bisect_on_error,
                max_retry_attempts=spec.max_retry_attempts,
                max_record_age_s=spec.max_record_age_s,
                on_failure=spec.on_failure,
                invoke_identity_arn=f"arn:aws:iam::{ACCOUNT}:role/{STACK_NAME}-{spec.function}Role",
                region=REGION,
            )
            mapping = EventSourceMapping(
                config,
                kinesis=lambda: resources.aws.client("kinesis"),
                invoke=function.invoke,
                park=self._park,
                on_batch=self.observer.on_batch,
                retry_delays_s=self.options.retry_delays_s,
            )
            shards = mapping.start()
            self.mappings[spec.logical_id] = mapping
            window = f"{window_s:g} s" + (
                f" (template: {spec.batching_window_s:g} s)" if window_s != spec.batching_window_s else ""
            )
            say(
                f"event source mapping {spec.logical_id}: {spec.stream} ({len(shards)} shard(s), "
                f"{spec.starting_position}) -> {spec.function}, batches of up to {spec.batch_size} within {window}, "
                f"{spec.max_retry_attempts} retries"
                + (", bisect on error" if spec.bisect_on_error else "")
                + (", ReportBatchItemFailures" if spec.report_batch_item_failures else "")
                + (f", then {spec.on_failure}" if spec.on_failure else "")
            )

    def _start_delivery_streams(self, resources: Resources, say: Say) -> None:
        """A local Firehose per delivery stream of the template, writing into the archive folder, and their API
        for the functions (AWS_ENDPOINT_URL_FIREHOSE), before the functions start."""
        archive = self.options.archive
        for spec in self.template.delivery_streams:
            if not resources.resolver.condition_holds(spec.condition):
                continue
            self.delivery_streams[spec.logical_id] = DeliveryStream(spec, archive)
            say(
                f"delivery stream {spec.logical_id}: {'Parquet' if spec.columns else 'as sent'} under "
                f"{archive}/{spec.prefix}, buffered up to {spec.buffer_size_mb} MB or {spec.buffer_interval_s} s"
            )
        by_name = {stream.spec.name: stream.put for stream in self.delivery_streams.values()}
        self.firehose_api = FirehoseApi(by_name.__getitem__)
        self.firehose_api.start()
        resources.aws.firehose_url = self.firehose_api.url

    def _start_rules(self, resources: Resources, iot: IotCore, say: Say) -> None:
        resolver = resources.resolver
        self.router = Router(
            [rule.for_stack(resolver) for rule in self.template.rules if resolver.condition_holds(rule.condition)],
            self.functions,
            park=self._park,
            streams={logical_id: self._putter(resources, logical_id) for logical_id in resources.streams},
            delivery_streams={logical_id: stream.put for logical_id, stream in self.delivery_streams.items()},
            on_routed=self.observer.on_routed,
            accounts=self.observer.accounts,
        )
        for name in self.router.disabled:
            say(f"rule {name} is disabled in the template: not applied")
        self._rules_client = iot.service_client(RULES_ENGINE, self._on_message)
        self._rules_client.start(self.router.topic_filters())
        say(f"IoT rules: {', '.join(f'{r.spec.name} ({r.sql.topic_filter})' for r in self.router.rules)}")

    def _start_schedules(self, say: Say) -> None:
        """A thread per `Schedule` event, invoking its function as EventBridge does (asynchronously)."""
        started = []
        for schedule in self.template.schedules:
            if not schedule.enabled or schedule.function not in self.functions:
                continue
            period_s = self.options.schedule_period_s or schedule.period_s
            thread = threading.Thread(
                target=self._tick, args=(schedule, period_s), name=f"local-schedule-{schedule.name}", daemon=True
            )
            thread.start()
            self._schedules.append(thread)
            started.append(
                f"{schedule.name} ({schedule.expression}"
                + (f", here every {period_s:g} s)" if period_s != schedule.period_s else ")")
            )
        if started:
            say(f"schedules: {', '.join(started)}")

    # -- while running

    def _on_message(self, message: Message) -> None:
        if self.router is None:
            return
        if self._stopping.is_set():
            log.warning("a message on %s arrived while the pipeline stops: not routed", message.topic)
            return
        self.router.handle(message)

    def _park(self, queue_logical_id: str, record: dict[str, Any]) -> None:
        """A rule's error action or a function's on-failure destination: the record into the template's queue."""
        if self._resources is None:
            raise RuntimeError("the pipeline is not running")
        self._resources.aws.shared("sqs").send_message(
            QueueUrl=self._resources.queue_urls[queue_logical_id], MessageBody=json.dumps(record)
        )

    def _putter(self, resources: Resources, logical_id: str) -> Callable[[bytes, str], str | None]:
        """The rules' PutRecord into one stream, counted so that `idle()` knows what the pollers still owe."""
        name = resources.streams[logical_id][0]
        kinesis = resources.aws.client("kinesis")

        def put(data: bytes, partition_key: str) -> str | None:
            response = kinesis.put_record(StreamName=name, Data=data, PartitionKey=partition_key)
            with self._lock:
                self.records_put[logical_id] += 1
            sequence_number = response.get("SequenceNumber")
            return None if sequence_number is None else str(sequence_number)

        return put

    def _tick(self, schedule: ScheduleSpec, period_s: float) -> None:
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK_NAME}-{schedule.name}"
        while not self._timers_off.wait(period_s):
            event = schedule.input
            if event is None:
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": ACCOUNT,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "region": REGION,
                    "resources": [rule_arn],
                    "detail": {},
                }
            # Refused (stopping, or throttled) or gone (stopped): EventBridge would retry; the next tick will.
            try:
                self.functions[schedule.function].invoke_async(event)
            except (InvokeRefused, KeyError) as exc:
                log.warning("schedule %s not delivered: %s", schedule.name, exc)
                continue
            self.observer.on_schedule(schedule.name)

    def invocations(self) -> int:
        """Invocations finished so far, over every function."""
        return sum(function.invocations for function in self.functions.values())

    def progress(self) -> int:
        """Invocations finished and messages routed so far: what grows while the pipeline works."""
        return self.invocations() + (self.router.messages if self.router is not None else 0)

    def idle(self) -> bool:
        """No event queued or running in any function, every record put in a stream behind its pollers, and no
        message routed for ROUTER_QUIET_S (the rules may still be working off messages that invoke nothing)."""
        if any(function.pending() for function in self.functions.values()):
            return False
        if self.router is not None and time.monotonic() - self.router.last_message_s < ROUTER_QUIET_S:
            return False
        with self._lock:
            put = dict(self.records_put)
        return all(
            mapping.finished >= put.get(spec.stream, 0)
            for spec in self.template.event_source_mappings
            if (mapping := self.mappings.get(spec.logical_id)) is not None
        )

    def pending(self) -> str:
        """What is still in flight, for a warning."""
        waiting = {name: f.pending() for name, f in self.functions.items() if f.pending()}
        finished = {name: m.finished for name, m in self.mappings.items()}
        return f"{waiting} (records put {dict(self.records_put)}, finished {finished})"

    def stop_schedules(self) -> None:
        """No more timer ticks: what the schedules started may finish (a stack settling before it stops)."""
        self._timers_off.set()
        for thread in self._schedules:
            thread.join(5)
        self._schedules.clear()

    def stop(self) -> None:
        """No new work in (the pollers told, the rules disconnected), then every part, waiting for its threads."""
        self._stopping.set()
        for mapping in self.mappings.values():
            mapping.signal_stop()
        if self._rules_client is not None:
            with contextlib.suppress(Exception):
                self._rules_client.stop()
            self._rules_client = None
        for function in self.functions.values():
            function.stop()
        for mapping in self.mappings.values():
            mapping.stop()
        if self.firehose_api is not None:
            self.firehose_api.stop()
            self.firehose_api = None
        for name, stream in self.delivery_streams.items():  # nothing puts any more: what is buffered is delivered
            try:
                stream.close()
            except Exception:  # the rest must still stop; the records it held are named in the log
                log.exception("delivery stream %s could not deliver its last %d records", name, stream.pending())
        self.mappings.clear()
        self.functions.clear()
        self.stop_schedules()
