"""The results file: ratios of measured figures to floors measured in the same run, the machine, a markdown table.

A ratio is always "times the floor's cost": for a time (lower is better) measured / floor, for a rate
(higher is better) floor / measured. Above 1 the code costs more than the floor; below 1, less.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 1
XGBOOST_DISTRIBUTION = "xgboost" if platform.system() == "Darwin" else "xgboost-cpu"
"""XGBoost's distribution here: the CPU-only wheels (`xgboost-cpu`) exist for Linux and Windows only,
so macOS installs `xgboost` (requirements-dev.txt's markers)."""
PACKAGES = (
    "aws-lambda-powertools",
    "boto3",
    "botocore",
    "moto",
    "pydantic",
    "numpy",
    XGBOOST_DISTRIBUTION,
    "awscrt",
    "awsiotsdk",
)


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured quantity."""

    label: str
    value: float
    unit: str

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "value": self.value, "unit": self.unit}


def ratio(
    name: str, measured: Figure, floor: Figure, *, better: Literal["lower", "higher"] = "lower", note: str = ""
) -> dict[str, Any]:
    """A results entry: both figures and the ratio of their costs. Refuses figures that cannot make a ratio."""
    if measured.unit != floor.unit:
        raise ValueError(f"{name}: measured in {measured.unit}, floor in {floor.unit}")
    for figure in (measured, floor):
        if not (math.isfinite(figure.value) and figure.value > 0):
            raise ValueError(f"{name}: {figure.label} is {figure.value}, not a positive finite number")
    value = measured.value / floor.value if better == "lower" else floor.value / measured.value
    return {
        "name": name,
        "measured": measured.to_dict(),
        "floor": floor.to_dict(),
        "better": better,
        "ratio": value,
        "note": note,
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu_model": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 - git with fixed arguments
            ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def markdown(results: dict[str, Any]) -> str:
    """The short table printed at the end of a run and written beside the JSON."""
    host = results["machine"]
    lines = [
        f"# Benchmarks ({results['mode']} run, {host['date']})",
        "",
        f"{host['cpu_model']}, {host['cores']} cores, Python {host['python']}, "
        f"commit {(host['git_commit'] or 'unknown')[:12]}{' (modified)' if host['git_dirty'] else ''}.",
        "Ratio: times the floor's cost (measured / floor for times, floor / measured for rates).",
        "",
        "| benchmark | figure | measured | floor | ratio |",
        "|---|---|---|---|---|",
    ]
    for key, bench in results["benchmarks"].items():
        if bench["status"] != "done":
            lines.append(f"| {key} | {bench['status']}: {bench.get('reason', '')} | | | |")
            continue
        for entry in bench["ratios"]:
            measured, floor = entry["measured"], entry["floor"]
            lines.append(
                f"| {key} | {entry['name']} | {_value(measured)} | {floor['label']}: {_value(floor)} "
                f"| {entry['ratio']:.3g} |"
            )
    return "\n".join(lines) + "\n"


def _value(figure: dict[str, Any]) -> str:
    value = figure["value"]
    text = f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
    return f"{text} {figure['unit']}"
