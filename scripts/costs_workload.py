"""What one motor does in a month and what each piece of its work takes: the inputs of scripts/costs.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from scripts.costs_archive import ArchiveUse
from scripts.pricing import HOURS_PER_MONTH

XRAY_RESERVOIR_PER_S = 1.0
XRAY_FIXED_RATE = 0.05
"""X-Ray's default sampling rule: the first request each second (the reservoir) and 5% of the rest."""
LAMBDA_MB_PER_VCPU = 1769
"""At 1,769 MB a function has the equivalent of one vCPU; below it, CPU time stretches in proportion."""


@dataclass(frozen=True)
class Workload:
    """What one motor does and what each piece of work takes; defaults in docs/costs.md, 'Inputs'."""

    readings_per_minute: float = 1.0
    running_fraction: float = 0.75
    """Share of readings taken while the motor runs (the simulated fleet: 0.71 to 0.77); only those are scored."""
    memory_mb: int = 512
    """The functions' MemorySize (template Globals)."""
    cpu_ms_full_core: float = 2.5
    """The inference handler's own CPU per direct reading on one full core (make bench: warm_inference, the
    Lambda's own share; 2.4 ms on the benchmark machine)."""
    batched_cpu_ms_full_core: float = 1.0
    """The same per reading of a batch from TelemetryStream (make bench: warm_inference, batched with one reading
    per motor, as the template's defaults make them: 0.97 ms on 2026-12-07; 0.38 ms with five of each motor)."""
    state_io_ms: float = 5.0
    """Waiting on one DynamoDB call of the state (assumed: DynamoDB's single-digit milliseconds): the conditional
    PutItem alone for a reading whose state the environment kept, a GetItem as well otherwise."""
    copy_hit_fraction: float = -1.0
    """Readings whose motor's state the environment that takes them wrote last (its copy is current). Negative:
    estimated, 1 for the batched designs (a shard's batches go to one environment at a time) and, for the direct
    ones, 1 / the environments the fleet keeps busy (assumed: Lambda spreads invocations evenly over them)."""
    endpoint_wait_ms: float = 30.0
    """The function's wait on one call to a warm serverless endpoint (assumed)."""
    endpoint_memory_mb: int = 2048
    """The endpoint's memory (template parameter EndpointMemorySizeMB)."""
    endpoint_compute_ms: float = 10.0
    """Billed compute of one endpoint call besides its rows (assumed: the model server's request handling)."""
    endpoint_ms_per_row: float = 0.5
    """inference.py's work per row (make bench: warm_inference, the model server's share)."""
    embedded_model_ms_full_core: float = 0.5
    """The model evaluated in the function, per scored reading, on one full core (as endpoint_ms_per_row)."""
    init_ms: float = 1000.0
    """INIT duration of a new execution environment (make bench measures the import at about 0.3 s)."""
    cold_start_fraction: float = 0.001
    """Invocations that meet a new execution environment (assumed; AWS says typically under 1%)."""
    batch_size: int = 500
    batch_window_s: float = 60.0
    """The template's BatchSize and BatchWindowSeconds (their defaults)."""
    motors: int = 1000
    """Fleet size: how fast a batch fills, and how many motors share the stream's shards."""
    stream_shards: int = 0
    """TelemetryStream's shards (StreamShardCount); 0: the fewest that carry the fleet. Each shard's readings are
    batched on their own, so more shards make each batch span a longer time."""
    payload_bytes: int = 0
    """A reading as published, topic included (0: measured from the simulator)."""
    row_bytes: int = 0
    """One CSV feature row sent to the endpoint (0: measured from the feature function)."""
    answer_bytes: int = 200
    """The endpoint's JSON answer for one row, drivers included (assumed)."""
    state_item_bytes: int = 0
    """The motor's DynamoDB item (0: measured by serialising a realistic MotorState)."""
    function_log_bytes: int = 380
    """What the handler writes per invocation: its EMF metrics and Powertools' log lines at the template's INFO
    (make bench: warm_inference's log_bytes_per_reading, 380 bytes, one EMF line; no log line on a normal reading)."""
    platform_log_bytes: int = 0
    """Lambda's own lines per invocation (costs_sizes.platform_log_bytes): none at the template's PlatformLogLevel
    WARN, platform.start and platform.report at INFO."""
    tracing: str = "PassThrough"
    """The template's FunctionTracing: PassThrough records no trace; Active, X-Ray's default rule for each
    function (the first invocation every second, 5% of the rest: `traced_fraction`)."""
    alarm_events_per_month: float = 10.0
    """Alarm transitions per motor and month (assumed; each is published, alerted and e-mailed)."""
    offline_after_s: float = 600.0
    """The offline alarm's silence limit: a running motor's entry in the due-checks index moves about once per half."""
    timer_tick_ms: float = 200.0
    """OfflineCheckFunction's duration per tick when nothing is due: 16 index queries (assumed)."""
    history_interval_s: float = 300.0
    """The console's history records a motor's reading at most once per this many seconds (template
    ConsoleHistoryIntervalSeconds, its default; 0: every reading; negative: no history recorded)."""
    history_entry_bytes: int = 0
    """One history entry's DynamoDB item (0: measured from the measured state's reading)."""
    console_charts_per_month: float = 0.0
    """The console's history charts drawn of one motor a month (0 by default: they depend on who watches)."""
    console_chart_hours: float = 6.0
    """How much history one chart reads (the console's default window)."""
    parquet_bytes_per_reading: float = 0.0
    """A reading's share of an archive Parquet object (0: measured from the simulator's fleet)."""
    archive: ArchiveUse = field(default_factory=ArchiveUse)
    """How the archive is kept and read (scripts/costs_archive.py)."""

    @property
    def readings(self) -> float:
        return self.readings_per_minute * 60 * HOURS_PER_MONTH

    @property
    def cpu_scale(self) -> float:
        return max(1.0, LAMBDA_MB_PER_VCPU / self.memory_mb)

    def traced_fraction(self, fleet_invocations_per_s: float) -> float:
        """The share of a function's invocations X-Ray records at this rate of them (0 unless tracing is Active)."""
        if self.tracing != "Active" or fleet_invocations_per_s <= 0:
            return 0.0
        rest = max(0.0, fleet_invocations_per_s - XRAY_RESERVOIR_PER_S)
        traced = min(fleet_invocations_per_s, XRAY_RESERVOIR_PER_S) + XRAY_FIXED_RATE * rest
        return traced / fleet_invocations_per_s
