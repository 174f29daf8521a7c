"""The embedded model two ways, xgboost-cpu and compiled (treelite/tl2cgen), on the same booster and rows.

`InferenceMode: embedded` runs the artifact's own `code/inference.py` on its XGBoost booster inside the
function (motor_adapters.embedded_predictor; ModelRuntimeLayer ships xgboost-cpu, NumPy and SciPy). The
alternative is a compiled model: tl2cgen turns the booster's trees into C, a C compiler makes a shared
library of them, and the function calls it through ctypes, with no NumPy, SciPy or XGBoost at all. Both
are measured here, as ratios to a floor timed in the same run:

- one row's prediction, CPU: the embedded path as the function runs it (`EmbeddedPredictor.predict`:
  CSV in, the contract's JSON out, parsed) and the compiled library called on the row's values, each
  against a bare single-row `inplace_predict` (warm_inference's floor);
- an execution environment's first prediction, wall time in a fresh interpreter: importing what each
  needs, loading the model and predicting one row; the compiled path against the xgboost-cpu one;
- what the function must ship beside its code: the compiled library against the installed size of the
  packages ModelRuntimeLayer holds (xgboost-cpu, NumPy, SciPy), measured in this environment.

The details say how far the compiled probabilities are from XGBoost's on every row, and what the
compiled path cannot give: TreeSHAP drivers (`pred_contribs`), which the contract computes for rows at or
above its threshold and which a compiled library would need a second implementation for.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import io
import json
import math
import shutil
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
from benchmarks.warm_inference import _bare_predict_cpu_s, _feature_rows, per_row_cpu_s, running_events

LAYER_PACKAGES = ("xgboost-cpu", "numpy", "scipy")
"""What layers/model_runtime/requirements.txt installs for the embedded path (their dependencies included)."""
LIBRARY_NAME = "model.so"


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


# Runs in a fresh interpreter: what the function has at init is imported first, off the clock.
FIRST_XGBOOST = """
import json, sys, time
from motor_adapters.embedded_predictor import load_artifact
from motor_adapters.sagemaker_predictor import ACCEPT, parse_predictions
from motor_maintenance.features import to_csv_row
archive = open(sys.argv[1], "rb").read()
row = [float("nan") if value is None else value for value in json.loads(sys.argv[2])]
started = time.perf_counter()
model = load_artifact(archive, where=sys.argv[1])
data = model.code.input_fn(to_csv_row(row), "text/csv")
answer, _ = model.code.output_fn(model.code.predict_fn(data, model.booster), ACCEPT)
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


def measure(*, artifact: Path, readings: int, first_predictions: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Both paths on the artifact's booster, over the feature rows of `readings` readings of running motors."""
    from motor_adapters.embedded_predictor import EmbeddedPredictor, load_artifact  # noqa: PLC0415

    archive = artifact.read_bytes()
    model = load_artifact(archive, where=str(artifact))
    booster: xgb.Booster = model.booster
    rows = _feature_rows(running_events(readings))
    matrix = np.asarray(rows, dtype=np.float32)
    log(f"embedded model: {len(rows)} rows of running motors, {booster.num_boosted_rounds()} trees")

    embedded = EmbeddedPredictor(f"s3://bench/{artifact.name}", _Archive(archive))
    xgboost_s = per_row_cpu_s(lambda row: embedded.predict([row]), rows)
    floor_s = _bare_predict_cpu_s(booster, matrix)

    with tempfile.TemporaryDirectory(prefix="bench-compiled-") as folder:
        library, compile_s = compile_booster(booster, Path(folder), log=log)
        compiled = CompiledModel(library)
        compiled_s = per_row_cpu_s(compiled.predict_one, rows)
        differences = [
            abs(compiled.predict_one(row) - float(expected))
            for row, expected in zip(rows, booster.inplace_predict(matrix, missing=np.nan), strict=True)
        ]
        log("embedded model: first predictions in fresh interpreters")
        first_xgboost_s = _first_prediction_s(FIRST_XGBOOST, artifact, rows[0], runs=first_predictions)
        first_compiled_s = _first_prediction_s(FIRST_COMPILED, library, rows[0], runs=first_predictions)
        library_bytes = library.stat().st_size
    layer = installed_bytes(LAYER_PACKAGES)
    layer_bytes = sum(layer.values())
    floor = Figure("bare single-row inplace_predict", floor_s * 1e6, "µs")
    return {
        "ratios": [
            ratio(
                "embedded xgboost-cpu, CPU per row (as the function runs it)",
                Figure("EmbeddedPredictor.predict, one row", xgboost_s * 1e6, "µs"),
                floor,
                note="CSV in, the contract's JSON out and parsed; drivers for rows at or above 0.2",
            ),
            ratio(
                "embedded compiled (tl2cgen), CPU per row",
                Figure("the compiled library through ctypes, one row", compiled_s * 1e6, "µs"),
                floor,
                note="no drivers",
            ),
            ratio(
                "embedded first prediction, compiled vs xgboost-cpu",
                Figure(f"compiled: ctypes, load, predict (median of {first_predictions})", first_compiled_s, "s"),
                Figure(f"xgboost-cpu: import, load, predict (median of {first_predictions})", first_xgboost_s, "s"),
                note="fresh interpreter, the function's own modules imported first",
            ),
            ratio(
                "embedded model on disk, compiled vs xgboost-cpu",
                Figure("compiled library", library_bytes, "bytes"),
                Figure(f"{', '.join(LAYER_PACKAGES)} installed here", layer_bytes, "bytes"),
                note="this machine's platform; the library grows with the trees",
            ),
        ],
        "details": {
            "rows": len(rows),
            "trees": booster.num_boosted_rounds(),
            "compile_s": compile_s,
            "max_abs_difference": max(differences),
            "layer_bytes": layer,
            "library_bytes": library_bytes,
            "first_prediction_s": {"xgboost": first_xgboost_s, "compiled": first_compiled_s},
            "us_per_row": {"xgboost": xgboost_s * 1e6, "compiled": compiled_s * 1e6, "bare": floor_s * 1e6},
            "compiled_lacks": "TreeSHAP drivers (pred_contribs)",
        },
    }
