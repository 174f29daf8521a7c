"""model/sagemaker_entry.py as the training container runs it, without the container.

The code channel is staged as model/sagemaker_train.py stages it, the script runs in a fresh
interpreter from that directory with the SM_* variables the SDK's driver sets, and the test looks
at the model directory SageMaker would pack into model.tar.gz.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from model import artifact, inference, sagemaker_train

ROUNDS = 20
SEED = 3


@dataclass
class Container:
    """/opt/ml as the job sees it, under a temporary directory."""

    root: Path
    feature_names: list[str]

    @property
    def code(self) -> Path:
        return self.root / "input" / "data" / "code"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    def environment(self, hyperparameters: dict[str, Any]) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "SM_MODEL_DIR": str(self.model),
            "SM_CHANNEL_TRAIN": str(self.channel("train")),
            "SM_CHANNEL_VALIDATION": str(self.channel("validation")),
            "SM_OUTPUT_FAILURE": str(self.failure),
            "SM_HPS": json.dumps(hyperparameters),
        }

    def run(self, hyperparameters: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        # -E -s: no PYTHONPATH, no user site; the script finds artifact.py beside itself, as in the job.
        return subprocess.run(  # noqa: S603 - our own script
            [sys.executable, "-E", "-s", sagemaker_train.ENTRY_SCRIPT],
            cwd=self.code,
            env=self.environment(hyperparameters),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def container(tmp_path: Path, dataset: Path) -> Container:
    root = tmp_path / "opt-ml"
    sagemaker_train.stage_code(root / "input" / "data" / "code")
    for name in ("train", "validation"):
        (root / "input" / "data" / name).mkdir(parents=True)
        shutil.copyfile(dataset / f"{name}.csv", root / "input" / "data" / name / f"{name}.csv")
    (root / "model").mkdir()
    (root / "output").mkdir()
    return Container(root=root, feature_names=json.loads((dataset / "feature_names.json").read_text()))


def recorded(container: Container) -> dict[str, str]:
    """The hyperparameters as the training job records them (all strings)."""
    return sagemaker_train.job_hyperparameters(container.feature_names, rounds=ROUNDS, seed=SEED)


def as_the_sdk_driver_passes_them(hyperparameters: dict[str, str]) -> dict[str, Any]:
    """The SDK's driver (environment.py) decodes each value that is JSON before it exports SM_HPS."""

    def decoded(value: str) -> Any:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value

    return {key: decoded(value) for key, value in hyperparameters.items()}


def read_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.genfromtxt(path, delimiter=",", dtype=np.float32)
    return table[:, 1:], table[:, 0]


def test_the_job_leaves_the_hosted_artifact_in_the_model_directory(container: Container, tmp_path: Path) -> None:
    done = container.run(as_the_sdk_driver_passes_them(recorded(container)))

    assert done.returncode == 0, done.stderr
    # SageMaker packs the model directory as model.tar.gz: the layout of artifact.write_model_tar.
    packed = tmp_path / "model.tar.gz"
    with tarfile.open(packed, "w:gz") as archive:
        for path in sorted(container.model.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(container.model)), recursive=False)
    booster = artifact.load_booster(packed)
    local = artifact.write_model_tar(
        booster, tmp_path / "local.tar.gz", inference_script=Path(inference.__file__).resolve()
    )
    with tarfile.open(packed) as job_archive, tarfile.open(local) as local_archive:
        assert sorted(job_archive.getnames()) == sorted(local_archive.getnames())
    assert (container.model / "code" / "inference.py").read_bytes() == Path(inference.__file__).read_bytes()
    assert inference.feature_names(booster) == container.feature_names
    # The endpoint's own functions load it and answer for the validation rows.
    features, _ = read_table(container.channel("validation") / "validation.csv")
    model = inference.model_fn(str(container.model))
    scored = inference.predict_fn(features, model)
    assert scored.probabilities.shape == (len(features),)
    assert ((scored.probabilities >= 0) & (scored.probabilities <= 1)).all()


@pytest.mark.parametrize("encoding", ["decoded by the SDK's driver", "strings as the job records them"])
def test_the_job_trains_the_model_local_training_would(container: Container, encoding: str) -> None:
    hyperparameters: dict[str, Any] = recorded(container)
    if encoding.startswith("decoded"):
        hyperparameters = as_the_sdk_driver_passes_them(hyperparameters)

    done = container.run(hyperparameters)

    assert done.returncode == 0, done.stderr
    job_model = xgb.Booster()
    job_model.load_model(str(container.model / artifact.MODEL_FILE))
    features, labels = read_table(container.channel("train") / "train.csv")
    validation = read_table(container.channel("validation") / "validation.csv")
    local_model = artifact.fit(
        features,
        labels,
        feature_names=container.feature_names,
        num_boost_round=ROUNDS,
        validation=validation,
        seed=SEED,
        log=None,
    )
    assert job_model.num_boosted_rounds() == ROUNDS
    np.testing.assert_allclose(
        job_model.inplace_predict(validation[0], missing=np.nan),
        local_model.inplace_predict(validation[0], missing=np.nan),
        rtol=1e-6,
    )


def test_rows_of_the_wrong_width_fail_the_job_with_a_one_line_reason(container: Container) -> None:
    (container.channel("train") / "train.csv").write_text("1,0.5,0.1,,2,3\n0,0.4,0.2,1,2,3\n")

    done = container.run(as_the_sdk_driver_passes_them(recorded(container)))

    assert done.returncode == 1
    width = len(container.feature_names)
    assert container.failure.read_text() == f"train.csv has 6 columns; expected the label and {width} features"
    assert not any(container.model.iterdir())


def test_training_rows_without_a_failure_fail_the_job_with_a_reason(container: Container) -> None:
    train = container.channel("train") / "train.csv"
    train.write_text("".join("0" + line[1:] for line in train.read_text().splitlines(keepends=True)))

    done = container.run(as_the_sdk_driver_passes_them(recorded(container)))

    assert done.returncode == 1
    assert "every training label is 0" in container.failure.read_text()


def test_without_the_feature_names_the_job_fails_with_a_reason(container: Container) -> None:
    hyperparameters = recorded(container)
    del hyperparameters["feature_names"]

    done = container.run(hyperparameters)

    assert done.returncode == 1
    assert "feature_names is missing" in container.failure.read_text()


@pytest.mark.parametrize("name", sagemaker_train.CODE_FILES)
def test_the_code_channel_runs_on_the_images_python_and_needs_nothing_of_the_project(name: str) -> None:
    """SageMaker's XGBoost image 3.0-5 has Python 3.10, NumPy and XGBoost, and none of our packages."""
    source = (sagemaker_train.MODEL_DIR / name).read_text()
    tree = ast.parse(source, feature_version=(3, 10))
    # Imports under `if TYPE_CHECKING:` are for the type checker only and never run.
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for statement in node.body
        for inner in ast.walk(statement)
    }
    nodes = [node for node in ast.walk(tree) if id(node) not in type_only]
    imported = {alias.name.split(".")[0] for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    imported |= {
        node.module.split(".")[0]
        for node in nodes
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    shipped = {Path(file).stem for file in sagemaker_train.CODE_FILES}
    outside = imported - set(sys.stdlib_module_names) - {"__future__", "numpy", "xgboost"} - shipped
    assert not outside, f"{name} imports {sorted(outside)}, which the training image does not have"
