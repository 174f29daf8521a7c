"""The development environment is pinned: every requirement an exact version, the locks agreeing and hashing every file.

`make lock` resolves requirements-dev.txt (with the files it includes) and tools/*.txt into their .lock
files, and `make setup` and `make tools` install from the locks alone, so an edit to a requirements file that
was not locked again would never reach .venv: these tests catch it without the network. Whether each
platform gets wheels for everything is `make wheels`'s question, which needs the package index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import ROOT

PLATFORMS = {
    "macOS, Apple silicon": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
    "macOS, Intel": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64"},
    "Linux, ARM": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"},
    "Linux, x86-64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
}
PYTHONS = ("3.11", "3.13")
LOCKS = {
    "requirements-dev.txt": "requirements-dev.lock",
    **{f"tools/{name}.txt": f"tools/{name}.lock" for name in ("dev", "sam", "checkov")},
}
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    """One requirement line: where it is, and what it asks for."""

    source: str
    requirement: Requirement
    hashes: int = 0
    only_required_by_files: bool = False
    """A lock's entry that no other package depends on: there only because a requirements file names it."""

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> str | None:
        """The exact version of a `name==version` line, None for anything looser."""
        specifiers = list(self.requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator == "==" and "*" not in specifiers[0].version:
            return specifiers[0].version
        return None

    def applies(self, environment: dict[str, str]) -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate(environment)


def environment(platform: str, python: str) -> dict[str, str]:
    """The values environment markers are evaluated against, for CPython `python` on `platform`."""
    return {
        **PLATFORMS[platform],
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{python}.0",
        "platform_python_implementation": "CPython",
    }


def inputs(path: Path) -> list[Pin]:
    """The requirement lines of a requirements file and of the files its `-r` lines include."""
    pins = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("-r "):
            pins += inputs((path.parent / text[3:].strip()).resolve())
            continue
        pins.append(Pin(f"{path.relative_to(ROOT)}:{number}", Requirement(text)))
    return pins


def locked(path: Path) -> list[Pin]:
    """The entries of a lock written by `uv pip compile --generate-hashes`, each with its count of hashes."""
    entries = re.split(r"\n(?=\S)", path.read_text())
    pins = []
    for entry in entries:
        if entry.startswith("#") or not entry.strip():
            continue
        head = entry.split("\\", 1)[0].strip()
        comments = [line.strip("# ") for line in entry.splitlines() if line.lstrip().startswith("#")]
        via = [comment.removeprefix("via").strip() for comment in comments]
        only_files = all(source.startswith("-r ") for source in via if source)
        pins.append(Pin(f"{path.relative_to(ROOT)}: {head}", Requirement(head), len(_HASH.findall(entry)), only_files))
    return pins


def chosen(pins: list[Pin], platform: str, python: str) -> dict[str, list[Pin]]:
    """What the pins install on one platform and Python: each name with the lines that apply there."""
    found: dict[str, list[Pin]] = {}
    for pin in pins:
        if pin.applies(environment(platform, python)):
            found.setdefault(pin.name, []).append(pin)
    return found


@pytest.mark.parametrize("source", list(LOCKS))
def test_every_requirement_is_an_exact_version(source: str) -> None:
    loose = [f"{pin.source}: {pin.requirement}" for pin in inputs(ROOT / source) if pin.version is None]
    assert not loose, "pin these with ==, then run `make lock`:\n" + "\n".join(loose)


@pytest.mark.parametrize("source", list(LOCKS))
def test_every_locked_package_has_one_exact_version_and_its_hashes(source: str) -> None:
    entries = locked(ROOT / LOCKS[source])
    assert len(entries) >= 2
    for pin in entries:
        assert pin.version, f"{pin.source}: not an exact version"
        assert pin.hashes, f"{pin.source}: no hash, so `make setup` would refuse it"


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", list(PLATFORMS))
@pytest.mark.parametrize("source", list(LOCKS))
def test_the_lock_installs_what_the_requirements_ask_for(source: str, platform: str, python: str) -> None:
    wanted = chosen(inputs(ROOT / source), platform, python)
    installed = chosen(locked(ROOT / LOCKS[source]), platform, python)
    twice = {name: [pin.source for pin in pins] for name, pins in installed.items() if len(pins) > 1}
    assert not twice, f"two versions of one package on {platform}: {twice}"
    for name, pins in wanted.items():
        versions = {pin.version for pin in pins}
        assert len(versions) == 1, f"{name} asked for at two versions: {[pin.source for pin in pins]}"
        assert name in installed, f"{pins[0].source}: {name} is not in {LOCKS[source]}: run `make lock`"
        assert installed[name][0].version in versions, (
            f"{pins[0].source} asks for {name}=={versions.pop()}, {LOCKS[source]} has "
            f"{installed[name][0].version}: run `make lock`"
        )
    for name, pins in installed.items():
        assert name in wanted or not pins[0].only_required_by_files, (
            f"{pins[0].source}: installed on {platform}, where no requirements file asks for it: run `make lock`"
        )


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_macos_gets_xgboost_and_every_other_platform_xgboost_cpu(platform: str) -> None:
    installed = chosen(locked(ROOT / "requirements-dev.lock"), platform, "3.11")
    expected, other = ("xgboost", "xgboost-cpu") if platform.startswith("macOS") else ("xgboost-cpu", "xgboost")
    assert expected in installed
    assert other not in installed


LINT_ONLY = {"uv", "ruff", "mypy", "cfn-lint"}
"""What `make lint` (and `make lock`) alone need: in .tools/, never in .venv."""


def test_the_tools_that_only_lint_stay_out_of_the_test_environment() -> None:
    tools = {pin.name: pin for pin in locked(ROOT / "tools" / "dev.lock")}
    sam = {pin.name for pin in locked(ROOT / "tools" / "sam.lock")}
    development = {pin.name: pin for pin in locked(ROOT / "requirements-dev.lock")}
    assert {"uv", "ruff", "mypy"} <= tools.keys()
    assert "cfn-lint" in sam  # `make lint` runs SAM CLI's
    assert not LINT_ONLY & development.keys()


def test_mypys_pydantic_plugin_is_the_pydantic_of_the_code_it_checks() -> None:
    tools = {pin.name: pin for pin in locked(ROOT / "tools" / "dev.lock")}
    development = {pin.name: pin for pin in locked(ROOT / "requirements-dev.lock")}
    assert tools["pydantic"].version is not None
    assert tools["pydantic"].version == development["pydantic"].version
