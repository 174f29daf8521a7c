"""Benchmark: publish -> alert latency through the local stack, against a broker round trip measured in the same run.

    python benchmarks/local_stack_latency.py [--motors 4] [--readings 400] [--interval 0.05] [--out results.json]

Runs the demo's fleet (two injected wear failures, a 30 h service interval) through the whole local
pipeline: device -> MQTT broker -> TelemetryRule -> InferenceFunction (moto, the model server) ->
{namespace}/{id}/alarms -> AlarmRule -> AlertFunction -> SNS -> the operator's SQS queue. Latency is from
the moment the device handed a reading to its connection to the moment the operator's queue
delivered the alert it caused, for every alert a reading caused (those of operator actions are not
counted). The floor, once the fleet's work has settled, is one hop through the same broker: a
service connection publishes (QoS 1) on a topic it subscribes to and waits for the message to come
back, `--round-trips` times. Measured, never asserted: the machine is shared and noisy.
`benchmarks/run.py` calls `measure`; run alone, this prints the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root), str(root / "layers" / "shared")]

from benchmarks.report import Figure, machine, ratio
from local.artifact import DEFAULT_ARTIFACT, ensure_model
from local.iot_core import IOT_DATA
from local.options import StackOptions
from local.report import percentiles
from local.simulation import simulate_through
from local.stack import LocalStack

ROUND_TRIP_TOPIC = "bench/round-trip"


def broker_round_trips(stack: LocalStack, count: int) -> list[float]:
    """Milliseconds from a QoS 1 publish to its delivery back to the same connection, `count` times."""
    arrived: dict[int, float] = {}
    signal = threading.Event()

    def on_message(message: Any) -> None:
        arrived[int(message.payload)] = time.perf_counter()
        signal.set()

    client = stack.iot.service_client(IOT_DATA, on_message, name="bench-round-trip")
    client.start([ROUND_TRIP_TOPIC])
    times: list[float] = []
    try:
        for number in range(count):
            signal.clear()
            started = time.perf_counter()
            client.publish(ROUND_TRIP_TOPIC, str(number).encode())
            while number not in arrived:
                if not signal.wait(10.0):
                    raise RuntimeError(f"round trip {number} never came back from the broker")
                signal.clear()
            times.append((arrived[number] - started) * 1000)
    finally:
        client.stop()
    return times


def measure(
    *,
    motors: int,
    readings: int,
    interval: float,
    broker: str,
    round_trips: int,
    log: Callable[[str], None],
    model: Path = DEFAULT_ARTIFACT,
) -> dict[str, Any]:
    """Run the fleet through the local stack; the alerts' latency, the broker's round trip, the rates."""
    artifact = ensure_model(model, log=lambda line: log(f"train: {line}"))
    fleet = [
        "--motors", str(motors), "--interval", str(interval), "--speedup", str(600 / interval),
        "--count", str(readings), "--random-failures-per-year", "0", "--no-ui", "--progress-every", "0",
        "--fail", "motor-002:bearing_wear:30h", "--fail", "motor-004:cooling_loss:34h",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as state:
        options = StackOptions(
            state_dir=Path(state),
            model=artifact,
            broker=broker,
            detector_config={"schedule": {"service_interval_h": 30}},
            log=log,
        )
        with LocalStack(options) as stack:
            started = time.perf_counter()
            report = simulate_through(stack, fleet)
            elapsed = time.perf_counter() - started
            log(f"local stack: fleet done in {elapsed:.0f} s; {round_trips} broker round trips")
            round_trip_ms = broker_round_trips(stack, round_trips)
            kind = stack.iot.broker_kind
    if report is None:
        raise RuntimeError("the fleet could not connect to the local broker")
    counts = report.summary.counts
    latencies = list(report.watch.latencies_ms)
    if not latencies:
        raise RuntimeError("no reading caused an alert: no latency to report")
    p50, p99 = percentiles(latencies)
    floor_p50, floor_p99 = percentiles(round_trip_ms)
    return {
        "ratios": [
            ratio(
                "publish -> alert p50",
                Figure(f"p50 over {len(latencies)} alerts", p50, "ms"),
                Figure(f"broker round trip p50 ({round_trips})", floor_p50, "ms"),
            ),
            ratio(
                "publish -> alert p99",
                Figure(f"p99 over {len(latencies)} alerts", p99, "ms"),
                Figure(f"broker round trip p99 ({round_trips})", floor_p99, "ms"),
            ),
        ],
        "details": {
            "broker": kind,
            "motors": motors,
            "readings_sent": counts.get("readings.sent", 0),
            "readings_processed": counts.get("readings.processed", 0),
            "offered_readings_per_s": round(motors / interval, 1),
            "sustained_readings_per_s": round(counts.get("readings.sent", 0) / elapsed, 1),
            "alerts": len(latencies),
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "broker_round_trip_p50_ms": floor_p50,
            "broker_round_trip_p99_ms": floor_p99,
            "settled": report.settled,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--motors", type=int, default=4)
    parser.add_argument("--readings", type=int, default=400, help="readings per motor")
    parser.add_argument("--interval", type=float, default=0.05, help="wall seconds between a motor's readings")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "builtin"), default="auto")
    parser.add_argument("--round-trips", type=int, default=200, help="broker round trips measured as the floor")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    try:
        measured = measure(
            motors=args.motors,
            readings=args.readings,
            interval=args.interval,
            broker=args.broker,
            round_trips=args.round_trips,
            log=lambda line: print(line, file=sys.stderr),
        )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    result = {"benchmark": "local_stack_latency", "machine": machine(), **measured}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
