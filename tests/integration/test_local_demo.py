"""`python device/simulate.py --demo` as a user runs it: the stack comes up, readings flow, Ctrl-C cleans up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.iot_core import find_mosquitto
from local.processes import port_open

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120.0


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (children in sessions of their own included), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose only once reaped; /proc tells which.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


@pytest.mark.parametrize("broker", ["builtin", "mosquitto"])
def test_ctrl_c_stops_the_demo_and_leaves_no_process_and_no_port(
    tmp_path: Path, broker: str, default_model: Path
) -> None:
    if broker == "mosquitto" and find_mosquitto() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the mosquitto variant, but mosquitto is not installed")
        pytest.skip("mosquitto is not installed")
    # default_model: the artifact the demo would train if it were missing
    state = tmp_path / "state"
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(  # noqa: S603 - our own command line
            [sys.executable, "device/simulate.py", "--demo", "--no-ui", "--broker", broker, "--state-dir", str(state)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        # Given the demo running: the stack is up and readings have been processed
        deadline = time.monotonic() + TIMEOUT_S
        while "processed" not in log.read_text() or "processed 0," in log.read_text().splitlines()[-1]:
            assert demo.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        info = json.loads((state / "stack.json").read_text())
        ports = info["ports"]
        assert len(info["processes"]) == 3  # moto, the model server, the broker
        children = _descendants(demo.pid)
        assert len(children) >= 4, children  # and InferenceFunction's execution environment

        # When the user presses Ctrl-C
        demo.send_signal(signal.SIGINT)
        status = demo.wait(TIMEOUT_S)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

    # Then it stops cleanly, says so, and nothing it started is left
    output = log.read_text()
    assert status == 0, output[-3000:]
    assert "summary of the run:" in output
    assert "local stack stopped" in output
    assert not [pid for pid in children if _alive(pid)], output[-2000:]
    assert not [port for port in ports if port_open(port)]
    assert not (state / "stack.json").exists()
