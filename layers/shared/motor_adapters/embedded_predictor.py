"""Failure probabilities computed inside the function: the artifact's own inference.py on its booster, fetched from S3.

The template's `InferenceMode: embedded`. The artifact (model.tar.gz, ModelDataUrl) ships the booster and
`code/inference.py`, the endpoint's contract (model_fn, input_fn, predict_fn, output_fn); running those same
functions here, with the same CSV rows in and the same JSON out, read by the same parser, gives the same
probabilities and drivers as the endpoint by construction. XGBoost and NumPy come from ModelRuntimeLayer.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from motor_adapters.sagemaker_predictor import ACCEPT, parse_predictions
from motor_maintenance.errors import PredictionUnavailable
from motor_maintenance.features import to_csv_row
from motor_maintenance.prediction import Prediction

CONTENT_TYPE = "text/csv"
INFERENCE_SCRIPT = Path("code") / "inference.py"
MODULE_NAME = "motor_model_inference"
"""The artifact's inference.py is imported under this name (one model per execution environment)."""


def s3_location(url: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(f"{url!r} is not an s3://bucket/key URL")
    return parsed.netloc, parsed.path.lstrip("/")


@dataclass(frozen=True)
class _Model:
    code: ModuleType
    booster: Any


class EmbeddedPredictor:
    """Implements motor_maintenance.service.Predictor with the model loaded into this execution environment.

    The artifact is fetched on the first prediction, not at import: a model that cannot be fetched or
    loaded costs that reading its probability (PredictionUnavailable), as an endpoint that does not
    answer does, the conditions and the schedule are still evaluated, and the next reading tries again.
    """

    def __init__(self, model_url: str, client: Any) -> None:
        self._url = model_url
        self._bucket, self._key = s3_location(model_url)
        self._client = client
        self._model: _Model | None = None

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Prediction]:
        model = self._model or self._load()
        body = "\n".join(to_csv_row(list(row)) for row in rows)
        try:
            data = model.code.input_fn(body, CONTENT_TYPE)
            answer, _ = model.code.output_fn(model.code.predict_fn(data, model.booster), ACCEPT)
        except ValueError as exc:  # the contract's RequestError, and XGBoostError, are ValueErrors
            raise PredictionUnavailable(f"model {self._url}: {exc}") from exc
        predictions = parse_predictions(answer)
        if len(predictions) != len(rows):
            raise PredictionUnavailable(f"model answered {len(predictions)} predictions for {len(rows)} rows")
        return predictions

    def _load(self) -> _Model:
        try:
            archive = self._client.get_object(Bucket=self._bucket, Key=self._key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise PredictionUnavailable(f"model {self._url}: {exc}") from exc
        self._model = load_artifact(archive, where=self._url)
        return self._model


def load_artifact(archive: bytes, *, where: str) -> _Model:
    """Unpack model.tar.gz in a scratch folder, import its inference.py, load the booster; the folder is removed."""
    directory = Path(tempfile.mkdtemp(prefix="model-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(directory, filter="data")  # no absolute paths, links out or devices
        code = _import(directory / INFERENCE_SCRIPT)
        booster = code.model_fn(str(directory))
    # Whatever breaks here (a truncated archive, no code/, no xgboost in the function, a booster
    # XGBoost cannot read) means the same to the reading: no probability from this model.
    except Exception as exc:
        raise PredictionUnavailable(f"model {where} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return _Model(code=code, booster=booster)


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    return module
