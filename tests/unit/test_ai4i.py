"""The AI4I 2020 evaluation: loading the public file's format, no leakage, stratified folds, the report."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model import ai4i
from tests import ai4i_synth
from tests.support import svg_elements


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5000 products by Matzka's rules, with 69 HDF, 50 PWF and 63 OSF failures to learn the rules from."""
    return ai4i_synth.write(tmp_path_factory.mktemp("ai4i") / "ai4i2020.csv", 5000, seed=4)


@pytest.fixture(scope="module")
def evaluation(synthetic_file: Path) -> ai4i.CrossValidation:
    return ai4i.cross_validate(ai4i.load(synthetic_file), folds=5, seed=0)


def write_rows(path: Path, rows: list[dict[str, str]], header: tuple[str, ...] = ai4i_synth.HEADER) -> Path:
    path.write_text(ai4i_synth.to_text(rows, header=header), encoding="utf-8")
    return path


# Loading


def test_a_file_starting_with_a_utf8_bom_loads_like_one_without(tmp_path: Path) -> None:
    with_bom = ai4i.load(ai4i_synth.write(tmp_path / "bom.csv", 50, bom=True))
    without = ai4i.load(ai4i_synth.write(tmp_path / "plain.csv", 50))

    assert (tmp_path / "bom.csv").read_bytes().startswith(b"\xef\xbb\xbfUDI,")
    assert len(with_bom) == 50
    assert with_bom.udi[0] == "1"
    np.testing.assert_array_equal(ai4i.features(with_bom), ai4i.features(without))


def test_the_loaded_columns_hold_the_files_values(tmp_path: Path) -> None:
    rows = ai4i_synth.records(3)
    rows[1].update({"Type": "H", "Torque [Nm]": "61.5", "Machine failure": "1", "PWF": "1"})

    data = ai4i.load(write_rows(tmp_path / "ai4i.csv", rows))

    assert data.quality.tolist() == [row["Type"] for row in rows]
    assert data.torque_nm[1] == 61.5
    assert data.failure.tolist() == [0, 1, 0]
    assert data.modes["PWF"].tolist() == [0, 1, 0]


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    header = tuple(name for name in ai4i_synth.HEADER if name != "Torque [Nm]")

    with pytest.raises(ai4i.Ai4iFormatError, match=r"missing column\(s\) \['Torque \[Nm\]'\]"):
        ai4i.load(write_rows(tmp_path / "ai4i.csv", ai4i_synth.records(5), header=header))


def test_a_renamed_column_is_named_as_missing_and_unexpected(tmp_path: Path) -> None:
    path = ai4i_synth.write(tmp_path / "ai4i.csv", 5)
    path.write_text(path.read_text().replace("Tool wear [min]", "Tool wear [s]", 1))

    with pytest.raises(ai4i.Ai4iFormatError) as error:
        ai4i.load(path)

    assert "missing column(s) ['Tool wear [min]']" in str(error.value)
    assert "unexpected column(s) ['Tool wear [s]']" in str(error.value)


def test_columns_in_another_order_are_refused(tmp_path: Path) -> None:
    header = ("Product ID", "UDI", *ai4i_synth.HEADER[2:])

    with pytest.raises(ai4i.Ai4iFormatError, match="out of order"):
        ai4i.load(write_rows(tmp_path / "ai4i.csv", ai4i_synth.records(5), header=header))


def test_a_non_numeric_value_names_its_line_and_column(tmp_path: Path) -> None:
    rows = ai4i_synth.records(10)
    rows[6]["Rotational speed [rpm]"] = "fast"  # the 7th row is line 8: the header is line 1

    with pytest.raises(
        ai4i.Ai4iFormatError, match=r"line 8, column 'Rotational speed \[rpm\]': 'fast' is not a number"
    ):
        ai4i.load(write_rows(tmp_path / "ai4i.csv", rows))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Type", "X", "line 4, column 'Type': 'X' is not one of L, M, H"),
        ("HDF", "2", "line 4, column 'HDF': '2' is not 0 or 1"),
        ("Machine failure", "", "line 4, column 'Machine failure': '' is not 0 or 1"),
        ("Torque [Nm]", "nan", "line 4, column 'Torque [Nm]': 'nan' is not a finite number"),
    ],
)
def test_a_bad_value_names_its_line(tmp_path: Path, column: str, value: str, message: str) -> None:
    rows = ai4i_synth.records(5)
    rows[2][column] = value

    with pytest.raises(ai4i.Ai4iFormatError) as error:
        ai4i.load(write_rows(tmp_path / "ai4i.csv", rows))

    assert str(error.value) == message


def test_a_row_with_a_missing_field_names_its_line(tmp_path: Path) -> None:
    path = ai4i_synth.write(tmp_path / "ai4i.csv", 5)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(ai4i.Ai4iFormatError, match="line 4: 13 fields, expected 14"):
        ai4i.load(path)


@pytest.mark.parametrize(("text", "message"), [("", "is empty"), (",".join(ai4i_synth.HEADER) + "\n", "no rows")])
def test_an_empty_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ai4i.csv"
    path.write_text(text)

    with pytest.raises(ai4i.Ai4iFormatError, match=message):
        ai4i.load(path)


# Features and leakage


def test_the_features_are_the_sensors_the_quality_and_their_physics(tmp_path: Path) -> None:
    rows = ai4i_synth.records(2)
    rows[0].update(
        {
            "Type": "M",
            "Air temperature [K]": "300.0",
            "Process temperature [K]": "308.5",
            "Rotational speed [rpm]": "1500",
            "Torque [Nm]": "40.0",
            "Tool wear [min]": "100",
        }
    )

    vector = dict(
        zip(ai4i.FEATURE_NAMES, ai4i.features(ai4i.load(write_rows(tmp_path / "a.csv", rows)))[0], strict=True)
    )

    assert vector["quality"] == 1
    assert vector["temp_diff_k"] == pytest.approx(8.5)
    assert vector["power_w"] == pytest.approx(40.0 * 1500 * 2 * math.pi / 60)  # about 6283 W
    assert vector["strain_min_nm"] == pytest.approx(4000.0)
    assert vector["overstrain_ratio"] == pytest.approx(4000.0 / 12_000.0)  # a medium-quality product's limit
    assert [vector[name] for name in ai4i.FEATURE_NAMES[:5]] == [300.0, 308.5, 1500.0, 40.0, 100.0]


def test_the_overstrain_ratio_passes_1_exactly_where_the_products_quality_fails_by_overstrain(
    synthetic_file: Path,
) -> None:
    data = ai4i.load(synthetic_file)

    ratio = ai4i.features(data)[:, ai4i.FEATURE_NAMES.index("overstrain_ratio")]

    assert data.modes["OSF"].sum() >= 25
    np.testing.assert_array_equal(ratio > 1.0, data.modes["OSF"] == 1)
    # The unnormalised strain cannot do that with one cut: some overstrained rows strain less than healthy ones.
    strain = ai4i.features(data)[:, ai4i.FEATURE_NAMES.index("strain_min_nm")]
    assert strain[data.modes["OSF"] == 1].min() < strain[data.modes["OSF"] == 0].max()


def test_no_feature_is_an_identifier_or_a_failure_flag() -> None:
    for forbidden in ("udi", "product", "twf", "hdf", "pwf", "osf", "rnf", "failure"):
        assert not any(forbidden in name.lower() for name in ai4i.FEATURE_NAMES), forbidden


def test_identifiers_and_mode_flags_cannot_change_the_predictions(tmp_path: Path) -> None:
    """Given the same sensors, scrambled UDIs, Product IDs and mode flags give identical out-of-fold predictions."""
    data = ai4i.load(ai4i_synth.write(tmp_path / "ai4i.csv", 1500, seed=3))
    rng = np.random.default_rng(7)
    scrambled = replace(
        data,
        udi=rng.permutation(data.udi),
        product_id=rng.permutation(data.product_id),
        modes={mode: rng.permutation(flags) for mode, flags in data.modes.items()},
    )

    honest = ai4i.cross_validate(data, folds=3, seed=0)
    after = ai4i.cross_validate(scrambled, folds=3, seed=0)

    np.testing.assert_array_equal(after.probabilities, honest.probabilities)
    np.testing.assert_array_equal(after.predictions, honest.predictions)
    assert honest.labels.sum() > 20


def test_the_failure_label_does_change_the_predictions(tmp_path: Path) -> None:
    """The control for the test above: the comparison can see a difference."""
    data = ai4i.load(ai4i_synth.write(tmp_path / "ai4i.csv", 1500, seed=3))
    relabelled = replace(data, failure=np.random.default_rng(7).permutation(data.failure))

    honest = ai4i.cross_validate(data, folds=3, seed=0)
    after = ai4i.cross_validate(relabelled, folds=3, seed=0)

    assert not np.array_equal(after.probabilities, honest.probabilities)


# Cross-validation


def test_every_row_is_predicted_once_by_a_fold_with_its_share_of_failures(evaluation: ai4i.CrossValidation) -> None:
    rows, failures = len(evaluation.labels), int(evaluation.labels.sum())

    assert sorted(set(evaluation.fold_of_row.tolist())) == [1, 2, 3, 4, 5]
    for fold in evaluation.folds:
        in_fold = evaluation.fold_of_row == fold.fold
        assert fold.rows == in_fold.sum()
        assert abs(fold.rows - rows / 5) <= 1
        assert abs(fold.failures - failures / 5) <= 1
        assert fold.failures == evaluation.labels[in_fold].sum()


def test_each_threshold_is_chosen_on_its_training_rows_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ai4i.load(ai4i_synth.write(tmp_path / "ai4i.csv", 1500, seed=3))
    chosen_on: list[np.ndarray] = []
    original = ai4i.best_f1_threshold

    def spy(labels: np.ndarray, probabilities: np.ndarray) -> float:
        chosen_on.append(labels.copy())
        return original(labels, probabilities)

    monkeypatch.setattr(ai4i, "best_f1_threshold", spy)
    evaluation = ai4i.cross_validate(data, folds=3, seed=0)

    assert len(chosen_on) == 3
    for fold, labels in zip(evaluation.folds, chosen_on, strict=True):
        training = evaluation.fold_of_row != fold.fold
        assert len(labels) == training.sum()
        np.testing.assert_array_equal(labels, evaluation.labels[training])


def test_the_physics_features_find_the_rule_based_failures(
    synthetic_file: Path, evaluation: ai4i.CrossValidation
) -> None:
    data = ai4i.load(synthetic_file)
    found = evaluation.predictions == 1
    # The generator, like the real file's, tests "difference < 8.6 K" on the rounded temperatures in
    # float64: at a written 8.6 K the label follows the rounding error, which no feature can see.
    written_difference = np.round(data.process_temp_k - data.air_temp_k, 1)
    tie = (written_difference == 8.6) & (data.speed_rpm < 1380)
    decidable = {"HDF": (data.modes["HDF"] == 1) & ~tie, "PWF": data.modes["PWF"] == 1, "OSF": data.modes["OSF"] == 1}

    for mode, failures in decidable.items():
        assert failures.sum() >= 25, mode
        assert found[failures].mean() >= 0.9, (mode, found[failures].mean())
    pooled = ai4i.pooled_scores(evaluation.labels, evaluation.predictions, evaluation.probabilities)
    assert pooled["precision"] >= 0.9


def test_the_same_seed_gives_the_same_evaluation(tmp_path: Path) -> None:
    data = ai4i.load(ai4i_synth.write(tmp_path / "ai4i.csv", 1500, seed=3))

    first, again = (ai4i.cross_validate(data, folds=3, seed=5) for _ in range(2))

    np.testing.assert_array_equal(again.probabilities, first.probabilities)
    assert again.folds == first.folds


# Repeated cross-validation


@pytest.fixture(scope="module")
def repeated(tmp_path_factory: pytest.TempPathFactory) -> ai4i.RepeatedCrossValidation:
    path = ai4i_synth.write(tmp_path_factory.mktemp("ai4i") / "ai4i2020.csv", 1500, seed=3)
    return ai4i.repeated_cross_validate(ai4i.load(path), folds=3, repeats=3, seed=10)


def test_each_repeat_shuffles_the_rows_into_other_folds(repeated: ai4i.RepeatedCrossValidation) -> None:
    assert [run.seed for run in repeated.runs] == [10, 11, 12]
    first, second, third = (run.fold_of_row for run in repeated.runs)

    assert not np.array_equal(first, second)
    assert not np.array_equal(second, third)
    for run in repeated.runs:
        assert sorted(set(run.fold_of_row.tolist())) == [1, 2, 3]


def test_the_mean_f1_is_over_every_fold_of_every_repeat_with_an_interval_around_it(
    repeated: ai4i.RepeatedCrossValidation,
) -> None:
    fold_f1 = [fold.f1 for run in repeated.runs for fold in run.folds]

    f1 = repeated.metrics()["f1"]

    assert f1["n"] == 9
    assert f1["mean"] == pytest.approx(np.mean(fold_f1), abs=1e-4)
    assert f1["low"] < f1["mean"] < f1["high"]
    # Wider than the naive standard error of nine independent values: the folds share training rows.
    naive_half = 2.306 * np.std(fold_f1, ddof=1) / 3
    assert f1["high"] - f1["mean"] > 1.5 * naive_half


def test_failures_by_mode_are_counted_once_per_repeat(repeated: ai4i.RepeatedCrossValidation) -> None:
    by_mode = repeated.recall_by_mode()
    single = repeated.runs[0].recall_by_mode()

    for mode, row in by_mode.items():
        assert row["failures"] == 3 * single[mode]["failures"]
        assert row["found"] == sum(run.recall_by_mode()[mode]["found"] for run in repeated.runs)


def test_a_repeated_cross_validation_needs_a_repeat_and_two_folds(synthetic_file: Path) -> None:
    data = ai4i.load(synthetic_file)

    with pytest.raises(ValueError, match="at least one repeat and two folds"):
        ai4i.repeated_cross_validate(data, folds=5, repeats=0)


# Report and files


def test_the_report_shows_each_repeat_the_mean_std_pooled_the_interval_and_each_mode(
    repeated: ai4i.RepeatedCrossValidation,
) -> None:
    metrics = repeated.metrics()

    report = ai4i.format_report(repeated)

    table = {line.split()[0]: line.split()[1:] for line in report.splitlines() if re.match(r"\w+ +\d\.\d{3}", line)}
    assert table["mean"][:2] == [f"{metrics['mean']['f1']:.3f}", f"{metrics['mean']['pr_auc']:.3f}"]
    assert table["std"][:2] == [f"{metrics['std']['f1']:.3f}", f"{metrics['std']['pr_auc']:.3f}"]
    assert table["pooled"][:2] == [f"{metrics['pooled']['f1']:.3f}", f"{metrics['pooled']['pr_auc']:.3f}"]
    assert report.count("\nrepeat ") == 3
    f1 = metrics["f1"]
    assert f"mean F1 over 3 x 3 folds: {f1['mean']:.4f}, 95 % interval {f1['low']:.4f} to {f1['high']:.4f}" in report
    for mode in (*ai4i.FAILURE_MODES, ai4i.NO_MODE):
        assert f"\n{mode}" in report
    assert "UDI, Product ID and the failure-mode flags" in report
    assert ai4i.format_report(metrics) == report


def test_run_writes_the_metrics_and_the_pr_curve_and_reports_each_fold(tmp_path: Path) -> None:
    path = ai4i_synth.write(tmp_path / "ai4i2020.csv", 1200, seed=2, bom=True)
    messages: list[str] = []

    metrics = ai4i.run(path, out_dir=tmp_path / "out", folds=3, repeats=2, seed=0, progress=messages.append)

    written = json.loads((tmp_path / "out" / "ai4i-metrics.json").read_text())
    assert written == json.loads(json.dumps(metrics))
    assert set(written) >= {"f1", "mean", "std", "pooled", "per_repeat", "per_fold", "recall_by_mode", "features"}
    assert len(written["per_fold"]) == 6
    assert 0 <= written["pooled"]["f1"] <= 1
    plot = tmp_path / "out" / "ai4i-pr-curve.svg"
    assert len(svg_elements(plot, "line")) == 6 + 1  # each fold's and the pooled curve
    assert len(svg_elements(plot, "point")) == 1  # the chosen operating point
    assert "1200 rows" in messages[0]
    assert [message.split(":")[0] for message in messages[1:]] == [
        f"repeat {r}/2 fold {f}/3" for r in (1, 2) for f in (1, 2, 3)
    ]
