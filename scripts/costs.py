"""US$ per motor per month of three architectures, beside the floor: IoT Core messaging and rules alone.

    .venv/bin/python scripts/costs.py                          # 1 reading a minute and 1 every 10 s
    .venv/bin/python scripts/costs.py --readings-per-minute 2 --running-fraction 1 --batch-size 500
    .venv/bin/python scripts/costs.py --json                   # every line item, the prices and the inputs

- direct (today's): TelemetryRule -> InferenceFunction per reading; one SageMaker serverless call per
  reading while the motor runs; a conditional PutItem of the motor's state per reading, from the copy the
  execution environment kept (a stale copy: a failed write, then another).
- batched (template IngestionMode batched): TelemetryRule -> Kinesis (TelemetryStream) -> the function in
  batches; one SageMaker call per batch; a motor's readings in one batch share one PutItem; ArchiveFunction,
  on a mapping of its own, archives each batch's readings, several to a Firehose record (one invocation and
  one PutRecordBatch per batch).
- embedded: as direct, with the model evaluated inside the function: no SageMaker.
- batched-embedded: both changes at once.

Every architecture also archives each reading, alarm event and action (Firehose to S3, read by Athena):
scripts/costs_archive.py prices that part.

Every price is in PRICES with its source and the date it was read; the ones that could not be checked
say so (docs/costs.md). Sizes (the reading's payload, the feature row, the state item) are measured
from the project's own code; the durations default to figures measured by `make bench` and, for the
AWS calls this machine cannot reach, to stated assumptions. docs/costs.md explains the model.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: the layer and the repository on the path, as the tests have them
    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "layers" / "shared")]

from device.requirements_check import setup_needed

with setup_needed("scripts/costs.py"):
    from motor_adapters.dynamodb_store import DUE_SHARDS
    from motor_adapters.written_states import MIN_FRESH_SHARE
    from motor_maintenance.detector import check_margin_ms

from scripts.costs_archive import ARCHIVE_PRICES, ArchiveUse, archive_items, measured_parquet_bytes
from scripts.costs_sizes import PLATFORM_LOG_LEVELS, measured_sizes, platform_log_bytes
from scripts.costs_workload import Workload
from scripts.pricing import GB, HOURS_PER_MONTH, TAKEN, Price

IOT_MESSAGE_BYTES = 5 * 1024
"""IoT Core meters messages, rules and actions in 5 KB increments."""
KINESIS_PUT_UNIT_BYTES = 25 * 1024
"""Kinesis meters PUT payload units in 25 KB chunks of a record."""
KINESIS_SHARD_RECORDS_PER_S = 1000
KINESIS_SHARD_BYTES_PER_S = 1024 * 1024
"""A provisioned shard takes 1,000 records or 1 MB a second, whichever comes first."""
LAMBDA_EVENT_BYTES = 6 * 1024 * 1024
"""Lambda's invocation payload limit: the event source mapping ends a batch before it is reached."""
KINESIS_EVENT_RECORD_BYTES = 580
"""One record's envelope in the Lambda event besides its base64 data (events/telemetry-batch.json: 578 bytes)."""
ARCHITECTURES = ("direct", "batched", "embedded", "batched-embedded")


IOT_PRICING = "https://aws.amazon.com/iot-core/pricing/"
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
PRICES: dict[str, Price] = {
    "iot_messages": Price(
        1.00, 1e6, "messages (5 KB each)", IOT_PRICING,
        "third-party transcriptions of the page agree (first 1 billion messages a month); the stored copy of the"
        " page itself did not render its regional table",
    ),
    "iot_rules_triggered": Price(
        0.15, 1e6, "rules triggered (5 KB each)", IOT_PRICING,
        "third-party transcriptions of the page agree; the stored copy did not render its regional table",
    ),
    "iot_actions_executed": Price(
        0.15, 1e6, "actions executed (5 KB each)", IOT_PRICING,
        "third-party transcriptions of the page agree; the stored copy did not render its regional table",
    ),
    "lambda_requests": Price(0.20, 1e6, "requests", LAMBDA_PRICING, "third-party copies of the page (US East)"),
    "lambda_arm_gb_s": Price(
        0.0000133334, 1.0, "GB-seconds, arm64, first 7.5 billion a month", LAMBDA_PRICING,
        "a copy of the page's Arm table (US East); INIT is billed at the same rate for ZIP functions on managed"
        " runtimes since 2025-08-01 (AWS Compute Blog, 'AWS Lambda standardizes billing for INIT Phase')",
    ),
    "sagemaker_serverless_gb_s": Price(
        0.00002, 1.0, "GB-seconds of serverless inference compute", "https://aws.amazon.com/sagemaker/pricing/",
        "NOT VERIFIED: the stored copies of the page did not show the serverless table; the figure is the"
        " published us-east-1 rate as remembered ($0.0000200 a second at 1 GB)",
    ),
    "sagemaker_serverless_data_gb": Price(
        0.016, 1.0, "GB processed (in plus out)", "https://aws.amazon.com/sagemaker/pricing/",
        "NOT VERIFIED: as above ($0.016 per GB in and per GB out, as remembered)",
    ),
    "dynamodb_write_request_units": Price(
        0.625, 1e6, "on-demand write request units (1 KB each)", "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "third-party copies after the November 2024 price cut (US East); AWS News Blog note of 2025-01-31",
    ),
    "dynamodb_read_request_units": Price(
        0.125, 1e6, "on-demand read request units (4 KB strongly consistent)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "third-party copies after the November 2024 price cut (US East)",
    ),
    "kinesis_shard_hours": Price(
        0.015, 1.0, "provisioned shard-hours", "https://aws.amazon.com/kinesis/data-streams/pricing/",
        "NOT VERIFIED: the stored copies of the page name the dimensions (shard hour; PUT payload unit of"
        " 25 KB; reads free) but did not render the rates; the us-east-1 rate as remembered",
    ),
    "kinesis_put_payload_units": Price(
        0.014, 1e6, "PUT payload units (25 KB each)", "https://aws.amazon.com/kinesis/data-streams/pricing/",
        "NOT VERIFIED: as above",
    ),
    "sns_publishes": Price(
        0.50, 1e6, "publishes (64 KB chunks)", "https://aws.amazon.com/sns/pricing/", "third-party copies of the page"
    ),
    "sns_email_deliveries": Price(
        2.00, 1e5, "e-mail notifications", "https://aws.amazon.com/sns/pricing/", "third-party copies of the page"
    ),
    "cloudwatch_logs_gb": Price(
        0.50, 1.0, "GB of standard log ingestion", "https://aws.amazon.com/cloudwatch/pricing/",
        "NOT VERIFIED: not looked up in this session; the long-standing us-east-1 rate",
    ),
    "xray_traces": Price(
        5.00, 1e6, "traces recorded", "https://aws.amazon.com/xray/pricing/",
        "NOT VERIFIED: not looked up in this session; the long-standing rate",
    ),
    **ARCHIVE_PRICES,
}  # fmt: skip


@dataclass
class Cost:
    """One architecture's US$ per motor-month, item by item, and the floor beside it."""

    architecture: str
    items: dict[str, float] = field(default_factory=dict)
    floor: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.items.values())

    @property
    def ratio(self) -> float:
        return self.total / self.floor if self.floor > 0 else math.inf


def floor_cost(workload: Workload, rates: Mapping[str, float]) -> float:
    """IoT Core messaging plus one rule and its action per reading: what any design on IoT Core pays."""
    return sum(_iot_items(workload, rates).values())


def _iot_items(workload: Workload, rates: Mapping[str, float]) -> dict[str, float]:
    units = workload.readings * math.ceil(workload.payload_bytes / IOT_MESSAGE_BYTES)
    return {
        "IoT Core messages": units * rates["iot_messages"],
        "IoT rules triggered": units * rates["iot_rules_triggered"],
        "IoT rule actions": units * rates["iot_actions_executed"],
    }


def monthly_cost(architecture: str, workload: Workload, rates: Mapping[str, float]) -> Cost:
    """US$ per motor-month of one architecture. `rates` are US$ per unit (`unit_rates(PRICES)`)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {', '.join(ARCHITECTURES)}")
    w = workload
    batched, embedded = architecture.startswith("batched"), architecture.endswith("embedded")
    readings, running = w.readings, w.readings * w.running_fraction
    memory_gb = w.memory_mb / 1024
    items = _iot_items(w, rates)

    if batched:
        fleet_per_s = w.motors * w.readings_per_minute / 60
        shards = max(
            w.stream_shards,
            math.ceil(fleet_per_s / KINESIS_SHARD_RECORDS_PER_S),
            math.ceil(fleet_per_s * w.payload_bytes / KINESIS_SHARD_BYTES_PER_S),
        )
        shard_per_s = fleet_per_s / shards  # Lambda batches each shard's readings on their own
        record_bytes = KINESIS_EVENT_RECORD_BYTES + math.ceil(w.payload_bytes / 3) * 4
        batch = max(1.0, min(w.batch_size, LAMBDA_EVENT_BYTES // record_bytes, shard_per_s * w.batch_window_s))
        span_s = batch / shard_per_s
        # A motor's readings in one batch share its state's PutItem.
        per_motor_in_batch = max(1.0, span_s * w.readings_per_minute / 60)
        # ArchiveFunction is invoked once per batch too, on its own mapping of the stream; it logs nothing of its
        # own while the archive takes the batches (no EMF line: it counts only resends and failures).
        invocations = archive_invocations = readings / batch
        # The rule's PutRecord per reading; Lambda's reads of the stream are free. The fleet shares the
        # shards it needs (one per 1,000 readings or 1 MB a second).
        items["Kinesis PUT units"] = (
            readings * math.ceil(w.payload_bytes / KINESIS_PUT_UNIT_BYTES) * rates["kinesis_put_payload_units"]
        )
        items["Kinesis shards"] = shards * HOURS_PER_MONTH * rates["kinesis_shard_hours"] / w.motors
        state_ops = readings / per_motor_in_batch
        scored_batch = 1 - (1 - w.running_fraction) ** batch  # a batch holding at least one running reading
        endpoint_calls = invocations * scored_batch
    else:
        invocations, state_ops, endpoint_calls, archive_invocations = readings, readings, running, 0.0

    cpu_ms = (w.batched_cpu_ms_full_core if batched else w.cpu_ms_full_core) * w.cpu_scale
    state_reads, state_writes = _state_calls(w, state_ops, batched=batched, embedded=embedded)
    history_writes = _history_writes(w, state_ops)
    # Batched, ArchiveFunction waits for each batch's PutRecordBatch into the archive like a DynamoDB call.
    busy_ms = (
        readings * cpu_ms
        + (state_reads + state_writes + history_writes + (invocations if batched else 0.0)) * w.state_io_ms
    )
    if embedded:
        busy_ms += running * w.embedded_model_ms_full_core * w.cpu_scale
    else:
        busy_ms += endpoint_calls * w.endpoint_wait_ms
    init_ms = (invocations + archive_invocations) * w.cold_start_fraction * w.init_ms
    items["Lambda requests"] = (invocations + archive_invocations) * rates["lambda_requests"]
    items["Lambda duration"] = memory_gb * busy_ms / 1000 * rates["lambda_arm_gb_s"]
    items["Lambda INIT"] = memory_gb * init_ms / 1000 * rates["lambda_arm_gb_s"]

    if not embedded:
        compute_s = (endpoint_calls * w.endpoint_compute_ms + running * w.endpoint_ms_per_row) / 1000
        items["SageMaker compute"] = compute_s * w.endpoint_memory_mb / 1024 * rates["sagemaker_serverless_gb_s"]
        data_gb = running * (w.row_bytes + w.answer_bytes) / GB
        items["SageMaker data"] = data_gb * rates["sagemaker_serverless_data_gb"]

    items["DynamoDB reads"] = state_reads * math.ceil(w.state_item_bytes / 4096) * rates["dynamodb_read_request_units"]
    items["DynamoDB writes"] = (
        state_writes * math.ceil(w.state_item_bytes / 1024) * rates["dynamodb_write_request_units"]
    )
    items["DynamoDB history writes"] = (
        history_writes * math.ceil(w.history_entry_bytes / 1024) * rates["dynamodb_write_request_units"]
    )
    items["DynamoDB history reads"] = _history_reads(w, rates)
    items["CloudWatch Logs"] = (
        (invocations * (w.function_log_bytes + w.platform_log_bytes) + archive_invocations * w.platform_log_bytes)
        / GB
        * rates["cloudwatch_logs_gb"]
    )
    items["X-Ray traces"] = (_traces(w, invocations) + _traces(w, archive_invocations)) * rates["xray_traces"]
    items["alarm events"] = w.alarm_events_per_month * _per_alarm_event(w, rates)
    items.update(_offline_watch(w, rates))
    items.update(
        archive_items(
            readings=readings,
            payload_bytes=w.payload_bytes,
            parquet_bytes=w.parquet_bytes_per_reading,
            alarm_events=w.alarm_events_per_month,
            motors=w.motors,
            use=w.archive,
            rates=rates,
            batch=batch if batched else None,  # batched, ArchiveFunction packs each batch's readings
        )
    )
    return Cost(architecture, items, floor_cost(w, rates))


def _state_calls(w: Workload, state_ops: float, *, batched: bool, embedded: bool) -> tuple[float, float]:
    """The state's reads and writes for `state_ops` saves of it, with the environments' copies."""
    hits = _copy_hits(w, batched=batched, embedded=embedded)
    if hits >= MIN_FRESH_SHARE:
        # A current copy: one conditional write. A stale one: that write fails (billed as a write) and returns
        # the stored item, and a second write succeeds.
        return 0.0, state_ops * (2 - hits)
    return state_ops, state_ops  # copies too often stale: the environments read first (written_states)


def _history_writes(w: Workload, state_ops: float) -> float:
    """The console's history PutItems a motor-month (motor_maintenance.history.entry_for).

    The first reading of each interval of reading time (at most one per save of the state, so per batch in
    the batched designs), and one for each alarm transition (never sampled away; counted as an entry of its
    own although one that falls on a sampled reading shares it).
    """
    if w.history_interval_s < 0:
        return 0.0
    points = state_ops
    if w.history_interval_s > 0:
        points = min(state_ops, HOURS_PER_MONTH * 3600 / w.history_interval_s)
    return points + w.alarm_events_per_month


def _history_reads(w: Workload, rates: Mapping[str, float]) -> float:
    """The console's charts: one Query each, eventually consistent (half a read unit per 4 KB read)."""
    if w.history_interval_s < 0 or w.console_charts_per_month <= 0:
        return 0.0
    window_s = w.console_chart_hours * 3600
    readings = window_s * w.readings_per_minute / 60
    entries = min(readings, window_s / w.history_interval_s) if w.history_interval_s > 0 else readings
    units = math.ceil(entries * w.history_entry_bytes / 4096) / 2
    return w.console_charts_per_month * units * rates["dynamodb_read_request_units"]


def _copy_hits(w: Workload, *, batched: bool, embedded: bool) -> float:
    """The share of state writes made from a current copy (Workload.copy_hit_fraction)."""
    if w.copy_hit_fraction >= 0:
        return min(1.0, w.copy_hit_fraction)
    if batched:
        return 1.0
    busy_s = (w.cpu_ms_full_core * w.cpu_scale + w.state_io_ms + (0 if embedded else w.endpoint_wait_ms)) / 1000
    environments = max(1, math.ceil(w.motors * w.readings_per_minute / 60 * busy_s))
    return 1 / environments


def _traces(w: Workload, invocations: float) -> float:
    """X-Ray traces a motor-month: its share of the traces of the fleet's invocations of the function."""
    fleet_per_s = invocations * w.motors / (HOURS_PER_MONTH * 3600)
    return invocations * w.traced_fraction(fleet_per_s)


def _offline_watch(w: Workload, rates: Mapping[str, float]) -> dict[str, float]:
    """The offline alarm (docs/architecture.md, "Offline detection and timers"), the same in every design.

    While the motor runs, its entry in the keys-only index moves at most once per silence limit less the margin
    within which a reading moves it (detector.check_margin_ms: 450 s of the default 600 s), a delete and a put
    of one write unit each; the timer's ticks (16 queries of at least one read unit
    each, one invocation a minute) are shared by the fleet.
    """
    after_ms = round(w.offline_after_s * 1000)
    moves = w.running_fraction * HOURS_PER_MONTH * 3600 * 1000 / (after_ms - check_margin_ms(after_ms))
    ticks = HOURS_PER_MONTH * 60
    tick = (
        rates["lambda_requests"]
        + w.memory_mb / 1024 * w.timer_tick_ms / 1000 * rates["lambda_arm_gb_s"]
        + DUE_SHARDS * rates["dynamodb_read_request_units"]
    )
    return {
        "DynamoDB offline index": moves * 2 * rates["dynamodb_write_request_units"],
        "offline timer": ticks * tick / w.motors,
    }


def _per_alarm_event(w: Workload, rates: Mapping[str, float]) -> float:
    """One alarm transition: the outbox's extra PutItem, the publish, AlarmRule, AlertFunction, SNS, an e-mail."""
    outbox_put = math.ceil(w.state_item_bytes / 1024) * rates["dynamodb_write_request_units"]
    iot = rates["iot_messages"] + rates["iot_rules_triggered"] + rates["iot_actions_executed"]
    alert_function = rates["lambda_requests"] + w.memory_mb / 1024 * 0.1 * rates["lambda_arm_gb_s"]  # ~100 ms
    idempotency = 2 * rates["dynamodb_write_request_units"] + rates["dynamodb_read_request_units"]
    return outbox_put + iot + alert_function + idempotency + rates["sns_publishes"] + rates["sns_email_deliveries"]


def unit_rates(prices: Mapping[str, Price]) -> dict[str, float]:
    return {name: price.rate for name, price in prices.items()}


# --- sizes measured from the project's own code ------------------------------------------------


def results(workload: Workload, rates: Mapping[str, float], rpms: list[float]) -> list[dict[str, Any]]:
    """Each rate's costs of every architecture."""
    out = []
    for rpm in rpms:
        w = replace(workload, readings_per_minute=rpm)
        costs = [monthly_cost(name, w, rates) for name in ARCHITECTURES]
        out.append(
            {
                "readings_per_minute": rpm,
                "readings_per_month": w.readings,
                "floor_usd": costs[0].floor,
                "architectures": [
                    {"architecture": c.architecture, "total_usd": c.total, "ratio_to_floor": c.ratio, "items": c.items}
                    for c in costs
                ],
            }
        )
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = []
    for entry in rows:
        rpm = entry["readings_per_minute"]
        every = f"1 reading every {60 / rpm:g} s" if rpm != 1 else "1 reading a minute"
        lines += [
            f"### {every} ({entry['readings_per_month']:,.0f} readings a month)",
            "",
            "| architecture | US$ per motor-month | floor (IoT messaging + rules) | ratio to floor | largest items |",
            "|---|---|---|---|---|",
        ]
        for arch in entry["architectures"]:
            largest = sorted(arch["items"].items(), key=lambda kv: -kv[1])[:3]
            shown = ", ".join(f"{name} {value:.4f}" for name, value in largest)
            lines.append(
                f"| {arch['architecture']} | {arch['total_usd']:.4f} | {entry['floor_usd']:.4f} "
                f"| {arch['ratio_to_floor']:.2f} | {shown} |"
            )
        lines.append("")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    defaults = Workload()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    load = parser.add_argument_group("the motor")
    load.add_argument("--readings-per-minute", type=float, nargs="+", default=[1.0, 6.0], help="one table per rate")
    load.add_argument("--running-fraction", type=float, default=defaults.running_fraction)
    load.add_argument("--motors", type=int, default=defaults.motors, help="fleet size (how fast a batch fills)")
    load.add_argument("--alarm-events-per-month", type=float, default=defaults.alarm_events_per_month)
    load.add_argument(
        "--offline-after-s", type=float, default=defaults.offline_after_s, help="the offline alarm's silence limit"
    )
    fn = parser.add_argument_group("the function")
    fn.add_argument("--memory-mb", type=int, default=defaults.memory_mb)
    fn.add_argument(
        "--cpu-ms", type=float, default=defaults.cpu_ms_full_core, help="handler CPU per reading on one full core"
    )
    fn.add_argument(
        "--batched-cpu-ms",
        type=float,
        default=defaults.batched_cpu_ms_full_core,
        help="the same per reading of a batch (batched designs)",
    )
    fn.add_argument("--state-io-ms", type=float, default=defaults.state_io_ms, help="one conditional PutItem's wait")
    fn.add_argument(
        "--copy-hit-fraction",
        type=float,
        default=defaults.copy_hit_fraction,
        help="readings whose state the environment's copy holds current (negative: estimated from the fleet)",
    )
    fn.add_argument("--endpoint-wait-ms", type=float, default=defaults.endpoint_wait_ms)
    fn.add_argument("--batch-size", type=int, default=defaults.batch_size)
    fn.add_argument("--batch-window-s", type=float, default=defaults.batch_window_s)
    fn.add_argument(
        "--stream-shards", type=int, default=defaults.stream_shards, help="TelemetryStream's shards (0: fewest needed)"
    )
    fn.add_argument("--cold-start-fraction", type=float, default=defaults.cold_start_fraction)
    fn.add_argument("--init-ms", type=float, default=defaults.init_ms)
    fn.add_argument(
        "--tracing",
        choices=("PassThrough", "Active"),
        default=defaults.tracing,
        help="the template's FunctionTracing: Active records X-Ray traces (1 a second per function, 5%% of the rest)",
    )
    fn.add_argument(
        "--function-log-bytes",
        type=int,
        default=defaults.function_log_bytes,
        help="what the handler logs per invocation (EMF metrics and log lines)",
    )
    fn.add_argument(
        "--platform-log-level",
        choices=PLATFORM_LOG_LEVELS,
        default="WARN",
        help="the template's PlatformLogLevel: INFO adds Lambda's START and REPORT lines to every invocation",
    )
    model = parser.add_argument_group("the model")
    model.add_argument("--endpoint-memory-mb", type=int, default=defaults.endpoint_memory_mb)
    model.add_argument("--endpoint-compute-ms", type=float, default=defaults.endpoint_compute_ms)
    model.add_argument("--endpoint-ms-per-row", type=float, default=defaults.endpoint_ms_per_row)
    model.add_argument("--embedded-model-ms", type=float, default=defaults.embedded_model_ms_full_core)
    console = parser.add_argument_group("the console's history (docs/costs.md)")
    console.add_argument(
        "--history-interval-s",
        type=float,
        default=defaults.history_interval_s,
        help="ConsoleHistoryIntervalSeconds (0: every reading; negative: no history)",
    )
    console.add_argument(
        "--console-charts-per-month",
        type=float,
        default=defaults.console_charts_per_month,
        help="history charts drawn of one motor a month",
    )
    console.add_argument("--console-chart-hours", type=float, default=defaults.console_chart_hours)
    sizes = parser.add_argument_group("sizes (default: measured from the project's code)")
    sizes.add_argument("--state-item-bytes", type=int, default=0)
    sizes.add_argument("--payload-bytes", type=int, default=0)
    sizes.add_argument("--action-ids", type=int, default=10, help="operator actions remembered in the measured state")
    sizes.add_argument("--parquet-bytes-per-reading", type=float, default=0.0, help="a reading's share of the archive")
    kept = ArchiveUse()
    archive = parser.add_argument_group("the archive (docs/archive.md)")
    archive.add_argument("--archive-buffer-s", type=float, default=kept.buffer_s, help="ArchiveBufferSeconds")
    archive.add_argument(
        "--glacier-after-days", type=float, default=kept.glacier_after_days, help="ArchiveGlacierAfterDays (0: never)"
    )
    archive.add_argument("--archive-months", type=float, default=kept.months_kept, help="months of history kept")
    archive.add_argument(
        "--archive-scans-per-month", type=float, default=kept.scans_per_month, help="whole-history reads a month"
    )
    archive.add_argument("--actions-per-month", type=float, default=kept.actions_per_month)
    parser.add_argument("--json", action="store_true", help="print JSON: inputs, prices, every line item")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 <= args.running_fraction <= 1:
        print("error: --running-fraction must be between 0 and 1", file=sys.stderr)
        return 2
    if (
        min(args.readings_per_minute) <= 0
        or args.offline_after_s <= 0
        or args.batch_size < 1
        or args.stream_shards < 0
        or args.memory_mb < 128
        or args.motors < 1
        or not 60 <= args.archive_buffer_s <= 900
        or min(args.glacier_after_days, args.archive_months, args.archive_scans_per_month, args.actions_per_month) < 0
    ):
        print(
            "error: rates, the silence limit, batch size, memory and motors must be positive (memory at least 128 MB),"
            " the archive's buffer 60 to 900 s, its days, months, scans and actions not negative",
            file=sys.stderr,
        )
        return 2
    sizes = measured_sizes(args.action_ids)
    workload = Workload(
        running_fraction=args.running_fraction,
        memory_mb=args.memory_mb,
        cpu_ms_full_core=args.cpu_ms,
        batched_cpu_ms_full_core=args.batched_cpu_ms,
        state_io_ms=args.state_io_ms,
        copy_hit_fraction=args.copy_hit_fraction,
        endpoint_wait_ms=args.endpoint_wait_ms,
        endpoint_memory_mb=args.endpoint_memory_mb,
        endpoint_compute_ms=args.endpoint_compute_ms,
        endpoint_ms_per_row=args.endpoint_ms_per_row,
        embedded_model_ms_full_core=args.embedded_model_ms,
        init_ms=args.init_ms,
        cold_start_fraction=args.cold_start_fraction,
        batch_size=args.batch_size,
        batch_window_s=args.batch_window_s,
        stream_shards=args.stream_shards,
        motors=args.motors,
        payload_bytes=args.payload_bytes or sizes["payload_bytes"],
        row_bytes=sizes["row_bytes"],
        state_item_bytes=args.state_item_bytes or sizes["state_item_bytes"],
        history_interval_s=args.history_interval_s,
        history_entry_bytes=sizes["history_entry_bytes"],
        console_charts_per_month=args.console_charts_per_month,
        console_chart_hours=args.console_chart_hours,
        function_log_bytes=args.function_log_bytes,
        platform_log_bytes=platform_log_bytes(args.platform_log_level),
        tracing=args.tracing,
        alarm_events_per_month=args.alarm_events_per_month,
        offline_after_s=args.offline_after_s,
        parquet_bytes_per_reading=args.parquet_bytes_per_reading
        or measured_parquet_bytes(args.motors, 1.0, args.archive_buffer_s),
        archive=ArchiveUse(
            actions_per_month=args.actions_per_month,
            buffer_s=args.archive_buffer_s,
            glacier_after_days=args.glacier_after_days,
            months_kept=args.archive_months,
            scans_per_month=args.archive_scans_per_month,
        ),
    )
    rows = results(workload, unit_rates(PRICES), sorted(set(args.readings_per_minute)))
    if args.json:
        document = {
            "workload": asdict(workload),
            "prices": {name: {**asdict(price), "rate": price.rate} for name, price in PRICES.items()},
            "results": rows,
        }
        print(json.dumps(document, indent=2))
        return 0
    print(
        f"Sizes: reading {workload.payload_bytes} B with its topic, feature row {workload.row_bytes} B, "
        f"state item {workload.state_item_bytes} B ({math.ceil(workload.state_item_bytes / 1024)} WRU per write, "
        f"{math.ceil(workload.state_item_bytes / 4096)} RRU per strongly consistent read), "
        f"{workload.parquet_bytes_per_reading:.1f} B of Parquet per archived reading, history entry "
        f"{workload.history_entry_bytes} B (a reading recorded every {workload.history_interval_s:g} s).\n"
        f"Running {workload.running_fraction:.0%} of the time; function {workload.memory_mb} MB; batches of up to "
        f"{workload.batch_size} within {workload.batch_window_s:g} s from {workload.motors} motors. "
        "US$, us-east-1, prices of " + TAKEN + ".\n"
    )
    print(markdown(rows), end="")
    unverified = [name for name, price in PRICES.items() if price.verified.startswith("NOT VERIFIED")]
    print(f"Prices not verified (docs/costs.md): {', '.join(unverified)}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
