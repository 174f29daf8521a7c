"""Benchmark: publish -> alert latency through the local stack, and the readings per second it sustained.

    python benchmarks/local_stack_latency.py [--motors 4] [--readings 400] [--interval 0.05] [--out results.json]

Runs the demo's fleet (two injected wear failures, a 30 h service interval) through the whole local
pipeline: device -> MQTT broker -> TelemetryRule -> InferenceFunction (moto, the model server) ->
motors/{id}/alarms -> AlarmRule -> AlertFunction -> SNS -> the operator's SQS queue. Latency is from
the moment the device handed a reading to its connection to the moment the operator's queue
delivered the alert it caused, for every alert a reading caused (those of operator actions are not
counted). Measured, never asserted: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root), str(root / "layers" / "shared")]

from local.artifact import ensure_model
from local.session import simulate_through
from local.stack import DEFAULT_MODEL, LocalStack, StackOptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--motors", type=int, default=4)
    parser.add_argument("--readings", type=int, default=400, help="readings per motor")
    parser.add_argument("--interval", type=float, default=0.05, help="wall seconds between a motor's readings")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "builtin"), default="auto")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    model = ensure_model(DEFAULT_MODEL, log=lambda line: print(f"train: {line}", file=sys.stderr))
    fleet = [
        "--motors", str(args.motors), "--interval", str(args.interval), "--speedup", str(600 / args.interval),
        "--count", str(args.readings), "--random-failures-per-year", "0", "--no-ui", "--progress-every", "0",
        "--fail", "motor-002:bearing_wear:30h", "--fail", "motor-004:cooling_loss:34h",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as state:
        options = StackOptions(
            state_dir=Path(state),
            model=model,
            broker=args.broker,
            detector_config={"schedule": {"service_interval_h": 30}},
            log=lambda line: print(line, file=sys.stderr),
        )
        with LocalStack(options) as stack:
            started = time.perf_counter()
            report = simulate_through(stack, fleet)
            elapsed = time.perf_counter() - started
            broker = stack.broker_kind
    if report is None:
        print("the fleet could not connect to the local broker", file=sys.stderr)
        return 1
    latency = report.latency_ms()
    counts = report.summary.counts
    result = {
        "benchmark": "local_stack_latency",
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": _cpus()},
        "broker": broker,
        "motors": args.motors,
        "readings_sent": counts.get("readings.sent", 0),
        "readings_processed": counts.get("readings.processed", 0),
        "offered_readings_per_s": round(args.motors / args.interval, 1),
        "sustained_readings_per_s": round(counts.get("readings.sent", 0) / elapsed, 1),
        "alerts": len(report.watch.latencies_ms),
        "latency_p50_ms": round(latency[0], 1) if latency else None,
        "latency_p99_ms": round(latency[1], 1) if latency else None,
        "settled": report.settled,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
