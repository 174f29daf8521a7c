"""Training data: simulated fleet history -> feature rows (the Lambda's own feature function) and labels.

Each motor's readings go, in time order, through `motor_maintenance.features.compute_features`,
the function the inference Lambda calls, so training and serving cannot drift apart. Rows are
the readings of running motors (the Lambda asks the model nothing about a stopped one).

Label: 1 if the motor fails, by a wear mode, within the next 24 operating hours. Readings in the
24 operating hours before a *random* failure are kept out of training and of the row metrics:
nothing in the signals announces such a failure, so as positives they would teach the model
noise and as negatives they would be wrong.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from device.history import History
from device.physics import NO_FAILURE, FailureMode
from motor_maintenance.features import FEATURE_NAMES, RunningStats, compute_features

HORIZON_OPERATING_S = 24 * 3600.0
"""The label's horizon: fails within this much running time."""
RANDOM_MODE = list(FailureMode).index(FailureMode.RANDOM)

Log = Callable[[str], None]
R = TypeVar("R")


@dataclass(frozen=True)
class Dataset:
    """Feature rows of running readings, with where each came from."""

    features: NDArray[np.float32]
    """[rows, len(FEATURE_NAMES)], NaN where a feature is unknown."""
    labels: NDArray[np.int8]
    """1: a wear-mode failure within HORIZON_OPERATING_S of operation."""
    unpredictable: NDArray[np.bool_]
    """The row precedes a random failure within the horizon: out of training and row metrics."""
    column: NDArray[np.int32]
    """The motor's column in the history."""
    step: NDArray[np.int32]
    """The reading's step (row index) in the history."""

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, mask: NDArray[np.bool_]) -> Dataset:
        return Dataset(
            self.features[mask], self.labels[mask], self.unpredictable[mask], self.column[mask], self.step[mask]
        )

    def of_motors(self, columns: Sequence[int]) -> Dataset:
        return self.select(np.isin(self.column, np.asarray(columns, dtype=np.int32)))

    @property
    def trainable(self) -> NDArray[np.bool_]:
        return ~self.unpredictable


def build(
    history: History,
    *,
    workers: int | None = None,
    log: Log | None = None,
    horizon_s: float = HORIZON_OPERATING_S,
) -> Dataset:
    """Features of every running reading of every motor, with labels; motors in parallel processes."""
    columns = list(range(len(history.motor_ids)))
    parts = in_processes(
        _motor_rows,
        [(history.motor(column),) for column in columns],
        workers=workers,
        log=log,
        unit="motors",
        readings=lambda _: history.steps,
    )
    features = np.concatenate([part[0] for part in parts]) if parts else np.empty((0, len(FEATURE_NAMES)))
    steps = np.concatenate([part[1] for part in parts]) if parts else np.empty(0, dtype=np.int32)
    column_of_row = np.concatenate(
        [np.full(len(part[1]), c, dtype=np.int32) for c, part in zip(columns, parts, strict=True)]
    )
    otf = history.operating_to_failure_s[steps, column_of_row]
    mode = history.next_failure_mode[steps, column_of_row]
    soon = otf <= horizon_s
    labels = (soon & (mode != NO_FAILURE) & (mode != RANDOM_MODE)).astype(np.int8)
    unpredictable = soon & (mode == RANDOM_MODE)
    return Dataset(features.astype(np.float32, copy=False), labels, unpredictable, column_of_row, steps)


def in_processes(
    function: Callable[..., R],
    jobs: Sequence[tuple[Any, ...]],
    *,
    workers: int | None,
    log: Log | None,
    unit: str,
    readings: Callable[[R], int],
) -> list[R]:
    """`function(*job)` for every job, in `workers` processes (all cores by default), results in the jobs' order.

    A job is one motor's data (a few MB a year); a few are in flight per worker, not the whole fleet's
    copies at once. Processes start with `spawn`: forking a process that runs threads (XGBoost's, a
    test server's) can deadlock the child. Progress goes to `log` every tenth of the jobs.
    """
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    started = time.perf_counter()
    done: dict[int, R] = {}
    progress = _Progress(log, len(jobs), unit, started)
    if workers == 1:
        for index, job in enumerate(jobs):
            done[index] = function(*job)
            progress.one(readings(done[index]))
        return [done[index] for index in range(len(jobs))]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: dict[Future[R], int] = {}
        queue = iter(enumerate(jobs))
        while True:
            for index, job in islice(queue, 2 * workers - len(pending)):
                pending[pool.submit(function, *job)] = index
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                done[index] = future.result()
                progress.one(readings(done[index]))
    return [done[index] for index in range(len(jobs))]


class _Progress:
    """`  features: 6/60 motors, 315,360 readings in 47 s (6,723/s)`, every tenth of the jobs."""

    def __init__(self, log: Log | None, total: int, unit: str, started: float) -> None:
        self.log, self.total, self.unit, self.started = log, total, unit, started
        self.done = self.readings = 0

    def one(self, readings: int) -> None:
        self.done += 1
        self.readings += readings
        every = max(self.total // 10, 1)
        if self.log is None or (self.done % every and self.done != self.total):
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.log(
            f"  features: {self.done}/{self.total} {self.unit}, {self.readings:,} readings in {elapsed:.0f} s "
            f"({self.readings / elapsed:,.0f}/s)"
        )


def _motor_rows(history: History) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
    """A one-motor history's feature rows (running readings) and their steps, through the Lambda's function."""
    rows: list[list[float]] = []
    steps: list[int] = []
    stats: RunningStats | None = None
    running = history.running[:, 0]
    for t in range(history.steps):
        reading = history.reading(t, 0)
        vector, stats = compute_features(reading, stats)
        if running[t]:
            rows.append(vector)
            steps.append(t)
    features = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))
    return features, np.asarray(steps, dtype=np.int32)


def split_motors(motors: int, *, test_fraction: float, validation_fraction: float, seed: int) -> dict[str, list[int]]:
    """Motor columns for training, validation (early insight into over-fitting) and test: by motor, never by row."""
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1 or test_fraction + validation_fraction >= 1:
        raise ValueError("need 0 < test fraction, 0 <= validation fraction, and their sum below 1")
    order = np.random.default_rng(seed).permutation(motors).tolist()
    n_test = max(1, round(motors * test_fraction))
    n_validation = round(motors * validation_fraction)
    if motors - n_test - n_validation < 1:
        raise ValueError(f"{motors} motors leave none to train on; simulate more motors")
    return {
        "test": sorted(order[:n_test]),
        "validation": sorted(order[n_test : n_test + n_validation]),
        "train": sorted(order[n_test + n_validation :]),
    }
