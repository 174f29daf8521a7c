"""Architecture rules that keep the code honest: a pure domain, layers that import downwards only, thin handlers.

The layer's packages, lowest first: the domain (`motor_maintenance`) and the embedded model runtime
(`motor_model`) import nothing of ours above them; the AWS adapters (`motor_adapters`) implement the
domain's ports; the handlers' shell (`motor_lambda`) wires adapters to use cases; the handlers
(`functions/*/app.py`) use the shell.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from motor_maintenance.telemetry import Telemetry, TelemetryEvent
from tests.support import ROOT

LAYER = ROOT / "layers" / "shared"
DOMAIN = LAYER / "motor_maintenance"
PACKAGES = ("motor_maintenance", "motor_model", "motor_adapters", "motor_lambda")
AWS_LIBRARIES = {"boto3", "botocore", "aws_lambda_powertools"}
MAY_NOT_IMPORT = {
    "motor_maintenance": AWS_LIBRARIES | {"motor_model", "motor_adapters", "motor_lambda"},
    "motor_model": AWS_LIBRARIES | {"motor_adapters", "motor_lambda"},
    "motor_adapters": {"motor_lambda"},
    "motor_lambda": set(),
}
HANDLER_LINES = 60
"""A handler parses, calls one use case and maps its result; more than this and logic is growing in it."""


def imported_names(path: Path) -> set[str]:
    """Every module the file imports, anywhere in it (a function's import counts too), by its full name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_modules(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_names(path)}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(LAYER).with_suffix("").parts).removesuffix(".__init__")


def test_the_domain_package_never_reads_the_environment() -> None:
    for path in DOMAIN.glob("*.py"):
        assert "os.environ" not in path.read_text(), path.name


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_of_the_layer_never_imports_one_above_it(package: str) -> None:
    for path in sorted((LAYER / package).glob("*.py")):
        assert not imported_modules(path) & MAY_NOT_IMPORT[package], path.relative_to(ROOT)


def test_only_the_shell_s_settings_read_the_environment() -> None:
    readers = {
        path.relative_to(ROOT).as_posix()
        for path in [*LAYER.rglob("*.py"), *(ROOT / "functions").glob("*/app.py")]
        if "os.environ" in path.read_text() or "getenv" in path.read_text()
    }
    assert readers == {"layers/shared/motor_lambda/settings.py"}


def test_the_layer_has_no_import_circle() -> None:
    modules = {module_name(path): path for package in PACKAGES for path in (LAYER / package).glob("*.py")}
    graph = {
        name: {other for other in imported_names(path) if other in modules} - {name} for name, path in modules.items()
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        if name in done:
            return
        visiting.append(name)
        for other in sorted(graph[name]):
            visit(other)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert "motor_lambda.wiring" in graph["motor_lambda.ingestion"]  # the graph sees `from a import b`


def test_handlers_are_thin() -> None:
    handlers = sorted((ROOT / "functions").glob("*/app.py"))
    assert len(handlers) >= 4
    for path in handlers:
        lines = len(path.read_text().splitlines())
        assert lines <= HANDLER_LINES, f"{path} has {lines} lines: move its logic to the shell or the domain"
        assert not imported_modules(path) & {"boto3", "botocore"}, f"{path} calls AWS directly; use motor_adapters"
        assert "motor_adapters.clients" not in imported_names(path), f"{path} makes clients; the wiring does"


def _select_aliases(sql: str) -> set[str]:
    select = sql.split(" FROM ", maxsplit=1)[0]
    return set(re.findall(r"\bAS\s+([A-Za-z_][A-Za-z0-9_]*)", select))


class _CfnLoader(yaml.SafeLoader):
    pass


# A tag's scalar is kept (a rule's `!Sub` SQL names the topic namespace); any other tagged node is None.
_CfnLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
)


def test_every_field_the_legacy_rule_produces_is_a_telemetry_field() -> None:
    """The legacy SQL is the mapping; a renamed telemetry field must break this test, not the devices."""
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    sql = template["Resources"]["LegacyTelemetryRule"]["Properties"]["TopicRulePayload"]["Sql"]

    aliases = _select_aliases(sql)

    assert aliases <= set(TelemetryEvent.model_fields), aliases - set(TelemetryEvent.model_fields)
    required = {name for name, field in Telemetry.model_fields.items() if field.is_required()}
    assert required <= aliases, f"legacy rule never sets required fields {required - aliases}"


def test_the_telemetry_rule_adds_only_envelope_fields_the_schema_knows() -> None:
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    for rule in ("TelemetryRule", "ActionRule"):
        sql = template["Resources"][rule]["Properties"]["TopicRulePayload"]["Sql"]
        assert _select_aliases(sql) <= {"topic_motor_id", "received_at"}, rule


def test_every_sample_event_is_exercised_by_a_test() -> None:
    """events/ serves `sam local invoke -e` and the tests; an event no test loads may have rotted."""
    sources = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    for event in (ROOT / "events").glob("*.json"):
        assert f'"{event.stem}"' in sources, f"no test loads events/{event.name}"
