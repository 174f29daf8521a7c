"""Cold start: each handler's X-Ray tracer patches botocore, the one library it does I/O with, and nothing else.

Powertools' Tracer() patches every library X-Ray supports by default, which imports `requests` and probes a
dozen database drivers at init (about 20 ms measured by benchmarks/handler_init.py), for libraries the
handlers never use. The AWS calls must stay in the traces. Every handler makes its Logger, Tracer and
Metrics at module level with the shell's `powertools()`, which makes the Tracer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))
SHELL = ROOT / "layers" / "shared" / "motor_lambda" / "shell.py"


def _tracer_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Tracer"
    ]


def test_the_tracer_the_shell_makes_patches_botocore_only() -> None:
    tree = ast.parse(SHELL.read_text())
    powertools = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "powertools")

    [call] = _tracer_calls(powertools)
    patched = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}.get("patch_modules")

    assert patched == ["botocore"]
    assert _tracer_calls(tree) == [call], "the shell makes tracers in one place"


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda path: path.parent.name)
def test_each_handler_makes_its_tracer_with_the_shell_at_module_level(handler: Path) -> None:
    tree = ast.parse(handler.read_text())
    imported = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }

    made = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and "tracer" in ast.unparse(node.targets[0])
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func) == "powertools"
    ]

    assert len(made) == 1, "no module-level `logger, tracer, metrics = powertools()`"
    assert imported["powertools"] == "motor_lambda.shell"
    assert _tracer_calls(tree) == [], "a Tracer of its own"


def test_every_handler_is_checked() -> None:
    assert len(HANDLERS) >= 4
