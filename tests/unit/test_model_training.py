"""model/train.py end to end on a small fleet: the artifact, its CSV contract, metrics, plots, card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from model import inference
from model.fit_evaluate import report
from motor_maintenance.features import FEATURE_NAMES, RunningStats, compute_features, to_csv_row
from tests.support import svg_elements

ROOT = Path(__file__).resolve().parents[2]


def test_the_artifact_holds_only_the_booster_at_its_top_and_the_inference_code_and_its_json_beside_it(
    small_model_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    _, out = small_model_run
    with tarfile.open(out / "model.tar.gz") as archive:
        names = sorted(archive.getnames())
        archive.extractall(tmp_path, filter="data")
    assert names == [
        "code",
        "code/inference.py",
        "embedded",
        "embedded/xgboost-model.json",
        "meta",
        "meta/manifest.json",
        "xgboost-model",
    ]
    # SageMaker's algorithm-mode server loads every top-level file as a booster: each must load.
    for entry in tmp_path.iterdir():
        if entry.is_file():
            xgb.Booster().load_model(str(entry))
    assert (tmp_path / "code" / "inference.py").read_bytes() == (ROOT / "model" / "inference.py").read_bytes()


def test_the_artifact_answers_csv_rows_of_the_lambdas_features_with_probabilities(
    small_model_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    _, out = small_model_run
    with tarfile.open(out / "model.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    booster = inference.model_fn(str(tmp_path))
    assert booster.num_features() == len(FEATURE_NAMES)
    assert inference.feature_names(booster) == list(FEATURE_NAMES)

    rows = _feature_rows(count=5)
    body = "\n".join(to_csv_row(row) for row in rows)  # what the Lambda's adapter sends
    answer, content_type = inference.output_fn(
        inference.predict_fn(inference.input_fn(body, "text/csv"), booster), "text/csv"
    )

    assert content_type == "text/csv"
    probabilities = [float(line) for line in answer.splitlines()]
    assert len(probabilities) == 5
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    direct = booster.inplace_predict(np.asarray(rows, dtype=np.float32), missing=np.nan)
    assert probabilities == pytest.approx(direct.tolist(), rel=1e-5, abs=1e-7)


def test_the_run_writes_metrics_plots_and_a_model_card_with_the_runs_own_figures(
    small_model_run: tuple[dict[str, Any], Path],
) -> None:
    metrics, out = small_model_run
    written = json.loads((out / "metrics.json").read_text())
    assert written["replay"] == metrics["replay"]
    assert written["data"]["split"] == {"train": 6, "validation": 0, "test": 2}
    assert set(written["data"]["test_motors"]).isdisjoint(range(8)) is False
    shown = {
        plot: [element.get("class") for element in svg_elements(out / f"{plot}.svg")]
        for plot in ("pr-curve", "lead-time", "feature-importance")
    }
    assert "line" in shown["pr-curve"]
    assert "reference" in shown["lead-time"]  # the 12 h target; bars only where a failure was forewarned
    assert "bar" in shown["feature-importance"]
    card = (out / "model-card.md").read_text()
    assert f"**{metrics['replay']['false_alarms_per_motor_year']} per motor-year**" in card
    assert str(metrics["rows"]["pr_auc"]) in card
    assert "by motor" in card
    text = report(metrics)
    assert "all predictable" in text
    assert "False predictive alarms" in text


def test_the_held_out_motors_are_evaluated_on_their_failures(small_model_run: tuple[dict[str, Any], Path]) -> None:
    metrics, _ = small_model_run
    replayed = metrics["replay"]
    assert replayed["failures"] > 0  # four times the wear: the held-out motors do fail
    assert replayed["predictable"]["failures"] + replayed["random"]["failures"] == replayed["failures"]
    assert 0 <= replayed["predictable"]["forewarned"] <= replayed["predictable"]["failures"]


def test_the_exported_dataset_is_what_sagemakers_xgboost_reads_as_text_csv(
    small_model_run: tuple[dict[str, Any], Path],
) -> None:
    _, out = small_model_run
    names = json.loads((out / "dataset" / "feature_names.json").read_text())
    assert names == list(FEATURE_NAMES)
    for name in ("train", "validation"):
        text = (out / "dataset" / f"{name}.csv").read_text()
        assert "nan" not in text
        lines = text.splitlines()
        assert all(len(line.split(",")) == 1 + len(names) for line in lines)  # label first, no header
        table = np.genfromtxt(lines, delimiter=",", missing_values="", filling_values=np.nan)
        assert set(np.unique(table[:, 0])) <= {0.0, 1.0}
        assert table.shape[1] == 1 + len(names)
    train_table = np.genfromtxt((out / "dataset" / "train.csv").read_text().splitlines(), delimiter=",")
    assert train_table[:, 0].sum() > 0


def test_help_documents_the_options() -> None:
    result = subprocess.run(  # noqa: S603 - our own script, with this interpreter
        [sys.executable, str(ROOT / "model" / "train.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
        timeout=60,
    )
    for option in ("--motors", "--days", "--rounds", "--ai4i", "--export-dataset", "--detector-config"):
        assert option in result.stdout


def test_an_ai4i_path_that_is_not_a_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own script, with this interpreter
        [sys.executable, str(ROOT / "model" / "train.py"), "--ai4i", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "is not a file" in result.stderr
    assert "Traceback" not in result.stderr


def _feature_rows(count: int) -> list[list[float]]:
    from device.history import generate
    from device.physics import FleetConfig

    history = generate(FleetConfig(motors=1, seed=5), duration_s=count * 3600, interval_s=600)
    rows: list[list[float]] = []
    stats: RunningStats | None = None
    for reading in history.readings(0):
        row, stats = compute_features(reading, stats)
        rows.append(row)
    return rows[-count:]


def test_a_missing_feature_is_exported_as_an_empty_field(tmp_path: Path) -> None:
    from model.dataset import Dataset
    from model.fit_evaluate import export_csv

    features = np.ones((2, len(FEATURE_NAMES)), dtype=np.float32)
    features[1, 4] = np.nan
    part = Dataset(
        features,
        np.array([0, 1], dtype=np.int8),
        np.zeros(2, dtype=bool),
        np.zeros(2, dtype=np.int32),
        np.arange(2, dtype=np.int32),
    )
    export_csv(tmp_path, {"train": part, "validation": part, "test": part}, log=lambda _line: None)

    second = (tmp_path / "train.csv").read_text().splitlines()[1].split(",")
    assert second[0] == "1"
    assert second[1 + 4] == ""
    assert second[1 + 3] == "1"
