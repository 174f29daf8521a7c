"""An artifact's version and manifest, and the booster the embedded path evaluates, read from model.tar.gz in memory."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from motor_model.boosted_trees import BoostedTrees, ModelFormatError

EMBEDDED_MODEL_FILE = "embedded/xgboost-model.json"
"""The booster in XGBoost's JSON format, which model/artifact.py writes beside `xgboost-model` (its UBJSON,
the file SageMaker's XGBoost server loads). In a folder of its own: the algorithm-mode server loads every
file at the archive's top level as a model."""
MODEL_FILE = "xgboost-model"
"""The booster SageMaker serves: the model's version is the hash of these bytes."""
MANIFEST_FILE = "meta/manifest.json"
"""What the model is (model/artifact.py writes it): version, training time and data, metrics, feature names."""
VERSION_PREFIX = "m-"
VERSION_HEX_DIGITS = 12
RETRAIN = "retrain with `python model/train.py`"


@dataclass(frozen=True)
class ServedModel:
    """The booster of an artifact, its version, and whether that version came from a manifest."""

    trees: BoostedTrees
    version: str
    derived: bool
    """True for an artifact without a manifest (written before manifests): its version is the hash of
    its model bytes, as a manifest's would have been."""
    manifest: dict[str, Any] | None = None


def model_version(data: bytes) -> str:
    """The version of the model whose `xgboost-model` holds `data`, as model/artifact.py's model_version says."""
    return VERSION_PREFIX + hashlib.sha256(data).hexdigest()[:VERSION_HEX_DIGITS]


@dataclass(frozen=True)
class Contents:
    """What a model.tar.gz holds: its version and manifest, the served booster's bytes, the other files asked for."""

    version: str
    manifest: dict[str, Any] | None
    """None for an artifact written before manifests: its version is then derived from `model`."""
    model: bytes
    """`xgboost-model`, the booster SageMaker serves, whose hash is the version."""
    files: dict[str, bytes | None]
    """The other members asked for (None: not in the artifact)."""


def read_contents(archive: bytes, files: Sequence[str] = ()) -> Contents:
    """The version and manifest of a model.tar.gz, its `xgboost-model`, and `files` (None where absent).

    The one reader of an artifact's manifest, for the embedded model and for the trainer's tools
    (model/artifact.py's load_versioned). ModelFormatError, in one line, for bytes that are not a model.tar.gz,
    one without `xgboost-model`, or a manifest that is not JSON, lists no feature names or names another
    version than the hash of the model's bytes (the artifact was changed after training).
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            found = {name: _member(tar, name) for name in (*files, MODEL_FILE, MANIFEST_FILE)}
    # A truncated or corrupt archive: the same to the reading as a booster this code cannot evaluate.
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ModelFormatError(f"not a model.tar.gz: {type(exc).__name__}: {exc}") from exc
    served = found[MODEL_FILE]
    if served is None:
        raise ModelFormatError(f"the artifact has no {MODEL_FILE}, the booster its version is the hash of: {RETRAIN}")
    version = model_version(served)
    text = found[MANIFEST_FILE]
    manifest = _manifest(text, version) if text is not None else None
    return Contents(version, manifest, served, {name: found[name] for name in files})


def load_artifact(archive: bytes) -> BoostedTrees:
    """The booster of a model.tar.gz; ModelFormatError, in one line, for anything else."""
    return read_artifact(archive).trees


def read_artifact(archive: bytes, *, feature_names: Sequence[str] | None = None) -> ServedModel:
    """The booster of a model.tar.gz with its version; ModelFormatError, in one line, for anything else.

    With `feature_names` (the runtime's FEATURE_NAMES), an artifact trained on other features is refused:
    the rows this code computes would be read as other features, and the probabilities be wrong.
    """
    contents = read_contents(archive, (EMBEDDED_MODEL_FILE,))
    embedded = contents.files[EMBEDDED_MODEL_FILE]
    if embedded is None:
        raise ModelFormatError(
            f"the artifact has no {EMBEDDED_MODEL_FILE}, the booster the embedded model reads: {RETRAIN}"
        )
    trees = BoostedTrees.load(embedded)
    manifest = contents.manifest
    if feature_names is not None:
        check_features(contents.version, manifest["feature_names"] if manifest else trees.feature_names, feature_names)
    return ServedModel(trees, contents.version, derived=manifest is None, manifest=manifest)


def check_features(version: str, trained: Sequence[str], expected: Sequence[str]) -> None:
    """ModelFormatError, in one line, if model `version` was trained on other features than `expected`.

    A booster that never named its features (XGBoost's f0, f1, ...) passes: its width is checked per row.
    """
    if _unnamed(trained):
        return
    mismatch = feature_mismatch(trained, expected)
    if mismatch:
        raise ModelFormatError(
            f"model {version} was trained on other features than this code computes ({mismatch}): {RETRAIN}"
        )


def feature_mismatch(trained: Sequence[str], expected: Sequence[str]) -> str:
    """How the features a model was trained on differ from `expected`, in a few words ('' if they are the same)."""
    if list(trained) == list(expected):
        return ""
    missing = [name for name in expected if name not in trained]
    unknown = [name for name in trained if name not in expected]
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unknown:
        parts.append(f"has unknown {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    return "; ".join(parts) or "the same features in another order"


def _unnamed(names: Sequence[str]) -> bool:
    return all(name == f"f{index}" for index, name in enumerate(names))


def _manifest(text: bytes, version: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ModelFormatError(f"{MANIFEST_FILE} in the artifact is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ModelFormatError(f"{MANIFEST_FILE} in the artifact is not a JSON object")
    if document.get("version") != version:
        raise ModelFormatError(
            f"the manifest says version {document.get('version')!r} but the model bytes are {version}: "
            "the artifact was changed after training"
        )
    names = document.get("feature_names")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ModelFormatError(f"{MANIFEST_FILE} in the artifact has no list of feature_names")
    return document


def _member(tar: tarfile.TarFile, name: str) -> bytes | None:
    """A member's bytes; None if it is not there. ModelFormatError if it is there but not a regular file."""
    try:
        member = tar.getmember(name)
    except KeyError:
        return None
    stream = tar.extractfile(member) if member.isfile() else None
    if stream is None:
        raise ModelFormatError(f"{name} in the artifact is not a regular file")
    return stream.read()
