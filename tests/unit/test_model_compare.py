"""model/compare.py: two models replayed on the same held-out motors of an archive, and a promote or keep verdict.

The archive is device/history.py's (`--archive`), the models small ones trained on some of its motors.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device import history as history_cli
from device.history import History, generate
from device.physics import DAY_S, FleetConfig
from model import artifact, compare, inference, versions
from model.archive import Archive
from model.archive_dataset import split_by_motor
from model.dataset import Dataset, build
from model.evaluate import MIN_LEAD_H, replay, summarise
from motor_maintenance.config import DetectorConfig
from motor_maintenance.features import FEATURE_NAMES

MOTORS, DAYS, SEED, WEAR = 6, 60, 5, 4.0
TRAINED = 4
"""The first four motors train the models; the last two are held out."""
SCRIPT = Path(inference.__file__)


@dataclass(frozen=True)
class Fleet:
    history: History
    data: Dataset
    archive: Path
    trained: Path
    """Trained on the training motors' labels."""
    blind: Path
    """Trained on those labels shuffled across rows: it never raises the alarm, so it forewarns nothing."""
    alarmist: Path
    """Trained on every row labelled a failure: its alarm is always up, so it forewarns every failure, and
    raises a false alarm on each motor that never fails."""


def _model(history: History, data: Dataset, path: Path, labels: str) -> Path:
    train = data.of_motors(range(TRAINED))
    given = {
        "trained": train.labels,
        "blind": np.random.default_rng(0).permutation(train.labels),
        "alarmist": np.ones_like(train.labels),
    }[labels]
    params = {"eval_metric": "logloss"} if labels == "alarmist" else None  # PR-AUC needs a negative row
    booster = artifact.fit(
        train.features, given, feature_names=FEATURE_NAMES, params=params, num_boost_round=40, log=None, nthread=2
    )
    ids = history.motor_ids
    metadata = {
        "motors": {"train": list(ids[:TRAINED]), "validation": [], "test": list(ids[TRAINED:])},
        "data": {"source": "tests/unit/test_model_compare.py"},
    }
    return artifact.write_model_tar(booster, path, inference_script=SCRIPT, metadata=metadata)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    folder = tmp_path_factory.mktemp("compare")
    archive = folder / "archive"
    argv = ["--motors", str(MOTORS), "--days", str(DAYS), "--seed", str(SEED), "--wear-scale", str(WEAR)]
    assert history_cli.main([*argv, "--archive", str(archive)]) == 0
    # The same fleet in memory (history.py's defaults, as its CLI builds them), for training and for the check
    history = generate(FleetConfig(motors=MOTORS, seed=SEED, wear_scale=WEAR), duration_s=DAYS * DAY_S)
    data = build(history, workers=1)
    models = {name: _model(history, data, folder / f"{name}.tar.gz", name) for name in ("trained", "blind", "alarmist")}
    return Fleet(history, data, archive, **models)


def _run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = compare.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_replay_of_the_archive_is_the_evaluation_of_the_same_fleet(fleet: Fleet, tmp_path: Path) -> None:
    """Given the archive of a simulated fleet, compare's figures for a model are evaluate.py's on that fleet."""
    model = versions.load_versioned(fleet.trained)
    held_out = list(fleet.history.motor_ids[TRAINED:])

    archived = split_by_motor(Archive.open(fleet.archive), scratch=tmp_path)
    scored = compare.score_motors(archived, held_out, {"good": model}, workers=1)
    from_archive = summarise(compare.replayed(scored, "good", DetectorConfig()), min_lead_h=MIN_LEAD_H)

    test = fleet.data.of_motors(range(TRAINED, MOTORS))
    probabilities = np.asarray(model.booster.inplace_predict(test.features, missing=np.nan), dtype=np.float64)
    simulated = summarise(
        replay(
            fleet.history,
            list(range(TRAINED, MOTORS)),
            steps=test.step,
            column_of_row=test.column,
            probabilities=probabilities,
            config=DetectorConfig(),
        ),
        min_lead_h=MIN_LEAD_H,
    )
    assert simulated["predictable"]["failures"] > 0  # the comparison is not between two empty replays
    for key in ("failures", "predictable", "random", "alarm_episodes", "false_alarms"):
        assert from_archive[key] == simulated[key], key
    assert from_archive["motor_years"] == pytest.approx(simulated["motor_years"], abs=0.02)


def test_a_model_that_forewarns_fewer_failures_is_kept_out(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, fleet.blind, "--against", fleet.alarmist, "--archive", fleet.archive)

    assert (code, err) == (compare.KEEP, "")
    blind, alarmist = versions.load_versioned(fleet.blind).version, versions.load_versioned(fleet.alarmist).version
    assert f"verdict: KEEP {blind}: forewarns 0 failures against " in out
    assert "(fewer)" in out
    assert "replaying 2 held-out motors" in out
    [shown] = [line for line in out.splitlines() if line.startswith("model version")]
    assert shown.split()[2:] == [blind, alarmist]
    for label in ("forewarned >= 12 h", "lead time median (h)", "false alarms per motor-year"):
        assert label in out


def test_a_model_with_more_false_alarms_is_kept_out_unless_the_tolerance_allows_them(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "verdict.json"

    code, out, _ = _run(capsys, fleet.alarmist, "--against", fleet.blind, "--archive", fleet.archive, "--json", report)

    assert code == compare.KEEP
    assert "(more)" in out
    document = json.loads(report.read_text())
    assert document["verdict"] == "keep"
    candidate, current = document["candidate"]["summary"], document["current"]["summary"]
    assert candidate["predictable"]["forewarned"] == candidate["predictable"]["failures"] > 0
    assert candidate["false_alarms"] > 0 == current["false_alarms"]

    tolerance = candidate["false_alarms_per_motor_year"] + 1
    code, out, _ = _run(
        capsys,
        fleet.alarmist,
        "--against",
        fleet.blind,
        "--archive",
        fleet.archive,
        "--false-alarm-tolerance",
        tolerance,
    )
    assert code == compare.PROMOTE
    assert "verdict: PROMOTE" in out


def test_the_same_model_against_itself_is_promoted(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, fleet.trained, "--against", fleet.trained, "--archive", fleet.archive)

    assert code == compare.PROMOTE
    [warned] = [line for line in out.splitlines() if line.startswith("forewarned  ")]
    assert len(set(warned.split()[1:])) == 1


def test_the_tolerances_decide_a_close_call() -> None:
    def summary(forewarned: int, false_rate: float) -> dict[str, Any]:
        return {"predictable": {"forewarned": forewarned}, "false_alarms_per_motor_year": false_rate}

    assert not compare.verdict(summary(9, 0.5), summary(10, 0.5))[0]
    assert compare.verdict(summary(9, 0.5), summary(10, 0.5), forewarned_tolerance=1)[0]
    assert not compare.verdict(summary(10, 0.7), summary(10, 0.5))[0]
    assert compare.verdict(summary(10, 0.7), summary(10, 0.5), false_alarm_tolerance=0.25)[0]
    assert compare.verdict(summary(11, 0.4), summary(10, 0.5))[0]


def test_motors_named_on_the_command_line_are_the_ones_replayed(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    motor = fleet.history.motor_ids[-1]

    code, out, _ = _run(capsys, fleet.trained, "--against", fleet.blind, "--archive", fleet.archive, "--motors", motor)

    assert code in (compare.PROMOTE, compare.KEEP)
    assert f"replaying 1 held-out motors of {fleet.archive}: {motor}" in out
    assert "warning" not in out
    trained = fleet.history.motor_ids[0]
    _, out, _ = _run(capsys, fleet.trained, "--against", fleet.blind, "--archive", fleet.archive, "--motors", trained)
    assert f"warning: the candidate was trained on {trained}" in out


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: Any) -> str:
    code, _, err = _run(capsys, *argv)
    assert code == compare.ERROR
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    return err


def test_a_candidate_without_a_manifest_needs_the_motors_named(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a model.tar.gz written before manifests: the booster, its JSON twin and the code
    old = tmp_path / "old.tar.gz"
    with tarfile.open(fleet.trained) as source, tarfile.open(old, "w:gz") as target:
        for member in source.getmembers():
            if not member.name.startswith(artifact.META_DIR):
                target.addfile(member, source.extractfile(member) if member.isfile() else None)

    err = _one_line_error(capsys, old, "--against", fleet.trained, "--archive", fleet.archive)

    assert "no manifest" in err
    assert "--motors" in err
    code, out, _ = _run(
        capsys, old, "--against", fleet.trained, "--archive", fleet.archive, "--motors", fleet.history.motor_ids[-1]
    )
    assert code == compare.PROMOTE  # the same booster: as good as itself
    assert "derived from the model bytes" in out


def test_bad_arguments_are_one_line_errors(fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "no such file" in _one_line_error(
        capsys, tmp_path / "missing.tar.gz", "--against", fleet.trained, "--archive", fleet.archive
    )
    assert "no archive folder" in _one_line_error(
        capsys, fleet.trained, "--against", fleet.blind, "--archive", tmp_path / "nowhere"
    )
    assert "motor-999 not in the archive" in _one_line_error(
        capsys, fleet.trained, "--against", fleet.blind, "--archive", fleet.archive, "--motors", "motor-999"
    )
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    assert "junk.tar.gz: not a model.tar.gz" in _one_line_error(
        capsys, tmp_path / "junk.tar.gz", "--against", fleet.trained, "--archive", fleet.archive
    )


def test_a_model_trained_on_other_features_is_refused(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    names = [*FEATURE_NAMES[:-1], "retired_feature"]
    rng = np.random.default_rng(1)
    features = rng.normal(size=(300, len(names))).astype(np.float32)
    booster = artifact.fit(
        features, (features[:, 0] > 1).astype(np.int8), feature_names=names, num_boost_round=2, log=None
    )
    other = artifact.write_model_tar(booster, tmp_path / "other.tar.gz", inference_script=SCRIPT)

    err = _one_line_error(capsys, other, "--against", fleet.trained, "--archive", fleet.archive)

    assert "candidate model m-" in err
    assert "trained on other features" in err
    assert "retired_feature" in err
