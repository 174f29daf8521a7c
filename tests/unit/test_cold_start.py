"""Cold start: each handler's X-Ray tracer patches botocore, the one library it does I/O with, and nothing else.

Powertools' Tracer() patches every library X-Ray supports by default, which imports `requests` and probes a
dozen database drivers at init (about 20 ms measured by benchmarks/handler_init.py), for libraries the
handlers never use. The AWS calls must stay in the traces.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HANDLERS = sorted((Path(__file__).resolve().parents[2] / "functions").glob("*/app.py"))


def _tracer_call(tree: ast.Module) -> ast.Call:
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Name) and func.id == "Tracer":
                return node.value
    raise AssertionError("no module-level Tracer(...)")


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda path: path.parent.name)
def test_the_tracer_patches_botocore_only(handler: Path) -> None:
    call = _tracer_call(ast.parse(handler.read_text()))

    patched = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}.get("patch_modules")

    assert patched == ["botocore"]


def test_every_handler_is_checked() -> None:
    assert len(HANDLERS) >= 4
