"""Entry script of the SageMaker training job: fit as model/train.py does, leave the hosted layout in SM_MODEL_DIR.

Runs inside SageMaker's XGBoost image 3.0-5 (Python 3.10, NumPy 2.1, XGBoost 3.0.5), started by
the SageMaker SDK's driver from the job's `code` channel, where model/sagemaker_train.py puts it
beside artifact.py and inference.py (so `import artifact` is a top-level import here and nothing
else of the project is needed). It reads:

    SM_CHANNEL_TRAIN/*.csv        label first, then the features; no header; empty field = missing
    SM_CHANNEL_VALIDATION/*.csv   optional, the same format; its PR-AUC is logged while training
    SM_HPS                        JSON: feature_names (comma-separated), num_boost_round, seed, and
                                  XGBoost parameters on top of artifact.HYPERPARAMETERS

and writes the artifact's layout into SM_MODEL_DIR, which SageMaker packs as model.tar.gz:

    xgboost-model                the booster, feature names in its `feature_names` attribute
    code/inference.py            the script-mode functions the template's endpoint runs
    embedded/xgboost-model.json  the booster as JSON, for the template's InferenceMode embedded

A bad input ends the job with a one-line reason in SM_OUTPUT_FAILURE, which SageMaker reports as
the job's FailureReason (model/sagemaker_train.py prints it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the type checker reads it from the package
    from model import artifact
else:  # top-level in the code channel: model/artifact.py, copied beside this file
    import artifact

INFERENCE_SCRIPT = Path(__file__).resolve().parent / "inference.py"
DEFAULT_FAILURE_FILE = "/opt/ml/output/failure"


class InputError(ValueError):
    """The job's inputs cannot be trained on as given (the submitter's fault, not the container's)."""


def main(environ: Mapping[str, str] = os.environ) -> int:
    try:
        train(environ)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _report_failure(environ, str(exc))
        return 1
    except Exception as exc:
        # The SDK's driver would report only "Training Execution failed"; the traceback stays in the log.
        first_line = (str(exc).strip().splitlines() or [""])[0]  # XGBoost appends a native stack trace
        _report_failure(environ, f"{type(exc).__name__}: {first_line}")
        raise
    return 0


def _report_failure(environ: Mapping[str, str], reason: str) -> None:
    """SageMaker shows the failure file's text as the job's FailureReason (at most 1024 characters)."""
    failure = Path(environ.get("SM_OUTPUT_FAILURE", DEFAULT_FAILURE_FILE))
    if failure.parent.is_dir():
        failure.write_text(reason[:1000])


def train(environ: Mapping[str, str]) -> Path:
    """Read the channels, fit with the project's settings, write SM_MODEL_DIR; returns that directory."""
    model_dir = Path(_required(environ, "SM_MODEL_DIR"))
    settings = hyperparameters(environ.get("SM_HPS", "{}"))
    feature_names = _feature_names(settings.pop("feature_names", None))
    rounds = int(settings.pop("num_boost_round", artifact.NUM_BOOST_ROUND))
    seed = int(settings.pop("seed", 0))

    features, labels = read_channel(Path(_required(environ, "SM_CHANNEL_TRAIN")), len(feature_names))
    if labels.min() == labels.max():
        raise InputError(f"every training label is {labels[0]:g}: the model needs failures and normal rows")
    validation = None
    if environ.get("SM_CHANNEL_VALIDATION"):
        validation = read_channel(Path(environ["SM_CHANNEL_VALIDATION"]), len(feature_names))
    print(
        f"training on {len(labels):,} rows ({int(labels.sum()):,} positive), {len(feature_names)} features, "
        f"{rounds} rounds; validation rows: {len(validation[1]) if validation else 0:,}"
    )
    booster = artifact.fit(
        features,
        labels,
        feature_names=feature_names,
        params=settings,
        num_boost_round=rounds,
        validation=validation,
        seed=seed,
        log=print,
    )
    artifact.write_model_dir(booster, model_dir, inference_script=INFERENCE_SCRIPT)
    written = (artifact.MODEL_FILE, f"{artifact.CODE_DIR}/{INFERENCE_SCRIPT.name}", artifact.EMBEDDED_MODEL_FILE)
    print(f"wrote {', '.join(written)} to {model_dir}")
    return model_dir


def hyperparameters(text: str) -> dict[str, Any]:
    """SM_HPS as values: the SDK's driver already decodes JSON scalars, other launchers pass strings."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"SM_HPS is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError("SM_HPS is not a JSON object")
    return {str(key): _decoded(value) for key, value in raw.items()}


def _decoded(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # a plain string such as binary:logistic


def _feature_names(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        raise InputError("hyperparameter feature_names is missing: the CSV columns after the label, comma-separated")
    return [name.strip() for name in value.split(",")]


def read_channel(directory: Path, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Every CSV file of a channel, in name order: (features float32 with NaN for missing, labels)."""
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise InputError(f"no .csv file in channel {directory.name}")
    parts = [read_csv(path, width) for path in files]
    return np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])


def read_csv(path: Path, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One file as SageMaker's XGBoost reads text/csv: no header, label first, empty field = missing."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32, converters=_number, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{path.name}: {exc}") from None
    if table.shape[0] == 0:
        raise InputError(f"{path.name} holds no rows")
    if table.shape[1] != width + 1:
        raise InputError(f"{path.name} has {table.shape[1]} columns; expected the label and {width} features")
    labels = table[:, 0]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise InputError(f"{path.name}: the first column must be the label, 0 or 1")
    return table[:, 1:], labels


def _number(text: str) -> float:
    return float(text) if text.strip() else float("nan")


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name)
    if not value:
        raise InputError(f"{name} is not set: this script runs inside a SageMaker training job")
    return value


if __name__ == "__main__":
    sys.exit(main())
