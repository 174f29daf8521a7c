"""The booster the embedded path evaluates, read from model.tar.gz in memory: nothing is written to disk."""

from __future__ import annotations

import io
import tarfile
import zlib

from motor_model.boosted_trees import BoostedTrees, ModelFormatError

EMBEDDED_MODEL_FILE = "embedded/xgboost-model.json"
"""The booster in XGBoost's JSON format, which model/artifact.py writes beside `xgboost-model` (its UBJSON,
the file SageMaker's XGBoost server loads). In a folder of its own: the algorithm-mode server loads every
file at the archive's top level as a model."""
RETRAIN = "retrain with `python model/train.py`"


def load_artifact(archive: bytes) -> BoostedTrees:
    """The booster of a model.tar.gz; ModelFormatError, in one line, for anything else."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            try:
                member = tar.getmember(EMBEDDED_MODEL_FILE)
            except KeyError:
                raise ModelFormatError(
                    f"the artifact has no {EMBEDDED_MODEL_FILE}, the booster the embedded model reads: {RETRAIN}"
                ) from None
            stream = tar.extractfile(member) if member.isfile() else None
            if stream is None:
                raise ModelFormatError(f"{EMBEDDED_MODEL_FILE} in the artifact is not a regular file")
            data = stream.read()
    # A truncated or corrupt archive: the same to the reading as a booster this code cannot evaluate.
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ModelFormatError(f"not a model.tar.gz: {type(exc).__name__}: {exc}") from exc
    return BoostedTrees.load(data)
