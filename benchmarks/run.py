"""Run every benchmark, write benchmarks/results/latest.json and latest.md, print the table (`make bench`).

    python -m benchmarks.run [--quick] [--skip local_stack,training] [--out benchmarks/results]

Every figure is a ratio against a floor measured in the same run, on the same machine, so a noisy
neighbour moves both; nothing is compared with a number from another day. Progress goes to stderr,
the table to stdout. `--quick` shrinks every size (the test suite runs it) and serves the warm
handler a tiny model trained on the spot instead of model/output/model.tar.gz.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root), str(root / "layers" / "shared")]

from benchmarks.report import REPO, SCHEMA_VERSION, machine, markdown

DEFAULT_OUT = REPO / "benchmarks" / "results"
DEFAULT_MODEL = REPO / "model" / "output" / "model.tar.gz"
BENCHMARKS = ("handler_init", "warm_inference", "embedded_model", "domain_throughput", "training", "local_stack")
TITLES = {
    "handler_init": "Handler init (import + module-level set-up), fresh process, vs a naive Powertools handler",
    "warm_inference": "Warm inference handler, CPU per reading, vs a bare single-row XGBoost prediction",
    "embedded_model": "Embedded model, pure Python (shipped), xgboost-cpu, tl2cgen: CPU, drivers, 1st prediction, size",
    "domain_throughput": "compute_features + detector.step, readings per CPU second, vs a trivial loop",
    "training": "model/train.py time and model size vs fleet size, vs a bare xgboost.train on the same rows",
    "local_stack": "Local stack publish -> alert latency, vs a broker round trip",
}


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does."""

    init_repetitions: int
    warm_readings: int
    warm_warmup: int
    embedded_rows: int
    embedded_first_predictions: int
    domain_motors: int
    domain_days: float
    domain_repeats: int
    training_sizes: tuple[tuple[int, float], ...]
    training_rounds: int
    stack_motors: int
    stack_readings: int
    stack_round_trips: int


FULL = Sizes(
    init_repetitions=7,
    warm_readings=500,
    warm_warmup=20,
    embedded_rows=500,
    embedded_first_predictions=5,
    domain_motors=20,
    domain_days=30.0,
    domain_repeats=3,
    training_sizes=((8, 60.0), (16, 90.0), (32, 120.0)),
    training_rounds=50,
    stack_motors=4,
    stack_readings=1000,
    stack_round_trips=200,
)
QUICK = Sizes(
    init_repetitions=1,
    warm_readings=20,
    warm_warmup=2,
    embedded_rows=20,
    embedded_first_predictions=1,
    domain_motors=2,
    domain_days=1.0,
    domain_repeats=1,
    training_sizes=((8, 60.0),),
    training_rounds=5,
    stack_motors=4,
    stack_readings=250,
    stack_round_trips=20,
)
TRAINING_WORKERS = 1
"""One process and one XGBoost thread for train.py and its floor alike: on this shared 2-core machine two
OpenMP threads were measured up to ten times slower than one whenever the other core was busy."""


def _log(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def tiny_artifact(folder: Path) -> Path:
    """A model.tar.gz trained in seconds on a short history (quick runs: the figures' shape, not their size)."""
    from device.history import generate  # noqa: PLC0415 - only quick runs train here
    from device.physics import DAY_S, FleetConfig  # noqa: PLC0415
    from model import artifact  # noqa: PLC0415
    from model.dataset import build  # noqa: PLC0415
    from motor_maintenance.features import FEATURE_NAMES  # noqa: PLC0415

    history = generate(FleetConfig(motors=2, seed=3, wear_scale=4.0), duration_s=4 * DAY_S)
    data = build(history, workers=1)
    with warnings.catch_warnings():  # four days may hold no failure: XGBoost warns that its AUC is undefined
        warnings.simplefilter("ignore", UserWarning)
        booster = artifact.fit(
            data.features, data.labels, feature_names=FEATURE_NAMES, num_boost_round=10, nthread=1, log=None
        )
    return artifact.write_model_tar(booster, folder / "model.tar.gz", inference_script=REPO / "model" / "inference.py")


def _artifact(*, quick: bool, model: Path, scratch: Path) -> Path:
    """The model the warm and embedded benchmarks serve: a tiny one trained in `scratch` once (quick), else `model`."""
    if quick:
        tiny = scratch / "model.tar.gz"
        return tiny if tiny.exists() else tiny_artifact(scratch)
    from local.artifact import ensure_model  # noqa: PLC0415

    return ensure_model(model, log=lambda line: _log(f"train: {line}"))


def run_one(name: str, sizes: Sizes, *, quick: bool, model: Path, scratch: Path) -> dict[str, Any]:
    """One benchmark's ratios and details."""
    if name == "handler_init":
        from benchmarks import handler_init  # noqa: PLC0415 - each benchmark imports what it needs

        return handler_init.measure(repetitions=sizes.init_repetitions, log=_log)
    if name == "warm_inference":
        from benchmarks import warm_inference  # noqa: PLC0415

        artifact = _artifact(quick=quick, model=model, scratch=scratch)
        booster = warm_inference.load_booster(artifact)
        measured = warm_inference.measure(
            booster=booster, readings=sizes.warm_readings, warmup=sizes.warm_warmup, log=_log
        )
        measured["details"]["model"] = {"artifact": str(artifact), "trees": booster.num_boosted_rounds()}
        return measured
    if name == "embedded_model":
        from benchmarks import embedded_model  # noqa: PLC0415

        return embedded_model.measure(
            artifact=_artifact(quick=quick, model=model, scratch=scratch),
            readings=sizes.embedded_rows,
            first_predictions=sizes.embedded_first_predictions,
            log=_log,
        )
    if name == "domain_throughput":
        from benchmarks import domain_throughput  # noqa: PLC0415

        return domain_throughput.measure(
            motors=sizes.domain_motors, days=sizes.domain_days, repeats=sizes.domain_repeats, log=_log
        )
    if name == "training":
        from benchmarks import training  # noqa: PLC0415

        return training.measure(
            sizes=sizes.training_sizes, rounds=sizes.training_rounds, workers=TRAINING_WORKERS, log=_log
        )
    if name == "local_stack":
        from benchmarks import local_stack_latency  # noqa: PLC0415

        return local_stack_latency.measure(
            motors=sizes.stack_motors,
            readings=sizes.stack_readings,
            interval=0.05,
            broker="auto",
            round_trips=sizes.stack_round_trips,
            log=lambda line: _log(f"stack: {line}"),
            model=model,
        )
    raise ValueError(f"unknown benchmark {name!r}")


def run(
    *, quick: bool, skip: set[str], out: Path, model: Path, log: Callable[[str], None] = _log
) -> tuple[dict[str, Any], bool]:
    """Every benchmark not skipped, in order; the results (also written to `out`) and whether all succeeded."""
    sizes = QUICK if quick else FULL
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "mode": "quick" if quick else "full",
        "command": shlex.join(["python", "-m", "benchmarks.run", *sys.argv[1:]]),
        "machine": machine(),
        "benchmarks": {},
    }
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for name in BENCHMARKS:
            entry: dict[str, Any] = {"title": TITLES[name]}
            if name in skip:
                entry.update(status="skipped", reason="--skip (BENCH_SKIP)")
                log(f"{name}: skipped")
            else:
                log(f"{name}: {TITLES[name]}")
                started = time.perf_counter()
                try:
                    measured = run_one(name, sizes, quick=quick, model=model, scratch=Path(scratch))
                except (Exception, SystemExit) as exc:  # one failed benchmark must not lose the others' figures
                    ok = False
                    entry.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
                    log(f"{name}: FAILED\n{traceback.format_exc()}")
                else:
                    entry.update(status="done", **measured)
                entry["elapsed_s"] = round(time.perf_counter() - started, 1)
                log(f"{name}: {entry['status']} in {entry['elapsed_s']} s")
            results["benchmarks"][name] = entry
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out / "latest.md").write_text(markdown(results))
    return results, ok


def parse_skip(text: str) -> set[str]:
    names = {part.strip() for part in text.replace(" ", ",").split(",") if part.strip()}
    unknown = names - set(BENCHMARKS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and a tiny model (the test suite's run)")
    parser.add_argument(
        "--skip", type=parse_skip, default=set(), help=f"comma-separated, from: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for latest.json and latest.md")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="artifact (trained first if missing)")
    args = parser.parse_args(argv)
    results, ok = run(quick=args.quick, skip=args.skip, out=args.out, model=args.model)
    print(markdown(results), end="")
    print(f"\n(written to {args.out / 'latest.json'} and {args.out / 'latest.md'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
