"""The artifact's manifest and version: written by model/artifact.py, read alike by the endpoint and the layer."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

import motor_model.artifact as layer_artifact
from model import artifact, inference, versions
from motor_maintenance.features import FEATURE_NAMES
from motor_model.artifact import ServedModel, read_artifact
from motor_model.boosted_trees import ModelFormatError

NAMES = list(FEATURE_NAMES)
SCRIPT = Path(inference.__file__)
METADATA = {
    "trained_at": datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
    "data": {"first_reading": "2026-01-01T00:00:00Z", "last_reading": "2026-06-30T23:50:00Z"},
    "motors": {"train": ["motor-001", "motor-002"], "validation": [], "test": ["motor-003"]},
    "failures": {"bearing_wear": 2},
    "metrics": {"rows": {"pr_auc": 0.5}},
}


def _booster(names: list[str] = NAMES, seed: int = 0) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(600, len(names))).astype(np.float32)
    labels = (features[:, 3] > 1.0).astype(np.int8)
    return artifact.fit(
        features, labels, feature_names=names, num_boost_round=4, log=None, negative_fraction=1.0, nthread=1
    )


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    return _booster()


def _tar(tmp_path: Path, members: dict[str, bytes]) -> Path:
    """A model.tar.gz holding exactly `members` (name -> bytes)."""
    path = tmp_path / "custom.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _old_artifact(tmp_path: Path, booster: xgb.Booster) -> Path:
    """An artifact as written before manifests: the booster, its JSON twin and the code."""
    return _tar(
        tmp_path,
        {
            artifact.MODEL_FILE: artifact.model_bytes(booster),
            artifact.EMBEDDED_MODEL_FILE: bytes(booster.save_raw(raw_format="json")),
            f"{artifact.CODE_DIR}/inference.py": SCRIPT.read_bytes(),
        },
    )


def _endpoint_version(model_dir: Path) -> tuple[str, str]:
    """The version the endpoint's JSON answer quotes, and its source, for one row of zeros."""
    booster = inference.model_fn(str(model_dir))
    body, _ = inference.output_fn(
        inference.predict_fn(np.zeros((1, len(NAMES)), dtype=np.float32), booster), "application/json"
    )
    answer = json.loads(body)
    return answer["model_version"], answer["model_version_source"]


def test_the_version_is_a_short_hash_of_the_model_bytes(booster: xgb.Booster) -> None:
    data = artifact.model_bytes(booster)

    version = artifact.model_version(data)

    assert version == "m-" + hashlib.sha256(data).hexdigest()[:12]
    assert layer_artifact.model_version(data) == version
    assert artifact.model_version(artifact.model_bytes(_booster(seed=1))) != version


def test_the_manifest_says_what_the_model_is(tmp_path: Path, booster: xgb.Booster) -> None:
    path = artifact.write_model_tar(booster, tmp_path / "model.tar.gz", inference_script=SCRIPT, metadata=METADATA)

    with tarfile.open(path) as archive:
        names = archive.getnames()
        member = archive.extractfile(artifact.MANIFEST_FILE)
        assert member is not None
        manifest = json.loads(member.read())

    top_level_files = [name for name in names if "/" not in name and name not in ("code", "embedded", "meta")]
    assert top_level_files == [artifact.MODEL_FILE]  # the algorithm-mode server loads every top-level file
    assert manifest["version"] == artifact.model_version(artifact.model_bytes(booster))
    assert manifest["trained_at"] == "2026-12-07T12:00:00Z"
    assert manifest["data"] == METADATA["data"]
    assert manifest["motors"] == METADATA["motors"]
    assert manifest["failures"] == {"bearing_wear": 2}
    assert manifest["metrics"] == METADATA["metrics"]
    assert manifest["feature_names"] == NAMES


def test_the_same_model_and_metadata_write_the_same_bytes(tmp_path: Path, booster: xgb.Booster) -> None:
    path = tmp_path / "model.tar.gz"
    first = artifact.write_model_tar(booster, path, inference_script=SCRIPT, metadata=METADATA).read_bytes()
    second = artifact.write_model_tar(booster, path, inference_script=SCRIPT, metadata=METADATA).read_bytes()

    assert first == second


def test_trainer_endpoint_and_layer_agree_on_the_version(tmp_path: Path, booster: xgb.Booster) -> None:
    path = artifact.write_model_tar(booster, tmp_path / "model.tar.gz", inference_script=SCRIPT, metadata=METADATA)
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")

    versioned = versions.load_versioned(path)
    served = read_artifact(path.read_bytes(), feature_names=FEATURE_NAMES)

    assert versioned.manifest is not None
    assert (served.version, served.derived) == (versioned.version, False)
    assert served.manifest == versioned.manifest
    assert _endpoint_version(tmp_path / "unpacked") == (versioned.version, "manifest")
    assert versioned.training_motors == ["motor-001", "motor-002"]


def test_an_artifact_without_a_manifest_loads_with_its_version_derived_and_marked(
    tmp_path: Path, booster: xgb.Booster
) -> None:
    old = _old_artifact(tmp_path, booster)
    with tarfile.open(old) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    expected = artifact.model_version(artifact.model_bytes(booster))

    served = read_artifact(old.read_bytes(), feature_names=FEATURE_NAMES)
    versioned = versions.load_versioned(old)

    assert isinstance(served, ServedModel)
    assert (served.version, served.derived, served.manifest) == (expected, True, None)
    assert (versioned.version, versioned.manifest) == (expected, None)
    assert "derived" in versioned.describe()
    assert _endpoint_version(tmp_path / "unpacked") == (expected, "derived")


def test_an_artifact_trained_on_other_features_is_refused_in_one_line(tmp_path: Path) -> None:
    renamed = [*NAMES[:-1], "winding_temp_f"]
    path = artifact.write_model_tar(
        _booster(renamed), tmp_path / "model.tar.gz", inference_script=SCRIPT, metadata=METADATA
    )

    with pytest.raises(ModelFormatError) as refused:
        read_artifact(path.read_bytes(), feature_names=FEATURE_NAMES)

    message = str(refused.value)
    assert "\n" not in message
    assert "trained on other features" in message
    assert f"lacks {NAMES[-1]}" in message
    assert "has unknown winding_temp_f" in message
    assert "retrain with `python model/train.py`" in message
    read_artifact(path.read_bytes())  # without the runtime's names to check against, it loads


def test_the_same_features_in_another_order_are_refused_too(tmp_path: Path) -> None:
    swapped = [NAMES[1], NAMES[0], *NAMES[2:]]
    path = artifact.write_model_tar(_booster(swapped), tmp_path / "model.tar.gz", inference_script=SCRIPT)

    with pytest.raises(ModelFormatError, match="the same features in another order"):
        read_artifact(path.read_bytes(), feature_names=FEATURE_NAMES)


def test_an_old_artifact_whose_booster_names_other_features_is_refused(tmp_path: Path) -> None:
    old = _old_artifact(tmp_path, _booster([*NAMES[:-1], "other"]))

    with pytest.raises(ModelFormatError, match="has unknown other"):
        read_artifact(old.read_bytes(), feature_names=FEATURE_NAMES)


def test_a_manifest_that_does_not_match_the_model_bytes_is_refused_everywhere(
    tmp_path: Path, booster: xgb.Booster
) -> None:
    # Given an artifact whose booster was swapped after the manifest was written
    other = _booster(seed=2)
    manifest = artifact.manifest(booster, METADATA)
    path = _tar(
        tmp_path,
        {
            artifact.MODEL_FILE: artifact.model_bytes(other),
            artifact.EMBEDDED_MODEL_FILE: bytes(other.save_raw(raw_format="json")),
            artifact.MANIFEST_FILE: json.dumps(manifest, default=str).encode(),
        },
    )
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")

    with pytest.raises(ModelFormatError, match="changed after training"):
        read_artifact(path.read_bytes())
    with pytest.raises(ValueError, match="changed after training"):
        versions.load_versioned(path)
    with pytest.raises(inference.ArtifactError, match="changed after training"):
        inference.model_fn(str(tmp_path / "unpacked"))


def test_a_manifest_that_is_not_json_is_refused(tmp_path: Path, booster: xgb.Booster) -> None:
    path = _tar(
        tmp_path,
        {
            artifact.MODEL_FILE: artifact.model_bytes(booster),
            artifact.EMBEDDED_MODEL_FILE: bytes(booster.save_raw(raw_format="json")),
            artifact.MANIFEST_FILE: b"{not json",
        },
    )

    with pytest.raises(ModelFormatError, match="is not JSON"):
        read_artifact(path.read_bytes())
    with pytest.raises(ValueError, match="is not JSON"):
        versions.load_versioned(path)


def test_the_layer_reads_the_files_the_trainer_writes() -> None:
    assert layer_artifact.MANIFEST_FILE == artifact.MANIFEST_FILE
    assert layer_artifact.MODEL_FILE == artifact.MODEL_FILE
    assert inference.MANIFEST_FILE.replace("\\", "/") == artifact.MANIFEST_FILE


def test_a_csv_answer_is_unchanged_by_the_version(tmp_path: Path, booster: xgb.Booster) -> None:
    path = artifact.write_model_tar(booster, tmp_path / "model.tar.gz", inference_script=SCRIPT, metadata=METADATA)
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    served = inference.model_fn(str(tmp_path / "unpacked"))

    body, content_type = inference.output_fn(
        inference.predict_fn(np.zeros((2, len(NAMES)), dtype=np.float32), served), "text/csv"
    )

    assert content_type == "text/csv"
    assert [float(line) for line in body.splitlines()] == pytest.approx(
        booster.inplace_predict(np.zeros((2, len(NAMES)), dtype=np.float32)).tolist(), rel=1e-5
    )


def test_a_training_run_writes_what_it_trained_on_into_the_manifest(
    small_model_run: tuple[dict[str, Any], Path],
) -> None:
    metrics, out = small_model_run

    versioned = versions.load_versioned(out / "model.tar.gz")

    manifest = versioned.manifest
    assert manifest is not None
    motors = manifest["motors"]
    assert sorted(motors) == ["test", "train", "validation"]
    assert len(motors["test"]) == metrics["data"]["split"]["test"]
    assert len(motors["train"]) == metrics["data"]["split"]["train"]
    assert not set(motors["test"]) & set(versioned.training_motors)
    assert manifest["data"]["first_reading"] < manifest["data"]["last_reading"]
    assert sum(manifest["failures"].values()) <= sum(metrics["data"]["failures"].values())
    assert manifest["metrics"]["rows"] == metrics["rows"]
    assert manifest["feature_names"] == NAMES
    assert datetime.fromisoformat(manifest["trained_at"]) <= datetime.now(UTC)


def test_the_command_line_prints_an_artifacts_version_and_manifest(
    tmp_path: Path, booster: xgb.Booster, capsys: pytest.CaptureFixture[str]
) -> None:
    path = artifact.write_model_tar(booster, tmp_path / "model.tar.gz", inference_script=SCRIPT, metadata=METADATA)
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")

    assert versions.main([str(path)]) == 0
    assert capsys.readouterr().out == artifact.model_version(artifact.model_bytes(booster)) + "\n"
    assert versions.main([str(path), "--manifest"]) == 0
    assert json.loads(capsys.readouterr().out)["motors"] == METADATA["motors"]
    assert versions.main([str(tmp_path / "junk.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
