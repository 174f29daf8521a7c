"""Benchmark: simulated motor-years of fleet history generated per second of wall time.

    python benchmarks/fast_forward.py [--days 365] [--fleets 1,10,50,100] [--out results.json]

The issue's bar is one motor-year per second. Each fleet size is run once (the figure is the
whole history: physics, storage and labels); run it twice if the machine is busy.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device.history import generate
from device.physics import DAY_S, FleetConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=365.0, help="simulated days per run")
    parser.add_argument("--fleets", default="1,10,50,100", help="fleet sizes, comma-separated")
    parser.add_argument("--interval", type=float, default=600.0, help="seconds between readings")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    results = []
    print(f"{'motors':>6} {'readings':>12} {'motor-years':>12} {'seconds':>8} {'motor-years/s':>14}")
    for motors in (int(size) for size in args.fleets.split(",")):
        started = time.perf_counter()
        history = generate(FleetConfig(motors=motors, seed=1), duration_s=args.days * DAY_S, interval_s=args.interval)
        elapsed = time.perf_counter() - started
        readings = history.steps * motors
        rate = history.motor_years / elapsed
        results.append(
            {
                "motors": motors,
                "readings": readings,
                "motor_years": history.motor_years,
                "seconds": elapsed,
                "motor_years_per_s": rate,
                "readings_per_s": readings / elapsed,
            }
        )
        print(f"{motors:>6} {readings:>12,} {history.motor_years:>12.1f} {elapsed:>8.2f} {rate:>14.2f}")
    if args.out:
        report = {
            "benchmark": "fast_forward",
            "interval_s": args.interval,
            "machine": platform.machine(),
            "python": platform.python_version(),
            "results": results,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
