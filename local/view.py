"""The demo's screen: a live table of the fleet, the alerts as they arrive, the accounting; or plain log lines.

`LiveView` draws with rich (one row per motor: run hours, key readings, failure probability, alarm
states; a pane of the latest alerts; counters of readings sent, processed, rejected and
dead-lettered), with the device's log lines printed above it. `PlainView` writes one line per alert
and a counters line now and then, for CI and for terminals that are not terminals (`--no-ui`).
`make_view` picks one. Both end with the same summary (local.report).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from local.observe import Alert
from local.watch import MotorView, Watch, when
from motor_maintenance.alarms import AlarmEvent

STATE_STYLE = {
    "ACTIVE": "bold red",
    "ACKNOWLEDGED": "yellow",
    "LATCHED": "magenta",
    "SNOOZED": "cyan",
    "DISABLED": "dim",
}
ALERTS_SHOWN = 8


class View(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def _probability(value: float | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    style = "bold red" if value >= 0.5 else "yellow" if value >= 0.2 else "green"
    return Text(f"{value:6.1%}", style=style)


def _alarms(states: dict[str, str]) -> Text:
    text = Text()
    for name, state in sorted(states.items()):
        if state == "NORMAL":
            continue
        if text:
            text.append(", ")
        text.append(f"{name} {state}", style=STATE_STYLE.get(state, ""))
    return text or Text("all normal", style="green")


def _status(view: MotorView) -> Text:
    if view.failed_mode is not None:
        return Text(f"FAILED ({view.failed_mode})", style="bold red")
    return Text("running", style="green") if view.running else Text("stopped", style="dim")


def counters_line(counts: dict[str, int], sent: int) -> str:
    return (
        f"readings sent {sent}, processed {counts.get('readings.processed', 0)}, "
        f"rejected {counts.get('readings.rejected', 0)}, dead-lettered {counts.get('readings.dead_lettered', 0)}; "
        f"alarm events {counts.get('alarm_events', 0)}, alerts {counts.get('alerts', 0)}"
    )


def alert_line(alert: Alert, event: AlarmEvent | None) -> str:
    at = f"{event.at:%m-%d %H:%M} " if event is not None else ""
    return f"{at}{alert.subject}"


class LiveView:
    """A rich Live display refreshed a few times a second from the Watch."""

    def __init__(self, watch: Watch, sent: Callable[[], int], status: Callable[[], str], console: Console) -> None:
        self._watch, self._sent, self._status, self._console = watch, sent, status, console
        self._live = Live(self._render(), console=console, refresh_per_second=4, get_renderable=self._render)

    def _render(self) -> Group:
        motors, alerts, counts, sim_ms = self._watch.snapshot()
        table = Table(title=f"Fleet at {when(sim_ms)} (simulated, UTC)", expand=True)
        for column in ("motor", "status", "run h", "fluid C", "vib mm/s", "winding C", "P(fail 24 h)", "alarms"):
            table.add_column(column, justify="right" if column not in ("motor", "status", "alarms") else "left")
        for view in motors:
            readings = view.readings
            table.add_row(
                view.motor_id,
                _status(view),
                f"{view.run_hours:.0f}" if view.run_hours is not None else "-",
                f"{readings['fluid_temp_c']:.1f}" if "fluid_temp_c" in readings else "-",
                f"{readings['vibration_mm_s']:.2f}" if "vibration_mm_s" in readings else "-",
                f"{readings['winding_temp_c']:.1f}" if "winding_temp_c" in readings else "-",
                _probability(view.failure_probability),
                _alarms(view.alarm_states),
            )
        lines = Text()
        for alert, event in alerts[-ALERTS_SHOWN:]:
            severity = alert.attributes.get("severity", "")
            style = "bold red" if severity == "critical" else "yellow" if severity == "high" else ""
            lines.append(alert_line(alert, event) + "\n", style=style)
        pane = Panel(lines or Text("no alerts yet", style="dim"), title="Alerts (SNS -> the operator's queue)")
        footer = Text(f"{counters_line(counts, self._sent())}\n{self._status()}", style="dim")
        return Group(table, pane, footer)

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()


class PlainView:
    """Log lines: each alert as it arrives, and the counters every `every_s` seconds."""

    def __init__(
        self,
        watch: Watch,
        sent: Callable[[], int],
        out: TextIO,
        every_s: float = 10.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self._watch, self._sent, self._out, self._every_s = watch, sent, out, every_s
        self._say = say or (lambda line: print(line, file=out, flush=True))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plain-view", daemon=True)
        self._alerts_seen = 0

    def on_stack(self, kind: str, item: Any) -> None:
        if kind == "alert":
            event = self._watch.events.get(item.attributes.get("event_id", ""))
            self._say(f"alert: {alert_line(item, event)}")

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            _, _, counts, sim_ms = self._watch.snapshot()
            self._say(f"at {when(sim_ms)} simulated: {counters_line(counts, self._sent())}")

    def start(self) -> None:
        if self._every_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)


def make_view(
    watch: Watch, sent: Callable[[], int], status: Callable[[], str], *, plain: bool, every_s: float
) -> tuple[View, Callable[[str, Any], None] | None, Callable[[], None]]:
    """The live view, or plain lines when `plain` or stderr is no terminal: the view, the stack listener it
    needs (if any), and how to give the device's log lines back their handlers once it is gone."""
    if plain or not sys.stderr.isatty():
        lines = PlainView(watch, sent, sys.stderr, every_s=every_s)
        return lines, lines.on_stack, lambda: None
    console = Console(file=sys.stderr)
    handler = _ConsoleHandler(console)
    device_log = logging.getLogger("device")
    previous = list(device_log.handlers)
    for existing in previous:
        device_log.removeHandler(existing)
    device_log.addHandler(handler)

    def restore() -> None:
        device_log.removeHandler(handler)
        for existing in previous:
            device_log.addHandler(existing)

    return LiveView(watch, sent, status, console), None, restore


class _ConsoleHandler(logging.Handler):
    """Log lines printed above the live view rather than through it."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self._console.print(self.format(record), markup=False, highlight=False)
