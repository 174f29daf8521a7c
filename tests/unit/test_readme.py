"""The README stays short and in a newcomer's order, and every command in it is run by CI or by a test.

A `make` target is run by CI (`.ci/run`, or as a prerequisite of a target it runs), by a test that
runs its recipe's program, or here (`make help`). A `.venv/bin/python` command runs here as written,
unless it needs a deployed stack; then its options must be ones the script's `--help` lists. What
needs an AWS account (`aws`, `sam`) is checked against the API models and the template by
tests/unit/test_docs.py, which reads every page.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from functools import cache

import pytest

from tests.support import ROOT
from tests.unit.test_docs import make_targets, options, shell_commands

README = (ROOT / "README.md").read_text(encoding="utf-8")
MAX_LINES = 200  # the READMEs users like run 55 to 130 lines; reference tables live in docs/
SECTIONS = (
    "## Quick start",
    "## How it works",
    "## Deploy to AWS",
    "## Try the functions locally",
    "## Documentation",
    "## Develop",
    "## License",
)


def section(title: str) -> str:
    return README.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]


def make_commands() -> list[list[str]]:
    """The README's `make` commands: in its bash blocks and in its text (`make setup PYTHON=python3.12`)."""
    inline = [shlex.split(span) for span in re.findall(r"`(make [^`]+)`", README)]
    return [words for words in shell_commands(README) if words[0] == "make"] + inline


def readme_targets() -> set[str]:
    return {word for words in make_commands() for word in words[1:] if "=" not in word and not word.startswith("-")}


def python_commands() -> list[list[str]]:
    return [words for words in shell_commands(README) if words[0] == ".venv/bin/python"]


def needs_a_stack(words: list[str]) -> bool:
    return "--stack" in words


@cache
def ci_targets() -> set[str]:
    """What `.ci/run` makes, with every target those depend on."""
    makefile = (ROOT / "Makefile").read_text()
    prerequisites = {
        match[1]: set(match[2].split()) for match in re.finditer(r"(?m)^([a-z][a-z0-9-]*):([^=#\n]*)", makefile)
    }
    made = set(re.findall(r"(?m)^\s*make ([a-z][a-z0-9-]*)", (ROOT / ".ci" / "run").read_text()))
    frontier = set(made)
    while frontier:
        frontier = {dep for target in frontier for dep in prerequisites.get(target, set())} - made
        made |= frontier
    return made


def recipe_program(target: str) -> list[str]:
    """What a target's recipe runs with the venv's python: `device/simulate.py --demo` -> its fixed words."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    line = next(line for line in recipe.splitlines() if "$(BIN)/python " in line)
    return [word for word in shlex.split(line.split("$(BIN)/python ", 1)[1]) if "$(" not in word]


@cache
def argument_lists_in_tests() -> list[list[str]]:
    """Every list of strings the tests build (their subprocess command lines), non-literal items left out."""
    found = []
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.List):
                words = [
                    item.value for item in node.elts if isinstance(item, ast.Constant) and isinstance(item.value, str)
                ]
                if words:
                    found.append(words)
    return found


def run_by_a_test(program: list[str]) -> bool:
    """A test runs the program: its script or module in place, with each of its fixed options."""
    head = program[:2] if program[0] == "-m" else program[:1]
    for words in argument_lists_in_tests():
        starts = [i for i in range(len(words) - len(head) + 1) if words[i : i + len(head)] == head]
        if starts and set(program) <= set(words):
            return True
    return False


# ------------------------------------------------------------------ shape


def test_the_readme_is_short_and_in_the_order_a_newcomer_needs() -> None:
    assert len(README.splitlines()) <= MAX_LINES
    positions = [README.find(f"\n{title}\n") for title in SECTIONS]
    assert -1 not in positions, [title for title, at in zip(SECTIONS, positions, strict=True) if at == -1]
    assert positions == sorted(positions)


def test_the_readme_shows_the_product_before_the_quick_start() -> None:
    before = README.split("\n## Quick start\n", 1)[0]
    assert re.search(r"!\[[^\]]+\]\(docs/img/[^)]+\)", before), "no screenshot above the quick start"


def test_the_quick_start_is_two_commands_with_their_cost_and_how_to_activate_the_venv() -> None:
    quick_start = section("## Quick start")
    assert [words for words in shell_commands(quick_start) if words[0] == "make"] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    assert re.search(r"about \d+ minutes? and \d+ MB", quick_start), "the set-up's time and disk"
    assert "source .venv/bin/activate" in quick_start


def test_the_deploy_section_warns_of_the_cost_and_says_how_to_delete_the_stack() -> None:
    deploy = section("## Deploy to AWS")
    assert "cost" in deploy.lower()
    assert ["sam", "deploy", "--guided"] in shell_commands(deploy)
    assert "sam delete" in deploy


# ------------------------------------------------------------------ every command is run


def test_every_make_target_the_readme_names_is_run_by_ci_or_a_test() -> None:
    targets = readme_targets()
    assert {"demo", "test"} <= targets
    for target in targets:
        assert make_targets().get(target), f"make {target}: no such target, or no ## help line"
        assert target in ci_targets() or target == "help" or run_by_a_test(recipe_program(target)), (
            f"make {target} is run neither by .ci/run nor by a test"
        )


def test_make_help_lists_every_target_the_readme_names() -> None:
    done = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)  # noqa: S607
    listed = set(re.findall(r"[a-z][a-z0-9-]*", done.stdout))
    assert readme_targets() <= listed


def test_the_quick_start_shows_the_simulator_and_the_fast_forward() -> None:
    commands = [shlex.join(words) for words in shell_commands(section("## Quick start"))]
    assert any("device/simulate.py" in command for command in commands)
    assert any("device/history.py" in command for command in commands)


@pytest.mark.parametrize("words", [words for words in python_commands() if not needs_a_stack(words)], ids=shlex.join)
def test_a_readme_command_runs_as_written(words: list[str]) -> None:
    done = subprocess.run(  # noqa: S603 - the README's own command, on this interpreter
        [sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "the command printed nothing"


@pytest.mark.parametrize("words", [words for words in python_commands() if needs_a_stack(words)], ids=shlex.join)
def test_a_readme_command_that_needs_a_stack_uses_options_its_script_has(words: list[str]) -> None:
    done = subprocess.run(  # noqa: S603 - the README's own script, on this interpreter
        [sys.executable, words[1], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert {f"--{option}" for option in options(words)} <= set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout))
