"""Reports printed after pytest's summary (so they land in the CI log), whole under pytest-xdist too.

A report is a pytest plugin registered on first use. With pytest-xdist every worker holds its own: at
the end of its session a worker exports what it gathered into `workeroutput`, and the controller, which
prints the summary, merges each worker's share as the worker goes down (tests/conftest.py).
"""

from __future__ import annotations

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
