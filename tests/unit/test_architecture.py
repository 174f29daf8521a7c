"""Architecture rules that keep the code honest: a pure domain, one schema, thin handlers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from motor_maintenance.telemetry import Telemetry, TelemetryEvent
from tests.support import ROOT

DOMAIN = ROOT / "layers" / "shared" / "motor_maintenance"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_domain_package_never_imports_aws_sdks_or_reads_the_environment() -> None:
    for path in DOMAIN.glob("*.py"):
        imports = imported_modules(path)
        assert not imports & {"boto3", "botocore", "aws_lambda_powertools", "motor_adapters"}, path.name
        assert "os.environ" not in path.read_text(), path.name


def test_handlers_are_thin() -> None:
    for path in (ROOT / "functions").glob("*/app.py"):
        assert len(path.read_text().splitlines()) < 150, f"{path} is growing logic; move it to the domain"
        assert "boto3" not in imported_modules(path), f"{path} calls AWS directly; use motor_adapters"


def _select_aliases(sql: str) -> set[str]:
    select = sql.split(" FROM ", maxsplit=1)[0]
    return set(re.findall(r"\bAS\s+([A-Za-z_][A-Za-z0-9_]*)", select))


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


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
