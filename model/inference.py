"""The endpoint's inference contract: SageMaker XGBoost script mode's model_fn, input_fn, predict_fn, output_fn.

SageMaker's XGBoost image 3.0-5 runs this file from `code/` in model.tar.gz (the template sets
SAGEMAKER_PROGRAM and SAGEMAKER_SUBMIT_DIRECTORY); the local stack serves the same functions.
Self-contained (stdlib, NumPy, XGBoost), as the container has nothing else of ours.

Request: `Content-Type: text/csv`, one row per line, the features in the order the model was
trained with (motor_maintenance.features.FEATURE_NAMES), an empty field for a missing value.

Answer, by `Accept`:
- `text/csv` (default): one probability of failure within 24 operating hours per line;
- `application/json`: `{"predictions": [{"score": p, "drivers": [{"feature": name,
  "contribution": c}, ...]}], "model_version": "m-0123456789ab", "model_version_source": "manifest"}`,
  the drivers being up to three features that pushed the row's log-odds up the most (TreeSHAP
  contributions, XGBoost's `pred_contribs`), largest first, for rows at or above
  DRIVERS_MIN_PROBABILITY (others: an empty list). `model_version` is the hash of the served
  `xgboost-model` ("m-" and 12 hex digits of its SHA-256, as model/artifact.py's model_version);
  `model_version_source` is `manifest` when the artifact's meta/manifest.json says the same, and
  `derived` for an artifact without a manifest. The plain built-in algorithm answers the same JSON
  without `drivers` and without the version; the CSV answer carries no version.

A request the contract refuses is answered with a status and the reason as plain text: 415 for a
content type other than CSV, 406 for an `Accept` type other than CSV or JSON, 400 for a body it cannot
read (not UTF-8, not numbers, ragged rows, too many rows, the wrong number of features). SageMaker
hands it to the client as a ModelError with that status. The container serves these functions through
the sagemaker-containers toolkit (2.8.6, which the image's serving.py builds its Transformer from),
which turns anything they *raise* into a 500 with Flask's generic page: so input_fn and predict_fn pass
a `Refusal` on instead of raising, and output_fn returns it as the answer (a WSGI application, which
Flask runs as the response). `read_rows`, `score` and `serialise` are the same steps raising
RequestError, for code that calls them directly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
import xgboost as xgb

MODEL_FILE = "xgboost-model"
MANIFEST_FILE = os.path.join("meta", "manifest.json")
FEATURE_NAMES_ATTR = "feature_names"
VERSION_ATTR = "model_version"
VERSION_SOURCE_ATTR = "model_version_source"
"""Booster attributes model_fn sets from the artifact (in memory only): the answer quotes them."""
CSV = "text/csv"
JSON = "application/json"
TOP_DRIVERS = 3
DRIVERS_MIN_PROBABILITY = float(os.environ.get("DRIVERS_MIN_PROBABILITY", "0.2"))
"""Rows less likely than this to fail get no drivers: nothing to explain, and TreeSHAP costs about
ten times the prediction itself. Set the variable on the model to change it."""
MAX_ROWS = 10_000
"""Rows per request; an invocation body is at most 6 MB anyway, this bounds the work per call."""


class RequestError(ValueError):
    """The request cannot be answered as sent (the client's fault): wrong shape or value."""

    status = HTTPStatus.BAD_REQUEST


class UnsupportedContentType(RequestError):
    """The body is not of a type the contract reads (the toolkit's own answer to that is 415 too)."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class UnsupportedAccept(RequestError):
    """The client asks for an answer type the contract does not write (the toolkit's own answer: 406)."""

    status = HTTPStatus.NOT_ACCEPTABLE


@dataclass(frozen=True)
class Refusal:
    """A refused request as the endpoint answers it: the status and the reason, as a WSGI application.

    In the container (sagemaker-containers 2.8.6, _transformer.py lines 198-207 and 226-238) output_fn's
    result is the Flask view's return value unless it is a tuple, and Flask runs a returned callable as
    a WSGI application (flask.app.Flask.make_response): this is how the status reaches the client.
    """

    status: int
    reason: str

    @classmethod
    def of(cls, error: RequestError) -> Refusal:
        return cls(int(error.status), str(error))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = self.reason.encode("utf-8")
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        start_response(f"{self.status} {HTTPStatus(self.status).phrase}", headers)
        return [body]


class ArtifactError(ValueError):
    """The artifact's manifest contradicts its model: the endpoint refuses to start rather than mislabel answers."""


def model_fn(model_dir: str) -> xgb.Booster:
    """Load `xgboost-model` from the unpacked artifact, with its version (from the manifest, else derived)."""
    with open(os.path.join(model_dir, MODEL_FILE), "rb") as stream:
        data = stream.read()
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    # One thread per worker: the model server runs a worker per vCPU, and a row is microseconds.
    booster.set_param("nthread", "1")
    version = "m-" + hashlib.sha256(data).hexdigest()[:12]
    source = "derived"
    manifest_path = os.path.join(model_dir, MANIFEST_FILE)
    if os.path.isfile(manifest_path):
        with open(manifest_path, encoding="utf-8") as stream:
            manifest = json.load(stream)
        if manifest.get("version") != version:
            raise ArtifactError(
                f"the manifest says version {manifest.get('version')!r} but {MODEL_FILE} is {version}: "
                "the artifact was changed after training"
            )
        trained_on, named = manifest.get("feature_names"), booster.attr(FEATURE_NAMES_ATTR)
        if named and trained_on != named.split(","):
            raise ArtifactError(f"the manifest's feature_names are not those {MODEL_FILE} was trained with")
        source = "manifest"
    booster.set_attr(**{VERSION_ATTR: version, VERSION_SOURCE_ATTR: source})
    return booster


def input_fn(request_body: bytes | str, request_content_type: str | None) -> np.ndarray | Refusal:
    """The container's step 1: read_rows, or the Refusal of a request it cannot read."""
    try:
        return read_rows(request_body, request_content_type)
    except RequestError as error:
        return Refusal.of(error)


def predict_fn(input_data: np.ndarray | Refusal, model: xgb.Booster) -> Scored | Refusal:
    """The container's step 2: score, or the Refusal passed on (from input_fn, or of rows of the wrong width)."""
    if isinstance(input_data, Refusal):
        return input_data
    try:
        return score(input_data, model)
    except RequestError as error:
        return Refusal.of(error)


def output_fn(prediction: Scored | Refusal, accept: str | None) -> tuple[str, str] | Refusal:
    """The container's step 3: (body, content type) as serialise writes it, or the Refusal as the answer."""
    if isinstance(prediction, Refusal):
        return prediction
    try:
        return serialise(prediction, accept)
    except RequestError as error:
        return Refusal.of(error)


def read_rows(request_body: bytes | str, request_content_type: str | None) -> np.ndarray:
    """CSV rows -> a float32 matrix, NaN where a field is empty."""
    media_type = _media_type(request_content_type) or CSV
    if media_type != CSV:
        raise UnsupportedContentType(f"content type {request_content_type!r} is not supported; send {CSV}")
    try:
        text = request_body.decode("utf-8") if isinstance(request_body, bytes | bytearray) else request_body
    except UnicodeDecodeError as exc:
        raise RequestError("the body is not UTF-8 text") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RequestError("the body holds no CSV rows")
    if len(lines) > MAX_ROWS:
        raise RequestError(f"{len(lines)} rows in one request; at most {MAX_ROWS}")
    rows = [_parse_row(line, number) for number, line in enumerate(lines, start=1)]
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise RequestError(f"row {number} has {len(row)} fields, row 1 has {width}")
    return np.asarray(rows, dtype=np.float32)


def _parse_row(line: str, number: int) -> list[float]:
    values: list[float] = []
    for column, field_text in enumerate(line.split(","), start=1):
        text = field_text.strip()
        if not text:
            values.append(math.nan)
            continue
        try:
            value = float(text)
        except ValueError:
            raise RequestError(f"row {number}, field {column}: {text[:20]!r} is not a number") from None
        if math.isinf(value):
            raise RequestError(f"row {number}, field {column}: infinite value")
        values.append(value)
    return values


@dataclass
class Scored:
    """Probabilities of a batch; the drivers are computed only if the answer asks for them."""

    booster: xgb.Booster
    features: np.ndarray
    probabilities: np.ndarray
    _drivers: list[list[dict[str, Any]]] | None = field(default=None, repr=False)

    def drivers(self, top: int = TOP_DRIVERS) -> list[list[dict[str, Any]]]:
        """Per row, the features with the largest positive contributions to its log-odds.

        Empty for rows below DRIVERS_MIN_PROBABILITY.
        """
        if self._drivers is None:
            per_row: list[list[dict[str, Any]]] = [[] for _ in self.probabilities]
            explained = np.flatnonzero(self.probabilities >= DRIVERS_MIN_PROBABILITY)
            if explained.size:
                matrix = xgb.DMatrix(self.features[explained], missing=np.nan)
                contributions = self.booster.predict(matrix, pred_contribs=True)
                names = feature_names(self.booster)
                for index, row in zip(explained, contributions[:, :-1], strict=True):  # last column: the bias
                    order = np.argsort(-row, kind="stable")[:top]
                    per_row[index] = [
                        {"feature": names[i], "contribution": round(float(row[i]), 4)}
                        for i in order
                        if round(float(row[i]), 4) > 0
                    ]
            self._drivers = per_row
        return self._drivers


def score(input_data: np.ndarray, model: xgb.Booster) -> Scored:
    """Failure probabilities for each row (the drivers wait for serialise, which knows what was asked)."""
    expected = model.num_features()
    if input_data.ndim != 2 or input_data.shape[1] != expected:
        width = input_data.shape[1] if input_data.ndim == 2 else "?"
        raise RequestError(f"rows have {width} features; the model expects {expected}")
    probabilities = model.inplace_predict(input_data, missing=np.nan)
    return Scored(booster=model, features=input_data, probabilities=np.asarray(probabilities, dtype=np.float64))


def serialise(prediction: Scored, accept: str | None) -> tuple[str, str]:
    """As the client asked: CSV probabilities, or JSON with each row's drivers (no Accept, or */*: CSV)."""
    media_type = _media_type(accept)
    if media_type in (None, "*/*", CSV):
        return "\n".join(_probability_text(p) for p in prediction.probabilities) + "\n", CSV
    if media_type == JSON:
        rows = [
            {"score": float(p), "drivers": drivers}
            for p, drivers in zip(prediction.probabilities, prediction.drivers(), strict=True)
        ]
        answer: dict[str, Any] = {"predictions": rows}
        version = prediction.booster.attr(VERSION_ATTR)
        if version:
            answer.update(model_version=version, model_version_source=prediction.booster.attr(VERSION_SOURCE_ATTR))
        return json.dumps(answer, separators=(",", ":")), JSON
    raise UnsupportedAccept(f"accept type {accept!r} is not supported; ask for {CSV} or {JSON}")


def _probability_text(probability: float) -> str:
    return f"{float(probability):.6g}"


def _media_type(header: str | None) -> str | None:
    """`text/csv; charset=utf-8` -> `text/csv`; the first of a list of types."""
    if not header:
        return None
    return header.split(",")[0].split(";")[0].strip().lower() or None


def feature_names(booster: xgb.Booster) -> list[str]:
    """The feature order the booster was trained with (the attribute fit() set), else XGBoost's f0, f1, ..."""
    names = booster.attr(FEATURE_NAMES_ATTR)
    count = booster.num_features()
    listed = names.split(",") if names else []
    return listed if len(listed) == count else [f"f{index}" for index in range(count)]
