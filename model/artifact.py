"""The XGBoost classifier's hyperparameters, its fit, and the model.tar.gz that SageMaker hosts.

Self-contained (stdlib, NumPy, XGBoost): the SageMaker training container imports it as a
top-level module (model/sagemaker_entry.py), so training in SageMaker and on a laptop use the
same settings. An artifact's version and manifest are read back by model/versions.py, through the
layer's motor_model.artifact, the one parser of manifests.

The artifact:

    model.tar.gz
    ├── xgboost-model                the Booster (XGBoost's UBJSON format), loadable by SageMaker's
    │                                XGBoost image 3.0-5 in algorithm mode or script mode
    ├── code/inference.py            model_fn/input_fn/predict_fn/output_fn (script mode)
    ├── embedded/xgboost-model.json  the same Booster in XGBoost's JSON format, which InferenceMode
    │                                embedded reads with the standard library (motor_model.artifact)
    └── meta/manifest.json           what the model is: its version, when and on what it was trained,
                                     its metrics and feature names (docs/model.md, "Versions")

The template hosts it in script mode (SAGEMAKER_PROGRAM=inference.py,
SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code), which adds each row's top drivers to the
answer. Only `xgboost-model` sits at the top level, because the algorithm-mode server loads
every top-level file as a model. The booster carries no feature names (the algorithm-mode
server builds its input matrix without names, and XGBoost refuses a named booster such a
matrix); the names travel as the booster attribute `feature_names` (inference.feature_names reads it).

The model's version is a content hash of `xgboost-model`: "m-" and the first 12 hex digits of its
SHA-256 (`model_version`). The same bytes always have the same version, with or without a manifest,
so an artifact written before manifests existed gets the version it would have had. model/inference.py
and the layer's motor_model.artifact compute it too, each on its own (they run where this module is
not); tests/unit/test_model_manifest.py checks the three agree.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

IMAGE_VERSION = "3.0-5"
"""SageMaker's built-in XGBoost image that serves the artifact (template parameter XGBoostImageVersion). It runs
XGBoost 3.0.5, which model/requirements.txt pins too, so the saved format matches."""
MODEL_FILE = "xgboost-model"
CODE_DIR = "code"
EMBEDDED_DIR = "embedded"
EMBEDDED_MODEL_FILE = f"{EMBEDDED_DIR}/xgboost-model.json"
"""The layer's motor_model.artifact reads the booster here (tests/unit/test_boosted_trees.py checks the names agree)."""
FEATURE_NAMES_ATTR = "feature_names"
META_DIR = "meta"
MANIFEST_FILE = f"{META_DIR}/manifest.json"
"""Beside the booster, not at the top level, for the same reason as `embedded/`."""
MANIFEST_FORMAT = 1
VERSION_PREFIX = "m-"
VERSION_HEX_DIGITS = 12

HYPERPARAMETERS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",
    "tree_method": "hist",
    "max_depth": 5,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "max_bin": 256,
}
NUM_BOOST_ROUND = 300
NEGATIVE_FRACTION = 0.2
"""Share of the negative rows (no failure within the horizon) trained on. Failures are rare (about
one reading in 200 is positive) and neighbouring readings say nearly the same, so a fifth of the
negatives teaches as much in a fifth of the time. Every positive row is kept, and each training
row gets the base margin ln(1 / fraction), so the trees learn the odds of the full data and the
model's probabilities stay calibrated (served without any margin)."""


def fit(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    feature_names: Sequence[str],
    params: dict[str, Any] | None = None,
    num_boost_round: int | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    nthread: int | None = None,
    log: Callable[[str], None] | None = print,
    seed: int = 0,
    negative_fraction: float = NEGATIVE_FRACTION,
) -> xgb.Booster:
    """Train the binary classifier; NaN marks a missing value. Logs the PR-AUC on each set now and then."""
    if features.ndim != 2 or features.shape[1] != len(feature_names):
        raise ValueError(f"expected {len(feature_names)} feature columns, got shape {features.shape}")
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    if not 0 < negative_fraction <= 1:
        raise ValueError(f"negative_fraction must be in (0, 1], not {negative_fraction}")
    # base_score 0.5 is a margin of 0: with the per-row base margin below, the served model's
    # output is the trees' sum alone, the log-odds of the full data.
    settings = {**HYPERPARAMETERS, **(params or {}), "seed": seed, "base_score": 0.5}
    if nthread is not None:
        settings["nthread"] = nthread
    rounds = num_boost_round or NUM_BOOST_ROUND
    keep = (labels == 1) | (np.random.default_rng(seed).random(len(labels)) < negative_fraction)
    margin = np.full(int(keep.sum()), -math.log(negative_fraction), dtype=np.float32)
    train = xgb.DMatrix(features[keep], label=labels[keep], base_margin=margin, missing=np.nan)
    callbacks: list[xgb.callback.TrainingCallback] = []
    if log is not None:
        evals = [(train, "train")]
        if validation is not None:
            evals.append((xgb.DMatrix(validation[0], label=validation[1], missing=np.nan), "validation"))
        callbacks.append(_Progress(rounds, evals, log))
    booster = xgb.train(settings, train, num_boost_round=rounds, verbose_eval=False, callbacks=callbacks)
    booster.set_attr(**{FEATURE_NAMES_ATTR: ",".join(feature_names)})
    return booster


class _Progress(xgb.callback.TrainingCallback):
    """A line every tenth of the rounds: the metric on each evaluation set.

    The sets are evaluated on those rounds alone, not passed to `xgb.train`, which would evaluate them after
    every round: on a year of a large fleet that was about a third of the training time, spent on figures no one
    reads (nothing stops early). The trees do not depend on it either way.
    """

    def __init__(self, rounds: int, evals: list[tuple[xgb.DMatrix, str]], log: Callable[[str], None]) -> None:
        super().__init__()
        self._rounds, self._evals, self._log = rounds, evals, log
        self._every = max(rounds // 10, 1)

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        done = epoch + 1
        if done % self._every == 0 or done == self._rounds:
            # "[epoch]\ttrain-aucpr:0.99\tvalidation-aucpr:0.65": each set's name, its metric and its value
            scored = (item.rpartition(":") for item in model.eval_set(self._evals, epoch).split("\t")[1:])
            scores = ", ".join(f"{name.replace('-', ' ', 1)} {float(value):.4f}" for name, _, value in scored)
            self._log(f"  round {done}/{self._rounds}: {scores}")
        return False


def model_bytes(booster: xgb.Booster) -> bytes:
    """The booster in XGBoost's own binary JSON (UBJSON) format, as `save_model` writes it."""
    return bytes(booster.save_raw(raw_format="ubj"))


def model_version(data: bytes) -> str:
    """The version of the model whose `xgboost-model` file holds `data`: "m-" and 12 hex digits of its SHA-256."""
    return VERSION_PREFIX + hashlib.sha256(data).hexdigest()[:VERSION_HEX_DIGITS]


def booster_feature_names(booster: xgb.Booster) -> list[str]:
    """The feature order fit() stored on the booster (empty if it stored none)."""
    text = booster.attr(FEATURE_NAMES_ATTR)
    return text.split(",") if text else []


def manifest(booster: xgb.Booster, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of `booster`: its version and feature names, and what the trainer says about it.

    `metadata` may give `trained_at` (a datetime or ISO text; default: now), `data` (the period and source:
    `first_reading`, `last_reading`), `motors` (lists of motor ids by part: `train`, `validation`, `test`),
    `failures` (counts by mode in the training motors) and `metrics` (the evaluation's figures). Anything
    else it holds is kept under its own key. The same booster and metadata give the same manifest.
    """
    given = dict(metadata or {})
    trained_at = given.pop("trained_at", None) or datetime.now(UTC).replace(microsecond=0)
    if isinstance(trained_at, datetime):
        trained_at = trained_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    data = model_bytes(booster)
    return {
        "format": MANIFEST_FORMAT,
        "version": model_version(data),
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "trained_at": trained_at,
        "xgboost": xgb.__version__,
        "data": given.pop("data", {}),
        "motors": given.pop("motors", {}),
        "failures": given.pop("failures", {}),
        "metrics": given.pop("metrics", {}),
        "feature_names": booster_feature_names(booster),
        **given,
    }


def _members(
    booster: xgb.Booster, inference_script: Path, metadata: Mapping[str, Any] | None
) -> list[tuple[str, bytes]]:
    """The artifact's files: the booster at the top, the inference code in code/, the booster as JSON in
    embedded/, the manifest in meta/."""
    document = json.dumps(manifest(booster, metadata), indent=2, sort_keys=True, default=str) + "\n"
    return [
        (MODEL_FILE, model_bytes(booster)),
        (f"{CODE_DIR}/{inference_script.name}", inference_script.read_bytes()),
        (EMBEDDED_MODEL_FILE, bytes(booster.save_raw(raw_format="json"))),
        (MANIFEST_FILE, document.encode()),
    ]


def write_model_dir(
    booster: xgb.Booster, model_dir: Path, *, inference_script: Path, metadata: Mapping[str, Any] | None = None
) -> Path:
    """The artifact unpacked, as a SageMaker training job leaves it in SM_MODEL_DIR to be packed."""
    for name, data in _members(booster, inference_script, metadata):
        target = model_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return model_dir


def write_model_tar(
    booster: xgb.Booster, path: Path, *, inference_script: Path, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write model.tar.gz: `xgboost-model` at the top, `code/`, `embedded/` and `meta/` beside it.

    Deterministic bytes for the same booster and metadata (give `trained_at` in it to pin the time).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    members = _members(booster, inference_script, metadata)
    # Written beside it and renamed: a run killed half-way never leaves a truncated artifact that the
    # local stack or an upload would take for a model. The gzip header names `path`, as before.
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as raw, tarfile.open(str(path), "w:gz", fileobj=raw, compresslevel=9) as archive:
        for folder in (CODE_DIR, EMBEDDED_DIR, META_DIR):
            directory = tarfile.TarInfo(folder)
            directory.type, directory.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(directory)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    os.replace(partial, path)
    return path


def load_booster(path: Path) -> xgb.Booster:
    """A booster from a model file or from a model.tar.gz written by write_model_tar."""
    booster = xgb.Booster()
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path, "r:gz") as archive:
            member = archive.extractfile(MODEL_FILE)
            if member is None:
                raise ValueError(f"{path} has no {MODEL_FILE}")
            booster.load_model(bytearray(member.read()))
    else:
        booster.load_model(str(path))
    return booster
