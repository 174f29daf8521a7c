"""The default model for the local-stack tests, trained once per version of the code that trains it.

`local.artifact.ensure_model` trains model/output/model.tar.gz when it is missing (a fresh clone: minutes
of a core). Each artifact it trains is also kept in a cache folder under a key made of every source file
that goes into training (the simulator's physics, the features, the training code) and the interpreter's
and libraries' versions; a fresh clone of the same code copies it from there instead of training again.
`MOTOR_MODEL_CACHE` moves the cache (default ~/.cache/motor-maintenance/models); an empty value turns it off.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from local.artifact import ARTIFACT_NAME, DEFAULT_ARTIFACT, ensure_model

ROOT = Path(__file__).resolve().parent.parent
TRAINING_SOURCES = ("model", "device", "layers/shared", "local/artifact.py")
"""What the default training reads: its code, the simulator it draws the fleet's history from, the features."""


def cache_folder() -> Path | None:
    configured = os.environ.get("MOTOR_MODEL_CACHE")
    if configured is None:
        return Path.home() / ".cache" / "motor-maintenance" / "models"
    return Path(configured) if configured else None


def _sources() -> Iterator[Path]:
    for name in TRAINING_SOURCES:
        path = ROOT / name
        if path.is_file():
            yield path
        else:
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".py", ".txt") and p.is_file())


def training_key() -> str:
    """A digest of every training source and of the versions that could change what training produces."""
    import numpy
    import xgboost

    digest = hashlib.sha256()
    versions = (platform.machine(), f"{sys.version_info.major}.{sys.version_info.minor}")
    digest.update(repr((*versions, xgboost.__version__, numpy.__version__)).encode())
    for path in _sources():
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def _copy(source: Path, target: Path) -> None:
    """Copy so that a reader never sees half a file (a temporary file beside the target, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as partial:
        temporary = Path(partial.name)
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def default_model(log: Callable[[str], None], artifact: Path = DEFAULT_ARTIFACT) -> Path:
    """The default artifact: as it is, copied from the cache, or trained (and then cached)."""
    if artifact.is_file():
        return artifact
    folder = cache_folder()
    cached = folder / training_key() / ARTIFACT_NAME if folder is not None else None
    if cached is not None and cached.is_file():
        log(f"the default model for this code is cached: {cached}")
        _copy(cached, artifact)
        return artifact
    model = ensure_model(artifact, log=log)
    if cached is not None:
        try:
            _copy(model, cached)
        except OSError as exc:  # a read-only home: the next fresh clone trains again
            log(f"could not cache the model in {cached.parent}: {exc}")
    return model
