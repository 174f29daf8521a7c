"""Train the failure model in a SageMaker training job (SDK v3), then print the ModelDataUrl for `sam deploy`.

    python model/train.py --export-dataset model/output/dataset    # train.csv, validation.csv, feature_names.json
    python model/sagemaker_train.py --data model/output/dataset --role arn:aws:iam::123456789012:role/motor-training
    python model/sagemaker_train.py --archive s3://BUCKET/PREFIX --processing-image URI --instances 4 --role ARN

Script mode. The job runs SageMaker's XGBoost image 3.0-5, the image the template hosts the model
with, and in it our entry script (model/sagemaker_entry.py): it fits with artifact.fit and
artifact.HYPERPARAMETERS, as model/train.py does on a laptop, and leaves `xgboost-model` and
`code/inference.py` in the model directory. So the job's model.tar.gz is the artifact the template
hosts, as is. The built-in algorithm (the same image, no script) trains with its own code and
parameter names, writes neither the feature names nor code/inference.py, and its output would have
to be downloaded, repacked and uploaded again before `sam deploy`.

How the SDK's ModelTrainer runs it: the code channel is a directory holding only
sagemaker_entry.py, artifact.py and inference.py (self-contained: stdlib, NumPy, XGBoost); the SDK
uploads it with its own driver (channel `sm_drivers`) and sets the job's container entry point to
that driver, which exports SM_CHANNEL_*, SM_HPS and SM_MODEL_DIR and runs the entry script. The
hyperparameters (artifact.HYPERPARAMETERS, the rounds, the seed, the feature names) are written
into the job, so DescribeTrainingJob shows what the model was trained with. The container has no
network access (network isolation): it needs none.

With --archive the training data comes from the fleet's archive in S3 instead: processing jobs split it
by motor and compute the features on several instances, sharded by S3 key (model/sagemaker_pipeline.py),
and the training job trains on their output.

The job's description is read with boto3 after ModelTrainer started it; this script polls it and
prints each status change and the job's log lines until it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python model/sagemaker_train.py): make `model` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model import artifact, sagemaker_pipeline

MODEL_DIR = Path(__file__).resolve().parent
ENTRY_SCRIPT = "sagemaker_entry.py"
CODE_FILES = (ENTRY_SCRIPT, "artifact.py", "inference.py")
"""What the job's code channel holds: the entry script and the two modules it imports or ships."""
BASE_JOB_NAME = "motor-failure-xgboost"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_PREFIX = "motor-maintenance"
ROLE_VARIABLE = "SAGEMAKER_ROLE_ARN"
INSTALL_HINT = "pip install -r model/requirements-sagemaker.txt"
EXPORT_HINT = "python model/train.py --export-dataset DIR"
CSV = "text/csv"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
HYPERPARAMETER_VALUE_MAX = 2500
"""CreateTrainingJob's limit on one hyperparameter value (the feature names travel as one)."""
TERMINAL = ("Completed", "Failed", "Stopped")


class UsageError(Exception):
    """The command cannot run as given (exit status 2): data, credentials, role, SDK."""


class JobFailed(Exception):
    """The training job ended without a model (exit status 1); the message carries SageMaker's reason."""


@dataclass(frozen=True)
class Dataset:
    """The exported dataset: SageMaker XGBoost's text/csv (label first, no header) and its column names."""

    train: Path | str
    """A local file, or an s3:// prefix of CSV files (the archive pipeline's features)."""
    validation: Path | str | None
    feature_names: list[str]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.archive is not None:
            return submit_archive(args)
        dataset = find_dataset(args.data)
        return submit(args, dataset)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (JobFailed, sagemaker_pipeline.ProcessingFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def find_dataset(directory: Path | None) -> Dataset:
    """train.csv (required), validation.csv (optional) and the feature names, checked against each other."""
    if directory is None:
        raise UsageError(
            f"--data is missing: export the training data first with `{EXPORT_HINT}`, then pass --data DIR"
        )
    if not directory.is_dir():
        raise UsageError(f"--data {directory} is not a directory; create it with `{EXPORT_HINT}`")
    train = directory / "train.csv"
    if not train.is_file():
        raise UsageError(f"{train} is missing; `{EXPORT_HINT}` writes it")
    validation = directory / "validation.csv" if (directory / "validation.csv").is_file() else None
    names = _feature_names(directory)
    for path in (train, validation):
        if path is not None:
            _check_columns(path, len(names))
    if not _has_failure(train):
        raise UsageError(f"{train} has no row labelled 1: the model needs failures to learn from (simulate more)")
    return Dataset(train=train, validation=validation, feature_names=names)


def _feature_names(directory: Path) -> list[str]:
    """The export's feature_names.json; without one, the order the Lambda computes the features in."""
    listed = directory / "feature_names.json"
    if listed.is_file():
        try:
            names = json.loads(listed.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"{listed} is not JSON: {exc}") from None
        if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
            raise UsageError(f"{listed} must be a JSON list of the feature names")
        return names
    from motor_maintenance.features import FEATURE_NAMES  # noqa: PLC0415 - only without the export's list

    return list(FEATURE_NAMES)


def _check_columns(path: Path, features: int) -> None:
    with path.open() as lines:
        first = lines.readline().strip()
    if not first:
        raise UsageError(f"{path} is empty")
    columns = first.split(",")
    if len(columns) != features + 1:
        raise UsageError(f"{path} has {len(columns)} columns; expected the label and {features} features")
    if columns[0] not in ("0", "1"):
        raise UsageError(f"{path}: the first column must be the label (0 or 1), found {columns[0][:20]!r}")


def _has_failure(path: Path) -> bool:
    with path.open() as lines:
        return any(line.startswith("1,") for line in lines)


def job_hyperparameters(feature_names: Sequence[str], *, rounds: int, seed: int) -> dict[str, str]:
    """What the entry script trains with, as the job records it: artifact.HYPERPARAMETERS and ours."""
    values: dict[str, Any] = {
        **artifact.HYPERPARAMETERS,
        "num_boost_round": rounds,
        "seed": seed,
        "feature_names": ",".join(feature_names),
    }
    hyperparameters = {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}
    too_long = [key for key, value in hyperparameters.items() if len(value) > HYPERPARAMETER_VALUE_MAX]
    if too_long:
        raise UsageError(f"hyperparameter {too_long[0]} exceeds SageMaker's {HYPERPARAMETER_VALUE_MAX} characters")
    return hyperparameters


def stage_code(directory: Path) -> Path:
    """The code channel: the entry script beside the modules it needs, nothing else of the project."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in CODE_FILES:
        shutil.copyfile(MODEL_DIR / name, directory / name)
    return directory


def model_data_url(description: Mapping[str, Any]) -> str:
    """The job's model.tar.gz once it completed; JobFailed with SageMaker's reason otherwise."""
    name, status = description["TrainingJobName"], description["TrainingJobStatus"]
    if status == "Completed":
        return str(description["ModelArtifacts"]["S3ModelArtifacts"])
    secondary = description.get("SecondaryStatus")
    ended = f"{status} ({secondary})" if secondary and secondary != status else status
    raise JobFailed(f"training job {name} ended {ended}: {description.get('FailureReason') or 'no reason given'}")


def expected_model_data_url(description: Mapping[str, Any]) -> str:
    """Where the job will write model.tar.gz: <S3OutputPath>/<job name>/output/model.tar.gz."""
    output = str(description["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
    return f"{output}/{description['TrainingJobName']}/output/model.tar.gz"


def deploy_command(url: str) -> str:
    """The `sam deploy` that hosts the model: the image version is the one it was trained in."""
    return f"sam deploy --parameter-overrides ModelDataUrl={url} XGBoostImageVersion={artifact.IMAGE_VERSION}"


def follow(
    sagemaker_client: Any,
    logs_client: Any,
    job_name: str,
    *,
    poll_s: float = 15.0,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Poll the job until it ends, printing each status change and new log line; its last description."""
    seen_status: tuple[str, str] | None = None
    log_tokens: dict[str, str | None] = {}
    while True:
        description: dict[str, Any] = sagemaker_client.describe_training_job(TrainingJobName=job_name)
        status = (description["TrainingJobStatus"], description.get("SecondaryStatus", ""))
        if status != seen_status:
            seen_status = status
            transitions = description.get("SecondaryStatusTransitions") or [{}]
            message = transitions[-1].get("StatusMessage", "")
            out(f"[{time.strftime('%H:%M:%S')}] {status[0]} / {status[1]}" + (f": {message}" if message else ""))
        for line in _new_log_lines(logs_client, job_name, log_tokens):
            out(f"  | {line}")
        if status[0] in TERMINAL:
            return description
        time.sleep(poll_s)


def _new_log_lines(logs_client: Any, job_name: str, tokens: dict[str, str | None]) -> list[str]:
    """Lines the job's log streams gained since the last call (none until SageMaker creates them)."""
    try:
        streams = logs_client.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/")
    except logs_client.exceptions.ResourceNotFoundException:
        return []
    lines: list[str] = []
    for stream in streams.get("logStreams", []):
        name = stream["logStreamName"]
        request: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": name, "startFromHead": True}
        if tokens.get(name):
            request["nextToken"] = tokens[name]
        while True:
            page = logs_client.get_log_events(**request)
            lines.extend(event["message"].rstrip() for event in page.get("events", []))
            if not page.get("events") or page.get("nextForwardToken") == request.get("nextToken"):
                break
            request["nextToken"] = page["nextForwardToken"]
        tokens[name] = page.get("nextForwardToken", tokens.get(name))
    return lines


def submit(args: argparse.Namespace, dataset: Dataset) -> int:
    """Start the training job with ModelTrainer, follow it, print the ModelDataUrl and the deploy command."""
    boto_session = _aws_session(args.region)
    region = boto_session.region_name
    image = _training_image(region, args.instance_type)
    print(f"image:  {image} (script mode, entry {ENTRY_SCRIPT})")
    print(f"data:   {', '.join(f'{path.name} {path.stat().st_size / 1e6:.1f} MB' for path in _files(dataset))}")
    print(f"job:    {args.instance_type}, {args.rounds} rounds, at most {args.max_runtime_minutes} min")
    return _train(args, dataset, boto_session, image)


def submit_archive(args: argparse.Namespace) -> int:
    """The archive pipeline: the split and features processing jobs, then the training job on their output."""
    if args.data is not None:
        raise UsageError("give --data (an exported dataset) or --archive (an archive in S3), not both")
    try:
        archive = sagemaker_pipeline.archive_location(args.archive)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.processing_image:
        raise UsageError(
            "--archive needs --processing-image URI: an image with Python 3.11+ and the archive's packages "
            "(docs/sagemaker.md shows one)"
        )
    if not args.role:
        raise UsageError(f"--archive needs the jobs' role: pass --role ARN or set {ROLE_VARIABLE}")
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    boto_session = _aws_session(args.region)
    image = _training_image(boto_session.region_name, args.instance_type)
    stamp = time.strftime("%Y%m%d%H%M%S")
    session = _session(args, boto_session)
    run = sagemaker_pipeline.ArchiveRun(archive, f"s3://{session.default_bucket()}/{args.prefix}/motor-archive/{stamp}")
    print(f"archive: {archive}\nwork:    {run.work}")
    steps = (
        ("split", 1, ["--seed", str(args.seed)]),
        ("features", args.instances, ["--horizon-h", "24"]),
    )
    with tempfile.TemporaryDirectory(prefix="sagemaker-archive-code-") as staging:
        code = str(sagemaker_pipeline.stage_code(Path(staging)))
        for step, instances, arguments in steps:
            name = f"motor-archive-{step}-{stamp}"
            print(f"{step}: {instances} x {args.processing_instance_type}, {args.processing_image}")
            try:
                sagemaker_pipeline.start_processing(
                    session,
                    step=step,
                    run=run,
                    code=code,
                    image=args.processing_image,
                    role=args.role,
                    instance_type=args.processing_instance_type,
                    instances=instances,
                    arguments=arguments,
                    max_runtime_s=args.max_runtime_minutes * 60,
                    job_name=name,
                )
            except (BotoCoreError, ClientError, ValueError) as exc:
                raise UsageError(f"the {step} processing job could not start: {exc}") from None
            sagemaker_pipeline.follow_processing(session.sagemaker_client, name, poll_s=args.poll_seconds)
    from motor_maintenance.features import FEATURE_NAMES  # noqa: PLC0415 - what the processing jobs computed

    dataset = Dataset(train=run.train, validation=run.validation, feature_names=list(FEATURE_NAMES))
    print(f"job:    {args.instance_type}, {args.rounds} rounds, at most {args.max_runtime_minutes} min")
    return _train(args, dataset, boto_session, image)


def _train(args: argparse.Namespace, dataset: Dataset, boto_session: Any, image: str) -> int:
    """Start the training job, follow it, print the ModelDataUrl and the deploy command."""
    region = boto_session.region_name
    sagemaker_client, job_name = _start_job(args, dataset, boto_session, image)
    console = f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{job_name}"
    print(f"training job {job_name}\n  {console}")

    if not args.wait:
        url = expected_model_data_url(sagemaker_client.describe_training_job(TrainingJobName=job_name))
        print(f"not waiting; once the job has completed, its model is {url}")
        print(f"  aws sagemaker describe-training-job --training-job-name {job_name} --query TrainingJobStatus")
        print(f"then deploy it:\n  {deploy_command(url)}")
        return 0
    try:
        description = follow(sagemaker_client, boto_session.client("logs"), job_name, poll_s=args.poll_seconds)
    except KeyboardInterrupt:
        print(
            f"\nstopped following; the job keeps running. Stop it with:\n"
            f"  aws sagemaker stop-training-job --training-job-name {job_name}",
            file=sys.stderr,
        )
        return 130
    url = model_data_url(description)
    print(f"\nModelDataUrl: {url}\nDeploy it (on an existing stack the other parameters keep their values):")
    print(f"  {deploy_command(url)}")
    return 0


def _aws_session(region: str | None) -> Any:
    """A boto3 session with a region and credentials, or a UsageError saying which is missing."""
    try:
        import boto3  # noqa: PLC0415 - installed with the SDK, which is optional
        import sagemaker.train  # noqa: F401, PLC0415
    except ImportError as exc:
        raise UsageError(f"the SageMaker Python SDK v3 is not installed ({exc}); run `{INSTALL_HINT}`") from None
    session = boto3.Session(region_name=region)
    if not session.region_name:
        raise UsageError("no AWS region: pass --region, or set AWS_REGION or a profile's region")
    if session.get_credentials() is None:
        raise UsageError("no AWS credentials: run `aws configure` or `aws sso login`, or set AWS_PROFILE")
    return session


def _training_image(region: str, instance_type: str) -> str:
    """The URI of SageMaker's XGBoost image in the version the template serves with (artifact.IMAGE_VERSION)."""
    from sagemaker.core import image_uris  # noqa: PLC0415

    try:
        return str(
            image_uris.retrieve(
                framework="xgboost",
                region=region,
                version=artifact.IMAGE_VERSION,
                image_scope="training",
                instance_type=instance_type,
            )
        )
    except ValueError as exc:
        raise UsageError(f"no XGBoost {artifact.IMAGE_VERSION} image in {region}: {exc}") from None


def _start_job(args: argparse.Namespace, dataset: Dataset, boto_session: Any, image: str) -> tuple[Any, str]:
    """ModelTrainer uploads the channels and creates the job; (SageMaker client, job name)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    from sagemaker.core.helper.iam_role_resolver import RoleValidationError  # noqa: PLC0415
    from sagemaker.train import ModelTrainer  # noqa: PLC0415
    from sagemaker.train.configs import Compute, InputData, Networking, SourceCode, StoppingCondition  # noqa: PLC0415

    channels = [InputData(channel_name="train", data_source=str(dataset.train), content_type=CSV)]
    if dataset.validation is not None:
        channels.append(InputData(channel_name="validation", data_source=str(dataset.validation), content_type=CSV))
    with tempfile.TemporaryDirectory(prefix="sagemaker-code-") as staging:
        try:
            session = _session(args, boto_session)
            trainer = ModelTrainer(
                sagemaker_session=session,
                role=args.role,
                base_job_name=BASE_JOB_NAME,
                training_image=image,
                source_code=SourceCode(source_dir=str(stage_code(Path(staging))), entry_script=ENTRY_SCRIPT),
                compute=Compute(instance_type=args.instance_type, instance_count=1),
                stopping_condition=StoppingCondition(max_runtime_in_seconds=args.max_runtime_minutes * 60),
                networking=Networking(enable_network_isolation=True),
                hyperparameters=job_hyperparameters(dataset.feature_names, rounds=args.rounds, seed=args.seed),
            )
            print("uploading the data and the code, creating the training job...")
            trainer.train(input_data_config=channels, wait=False, logs=False)
        except RoleValidationError as exc:
            raise UsageError(f"no usable training role: pass --role ARN or set {ROLE_VARIABLE}.\n{exc}") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise UsageError(f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}") from None
        except (BotoCoreError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    # The SDK's own handle on the job a ModelTrainer started (its class docstring's example reads it): in SDK v3,
    # train() returns nothing and ModelTrainer has no public attribute for it. Searching the jobs by name instead
    # could pick another run's job started in the same second.
    return session.sagemaker_client, str(trainer._latest_training_job.training_job_name)


def _session(args: argparse.Namespace, boto_session: Any) -> Any:
    """The SDK's session on the bucket (--bucket, or the SDK's default bucket) with the key prefix."""
    from sagemaker.core.helper.session_helper import Session  # noqa: PLC0415

    session = Session(boto_session=boto_session, default_bucket=args.bucket)
    _resolve_bucket(session, args.bucket)
    session.default_bucket_prefix = args.prefix or None
    return session


def _resolve_bucket(session: Any, bucket: str | None) -> None:
    """Check a named bucket exists (never create it); otherwise let the SDK find or create its default bucket.

    Done before the session gets its key prefix: with a prefix the SDK probes the bucket with
    ListObjectsV2, and it does not create a missing default bucket when that probe fails.
    """
    if bucket is None:
        session.default_bucket_prefix = None
        session.default_bucket()
        return
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        session.s3_client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchBucket"):
            raise UsageError(f"bucket {bucket} does not exist: create it, or leave out --bucket") from None
        raise UsageError(f"bucket {bucket} is not usable ({code}): check the name and your S3 permissions") from None


def _files(dataset: Dataset) -> list[Path]:
    """The dataset's local files (an exported dataset's; the archive pipeline's are in S3)."""
    return [path for path in (dataset.train, dataset.validation) if isinstance(path, Path)]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="\n\n".join(__doc__.split("\n\n")[:2]),
        epilog=f"Needs the SageMaker Python SDK v3 ({INSTALL_HINT}). More in docs/sagemaker.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"train.csv, validation.csv (label first, no header) and feature_names.json, as `{EXPORT_HINT}` "
        "writes them",
    )
    archived = parser.add_argument_group("the fleet's own history (instead of --data)")
    archived.add_argument(
        "--archive",
        default=None,
        metavar="S3_URL",
        help="an archive in S3 (s3://bucket/prefix): split by motor and turned into features by processing jobs, "
        "then trained on",
    )
    archived.add_argument(
        "--processing-image",
        default=None,
        metavar="URI",
        help="the processing jobs' image: Python 3.11+ with the archive's packages (docs/sagemaker.md)",
    )
    archived.add_argument(
        "--instances",
        type=_positive,
        default=2,
        help="instances of the features job, each a share of the motors (%(default)s)",
    )
    archived.add_argument(
        "--processing-instance-type", default="ml.m5.xlarge", help="processing instance type (%(default)s)"
    )
    aws = parser.add_argument_group("AWS")
    aws.add_argument(
        "--role",
        default=os.environ.get(ROLE_VARIABLE) or None,
        metavar="ARN",
        help=f"execution role of the training job (default: ${ROLE_VARIABLE}; without either, the SDK's "
        "configured default role or the role you run as; docs/sagemaker.md lists what it needs)",
    )
    aws.add_argument("--region", default=None, help="AWS region (default: AWS_REGION or the profile's region)")
    aws.add_argument(
        "--bucket",
        default=None,
        help="existing S3 bucket for the data, code and model (default: the SDK session's default bucket, "
        "sagemaker-<region>-<account>, which the SDK creates if needed)",
    )
    aws.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help="S3 key prefix of everything the job reads and writes (%(default)s)"
    )
    job = parser.add_argument_group("training job")
    job.add_argument(
        "--instance-type", default=DEFAULT_INSTANCE_TYPE, help="training instance; a CPU one is enough (%(default)s)"
    )
    job.add_argument("--rounds", type=_positive, default=artifact.NUM_BOOST_ROUND, help="boosting rounds (%(default)s)")
    job.add_argument(
        "--seed",
        type=int,
        default=1,
        help="XGBoost's seed, and with --archive the split by motor's (%(default)s, as model/train.py)",
    )
    job.add_argument(
        "--max-runtime-minutes", type=_positive, default=60, help="SageMaker stops the job after this (%(default)s)"
    )
    progress = parser.add_argument_group("progress")
    progress.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the job (status changes, log lines) and print the ModelDataUrl when it completes (default); "
        "--no-wait prints where the model will be and returns",
    )
    progress.add_argument(
        "--poll-seconds", type=float, default=15.0, help="interval between status checks (%(default)s)"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
