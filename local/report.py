"""The end of a fleet's run through the local stack: every reading accounted for, failures judged against the truth."""

from __future__ import annotations

from dataclasses import dataclass

from device.mqtt import DeliveryCounts
from local.accounting import lines as accounting_lines
from local.firehose import ArchiveTally
from local.options import shown
from local.watch import Summary, Watch, when
from model.forewarning import WARNING_WINDOW_H

SETTLE_S = 60.0
"""After the last reading, the pipeline works off its backlog; it counts as stuck after this long without
finishing an invocation (retries wait seconds locally)."""


@dataclass
class Report:
    """A fleet's run through the local stack."""

    counts: DeliveryCounts
    ticks: int
    watch: Watch
    summary: Summary
    settled: bool
    parked: dict[str, int]
    elapsed_s: float = 0.0
    """From the first reading to the pipeline settled."""
    endpoint: dict[str, int] | None = None
    """The local endpoint's counters (`invocations`, `rows`), when one ran."""
    ingestion_mode: str = "direct"
    archive: ArchiveTally | None = None
    """What the run left in the archive."""
    rules: dict[str, dict[str, int]] | None = None
    """Every message each IoT rule received, from any client, and its fate (local.accounting)."""

    def readings_received(self) -> int | None:
        """Messages the rules that feed InferenceFunction (TelemetryRule, LegacyTelemetryRule) received."""
        if self.rules is None:
            return None
        return sum(row["received"] for rule, row in self.rules.items() if rule.endswith("TelemetryRule"))

    def latency_ms(self) -> tuple[float, float] | None:
        """Publish -> alert latency, p50 and p99, over the alerts caused by a reading."""
        if not self.watch.latencies_ms:
            return None
        return percentiles(self.watch.latencies_ms)

    def lines(self) -> list[str]:
        lines = summary_lines(self.summary, self.readings_received())
        latency = self.latency_ms()
        if latency is not None:
            count = len(self.watch.latencies_ms)
            lines.append(
                f"  publish -> alert latency: p50 {latency[0]:.0f} ms, p99 {latency[1]:.0f} ms "
                f"({count} alert{'s' if count != 1 else ''} caused by readings)"
            )
        if self.endpoint is not None and self.endpoint.get("rows"):
            calls, rows = self.endpoint["invocations"], self.endpoint["rows"]
            lines.append(
                f"  model endpoint: {calls} calls scored {rows} readings ({self.ingestion_mode} ingestion"
                + (f": {rows - calls} calls saved against one per reading)" if rows > calls else ")")
            )
        if self.rules is not None:
            lines.append("  messages each IoT rule received, from every client (this run's simulator and any other):")
            lines += ["  " + line for line in accounting_lines(self.rules, settled=self.settled)]
        if self.archive is not None:
            lines += archive_lines(self.archive, self.summary.counts.get("readings.sent", 0))
        if not self.settled:
            lines.append(f"  WARNING: the pipeline stalled for {SETTLE_S:.0f} s with work still in flight")
        for queue, depth in self.parked.items():
            if depth:
                lines.append(f"  {queue} holds {depth} messages: the functions' logs say why")
        return lines


def archive_lines(archive: ArchiveTally, sent: int) -> list[str]:
    """Where the archive is, and how many readings it took from this run against how many the devices sent."""
    held = archive.readings + archive.errors
    lines = [
        f"  archive: {shown(archive.location)} took {held} readings of {sent} the devices published "
        f"({archive.readings} in Parquet under telemetry/, {archive.errors} under errors/ that did not convert)"
        + ("" if held == sent else f"  (MISMATCH: {held - sent:+d})")
    ]
    lines_of = archive.lines or {}
    lines.append(
        f"    and {lines_of.get('alarms', 0)} alarm events, {lines_of.get('actions', 0)} operator actions; "
        "`python scripts/archive.py summary` shows what it holds"
    )
    return lines


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99 (nearest rank) of a non-empty list."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def summary_lines(summary: Summary, received: int | None = None) -> list[str]:
    """The end-of-run report, judged against the simulator's ground truth; `received`: readings the telemetry
    rules received from every client (local.accounting), when known."""
    lines = ["summary of the run:"]
    predictable = summary.predictable
    forewarned = [f for f in predictable if f[1] is not None]
    random = [f for f in summary.failures if f[0].mode == "random"]
    lines.append(
        f"  failures: {len(summary.failures)} ({len(predictable)} of a predictable mode, {len(random)} random, "
        "which no strategy can foresee)"
    )
    if predictable:
        lines.append(
            f"  forewarned (an alarm up in the {WARNING_WINDOW_H:g} h before): {len(forewarned)} of {len(predictable)}"
        )
    for failure, lead_h, alarm in summary.failures:
        what = f"{failure.motor_id} failed by {failure.mode} at {when(failure.at_ms)}"
        if lead_h is not None:
            lines.append(f"    {what}: forewarned {lead_h:.1f} h ahead by {alarm}")
        else:
            lines.append(f"    {what}: no warning")
    window = f"{WARNING_WINDOW_H:g} h"
    lines.append(
        f"  false alarms (a predictive or condition alarm up in none of the {window} before a failure): "
        f"{len(summary.false_alarms)}"
    )
    for false_alarm in summary.false_alarms:
        lines.append(f"    {false_alarm.motor_id} {false_alarm.alarm} raised at {when(false_alarm.at_ms)}")
    if summary.open_warnings:
        lines.append(
            f"  still open at the end (up, or cleared less than {window} before the run ended; too early to judge): "
            f"{', '.join(f'{r.motor_id} {r.alarm}' for r in summary.open_warnings)}"
        )
    lines.append(f"  schedule alarms: {summary.schedule_alarms}")
    counts = summary.counts
    sent = counts.get("readings.sent", 0)
    handled = sum(counts.get(f"readings.{k}", 0) for k in ("processed", "rejected", "dead_lettered"))
    # Other clients' readings reach InferenceFunction too: with them, the rules' count is what must add up.
    total = sent if received is None or received == sent else received
    source = (
        f"sent {sent}" if total == sent else f"received {total} (the fleet sent {sent}, other clients {total - sent})"
    )
    lines.append(
        f"  readings: {source} = processed {counts.get('readings.processed', 0)} + rejected "
        f"{counts.get('readings.rejected', 0)} + dead-lettered {counts.get('readings.dead_lettered', 0)}"
        + ("" if handled == total else f"  (MISMATCH: {total - handled} unaccounted for)")
    )
    lines.append(f"  alarm events {counts.get('alarm_events', 0)}, alerts received {counts.get('alerts', 0)}")
    return lines
