"""scripts/costs.py: the cost model's arithmetic on cases checkable by hand, the measured sizes, the CLI."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest

from scripts import costs
from scripts.costs import ARCHITECTURES, PRICES, Workload, monthly_cost
from scripts.costs_archive import DAYS_PER_MONTH, ArchiveUse, measured_parquet_bytes
from scripts.costs_sizes import dynamodb_item_bytes, platform_log_bytes
from tests.support import ROOT

READINGS_A_MONTH = 60 * 730  # one reading a minute, AWS's 730-hour month


def only(name: str, usd_per_unit: float = 1.0) -> dict[str, float]:
    """A price table where one item costs `usd_per_unit` and everything else is free."""
    assert name in PRICES
    return {key: (usd_per_unit if key == name else 0.0) for key in PRICES}


def workload(**changes: object) -> Workload:
    """One reading a minute, sizes fixed by hand, no alarm events (they are checked on their own)."""
    base = Workload(
        payload_bytes=300,
        row_bytes=800,
        state_item_bytes=3000,
        alarm_events_per_month=0.0,
        parquet_bytes_per_reading=20.0,
        archive=ArchiveUse(actions_per_month=0.0),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_with_only_messaging_priced_every_architecture_costs_the_floor(architecture: str) -> None:
    cost = monthly_cost(architecture, workload(), only("iot_messages", 1e-6))

    assert cost.total == pytest.approx(READINGS_A_MONTH * 1e-6)
    assert cost.floor == pytest.approx(READINGS_A_MONTH * 1e-6)
    assert cost.ratio == pytest.approx(1.0)


def test_a_reading_over_5_kb_is_metered_as_two_messages_and_two_rule_runs() -> None:
    rates = {**only("iot_messages"), "iot_rules_triggered": 1.0}

    cost = monthly_cost("direct", workload(payload_bytes=5 * 1024 + 1), rates)

    assert cost.items["IoT Core messages"] == READINGS_A_MONTH * 2
    assert cost.items["IoT rules triggered"] == READINGS_A_MONTH * 2


def test_each_reading_writes_the_whole_state_item_in_1_kb_units_and_reads_it_in_4_kb_units() -> None:
    writes = monthly_cost("direct", workload(state_item_bytes=3000), only("dynamodb_write_request_units"))
    no_copies = workload(state_item_bytes=4097, copy_hit_fraction=0.0)
    reads = monthly_cost("direct", no_copies, only("dynamodb_read_request_units"))

    assert writes.items["DynamoDB writes"] == READINGS_A_MONTH * 3  # ceil(3000 / 1024)
    assert reads.items["DynamoDB reads"] == READINGS_A_MONTH * 2  # ceil(4097 / 4096)


@pytest.mark.parametrize(
    ("current", "reads", "writes"),
    [(1.0, 0.0, 1.0), (0.9, 0.0, 1.1), (0.8, 0.0, 1.2), (0.79, 1.0, 1.0), (0.0, 1.0, 1.0)],
)
def test_current_copies_spare_the_read_stale_ones_cost_a_write_and_below_80_percent_the_state_is_read(
    current: float, reads: float, writes: float
) -> None:
    w = workload(state_item_bytes=1000, copy_hit_fraction=current)

    cost = monthly_cost("direct", w, {**only("dynamodb_read_request_units"), "dynamodb_write_request_units": 1.0})

    assert cost.items["DynamoDB reads"] == pytest.approx(READINGS_A_MONTH * reads)
    assert cost.items["DynamoDB writes"] == pytest.approx(READINGS_A_MONTH * writes)


def test_the_estimated_share_of_current_copies_falls_with_the_environments_a_direct_fleet_keeps_busy() -> None:
    rates = {**only("dynamodb_read_request_units"), "dynamodb_write_request_units": 1.0}
    small = monthly_cost("direct", workload(motors=100), rates)
    large = monthly_cost("direct", workload(motors=100_000), rates)
    batched = monthly_cost("batched", workload(motors=100_000), rates)

    assert small.items["DynamoDB reads"] == 0.0  # one environment: its copies are current
    assert large.items["DynamoDB reads"] == pytest.approx(READINGS_A_MONTH)  # many: they read first
    assert batched.items["DynamoDB reads"] == 0.0  # a shard's batches go to one environment at a time


def test_direct_calls_the_endpoint_once_per_running_reading_and_embedded_never() -> None:
    w = workload(running_fraction=0.5, endpoint_compute_ms=10.0, endpoint_ms_per_row=0.5, endpoint_memory_mb=2048)

    direct = monthly_cost("direct", w, only("sagemaker_serverless_gb_s"))
    embedded = monthly_cost("embedded", w, only("sagemaker_serverless_gb_s"))

    assert direct.total == pytest.approx(READINGS_A_MONTH * 0.5 * 0.0105 * 2)  # seconds x GB
    assert embedded.total == 0.0


def test_lambda_duration_is_cpu_and_state_io_per_reading_plus_the_endpoint_wait_when_running() -> None:
    # At 1,769 MB the function has a whole vCPU, so CPU time is not stretched.
    w = workload(memory_mb=1769, cpu_ms_full_core=2.0, state_io_ms=10.0, endpoint_wait_ms=30.0, running_fraction=0.5)

    cost = monthly_cost("direct", w, only("lambda_arm_gb_s"))

    history_puts = READINGS_A_MONTH / 5  # the first reading of each 5 minutes (no alarm events here)
    busy_s = (READINGS_A_MONTH * (2.0 + 10.0) + history_puts * 10.0 + READINGS_A_MONTH * 0.5 * 30.0) / 1000
    init_s = READINGS_A_MONTH * w.cold_start_fraction * w.init_ms / 1000
    assert cost.items["Lambda duration"] == pytest.approx(busy_s * 1769 / 1024)
    assert cost.items["Lambda INIT"] == pytest.approx(init_s * 1769 / 1024)


def test_logs_are_the_handlers_lines_per_invocation_and_lambdas_own_only_at_system_level_info() -> None:
    warn = workload(function_log_bytes=400, platform_log_bytes=platform_log_bytes("WARN"))
    info = replace(warn, platform_log_bytes=platform_log_bytes("INFO"))

    quiet = monthly_cost("direct", warn, only("cloudwatch_logs_gb"))
    chatty = monthly_cost("direct", info, only("cloudwatch_logs_gb"))

    assert quiet.items["CloudWatch Logs"] == pytest.approx(READINGS_A_MONTH * 400 / 2**30)
    # START and REPORT as JSON records, each with its request and trace ids: hundreds of bytes per invocation
    assert 400 < platform_log_bytes("INFO") < 1000
    assert chatty.items["CloudWatch Logs"] == pytest.approx(
        READINGS_A_MONTH * (400 + platform_log_bytes("INFO")) / 2**30
    )
    with pytest.raises(ValueError, match="DEBUG"):
        platform_log_bytes("DEBUG")


def test_a_batched_reading_is_charged_the_batch_handlers_cpu_and_a_direct_one_the_direct_handlers() -> None:
    w = workload(
        memory_mb=1769,
        cpu_ms_full_core=2.0,
        batched_cpu_ms_full_core=0.5,
        embedded_model_ms_full_core=0.0,
        state_io_ms=0.0,
    )

    direct = monthly_cost("embedded", w, only("lambda_arm_gb_s"))
    batched = monthly_cost("batched-embedded", w, only("lambda_arm_gb_s"))

    assert direct.items["Lambda duration"] == pytest.approx(READINGS_A_MONTH * 2.0 / 1000 * 1769 / 1024)
    assert batched.items["Lambda duration"] == pytest.approx(READINGS_A_MONTH * 0.5 / 1000 * 1769 / 1024)


def test_traces_are_recorded_only_with_active_tracing_one_a_second_per_function_and_5_percent_of_the_rest() -> None:
    off = monthly_cost("direct", workload(motors=1000), only("xray_traces"))
    fleet = monthly_cost("direct", workload(motors=1000, tracing="Active"), only("xray_traces"))
    lone = monthly_cost("direct", workload(motors=1, tracing="Active"), only("xray_traces"))

    assert off.items["X-Ray traces"] == 0.0
    # 1,000 motors at 1 reading a minute: 16.7 invocations a second, of which 1 + 5% of 15.7 are traced
    per_s = 1000 / 60
    assert fleet.items["X-Ray traces"] == pytest.approx(READINGS_A_MONTH * (1 + 0.05 * (per_s - 1)) / per_s)
    # one motor never fills the reservoir: every invocation is traced
    assert lone.items["X-Ray traces"] == pytest.approx(READINGS_A_MONTH)


def test_below_one_vcpu_cpu_time_stretches_in_proportion_to_memory() -> None:
    small = monthly_cost("embedded", workload(memory_mb=442, state_io_ms=0.0), only("lambda_arm_gb_s"))
    whole = monthly_cost("embedded", workload(memory_mb=1769, state_io_ms=0.0), only("lambda_arm_gb_s"))

    # A quarter of the memory, four times the CPU time: the same GB-seconds.
    assert small.items["Lambda duration"] == pytest.approx(whole.items["Lambda duration"], rel=1e-3)


def test_batches_divide_invocations_and_share_a_motors_state_only_when_the_batch_spans_its_readings() -> None:
    # 1000 motors at 6 readings a minute: 100 readings/s. A 10,000-reading batch closes after its 60 s
    # window with 6,000 readings, six of each motor.
    spanning = workload(readings_per_minute=6.0, motors=1000, batch_size=10_000, batch_window_s=60.0)
    short = replace(spanning, batch_size=100)  # full after 1 s: one reading of a motor at most
    readings = READINGS_A_MONTH * 6

    requests = monthly_cost("batched", spanning, only("lambda_requests"))
    writes = monthly_cost("batched", spanning, only("dynamodb_write_request_units"))
    short_writes = monthly_cost("batched", short, only("dynamodb_write_request_units"))

    assert requests.items["Lambda requests"] == pytest.approx(2 * readings / 6000)  # inference and archive
    assert writes.items["DynamoDB writes"] == pytest.approx(readings / 6 * 3)
    assert short_writes.items["DynamoDB writes"] == pytest.approx(readings * 3)


def test_batched_pays_a_put_payload_unit_per_reading_of_up_to_25_kb() -> None:
    cost = monthly_cost("batched", workload(), only("kinesis_put_payload_units"))
    large = monthly_cost("batched", workload(payload_bytes=30 * 1024), only("kinesis_put_payload_units"))

    assert cost.total == pytest.approx(READINGS_A_MONTH)
    assert large.total == pytest.approx(READINGS_A_MONTH * 2)
    assert monthly_cost("direct", workload(), only("kinesis_put_payload_units")).total == 0.0


@pytest.mark.parametrize(
    ("motors", "per_minute", "shards"),
    [(1000, 1.0, 1), (60_000, 1.0, 1), (60_001, 1.0, 2), (10_000, 6.0, 1), (10_001, 6.0, 2)],
)
def test_the_fleet_shares_the_shards_it_needs_at_a_thousand_readings_a_second_each(
    motors: int, per_minute: float, shards: int
) -> None:
    w = workload(motors=motors, readings_per_minute=per_minute)

    cost = monthly_cost("batched", w, only("kinesis_shard_hours"))

    assert cost.items["Kinesis shards"] == pytest.approx(shards * 730 / motors)


def test_the_history_records_a_reading_per_interval_and_every_alarm_transition() -> None:
    # 1 reading a minute, 5-minute interval: 8,760 points a month, and 10 alarm transitions.
    w = workload(history_entry_bytes=400, history_interval_s=300.0, alarm_events_per_month=10.0)
    sparse = replace(w, readings_per_minute=0.1)  # a reading every 10 minutes: every one recorded
    every = replace(w, history_interval_s=0.0)
    none = replace(w, history_interval_s=-1.0)
    rate = only("dynamodb_write_request_units")

    assert monthly_cost("direct", w, rate).items["DynamoDB history writes"] == pytest.approx(READINGS_A_MONTH / 5 + 10)
    assert monthly_cost("direct", sparse, rate).items["DynamoDB history writes"] == pytest.approx(
        READINGS_A_MONTH / 10 + 10
    )
    assert monthly_cost("direct", every, rate).items["DynamoDB history writes"] == pytest.approx(READINGS_A_MONTH + 10)
    assert monthly_cost("direct", none, rate).items["DynamoDB history writes"] == 0.0
    big = replace(w, history_entry_bytes=1500)  # two write units an entry
    assert monthly_cost("direct", big, rate).items["DynamoDB history writes"] == pytest.approx(
        2 * (READINGS_A_MONTH / 5 + 10)
    )


def test_a_chart_reads_its_windows_entries_at_half_a_read_unit_per_4_kb() -> None:
    # 6 hours at one entry per 5 minutes: 72 entries of 400 B, 28,800 B: 8 units of 4 KB, eventually consistent.
    w = workload(history_entry_bytes=400, console_charts_per_month=1000.0, console_chart_hours=6.0)

    reads = monthly_cost("direct", w, only("dynamodb_read_request_units"))

    assert reads.items["DynamoDB history reads"] == pytest.approx(1000 * 8 / 2)
    assert reads.items["DynamoDB reads"] == 0.0


def test_an_alarm_event_is_published_alerted_and_emailed() -> None:
    w = workload(alarm_events_per_month=10.0)

    emails = monthly_cost("direct", w, only("sns_email_deliveries"))
    publishes = monthly_cost("direct", w, only("sns_publishes"))

    assert emails.items["alarm events"] == 10.0
    assert publishes.total == 10.0


def test_an_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        monthly_cost("kinesis", workload(), only("iot_messages"))


def test_item_size_counts_names_and_values_as_dynamodb_does() -> None:
    item = {"motor_id": {"S": "m-1"}, "version": {"N": "12"}, "alarm_states": {"M": {"a": {"S": "OK"}}}}

    # 8 + 3, 7 + (1 + 1), 12 + 3 + (1 + 2 + 1)
    assert dynamodb_item_bytes(item) == 11 + 9 + 19


def test_the_measured_state_item_is_one_write_unit_and_a_reading_fits_one_message() -> None:
    sizes = costs.measured_sizes(action_ids=10)
    fewer = costs.measured_sizes(action_ids=0)

    assert 600 < sizes["state_item_bytes"] <= 1024
    assert fewer["state_item_bytes"] < sizes["state_item_bytes"]
    assert 0 < sizes["payload_bytes"] <= 5 * 1024
    assert sizes["row_bytes"] > 0


def test_every_price_names_its_source_and_date_and_the_unverified_ones_say_so() -> None:
    for name, price in PRICES.items():
        assert price.source.startswith("https://"), name
        assert price.taken == costs.TAKEN
        assert price.usd > 0
        assert price.per > 0
        assert price.verified, name
    assert any(price.verified.startswith("NOT VERIFIED") for price in PRICES.values())


def test_the_cli_prints_a_table_per_rate_with_each_architecture_beside_the_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert costs.main(["--readings-per-minute", "1", "6"]) == 0
    text = capsys.readouterr().out

    assert "### 1 reading a minute (43,800 readings a month)" in text
    assert "### 1 reading every 10 s (262,800 readings a month)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "architecture" not in line]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == list(ARCHITECTURES) * 2
    for row in rows:
        total, floor, ratio = (float(cell) for cell in row.split(" | ")[1:4])
        assert ratio == pytest.approx(total / floor, abs=0.01)
    assert "Prices not verified" in text


def test_the_cli_json_carries_the_inputs_the_prices_and_every_line_item(capsys: pytest.CaptureFixture[str]) -> None:
    assert costs.main(["--readings-per-minute", "1", "--batch-size", "500", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)

    assert document["workload"]["batch_size"] == 500
    assert set(document["prices"]) == set(PRICES)
    [entry] = document["results"]
    for arch in entry["architectures"]:
        assert math.isclose(arch["total_usd"], sum(arch["items"].values()))
        assert arch["total_usd"] > entry["floor_usd"] > 0


def test_the_cli_refuses_a_running_fraction_outside_0_to_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert costs.main(["--running-fraction", "1.5"]) == 2
    assert "running-fraction" in capsys.readouterr().err


def test_the_docs_table_is_what_the_script_computes_today() -> None:
    # Given the defaults' table in docs/costs.md
    doc = (ROOT / "docs" / "costs.md").read_text()
    section = doc.split("## Results for the defaults", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(
        r"^\| (1 a minute|1 every 10 s) \| ([a-z-]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|", section, re.M
    )
    assert len(rows) == 2 * len(ARCHITECTURES)
    # When the script computes them with today's code (sizes measured from it)
    sizes = costs.measured_sizes()
    parquet = measured_parquet_bytes(Workload().motors, 1.0, ArchiveUse().buffer_s)
    defaults = replace(Workload(), **sizes, parquet_bytes_per_reading=parquet)  # type: ignore[arg-type]
    computed = {
        (entry["readings_per_minute"], arch["architecture"]): arch
        for entry in costs.results(defaults, costs.unit_rates(PRICES), [1.0, 6.0])
        for arch in entry["architectures"]
    }
    # Then they match (if not: run scripts/costs.py and update docs/costs.md, its prose included)
    for rate, architecture, total, _floor, ratio in rows:
        arch = computed[(1.0 if rate == "1 a minute" else 6.0, architecture)]
        assert f"{arch['total_usd']:.4f}" == total, (rate, architecture)
        assert f"{arch['ratio_to_floor']:.2f}" == ratio, (rate, architecture)
    assert f"**{sizes['state_item_bytes']:,} bytes" in doc


def test_the_offline_watch_costs_two_index_writes_per_three_quarters_of_the_silence_limit_while_running() -> None:
    # Given prices where only DynamoDB writes cost anything, and a motor that always runs
    rates = dict.fromkeys(costs.unit_rates(PRICES), 0.0)
    rates["dynamodb_write_request_units"] = 1.0
    workload = replace(Workload(), running_fraction=1.0, offline_after_s=600.0, payload_bytes=300, state_item_bytes=1)
    # When the direct design is priced
    cost = costs.monthly_cost("direct", workload, rates)
    # Then the index moves every 450 s of a 730-hour month (a reading within 150 s of it moves it), a delete and a
    # put each time
    assert cost.items["DynamoDB offline index"] == pytest.approx(730 * 3600 / 450 * 2)
    # And a longer silence limit moves it less often
    longer = costs.monthly_cost("direct", replace(workload, offline_after_s=1200.0), rates)
    assert longer.items["DynamoDB offline index"] == cost.items["DynamoDB offline index"] / 2


def test_the_offline_timers_ticks_are_shared_by_the_fleet() -> None:
    one = costs.monthly_cost("direct", workload(motors=1), only("lambda_requests")).items["offline timer"]
    thousand = costs.monthly_cost("direct", workload(motors=1000), only("lambda_requests")).items["offline timer"]
    assert one == 730 * 60  # one invocation a minute
    assert thousand == pytest.approx(one / 1000)


# ------------------------------------------------------------------ the archive (scripts/costs_archive.py)

GB = 1024**3
FIVE_KB_IN_GB = 5 * 1024 / GB


def test_firehose_bills_every_archived_record_as_5_kb_at_least() -> None:
    # Given a reading of 300 bytes, and 10 alarm events and 10 actions of 1,500 bytes a month
    w = replace(workload(alarm_events_per_month=10.0), archive=ArchiveUse(actions_per_month=10.0))
    # When only Firehose's ingestion is priced (US$ 1 a GB)
    cost = monthly_cost("direct", w, only("firehose_ingestion_gb"))
    # Then each of them is billed as 5 KB, and a reading of 6 KB as 10 KB
    assert cost.total == pytest.approx((READINGS_A_MONTH + 20) * FIVE_KB_IN_GB)
    large = monthly_cost("direct", workload(payload_bytes=6 * 1024), only("firehose_ingestion_gb"))
    assert large.total == pytest.approx(READINGS_A_MONTH * 2 * FIVE_KB_IN_GB)


def test_only_readings_are_converted_to_parquet_and_each_record_is_one_more_rule_action() -> None:
    w = replace(workload(alarm_events_per_month=10.0), archive=ArchiveUse(actions_per_month=5.0))

    conversion = monthly_cost("direct", w, only("firehose_format_conversion_gb"))
    actions = monthly_cost("direct", w, only("iot_actions_executed"))

    assert conversion.total == pytest.approx(READINGS_A_MONTH * FIVE_KB_IN_GB)
    # The floor's action per reading, the alarm events' AlertFunction action, and the archive's action per record
    assert actions.items["archive: IoT rule actions"] == READINGS_A_MONTH + 15
    assert actions.floor == READINGS_A_MONTH


def test_batched_archives_a_batchs_readings_sixteen_to_a_5_kb_record_and_no_rule_action_per_reading() -> None:
    # Given readings of 300 bytes (301 with the newline: 17 fill 5,117 of 5,120 bytes), 10 alarm events and 5
    # actions a month, and batches of 500 readings (1,000 motors on one shard over the 60 s window)
    w = replace(workload(alarm_events_per_month=10.0, motors=1000), archive=ArchiveUse(actions_per_month=5.0))
    # When the batched design is priced
    ingestion = monthly_cost("batched", w, only("firehose_ingestion_gb"))
    conversion = monthly_cost("batched", w, only("firehose_format_conversion_gb"))
    actions = monthly_cost("batched", w, only("iot_actions_executed"))
    # Then a batch's 500 readings are 30 records of 5 KB (29 of 17 readings and one of 7), billed as such
    per_reading = 30 / 500
    assert conversion.total == pytest.approx(READINGS_A_MONTH * per_reading * FIVE_KB_IN_GB)
    assert ingestion.total == pytest.approx((READINGS_A_MONTH * per_reading + 15) * FIVE_KB_IN_GB)
    # And only the alarm events and actions take a rule's Firehose action
    assert actions.items["archive: IoT rule actions"] == 15


def test_batched_waits_one_archive_call_per_batch() -> None:
    # Given a state call and an archive call that each wait 10 ms, no CPU and an endpoint that answers at once
    w = workload(
        motors=1000, batched_cpu_ms_full_core=0.0, state_io_ms=10.0, endpoint_wait_ms=0.0, history_interval_s=-1.0
    )
    # When the batched design's Lambda duration is priced at US$ 1 a GB-second
    cost = monthly_cost("batched", w, only("lambda_arm_gb_s"))
    # Then it waits for one state write per reading (a motor once per batch) and one PutRecordBatch per batch
    batches = READINGS_A_MONTH / 500
    seconds = (READINGS_A_MONTH + batches) * 10 / 1000
    assert cost.items["Lambda duration"] == pytest.approx(seconds * w.memory_mb / 1024)


def test_batched_pays_two_lambda_requests_per_batch_inference_and_archive() -> None:
    # Given 1,000 motors at one reading a minute: a shard's 500-reading batch fills in 30 s
    w = workload(motors=1000)
    # When only Lambda's requests are priced, at US$ 1 each
    batched = monthly_cost("batched", w, only("lambda_requests"))
    direct = monthly_cost("direct", w, only("lambda_requests"))
    # Then each batch is one invocation of InferenceFunction and one of ArchiveFunction; direct, one per reading
    assert batched.items["Lambda requests"] == pytest.approx(2 * READINGS_A_MONTH / 500)
    assert direct.items["Lambda requests"] == pytest.approx(READINGS_A_MONTH)


def test_the_kept_months_are_in_standard_until_the_lifecycle_moves_them_to_glacier_ir() -> None:
    # Given 12 months kept, of which the first 3 in Standard
    three_months = ArchiveUse(actions_per_month=0.0, months_kept=12.0, glacier_after_days=3 * DAYS_PER_MONTH)
    w = replace(workload(parquet_bytes_per_reading=1000.0), archive=three_months)
    month_gb = READINGS_A_MONTH * 1000.0 / GB
    # When only one storage class is priced
    standard = monthly_cost("direct", w, only("s3_standard_gb_month"))
    glacier = monthly_cost("direct", w, only("s3_glacier_ir_gb_month"))
    never = monthly_cost(
        "direct", replace(w, archive=replace(three_months, glacier_after_days=0.0)), only("s3_standard_gb_month")
    )
    # Then the month priced pays for 3 months of data in Standard and 9 in Glacier IR, or 12 in Standard
    assert standard.items["archive: S3 storage"] == pytest.approx(3 * month_gb)
    assert glacier.items["archive: S3 storage"] == pytest.approx(9 * month_gb)
    assert never.items["archive: S3 storage"] == pytest.approx(12 * month_gb)


def test_a_scan_reads_every_kept_month_and_pays_glacier_retrieval_for_the_old_ones() -> None:
    use = ArchiveUse(
        actions_per_month=0.0, months_kept=12.0, glacier_after_days=3 * DAYS_PER_MONTH, scans_per_month=2.0
    )
    w = replace(workload(parquet_bytes_per_reading=1000.0), archive=use)
    month_gb = READINGS_A_MONTH * 1000.0 / GB

    athena = monthly_cost("direct", w, only("athena_tb_scanned"))
    retrieval = monthly_cost("direct", w, only("s3_glacier_ir_retrieval_gb"))

    assert athena.items["archive: Athena"] == pytest.approx(2 * 12 * month_gb / 1024)
    assert retrieval.items["archive: Athena"] == pytest.approx(2 * 9 * month_gb)


def test_the_archive_objects_are_one_per_stream_and_buffer_shared_by_the_fleet() -> None:
    w = replace(workload(motors=100), archive=ArchiveUse(actions_per_month=0.0, buffer_s=900.0))

    puts = monthly_cost("direct", w, only("s3_put_requests"))

    assert puts.items["archive: S3 requests"] == pytest.approx(3 * 730 * 4 / 100)  # 4 buffers an hour


def test_a_readings_share_of_a_parquet_object_is_far_below_its_json() -> None:
    parquet = measured_parquet_bytes(motors=100, readings_per_minute=1.0, buffer_s=900.0)

    assert 0 < parquet < costs.measured_sizes()["payload_bytes"] / 4


def test_the_cli_refuses_an_archive_buffer_firehose_does_not_accept(capsys: pytest.CaptureFixture[str]) -> None:
    assert costs.main(["--archive-buffer-s", "1000"]) == 2
    assert "buffer" in capsys.readouterr().err
