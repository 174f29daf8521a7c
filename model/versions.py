"""A model artifact's version and manifest, read back: what compare.py, the tests and an operator ask of a model.tar.gz.

    python model/versions.py model/output/model.tar.gz              # m-0123456789ab
    python model/versions.py model/output/model.tar.gz --manifest   # the whole manifest (JSON)

The manifest is parsed by the layer's motor_model.artifact, the one reader of manifests, which the embedded
model uses too: a manifest whose version is not the hash of the booster's bytes is refused, because the
artifact was changed after it was written and no longer says what the model is. model/artifact.py, which
writes artifacts, stays free of the layer: the SageMaker training job runs it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python model/versions.py): make `model` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.requirements_check import setup_needed

with setup_needed("model/versions.py"):
    import xgboost as xgb

    from model.artifact import booster_feature_names
    from motor_model.artifact import read_contents
    from motor_model.boosted_trees import ModelFormatError


@dataclass(frozen=True)
class VersionedModel:
    """A booster with its version and manifest (None: an artifact written before manifests, version derived)."""

    booster: xgb.Booster
    version: str
    manifest: dict[str, Any] | None

    @property
    def feature_names(self) -> list[str]:
        listed = self.manifest.get("feature_names") if self.manifest else None
        return list(listed) if isinstance(listed, list) else booster_feature_names(self.booster)

    @property
    def training_motors(self) -> list[str]:
        """The motors the model was trained on (and validated with), as its manifest lists them."""
        motors = (self.manifest or {}).get("motors") or {}
        return [str(m) for part in ("train", "validation") for m in motors.get(part, []) or []]

    def describe(self) -> str:
        """`m-... (trained 2026-12-07T12:00:00Z)`, or `m-... (derived: no manifest)`."""
        if self.manifest is None:
            return f"{self.version} (derived from the model bytes: the artifact has no manifest)"
        return f"{self.version} (trained {self.manifest.get('trained_at') or 'at an unknown time'})"


def load_versioned(path: Path) -> VersionedModel:
    """The booster of a model.tar.gz with its version; ValueError, in one line, for an artifact that is not one."""
    try:
        contents = read_contents(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path} is not a readable model.tar.gz: {exc}") from exc
    except ModelFormatError as exc:
        raise ValueError(f"{path}: {exc}") from None
    booster = xgb.Booster()
    booster.load_model(bytearray(contents.model))
    return VersionedModel(booster, contents.version, contents.manifest)


def main(argv: list[str] | None = None) -> int:
    """The artifact's version (and with --manifest, its manifest); 2 with one line on stderr for a bad artifact."""
    parser = argparse.ArgumentParser(description="Print a model.tar.gz's version: m- and 12 hex digits.")
    parser.add_argument("artifact", type=Path, help="a model.tar.gz written by model/train.py")
    parser.add_argument("--manifest", action="store_true", help="print the whole manifest (JSON) instead")
    args = parser.parse_args(argv)
    try:
        model = load_versioned(args.artifact)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.manifest:
        print(json.dumps(model.manifest, indent=2) if model.manifest is not None else model.describe())
    else:
        print(model.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
