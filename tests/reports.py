"""Reports printed after pytest's summary (so they land in the CI log), whole under pytest-xdist too.

A report is a pytest plugin registered on first use. With pytest-xdist every worker holds its own: at
the end of its session a worker exports what it gathered into `workeroutput`, and the controller, which
prints the summary, merges each worker's share as the worker goes down (tests/conftest.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import pytest


class SummaryReport(Protocol):
    """What a report does besides `pytest_terminal_summary`: travel from a worker to the controller."""

    def export(self) -> Any:
        """What this process gathered, as JSON-able data."""
        ...

    def merge(self, data: Any) -> None:
        """Add a worker's exported share."""
        ...


class StackReport:
    """Lines the local stack's tests report (accounting, alarms)."""

    name = "local-stack-report"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def export(self) -> list[str]:
        return self.lines

    def merge(self, data: list[str]) -> None:
        self.lines.extend(data)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.write_sep("-", "local stack: readings accounted for, alarms compared")
            for line in self.lines:
                terminalreporter.write_line(line)


REQUIRED_PAYLOADS = 10_000
"""Payloads one pytest run sends, across the parser and the three handlers, at the least."""


class Tally:
    """How many payloads each campaign sent, by category; printed at the end of the pytest run.

    A pytest plugin, registered by the first campaign that runs, so that the count lands in the CI
    log after the test summary.
    """

    name = "bad-input-tally"

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}

    def export(self) -> dict[str, dict[str, int]]:
        return {campaign: dict(counts) for campaign, counts in self.counts.items()}

    def merge(self, data: dict[str, dict[str, int]]) -> None:
        for campaign, counts in data.items():
            self.counts.setdefault(campaign, Counter()).update(counts)

    def add(self, campaign: str, category: str, payloads: int = 1) -> None:
        self.counts.setdefault(campaign, Counter())[category] += payloads

    def total(self, campaign: str | None = None) -> int:
        return sum(sum(c.values()) for name, c in self.counts.items() if campaign in (None, name))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.counts:
            return
        terminalreporter.write_sep("-", "bad-input fuzzing: payloads sent")
        for campaign, counts in self.counts.items():
            detail = ", ".join(f"{category} {n}" for category, n in sorted(counts.items()))
            terminalreporter.write_line(f"{campaign}: {sum(counts.values())} ({detail})")
        total = self.total()
        verdict = "" if total >= REQUIRED_PAYLOADS else f" (fewer than the {REQUIRED_PAYLOADS} a run should send)"
        terminalreporter.write_line(f"total: {total} payloads{verdict}")


R = TypeVar("R")


def registered(config: pytest.Config, name: str, make: type[R]) -> R:
    """The run's report of this name, registered as a plugin on first use."""
    plugin = config.pluginmanager.get_plugin(name)
    if plugin is None:
        plugin = make()
        config.pluginmanager.register(plugin, name)
    assert isinstance(plugin, make)
    return plugin


def export_all(config: pytest.Config, kinds: Mapping[str, type[SummaryReport]]) -> dict[str, Any]:
    """A worker's share of every report it holds."""
    return {name: plugin.export() for name in kinds if (plugin := config.pluginmanager.get_plugin(name)) is not None}


def merge_all(config: pytest.Config, kinds: Mapping[str, type[SummaryReport]], shares: dict[str, Any]) -> None:
    """Add a worker's shares to the controller's reports."""
    for name, make in kinds.items():
        if name in shares:
            registered(config, name, make).merge(shares[name])
