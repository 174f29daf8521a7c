"""`model/sagemaker_train.py --archive s3://...`: the archive pipeline as SageMaker jobs, against moto.

moto completes every job the moment it is created and runs nothing, so these tests check what the
script asked SageMaker for: a split job on the archive, a features job whose per-motor input is
sharded by key over several instances, and a training job on the features job's output. What the jobs
run is tested on its own (tests/unit/test_sagemaker_archive.py runs the steps as two instances would).
moto does not keep a processing job's ProcessingResources or Environment, so the instance count is
read from the script's own report of what it started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from model import sagemaker_train
from tests.sagemaker.conftest import REGION, ROLE_ARN, MotoServer, sagemaker_config
from tests.sagemaker.test_sagemaker_train import ROOT, channel, printed_model_data_url, run_script, s3_objects

IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/motor-archive:1"
ARCHIVE = "s3://plant-archive/fleet"


def _inputs(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["InputName"]: item["S3Input"] for item in job["ProcessingInputs"]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processing-image", IMAGE, "--role", ROLE_ARN, "--data", "somewhere"], "not both"),
        (["--processing-image", IMAGE], "--archive needs the jobs' role"),
        (["--role", ROLE_ARN], "--archive needs --processing-image URI"),
    ],
    ids=["with --data", "without a role", "without an image"],
)
def test_what_the_archive_pipeline_cannot_run_with_is_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAGEMAKER_ROLE_ARN", raising=False)

    assert sagemaker_train.main(["--archive", ARCHIVE, *argv]) == 2

    assert message in capsys.readouterr().err


def test_an_archive_that_is_not_in_s3_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert sagemaker_train.main(["--archive", "archive", "--processing-image", IMAGE, "--role", ROLE_ARN]) == 2

    assert "SageMaker jobs read an archive in S3" in capsys.readouterr().err


def test_the_archive_is_split_then_sharded_by_key_over_instances_then_trained_on(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    s3, sagemaker = moto_server.client("s3"), moto_server.client("sagemaker")
    for bucket in ("motor-models", "plant-archive"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    environment = moto_server.environment(sagemaker_config(tmp_path / "sagemaker.yaml"))

    done = run_script(
        *("--archive", ARCHIVE, "--processing-image", IMAGE, "--instances", "3"),
        *("--role", ROLE_ARN, "--bucket", "motor-models", "--prefix", "plant-7", "--poll-seconds", "0"),
        environment=environment,
    )

    assert done.returncode == 0, done.stderr
    names = sorted(job["ProcessingJobName"] for job in sagemaker.list_processing_jobs()["ProcessingJobSummaries"])
    assert [name.rsplit("-", 1)[0] for name in names] == ["motor-archive-features", "motor-archive-split"]
    features, split = (sagemaker.describe_processing_job(ProcessingJobName=name) for name in names)
    work = split["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rsplit("/motors", 1)[0]
    assert work.startswith("s3://motor-models/plant-7/motor-archive/")

    # The split job reads the archive's readings and actions whole, on one instance...
    assert "split: 1 x ml.m5.xlarge" in done.stdout
    inputs = _inputs(split)
    assert inputs["telemetry"]["S3Uri"] == f"{ARCHIVE}/telemetry/"
    assert inputs["actions"]["S3Uri"] == f"{ARCHIVE}/actions/"
    assert {item["S3DataDistributionType"] for item in inputs.values()} == {"FullyReplicated"}
    assert split["AppSpecification"]["ContainerArguments"][0] == "split"

    # ...the features job shares the per-motor files out by key over the instances, the logs to every one...
    assert "features: 3 x ml.m5.xlarge" in done.stdout
    inputs = _inputs(features)
    assert inputs["motors"]["S3Uri"] == f"{work}/motors/"
    assert inputs["motors"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert inputs["meta"]["S3DataDistributionType"] == "FullyReplicated"
    outputs = {item["OutputName"]: item["S3Output"]["S3Uri"] for item in features["ProcessingOutputConfig"]["Outputs"]}
    assert outputs == {"features": f"{work}/features/"}

    # ...both run this project's code from a code channel, in the image given.
    for job in (split, features):
        app = job["AppSpecification"]
        assert app["ImageUri"] == IMAGE
        code_path = _inputs(job)["code"]["LocalPath"]
        assert code_path == "/opt/ml/processing/input/code"
        assert app["ContainerEntrypoint"] == ["python3", "-u", f"{code_path}/model/sagemaker_archive.py"]
        assert job["RoleArn"] == ROLE_ARN
        code = s3_objects(s3, _inputs(job)["code"]["S3Uri"])
        assert code["model/sagemaker_archive.py"] == (ROOT / "model" / "sagemaker_archive.py").read_bytes()
        assert "motor_maintenance/features.py" in code
        assert "device/archive_layout.py" in code
        assert not [name for name in code if not name.endswith(".py")]

    # Then the training job trains on the features job's train and validation parts.
    (summary,) = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    assert channel(job, "train")["DataSource"]["S3DataSource"]["S3Uri"] == f"{work}/features/train/"
    assert channel(job, "validation")["DataSource"]["S3DataSource"]["S3Uri"] == f"{work}/features/validation/"
    assert printed_model_data_url(done.stdout) == job["ModelArtifacts"]["S3ModelArtifacts"]
