"""Training time and model size against fleet size: model/train.py, against a bare xgboost.train on the same rows.

Each size runs `python model/train.py` as a user would (simulation, features, training, replay of
the held-out motors, artifact and plots), in a temporary --out. The floor rebuilds the same training
rows (same seed, same split) and times their DMatrix and `xgboost.train` on it (whose first round
also sketches the features' quantiles: about half the floor), with the same hyperparameters, rounds
and threads but without train.py's subsampling of negative rows: the cost of fitting the trees and
nothing else. The model's bytes are the artifact's (model.tar.gz) against the bare booster's own UBJSON.

Times are each size's wall seconds. The ratio (whole run over floor) falls as the fleet grows, for
costs of train.py that do not grow with it: about 1.6 s of each run is the interpreter starting,
importing and exiting, 0.3 s its plots, and the simulation costs per step of the whole fleet, hardly
per motor (60 days of 8 motors 1.3 s, of 32 motors 1.5 s). No warm-up is behind it: the sizes in
reverse order, and a size run twice, took the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from benchmarks.report import REPO, Figure, ratio
from device.history import generate
from device.physics import DAY_S, FleetConfig
from model import artifact
from model.dataset import build, split_motors

SEED = 1
WEAR_SCALE = 4.0
"""Motors wear four times as fast (as the tests' small run): a small fleet still fails within the run."""
TEST_FRACTION = 0.25
VALIDATION_FRACTION = 0.1
"""model/train.py's defaults."""


def run_train_py(
    *, motors: int, days: float, rounds: int, workers: int, out: Path, log: Callable[[str], None]
) -> float:
    """Wall seconds of one `python model/train.py` run (its progress lines go to `log`)."""
    argv = [
        sys.executable, "model/train.py", "--motors", str(motors), "--days", str(days), "--rounds", str(rounds),
        "--seed", str(SEED), "--wear-scale", str(WEAR_SCALE), "--workers", str(workers), "--out", str(out),
        "--no-model-card",
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None  # noqa: S101 - stdout=PIPE above
    tail: list[str] = []
    for line in process.stdout:
        tail = [*tail[-9:], line.rstrip()]
        if line.strip().startswith(("1/5", "2/5", "3/5", "4/5", "5/5")):
            log(f"  train.py {motors}x{days:g}: {line.strip()}")
    if process.wait() != 0:
        raise RuntimeError(f"model/train.py failed ({process.returncode}):\n" + "\n".join(tail))
    return time.perf_counter() - started


def bare_train_s(motors: int, days: float, rounds: int, workers: int) -> tuple[float, int, int, int]:
    """Seconds of a DMatrix and xgboost.train on train.py's training rows; the rows, the booster's bytes, its trees."""
    history = generate(FleetConfig(motors=motors, seed=SEED, wear_scale=WEAR_SCALE), duration_s=days * DAY_S)
    data = build(history, workers=workers)
    split = split_motors(motors, test_fraction=TEST_FRACTION, validation_fraction=VALIDATION_FRACTION, seed=SEED)
    rows = data.of_motors(split["train"]).select(data.of_motors(split["train"]).trainable)
    params = {**artifact.HYPERPARAMETERS, "seed": SEED, "nthread": workers}
    started = time.perf_counter()
    matrix = xgb.DMatrix(rows.features, label=rows.labels, missing=np.nan)
    booster = xgb.train(params, matrix, num_boost_round=rounds)
    elapsed = time.perf_counter() - started
    return elapsed, len(rows), len(artifact.model_bytes(booster)), booster.num_boosted_rounds()


def measure(
    *, sizes: Sequence[tuple[int, float]], rounds: int, workers: int, log: Callable[[str], None]
) -> dict[str, Any]:
    ratios: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for motors, days in sizes:
        log(f"training: model/train.py --motors {motors} --days {days:g} --rounds {rounds}")
        with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
            wall_s = run_train_py(motors=motors, days=days, rounds=rounds, workers=workers, out=Path(folder), log=log)
            metrics = json.loads((Path(folder) / "metrics.json").read_text())
        log(f"training: bare xgboost.train on the same {motors}x{days:g} training rows")
        bare_s, train_rows, bare_bytes, bare_trees = bare_train_s(motors, days, rounds, workers)
        readings = int(metrics["data"]["readings"])
        trees = int(metrics["model"]["trees"])
        if trees != rounds or bare_trees != rounds:  # early stopping would make the sizes incomparable
            raise RuntimeError(f"{rounds} rounds asked, train.py grew {trees} trees and the floor {bare_trees}")
        # What the run spent outside train(): the interpreter starting, importing and exiting, the same
        # at every size (train()'s own total is rounded to 0.1 s, so this is too).
        startup_s = wall_s - float(metrics["timings_s"]["total"])
        label = f"{motors} motors x {days:g} days"
        ratios.append(
            ratio(
                f"train.py time, {label}",
                Figure(f"train.py, whole run ({readings:,} readings)", wall_s, "s"),
                Figure(f"bare xgboost.train on {train_rows:,} rows", bare_s, "s"),
                note=(
                    f"whole run: start-up and imports ({startup_s:.1f} s), simulate, features, train, replay, "
                    "artifact, plots; the floor: DMatrix, quantile sketch and the rounds"
                ),
            )
        )
        ratios.append(
            ratio(
                f"model size, {label}",
                Figure("model.tar.gz", float(metrics["model"]["artifact_bytes"]), "bytes"),
                Figure("bare booster (UBJSON)", float(bare_bytes), "bytes"),
                note="the artifact adds code/inference.py; its trees see a fifth of the negatives",
            )
        )
        runs.append(
            {
                "motors": motors,
                "days": days,
                "rounds": rounds,
                "readings": readings,
                "training_rows_bare": train_rows,
                "train_py_wall_s": wall_s,
                "train_py_startup_s": startup_s,
                "train_py_timings_s": metrics.get("timings_s"),
                "bare_xgboost_train_s": bare_s,
                "trees": trees,
                "bare_trees": bare_trees,
                "artifact_bytes": metrics["model"]["artifact_bytes"],
                "bare_booster_bytes": bare_bytes,
            }
        )
    return {"ratios": ratios, "details": {"runs": runs, "workers": workers, "wear_scale": WEAR_SCALE, "seed": SEED}}
