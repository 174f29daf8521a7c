"""The embedded model three ways on the same booster and rows: pure Python (shipped), xgboost-cpu, compiled.

`InferenceMode: embedded` runs the model inside InferenceFunction. What ships is pure Python:
`EmbeddedPredictor` reads the booster as XGBoost JSON (`embedded/xgboost-model.json`) from model.tar.gz and
motor_model.boosted_trees evaluates its trees (the probability, and TreeSHAP drivers for rows at or above
the drivers threshold). It is preferred to the two alternatives measured beside it because it needs no
layer (three modules of the shared layer, against the 177-231 MB of xgboost-cpu, NumPy and SciPy), no
native build for Lambda's arm64, and an execution environment's first prediction takes less than a tenth
of a second, not a second:

- xgboost-cpu: the artifact's own `code/inference.py` (input_fn, predict_fn, output_fn, asked for the
  JSON the function asks the endpoint for) on its XGBoost booster, with a layer of xgboost-cpu, NumPy
  and SciPy;
- compiled: tl2cgen turns the trees into C, a C compiler makes a shared library of them, called through
  ctypes. It is the fastest per row, but it needs a native build for arm64 and has no drivers: TreeSHAP
  (`pred_contribs`) would need a second implementation.

Each is measured as a ratio to a floor timed in the same run:

- one row's prediction, CPU, on the stream's rows below the drivers threshold (the common case): each
  option as the function would run it, against a bare single-row `inplace_predict` (warm_inference's);
- one row's drivers, CPU, on the stream's most likely rows: the shipped path with its threshold at zero
  (probability, TreeSHAP, the top three) against XGBoost's `pred_contribs` of one row on one thread,
  what the contract computes them with. TreeSHAP in Python costs tens of times XGBoost's and hundreds
  of times the probability: rows that get drivers are the rare ones;
- an execution environment's first prediction, wall time in a fresh interpreter: importing what the
  option adds to the function, loading the model from the archive's bytes and predicting one row;
  against the xgboost-cpu path;
- what the option adds to the function on disk: the shipped modules' bytes, the compiled library's,
  against the installed size of xgboost-cpu, NumPy and SciPy in this environment.

The details say how far each option's probabilities are from XGBoost's on every row, and the pure-Python
TreeSHAP contributions from `pred_contribs` on the rows explained.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import io
import json
import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from benchmarks.report import REPO, XGBOOST_DISTRIBUTION, Figure, ratio
from benchmarks.warm_inference import bare_predict_cpu_s, feature_rows, per_row_cpu_s, running_events
from local.sagemaker_endpoint import import_program
from motor_adapters.embedded_predictor import DRIVERS_MIN_PROBABILITY, EmbeddedPredictor
from motor_adapters.sagemaker_predictor import ACCEPT, parse_predictions
from motor_maintenance.features import to_csv_row
from motor_maintenance.prediction import Prediction
from motor_model.artifact import load_artifact

SHIPPED_MODULES = tuple(
    REPO / "layers" / "shared" / package / name
    for package, name in (
        ("motor_model", "boosted_trees.py"),
        ("motor_model", "artifact.py"),
        ("motor_adapters", "embedded_predictor.py"),
    )
)
"""All the shipped path adds to the function: three modules of the shared layer, no layer of its own."""
LAYER_PACKAGES = (XGBOOST_DISTRIBUTION, "numpy", "scipy")
"""What a layer for the xgboost-cpu path installs (their dependencies included), as installed here."""
CAN_COMPILE = all(importlib.util.find_spec(name) is not None for name in ("tl2cgen", "treelite"))
"""tl2cgen and treelite have no wheels for Linux on ARM (requirements-dev.txt): there the compiled option is
left out of the run, and the details say why."""
LIBRARY_NAME = "model.so"
DRIVERS_ROWS = 20
"""The stream's most likely rows are explained; TreeSHAP visits every node of every tree whatever the row."""


class CompiledModel:
    """A tl2cgen-compiled booster, called through ctypes one row at a time: what a compiled embedded path would run.

    The library's `predict(union Entry* row, int pred_margin, float* out)` reads one row of `Entry`
    (a float, or `missing` = -1 for an absent value), adds the trees' leaves and the base score to
    `*out` and applies the objective's sigmoid (pred_margin 0): the probability.
    """

    class _Entry(ctypes.Union):
        _fields_ = (("missing", ctypes.c_int), ("fvalue", ctypes.c_float), ("qvalue", ctypes.c_int))

    def __init__(self, library: Path) -> None:
        self._library = ctypes.CDLL(str(library))
        self._library.predict.argtypes = (ctypes.POINTER(self._Entry), ctypes.c_int, ctypes.POINTER(ctypes.c_float))
        self._library.predict.restype = None
        self.features = int(self._library.get_num_feature())
        self._row_type = self._Entry * self.features

    def predict_one(self, row: Sequence[float]) -> float:
        entries = self._row_type()
        for entry, value in zip(entries, row, strict=True):
            if math.isnan(value):
                entry.missing = -1
            else:
                entry.fvalue = value
        out = ctypes.c_float(0.0)  # the library adds every tree's leaf to it: it must start at zero
        self._library.predict(entries, 0, ctypes.byref(out))
        return float(out.value)


class ArtifactCode:
    """The xgboost-cpu path: the artifact's own code/inference.py on its booster.

    model.tar.gz unpacked in a scratch folder, code/inference.py imported and its model_fn called; each
    prediction sends the CSV rows through input_fn, predict_fn and output_fn, asking for the JSON the
    function asks the endpoint for (drivers for rows at or above the contract's threshold), read by the
    endpoint's parser.
    """

    MODULE_NAME = "bench_artifact_inference"

    def __init__(self, archive: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="bench-artifact-") as folder:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                tar.extractall(folder, filter="data")
            self.code = import_program(self.MODULE_NAME, Path(folder) / "code" / "inference.py")
            self.booster: xgb.Booster = self.code.model_fn(folder)

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        body = "\n".join(to_csv_row(list(row)) for row in rows)
        data = self.code.input_fn(body, "text/csv")
        answer, _ = self.code.output_fn(self.code.predict_fn(data, self.booster), ACCEPT)
        return parse_predictions(answer)


class _Archive:
    """The S3 client's get_object, answered with the artifact's bytes: EmbeddedPredictor loads it on its first row."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": io.BytesIO(self._body)}


def compile_booster(booster: xgb.Booster, folder: Path, *, log: Callable[[str], None]) -> tuple[Path, float]:
    """The booster compiled to `folder`/model.so by tl2cgen and the system's C compiler: its path, wall seconds."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("no C compiler (gcc or cc) on PATH: tl2cgen needs one to compile the model")
    import tl2cgen  # noqa: PLC0415 - only this benchmark needs them
    import treelite  # noqa: PLC0415

    started = time.perf_counter()
    model = treelite.frontend.from_xgboost(booster)
    library = folder / LIBRARY_NAME
    tl2cgen.export_lib(
        model, toolchain=Path(compiler).name, libpath=str(library), params={"parallel_comp": 4}, nthread=1
    )
    seconds = time.perf_counter() - started
    size = library.stat().st_size
    log(f"embedded model: {booster.num_boosted_rounds()} trees compiled in {seconds:.1f} s ({size:,} bytes)")
    return library, seconds


# Each runs in a fresh interpreter. What the function imports anyway is imported first, off the clock; the
# clock covers what the option adds: its imports, the model loaded from the archive's bytes, one prediction.
FIRST_PURE_PYTHON = """
import io, json, sys, time
import botocore.exceptions, motor_maintenance.errors, motor_maintenance.prediction
archive = open(sys.argv[1], "rb").read()
row = [float("nan") if value is None else value for value in json.loads(sys.argv[2])]
class Archive:
    def get_object(self, **_):
        return {"Body": io.BytesIO(archive)}
started = time.perf_counter()
from motor_adapters.embedded_predictor import EmbeddedPredictor
EmbeddedPredictor("s3://bench/model.tar.gz", Archive()).predict([row])
print(json.dumps({"wall_s": time.perf_counter() - started}))
"""
FIRST_XGBOOST = """
import importlib.util, io, json, sys, tarfile, tempfile, time
from motor_adapters.sagemaker_predictor import ACCEPT, parse_predictions
from motor_maintenance.features import to_csv_row
archive = open(sys.argv[1], "rb").read()
row = [float("nan") if value is None else value for value in json.loads(sys.argv[2])]
started = time.perf_counter()
with tempfile.TemporaryDirectory() as folder:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")
    spec = importlib.util.spec_from_file_location("inference", folder + "/code/inference.py")
    code = sys.modules["inference"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    booster = code.model_fn(folder)
data = code.input_fn(to_csv_row(row), "text/csv")
answer, _ = code.output_fn(code.predict_fn(data, booster), ACCEPT)
parse_predictions(answer)
print(json.dumps({"wall_s": time.perf_counter() - started}))
"""
FIRST_COMPILED = """
import json, sys, time
row = json.loads(sys.argv[2])
started = time.perf_counter()
import ctypes
class Entry(ctypes.Union):
    _fields_ = (("missing", ctypes.c_int), ("fvalue", ctypes.c_float), ("qvalue", ctypes.c_int))
library = ctypes.CDLL(sys.argv[1])
library.predict.argtypes = (ctypes.POINTER(Entry), ctypes.c_int, ctypes.POINTER(ctypes.c_float))
entries, out = (Entry * len(row))(), ctypes.c_float(0.0)
for entry, value in zip(entries, row):
    if value is None:
        entry.missing = -1
    else:
        entry.fvalue = value
library.predict(entries, 0, ctypes.byref(out))
print(json.dumps({"wall_s": time.perf_counter() - started}))
"""


def _first_prediction_s(script: str, target: Path, row: list[float], *, runs: int) -> float:
    """Median wall seconds of `runs` fresh interpreters running `script` on `target` and `row`."""
    # JSON has no NaN: a missing value travels as null.
    as_json = json.dumps([None if math.isnan(value) else value for value in row])
    env = {"PYTHONPATH": str(REPO / "layers" / "shared"), "PATH": "/usr/bin:/bin"}
    times = []
    for _ in range(runs):
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", script, str(target), as_json],
            capture_output=True, text=True, timeout=120, check=False, env=env, cwd=REPO,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"first prediction failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        times.append(float(json.loads(done.stdout.strip().splitlines()[-1])["wall_s"]))
    return sorted(times)[len(times) // 2]


def installed_bytes(packages: Sequence[str]) -> dict[str, int]:
    """Bytes on disk of each installed distribution's files (its bundled native libraries included)."""
    sizes = {}
    for name in packages:
        distribution = importlib.metadata.distribution(name)
        total = 0
        for file in distribution.files or ():
            path = Path(str(distribution.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
        sizes[name] = total
    return sizes


def _pred_contribs(booster: xgb.Booster, row: np.ndarray) -> np.ndarray:
    """One row's contributions as the contract computes its drivers, the bias last, on one thread.

    The contract's DMatrix takes every core; for one row, OpenMP's start-up and waits then cost more than
    the trees (ten times the CPU on two cores, measured): the floor is the work, not that overhead.
    """
    matrix = xgb.DMatrix(row[np.newaxis, :], missing=np.nan, nthread=1)
    return np.asarray(booster.predict(matrix, pred_contribs=True)[0])


def measure(*, artifact: Path, readings: int, first_predictions: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The three options on the artifact's booster, over the feature rows of `readings` readings of running motors."""
    archive = artifact.read_bytes()
    url = f"s3://bench/{artifact.name}"
    trees = load_artifact(archive)
    xgboost_path = ArtifactCode(archive)
    booster = xgboost_path.booster
    rows = feature_rows(running_events(readings))
    matrix = np.asarray(rows, dtype=np.float32)
    expected = [float(p) for p in booster.inplace_predict(matrix, missing=np.nan)]
    common = [index for index, p in enumerate(expected) if p < DRIVERS_MIN_PROBABILITY]
    likely = sorted(range(len(rows)), key=lambda index: -expected[index])[:DRIVERS_ROWS]
    if not common:
        raise RuntimeError(f"no row below the drivers threshold {DRIVERS_MIN_PROBABILITY}: nothing to time")
    log(
        f"embedded model: {len(rows)} rows of running motors ({len(common)} below the drivers threshold), "
        f"{booster.num_boosted_rounds()} trees"
    )

    common_rows = [rows[index] for index in common]
    shipped = EmbeddedPredictor(url, _Archive(archive))
    pure_s = per_row_cpu_s(lambda row: shipped.predict([row]), common_rows)
    xgboost_s = per_row_cpu_s(lambda row: xgboost_path.predict([row]), common_rows)
    floor_s = bare_predict_cpu_s(booster, matrix[common])

    log(f"embedded model: drivers of the {len(likely)} most likely rows, pure Python and pred_contribs")
    explaining = EmbeddedPredictor(url, _Archive(archive), drivers_min_probability=0.0)
    # A row explained takes about 20 ms: one pass over them is enough (2,000 calls would take 40 s)
    drivers_s = per_row_cpu_s(lambda row: explaining.predict([row]), [rows[index] for index in likely], calls=1)
    contribs_s = per_row_cpu_s(lambda row: _pred_contribs(booster, row), matrix[likely])
    contribution_differences = [
        max(
            abs(a - float(b))
            for a, b in zip(trees.contributions(rows[index]), _pred_contribs(booster, matrix[index]), strict=True)
        )
        for index in likely
    ]
    pure_differences = [abs(trees.probability(row) - p) for row, p in zip(rows, expected, strict=True)]

    log("embedded model: first predictions in fresh interpreters")
    first_s = {
        "pure_python": _first_prediction_s(FIRST_PURE_PYTHON, artifact, rows[0], runs=first_predictions),
        "xgboost": _first_prediction_s(FIRST_XGBOOST, artifact, rows[0], runs=first_predictions),
    }
    compiled = (
        _measure_compiled(booster, rows, expected, common_rows, first_predictions=first_predictions, log=log)
        if CAN_COMPILE
        else None
    )
    shipped_bytes = {path.name: path.stat().st_size for path in SHIPPED_MODULES}
    layer = installed_bytes(LAYER_PACKAGES)
    floor = Figure("bare single-row inplace_predict", floor_s * 1e6, "µs")
    first_floor = Figure(f"xgboost-cpu: import, load, predict (median of {first_predictions})", first_s["xgboost"], "s")
    layer_figure = Figure(f"{', '.join(LAYER_PACKAGES)} installed here", sum(layer.values()), "bytes")
    ratios = [
        ratio(
            "embedded pure Python (shipped), CPU per row, as the function runs it",
            Figure("EmbeddedPredictor.predict, one row below the drivers threshold", pure_s * 1e6, "µs"),
            floor,
            note="motor_model.boosted_trees: the probability, no drivers below the threshold",
        ),
        ratio(
            "embedded xgboost-cpu, CPU per row",
            Figure("the artifact's inference.py, one row below the drivers threshold", xgboost_s * 1e6, "µs"),
            floor,
            note="CSV in, the contract's JSON out and parsed",
        ),
        ratio(
            "embedded drivers, pure-Python TreeSHAP vs XGBoost pred_contribs, CPU per row",
            Figure("EmbeddedPredictor.predict, one row with drivers", drivers_s * 1e6, "µs"),
            Figure("XGBoost pred_contribs, one row, one thread", contribs_s * 1e6, "µs"),
            note=f"the {len(likely)} most likely rows, drivers forced (threshold 0): the probability, "
            "TreeSHAP and the top three against the contributions alone",
        ),
        ratio(
            "embedded first prediction, pure Python (shipped) vs xgboost-cpu",
            Figure(f"pure Python: import, load, predict (median of {first_predictions})", first_s["pure_python"], "s"),
            first_floor,
            note="fresh interpreter, what the function imports anyway imported first",
        ),
        ratio(
            "embedded model on disk, pure Python (shipped) vs xgboost-cpu",
            Figure(f"{', '.join(shipped_bytes)}", sum(shipped_bytes.values()), "bytes"),
            layer_figure,
            note="source only: no layer, nothing native",
        ),
    ]
    details: dict[str, Any] = {
        "shipped": "pure_python",
        "rows": len(rows),
        "rows_below_drivers_threshold": len(common),
        "drivers_rows": {
            "rows": len(likely),
            "probability_max": expected[likely[0]],
            "probability_min": expected[likely[-1]],
            "forced": expected[likely[-1]] < DRIVERS_MIN_PROBABILITY,
        },
        "trees": booster.num_boosted_rounds(),
        "max_abs_difference": {"pure_python": max(pure_differences)},
        "max_abs_contribution_difference": {"pure_python": max(contribution_differences)},
        "us_per_row": {
            "pure_python": pure_s * 1e6,
            "xgboost": xgboost_s * 1e6,
            "bare": floor_s * 1e6,
            "drivers_pure_python": drivers_s * 1e6,
            "drivers_pred_contribs": contribs_s * 1e6,
        },
        "first_prediction_s": first_s,
        "shipped_bytes": shipped_bytes,
        "layer_bytes": layer,
    }
    if compiled is None:
        why_not = "tl2cgen and treelite are not installed (no wheels for Linux on ARM)"
        log(f"embedded model: the compiled option is not measured: {why_not}")
        details["compiled"] = {"not_measured": why_not}
        return {"ratios": ratios, "details": details}
    ratios += [
        ratio(
            "embedded compiled (tl2cgen), CPU per row",
            Figure("the compiled library through ctypes, one row", compiled["s_per_row"] * 1e6, "µs"),
            floor,
            note="no drivers; needs a native build for arm64",
        ),
        ratio(
            "embedded first prediction, compiled vs xgboost-cpu",
            Figure(f"compiled: ctypes, load, predict (median of {first_predictions})", compiled["first_s"], "s"),
            first_floor,
            note="fresh interpreter, what the function imports anyway imported first",
        ),
        ratio(
            "embedded model on disk, compiled vs xgboost-cpu",
            Figure("compiled library", compiled["library_bytes"], "bytes"),
            layer_figure,
            note="this machine's platform; the library grows with the trees",
        ),
    ]
    details["compile_s"] = compiled["compile_s"]
    details["max_abs_difference"]["compiled"] = compiled["max_abs_difference"]
    details["us_per_row"]["compiled"] = compiled["s_per_row"] * 1e6
    details["first_prediction_s"]["compiled"] = compiled["first_s"]
    details["library_bytes"] = compiled["library_bytes"]
    details["compiled_lacks"] = "TreeSHAP drivers (pred_contribs)"
    return {"ratios": ratios, "details": details}


def _measure_compiled(
    booster: xgb.Booster,
    rows: list[list[float]],
    expected: Sequence[float],
    common_rows: Sequence[Sequence[float]],
    *,
    first_predictions: int,
    log: Callable[[str], None],
) -> dict[str, float]:
    """The compiled option: CPU per row, distance from XGBoost, first prediction, library size, compile time."""
    with tempfile.TemporaryDirectory(prefix="bench-compiled-") as folder:
        library, compile_s = compile_booster(booster, Path(folder), log=log)
        compiled = CompiledModel(library)
        return {
            "s_per_row": per_row_cpu_s(compiled.predict_one, common_rows),
            "max_abs_difference": max(
                abs(compiled.predict_one(row) - p) for row, p in zip(rows, expected, strict=True)
            ),
            "first_s": _first_prediction_s(FIRST_COMPILED, library, rows[0], runs=first_predictions),
            "library_bytes": library.stat().st_size,
            "compile_s": compile_s,
        }
