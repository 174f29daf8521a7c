"""model/sagemaker_train.py: clear refusals without AWS, and a whole run against a moto server.

The end-to-end tests start the script as a user does, in its own interpreter, with every AWS call
going to moto on loopback. moto completes a training job the moment it is created (nothing runs),
so they check what the script asked SageMaker for, and that the ModelDataUrl it prints is the one
the job reports.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from model import artifact, sagemaker_train
from motor_maintenance.features import FEATURE_NAMES
from tests.sagemaker.conftest import REGION, ROLE_ARN, MotoServer, sagemaker_config, write_dataset

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "model" / "sagemaker_train.py"


def run_script(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def printed_model_data_url(stdout: str) -> str:
    match = re.search(r"^ModelDataUrl: (s3://\S+)$", stdout, flags=re.MULTILINE)
    assert match, stdout
    return match.group(1)


def s3_objects(s3: Any, url: str) -> dict[str, bytes]:
    """Every object under an s3:// URL (a key or a prefix), by its name relative to that prefix."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    objects = {}
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        name = item["Key"][len(prefix) :].lstrip("/") or Path(prefix).name
        objects[name] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return objects


def channel(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in job["InputDataConfig"] if item["ChannelName"] == name)


class CloudFormationLoader(yaml.SafeLoader):
    """Reads template.yaml without resolving its intrinsic functions (!Sub, !Ref...)."""


CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(), Loader=CloudFormationLoader)  # noqa: S506
    return loaded


# -- without AWS ---------------------------------------------------------------------------------


def test_without_data_it_says_how_to_export_the_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert sagemaker_train.main([]) == 2

    assert "python model/train.py --export-dataset DIR" in capsys.readouterr().err


def test_a_directory_without_train_csv_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sagemaker_train.main(["--data", str(tmp_path)]) == 2

    error = capsys.readouterr().err
    assert "train.csv is missing" in error
    assert "--export-dataset" in error


def test_rows_that_do_not_match_the_feature_names_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_dataset(tmp_path, feature_names=FEATURE_NAMES[:5], with_names_file=False)

    assert sagemaker_train.main(["--data", str(data)]) == 2

    assert f"has 6 columns; expected the label and {len(FEATURE_NAMES)} features" in capsys.readouterr().err


def test_a_dataset_without_failures_is_refused_before_any_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_dataset(tmp_path)
    train = data / "train.csv"
    train.write_text("".join("0" + line[1:] for line in train.read_text().splitlines(keepends=True)))

    assert sagemaker_train.main(["--data", str(data)]) == 2

    assert "no row labelled 1" in capsys.readouterr().err


def test_without_the_sdk_it_says_what_to_install(
    dataset: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sagemaker.train", None)  # import fails as if not installed

    assert sagemaker_train.main(["--data", str(dataset)]) == 2

    assert "pip install -r model/requirements-sagemaker.txt" in capsys.readouterr().err


class FakeSageMaker:
    """DescribeTrainingJob answers in turn; the last one repeats."""

    def __init__(self, *descriptions: dict[str, Any]) -> None:
        self.descriptions = list(descriptions)

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        return self.descriptions.pop(0) if len(self.descriptions) > 1 else self.descriptions[0]


class FakeLogs:
    """One log stream that gains a line per get_log_events call with a new token."""

    class exceptions:
        class ResourceNotFoundException(Exception):
            pass

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def describe_log_streams(self, **_: Any) -> dict[str, Any]:
        return {"logStreams": [{"logStreamName": "job/algo-1-1700000000"}]}

    def get_log_events(self, nextToken: str = "0", **_: Any) -> dict[str, Any]:
        start = int(nextToken)
        return {"events": [{"message": line} for line in self.lines[start:]], "nextForwardToken": str(len(self.lines))}


def description(status: str, secondary: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": "job",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "SecondaryStatusTransitions": [{"Status": secondary, "StatusMessage": message}],
        **extra,
    }


def test_a_failed_job_is_reported_with_sagemakers_reason() -> None:
    sagemaker = FakeSageMaker(
        description("InProgress", "Starting", "Launching requested ML instances"),
        description("InProgress", "Training", "Training image download completed"),
        description("Failed", "Failed", FailureReason="ClientError: train.csv has 5 columns"),
    )
    logs = FakeLogs(["training on 300 rows"])
    printed: list[str] = []

    last = sagemaker_train.follow(sagemaker, logs, "job", poll_s=0, out=printed.append)

    assert any("Starting: Launching requested ML instances" in line for line in printed)
    assert any("Training: Training image download completed" in line for line in printed)
    assert printed.count("  | training on 300 rows") == 1
    with pytest.raises(sagemaker_train.JobFailed, match=r"job ended Failed: ClientError: train\.csv has 5 columns"):
        sagemaker_train.model_data_url(last)


def test_a_job_stopped_at_its_time_limit_gives_no_model() -> None:
    stopped = description("Stopped", "MaxRuntimeExceeded")

    with pytest.raises(sagemaker_train.JobFailed, match=r"ended Stopped \(MaxRuntimeExceeded\): no reason given"):
        sagemaker_train.model_data_url(stopped)


def test_a_completed_job_gives_its_model_artifact() -> None:
    url = "s3://bucket/motor-maintenance/motor-failure-xgboost/job/output/model.tar.gz"
    done = description("Completed", "Completed", ModelArtifacts={"S3ModelArtifacts": url})

    assert sagemaker_train.model_data_url(done) == url
    assert sagemaker_train.deploy_command(url) == (
        f"sam deploy --parameter-overrides ModelDataUrl={url} XGBoostImageVersion=3.0-5"
    )


def test_the_template_serves_by_default_the_image_version_the_job_trains_in() -> None:
    version = template()["Parameters"]["XGBoostImageVersion"]

    assert artifact.IMAGE_VERSION == "3.0-5"
    assert version["Default"] == artifact.IMAGE_VERSION


# -- against moto --------------------------------------------------------------------------------


def test_a_run_uploads_the_data_starts_script_mode_training_and_prints_the_model_data_url(
    moto_server: MotoServer, dataset: Path, tmp_path: Path
) -> None:
    s3, sagemaker = moto_server.client("s3"), moto_server.client("sagemaker")
    s3.create_bucket(Bucket="motor-models", CreateBucketConfiguration={"LocationConstraint": REGION})
    environment = moto_server.environment(sagemaker_config(tmp_path / "sagemaker.yaml"))

    done = run_script(
        *("--data", str(dataset), "--role", ROLE_ARN, "--bucket", "motor-models", "--prefix", "plant-7"),
        *("--rounds", "25", "--seed", "3", "--poll-seconds", "0"),
        environment=environment,
    )

    assert done.returncode == 0, done.stderr
    url = printed_model_data_url(done.stdout)
    (job_summary,) = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    job = sagemaker.describe_training_job(TrainingJobName=job_summary["TrainingJobName"])
    assert url == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert url.startswith("s3://motor-models/plant-7/")
    assert f"sam deploy --parameter-overrides ModelDataUrl={url} XGBoostImageVersion=3.0-5" in done.stdout

    # The image the template hosts the model with, in the region's registry account.
    account = template()["Mappings"]["XGBoostRegistry"][REGION]["Account"]
    algorithm = job["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == f"{account}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-xgboost:3.0-5"
    # Script mode: the SDK's driver replaces the image's own training entry point...
    assert algorithm["ContainerEntrypoint"] == ["/bin/bash"]
    assert "sm_train.sh" in " ".join(algorithm["ContainerArguments"])
    drivers = s3_objects(s3, channel(job, "sm_drivers")["DataSource"]["S3DataSource"]["S3Uri"])
    assert json.loads(drivers["sourcecode.json"])["entry_script"] == "sagemaker_entry.py"
    # ...and runs our entry script from a code channel holding it and the two modules it needs.
    code = s3_objects(s3, channel(job, "code")["DataSource"]["S3DataSource"]["S3Uri"])
    assert set(code) == {"sagemaker_entry.py", "artifact.py", "inference.py"}
    for name, body in code.items():
        assert body == (ROOT / "model" / name).read_bytes()

    # The data, as exported, in text/csv channels.
    for name in ("train", "validation"):
        data = channel(job, name)
        assert data["ContentType"] == "text/csv"
        uploaded = s3_objects(s3, data["DataSource"]["S3DataSource"]["S3Uri"])
        assert uploaded == {f"{name}.csv": (dataset / f"{name}.csv").read_bytes()}

    # The local training's settings, and what the entry script needs to know.
    hyperparameters = job["HyperParameters"]
    for key, value in artifact.HYPERPARAMETERS.items():
        assert hyperparameters[key] == (value if isinstance(value, str) else json.dumps(value)), key
    assert hyperparameters["num_boost_round"] == "25"
    assert hyperparameters["seed"] == "3"
    assert hyperparameters["feature_names"] == ",".join(json.loads((dataset / "feature_names.json").read_text()))

    assert job["RoleArn"] == ROLE_ARN
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert job["ResourceConfig"]["InstanceCount"] == 1
    assert job["EnableNetworkIsolation"] is True
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600


def test_without_a_bucket_it_uses_the_sdks_default_bucket_and_the_role_from_the_environment(
    moto_server: MotoServer, dataset: Path, tmp_path: Path
) -> None:
    # The SDK's own config names the default bucket (without it, the SDK asks STS for the account).
    config = sagemaker_config(tmp_path / "sagemaker.yaml", default_bucket="sagemaker-defaults-here")
    environment = moto_server.environment(config, SAGEMAKER_ROLE_ARN=ROLE_ARN)

    done = run_script("--data", str(dataset), "--no-wait", environment=environment)

    assert done.returncode == 0, done.stderr
    sagemaker = moto_server.client("sagemaker")
    (job_summary,) = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    job = sagemaker.describe_training_job(TrainingJobName=job_summary["TrainingJobName"])
    url = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert url.startswith("s3://sagemaker-defaults-here/motor-maintenance/")
    assert f"its model is {url}" in done.stdout
    assert f"ModelDataUrl={url}" in done.stdout
    assert job["RoleArn"] == ROLE_ARN


def test_without_a_role_as_an_iam_user_it_asks_for_one(moto_server: MotoServer, dataset: Path, tmp_path: Path) -> None:
    environment = moto_server.environment(sagemaker_config(tmp_path / "sagemaker.yaml"))
    moto_server.client("s3").create_bucket(
        Bucket="motor-models", CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    done = run_script("--data", str(dataset), "--bucket", "motor-models", environment=environment)

    assert done.returncode == 2
    assert "pass --role ARN or set SAGEMAKER_ROLE_ARN" in done.stderr
    assert moto_server.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_a_bucket_that_does_not_exist_is_not_created(moto_server: MotoServer, dataset: Path, tmp_path: Path) -> None:
    environment = moto_server.environment(sagemaker_config(tmp_path / "sagemaker.yaml"))

    done = run_script("--data", str(dataset), "--role", ROLE_ARN, "--bucket", "no-such-bucket", environment=environment)

    assert done.returncode == 2
    assert "bucket no-such-bucket does not exist" in done.stderr
    assert moto_server.client("s3").list_buckets()["Buckets"] == []


def test_without_credentials_it_says_so(moto_server: MotoServer, dataset: Path, tmp_path: Path) -> None:
    environment = moto_server.environment(sagemaker_config(tmp_path / "sagemaker.yaml"))
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]

    done = run_script("--data", str(dataset), "--role", ROLE_ARN, environment=environment)

    assert done.returncode == 2
    assert "no AWS credentials" in done.stderr
