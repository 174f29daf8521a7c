"""The test run's own scheduling (tests/scheduling.py): work units by module, class or local-stack parameter,
handed to pytest-xdist's workers longest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from tests import scheduling

STACK = "tests/integration/test_local_stack.py"


def test_a_unit_is_a_module_or_a_class_and_a_local_stack_run_is_one_per_parameter() -> None:
    assert scheduling.scope_of("tests/unit/test_x.py::test_a[1-2]") == "tests/unit/test_x.py"
    assert scheduling.scope_of("tests/unit/test_x.py::TestY::test_b") == "tests/unit/test_x.py::TestY"
    assert scheduling.scope_of(f"{STACK}::test_c[mosquitto]") == f"{STACK}[mosquitto]"
    assert scheduling.scope_of(f"{STACK}::test_d") == STACK


@dataclass
class FakeConfig:
    """What the scheduler reads of pytest's config: --dist, --tx, and a cache holding earlier runs' times."""

    dist: str = "loadscope"
    workers: int = 2
    cache: Any = None
    option: Any = field(default_factory=lambda: SimpleNamespace(loadscopereorder=True))  # xdist's default
    pluginmanager: Any = field(default_factory=lambda: SimpleNamespace(get_plugin=lambda name: None))

    def getvalue(self, name: str) -> Any:
        return {"dist": self.dist, "tx": [f"{self.workers}*popen"]}[name]


@dataclass
class FakeCache:
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


@dataclass(eq=False)
class FakeNode:
    """A worker: what it was asked to run, by index into its collection."""

    name: str
    sent: list[list[int]] = field(default_factory=list)
    shutting_down: bool = False

    @property
    def gateway(self) -> Any:
        return type("Gateway", (), {"id": self.name})()

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.append(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_the_longest_unit_goes_first_and_a_short_one_fills_in() -> None:
    # Given earlier runs' times: the load burst 200 s, a stack run 60 s, a quick module 1 s
    collection = [
        "tests/unit/test_quick.py::test_1",
        "tests/unit/test_quick.py::test_2",
        "tests/unit/test_quick.py::test_3",
        f"{STACK}::test_a[builtin]",
        f"{STACK}::test_b[builtin]",
        "tests/integration/test_local_load.py::TestDirectBurst::test_a",
    ]
    cache = FakeCache(
        {
            scheduling.CACHE_KEY: {
                "tests/unit/test_quick.py": 1.0,
                f"{STACK}[builtin]": 60.0,
                "tests/integration/test_local_load.py::TestDirectBurst": 200.0,
            }
        }
    )
    scheduler = scheduling.make_scheduler(FakeConfig(cache=cache), log=None)  # type: ignore[arg-type]
    first, second = FakeNode("gw0"), FakeNode("gw1")
    for node in (first, second):
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)

    # When the run starts
    scheduler.schedule()

    # Then the burst goes to one worker, the stack run to the other, and the quick module, whole, after them
    assert first.sent[0] == [5]
    assert second.sent[0] == [3, 4]
    assert [*first.sent[1:], *second.sent[1:]] == [[0, 1, 2]]


def test_a_unit_never_timed_is_guessed_slow_in_the_local_stack_folders_and_quick_elsewhere() -> None:
    assert scheduling.guess_seconds("tests/integration/test_new.py", tests=2) == scheduling.UNKNOWN_SLOW_S
    assert scheduling.guess_seconds("tests/browser/test_new.py", tests=2) == scheduling.UNKNOWN_SLOW_S
    assert scheduling.guess_seconds("tests/unit/test_new.py", tests=3) == 3.0


def test_other_distribution_modes_keep_xdist_s_own_scheduler() -> None:
    assert scheduling.make_scheduler(FakeConfig(dist="load"), log=None) is None  # type: ignore[arg-type]


def test_the_times_recorded_are_merged_into_the_cache_unit_by_unit(pytestconfig: pytest.Config) -> None:
    timer = scheduling.ScopeTimer()
    for nodeid, seconds in (("tests/unit/test_a.py::test_1", 1.5), ("tests/unit/test_a.py::test_2", 2.0)):
        timer.add(pytest.TestReport(nodeid, ("", 0, ""), {}, "passed", None, "call", duration=seconds))
    cache = FakeCache({scheduling.CACHE_KEY: {"tests/unit/test_b.py": 9.0}})

    class Config:
        def __init__(self) -> None:
            self.cache = cache

        def getoption(self, name: str) -> Any:
            return ""

    timer.save(Config(), record=False)  # type: ignore[arg-type]

    assert cache.values[scheduling.CACHE_KEY] == {"tests/unit/test_b.py": 9.0, "tests/unit/test_a.py": 3.5}
