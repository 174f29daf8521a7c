"""pytest-xdist's work units handed out longest first, with each unit's time remembered from earlier runs.

`--dist loadscope` keeps a test module (or class) on one worker, so the local stack or the model its fixtures
start is started once. xdist's own order is by number of tests, most first, which puts a module of a few long
tests (the load bursts, the demo, the historian fit) at the end: one worker busy for minutes while the other has
nothing left. Here the unit expected to take longest goes first (what its tests took in the last run, kept in
pytest's cache; on a fresh clone, the committed tests/scope_seconds.json), and a module whose module-scoped
fixture is parametrized (a local stack per broker or mode) is a unit per parameter, so its runs can go to both
workers.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

CACHE_KEY = "motor-maintenance/scope-seconds"
COMMITTED = Path(__file__).resolve().parent / "scope_seconds.json"
"""Each unit's seconds from a whole run on two cores (`pytest --record-scope-seconds` rewrites it)."""
KEPT_S = 2.0
"""Units shorter than this are left out of the committed file (the fallback guess is as good)."""

SPLIT_BY_PARAMETER = ("tests/integration/test_local_stack.py",)
"""Modules whose module-scoped fixture is parametrized: each parameter's tests are a unit of their own (the fixture
is set up once per parameter either way)."""
SLOW_FOLDERS = ("tests/integration/", "tests/browser/")
UNKNOWN_SLOW_S = 60.0
"""A unit never timed: a local-stack module is guessed at a minute; any other at a second a test."""

_PARAMETER = re.compile(r"\[([^\]]*)\]$")


def scope_of(nodeid: str) -> str:
    """The unit a test belongs to: its module or class, and its parameter in a SPLIT_BY_PARAMETER module."""
    scope = nodeid.rsplit("::", 1)[0]
    if scope in SPLIT_BY_PARAMETER and (parameter := _PARAMETER.search(nodeid)):
        return f"{scope}[{parameter.group(1)}]"
    return scope


def known_seconds(config: pytest.Config) -> dict[str, float]:
    """Each unit's seconds: the committed figures, overridden by this checkout's last runs."""
    seconds: dict[str, float] = {}
    if COMMITTED.exists():
        seconds.update(json.loads(COMMITTED.read_text(encoding="utf-8")))
    cache = getattr(config, "cache", None)  # none under `-p no:cacheprovider` (make test-runtime, test-sagemaker)
    if cache is not None:
        seconds.update(cache.get(CACHE_KEY, {}))
    return seconds


def guess_seconds(scope: str, tests: int) -> float:
    return UNKNOWN_SLOW_S if scope.startswith(SLOW_FOLDERS) else float(tests)


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The scheduler for `--dist loadscope`; None (xdist's own) for any other mode."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    seconds = known_seconds(config)

    class LongestFirst(LoadScopeScheduling):  # type: ignore[misc]
        """LoadScopeScheduling, but the next unit handed out is the longest one left."""

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

        announced = False

        def _assign_work_unit(self, node: Any) -> None:
            if not self.announced:  # the first unit: the whole queue is still there
                self.announced = True
                timed = sum(scope in seconds for scope in self.workqueue)
                reporter = config.pluginmanager.get_plugin("terminalreporter")
                if reporter is not None:
                    reporter.write_line(
                        f"{len(self.workqueue)} work units, the longest first ({timed} timed by earlier runs; "
                        "tests/scheduling.py)"
                    )
            scope = max(self.workqueue, key=lambda s: seconds.get(s, guess_seconds(s, len(self.workqueue[s]))))
            work_unit = self.workqueue.pop(scope)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(nodeid) for nodeid, done in work_unit.items() if not done])

    return LongestFirst(config, log)


class ScopeTimer:
    """Adds up each unit's setup, call and teardown times as the reports come in (in the process that reports)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def add(self, report: pytest.TestReport) -> None:
        self.seconds[scope_of(report.nodeid)] += report.duration

    def save(self, config: pytest.Config, *, record: bool) -> None:
        """Into pytest's cache (merged with what it holds); with `record`, into the committed file as well.

        Not after a run that chose tests by keyword or marker: its units may be partial.
        """
        if not self.seconds or config.getoption("keyword") or config.getoption("markexpr"):
            return
        measured = {scope: round(s, 1) for scope, s in self.seconds.items()}
        cache = getattr(config, "cache", None)  # none under `-p no:cacheprovider`
        if cache is not None:
            cache.set(CACHE_KEY, {**cache.get(CACHE_KEY, {}), **measured})
        if record:
            kept = {scope: s for scope, s in sorted(measured.items()) if s >= KEPT_S}
            COMMITTED.write_text(json.dumps(kept, indent=1) + "\n", encoding="utf-8")
