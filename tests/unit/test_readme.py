"""The README's quick-start commands run as written (a newcomer copies them first)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    """The `.venv/bin/python ...` lines of the README's code blocks in its Quick start section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [
        line.split("  #", 1)[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.startswith(".venv/bin/python ")
    ]


def test_the_quick_start_shows_the_simulator_and_the_fast_forward() -> None:
    commands = quick_start_commands()
    assert any("device/simulate.py" in command for command in commands)
    assert any("device/history.py" in command for command in commands)


@pytest.mark.parametrize("command", quick_start_commands())
def test_a_quick_start_command_runs(command: str) -> None:
    argv = [sys.executable, *shlex.split(command)[1:]]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "the command printed nothing"
