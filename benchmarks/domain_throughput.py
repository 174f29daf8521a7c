"""Pure domain throughput: compute_features + detector.step over a realistic stream, per CPU second.

The stream is a simulated fleet's history (device/history.py), every motor's readings in time order,
interleaved as they would arrive; each motor's state and running statistics are carried from one
reading to the next, as the inference use case does through DynamoDB. While a motor runs the
reading carries a fixed failure probability, so the predictive rule is evaluated as it is with a
model (the model itself is measured by warm_inference). The floor is a trivial per-reading Python
loop over the same readings: every signal read and summed. One thread, so readings per CPU second
are readings per second per core.

The same pass is also timed with the per-reading modules (features, detector, state) compiled by
mypyc, each in a fresh interpreter beside the pure modules', and both passes' final states compared:
what compiling the domain would buy, measured rather than guessed. The layer ships the pure modules.
mypyc is mypy's, in .tools/dev (`make setup`) on the interpreter .venv is made from; it builds for its own
Python version alone, so on another version (python3.13's `make test-runtime`) that part says why it was not
measured.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import REPO, Figure, ratio
from device.history import generate
from device.physics import DAY_S, FleetConfig
from motor_maintenance.config import DetectorConfig
from motor_maintenance.detector import ReadingInput, step
from motor_maintenance.features import compute_features
from motor_maintenance.state import MotorState
from motor_maintenance.telemetry import SIGNALS, Telemetry

PROBABILITY_WHILE_RUNNING = 0.05
DOMAIN = REPO / "layers" / "shared" / "motor_maintenance"
COMPILED = ("features.py", "detector.py", "state.py")
"""What mypyc compiles: the modules of the per-reading work (the pydantic models stay Python)."""
TOOLS_PYTHON = REPO / ".tools" / "dev" / "bin" / "python"
"""The interpreter of the environment mypy and mypyc live in (tools/dev.txt)."""
# Runs in a fresh interpreter with the domain package's parent folder first on the path.
CHILD = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from benchmarks.domain_throughput import stream, timed_pass
import motor_maintenance.detector
result = timed_pass(stream(motors=int(sys.argv[3]), days=float(sys.argv[4])), repeats=int(sys.argv[5]))
print(json.dumps({**result, "detector": motor_maintenance.detector.__file__}))
"""


def stream(*, motors: int, days: float, seed: int = 5) -> list[Telemetry]:
    """A fleet's readings in arrival order (time, then motor)."""
    history = generate(FleetConfig(motors=motors, seed=seed), duration_s=days * DAY_S)
    return [history.reading(t, column) for t in range(history.steps) for column in range(motors)]


def domain_pass(readings: list[Telemetry], config: DetectorConfig) -> int:
    """Features and detector for every reading, state carried per motor; returns the alarm events made."""
    return _carried(readings, config, {})


def _carried(readings: list[Telemetry], config: DetectorConfig, states: dict[str, MotorState]) -> int:
    """`domain_pass`, leaving each motor's last state in `states`."""
    events = 0
    for reading in readings:
        state = states.get(reading.motor_id)
        _, stats = compute_features(reading, state.stats if state else None)
        probability = PROBABILITY_WHILE_RUNNING if reading.running else None
        now = datetime.fromtimestamp(reading.ts_ms / 1000 + 1, UTC)
        decision = step(state, ReadingInput(reading, probability, stats=stats), now, config)
        states[reading.motor_id] = decision.state
        events += len(decision.events)
    return events


def trivial_pass(readings: list[Telemetry]) -> float:
    """The floor: a Python loop that reads every signal of every reading and adds it up."""
    total = 0.0
    for reading in readings:
        for name in SIGNALS:
            value = getattr(reading, name)
            if value is not None:
                total += value
    return total


def _cpu_s(work: Callable[[list[Telemetry]], Any], readings: list[Telemetry], repeats: int) -> float:
    """Least CPU seconds of `repeats` runs (the run the machine disturbed least), each over fresh readings.

    A reading keeps what it works out once (its epoch milliseconds): a second pass over the same objects
    would find it done, which a reading arriving in Lambda never does. The copies are made off the clock.
    """
    best = float("inf")
    for _ in range(repeats):
        fresh = [reading.model_copy() for reading in readings]
        started = time.thread_time()
        work(fresh)
        best = min(best, time.thread_time() - started)
    return best


def timed_pass(readings: list[Telemetry], *, repeats: int) -> dict[str, Any]:
    """CPU seconds of `domain_pass` over `readings` (least of `repeats`), the events it made, a digest of its states."""
    config = DetectorConfig()
    seconds = _cpu_s(lambda fresh: domain_pass(fresh, config), readings, repeats)
    states: dict[str, MotorState] = {}
    events = _carried([reading.model_copy() for reading in readings], config, states)
    text = json.dumps({motor: state.to_dict() for motor, state in sorted(states.items())}, sort_keys=True)
    return {
        "cpu_s": seconds,
        "readings_per_s": len(readings) / seconds,
        "events": events,
        "digest": hashlib.sha256(text.encode()).hexdigest(),
    }


def mypyc_python() -> tuple[str | None, str]:
    """An interpreter whose mypyc builds modules this one imports, or None and why there is none."""
    if importlib.util.find_spec("mypyc") is not None:
        return sys.executable, ""
    here = "{}.{}".format(*sys.version_info[:2])
    if not TOOLS_PYTHON.exists():
        return None, f"no mypyc for Python {here}: {TOOLS_PYTHON.relative_to(REPO)} is missing (`make setup`)"
    done = subprocess.run(  # noqa: S603 - the tools environment's interpreter, fixed arguments
        [str(TOOLS_PYTHON), "-c", "import sys; print('{}.{}'.format(*sys.version_info[:2]))"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    tools = done.stdout.strip()
    if tools != here:
        return None, f"no mypyc for Python {here}: .tools/dev's runs on Python {tools} and builds for that version"
    return str(TOOLS_PYTHON), ""


def compile_domain(folder: Path, mypyc: str, *, log: Callable[[str], None]) -> Path:
    """A copy of the domain package in `folder` with COMPILED built by `mypyc`'s; the folder to put on the path.

    mypy, inside mypyc, reads the packages the domain imports from this interpreter's environment.
    """
    package = folder / "motor_maintenance"
    shutil.copytree(DOMAIN, package, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "mypy.ini").write_text(
        f"[mypy]\nplugins = pydantic.mypy\nstrict = True\npython_executable = {sys.executable}\n"
    )
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - the tools environment's interpreter and mypyc
        [mypyc, "-m", "mypyc", *(f"motor_maintenance/{name}" for name in COMPILED)],
        cwd=folder, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"mypyc failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-2000:]}")
    log(f"domain throughput: {', '.join(COMPILED)} compiled by mypyc in {time.perf_counter() - started:.0f} s")
    return folder


def _child_pass(root: Path, *, motors: int, days: float, repeats: int) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CHILD, str(root), str(REPO), str(motors), str(days), str(repeats)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"domain pass in {root} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compiled_vs_pure(
    mypyc: str, *, motors: int, days: float, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """The pass with the pure and the mypyc-compiled domain in fresh interpreters, alternately: the best of each."""
    with tempfile.TemporaryDirectory(prefix="bench-mypyc-") as folder:
        compiled_root = compile_domain(Path(folder), mypyc, log=log)
        runs: dict[str, list[dict[str, Any]]] = {"pure": [], "compiled": []}
        for _ in range(2):
            runs["pure"].append(_child_pass(DOMAIN.parent, motors=motors, days=days, repeats=repeats))
            runs["compiled"].append(_child_pass(compiled_root, motors=motors, days=days, repeats=repeats))
    if not runs["compiled"][0]["detector"].endswith(".so"):
        raise RuntimeError(f"the compiled pass imported {runs['compiled'][0]['detector']}, not the compiled module")
    return {
        name: {**max(results, key=lambda run: run["readings_per_s"]), "all": [run["readings_per_s"] for run in results]}
        for name, results in runs.items()
    }


def measure(*, motors: int, days: float, repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    readings = stream(motors=motors, days=days)
    log(f"domain throughput: {len(readings):,} readings of {motors} motors over {days:g} days")
    here = timed_pass(readings, repeats=repeats)
    domain_s, events = here["cpu_s"], here["events"]
    floor_s = _cpu_s(trivial_pass, readings, max(repeats, 3))
    count = len(readings)
    floor = Figure("trivial per-reading loop", count / floor_s, "readings/s")
    ratios = [
        ratio(
            "compute_features + detector.step",
            Figure("readings per CPU second", count / domain_s, "readings/s"),
            floor,
            better="higher",
            note="one core; the floor reads and sums each reading's signals",
        )
    ]
    mypyc, why_not = mypyc_python()
    compiled_details: dict[str, Any] = {"modules": list(COMPILED)}
    if mypyc is None:
        log(f"domain throughput: the compiled pass is not measured: {why_not}")
        compiled_details["not_measured"] = why_not
    else:
        both = compiled_vs_pure(mypyc, motors=motors, days=days, repeats=repeats, log=log)
        pure, compiled = both["pure"], both["compiled"]
        same = compiled["digest"] == pure["digest"]
        ratios.append(
            ratio(
                "the same, features, detector and state compiled by mypyc",
                Figure("readings per CPU second, fresh interpreter", compiled["readings_per_s"], "readings/s"),
                Figure("the pure modules, fresh interpreter", pure["readings_per_s"], "readings/s"),
                better="higher",
                note=f"not what the layer ships; the same final states: {same}",
            )
        )
        compiled_details |= {
            "readings_per_s": {"pure": pure["all"], "compiled": compiled["all"]},
            "same_final_states": same,
            "events": {"pure": pure["events"], "compiled": compiled["events"]},
        }
    return {
        "ratios": ratios,
        "details": {
            "readings": count,
            "motors": motors,
            "days": days,
            "running_share": sum(r.running for r in readings) / count,
            "alarm_events": events,
            "repeats": repeats,
            "cpu_s": {"domain": domain_s, "trivial": floor_s},
            "us_per_reading": {"domain": domain_s / count * 1e6, "trivial": floor_s / count * 1e6},
            "mypyc": compiled_details,
        },
    }
