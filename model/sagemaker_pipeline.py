"""`python model/sagemaker_train.py --archive s3://...`: the archive pipeline as SageMaker jobs (SDK v3).

Three jobs, one after the other, each started with the SDK and followed until it ends:

1. **split** (a processing job, one instance): the archive's `telemetry/` and `actions/` in, one Parquet
   file per motor, the maintenance logs and the split by motor out (model/sagemaker_archive.py).
2. **features** (a processing job, `--instances` instances): the per-motor files in with
   `S3DataDistributionType` `ShardedByS3Key`, so each instance gets whole motors, a part of them;
   the logs and the split replicated to every instance. Each writes its motors' feature rows as
   label-first CSV parts, one folder per part of the split.
3. **training** (the training job model/sagemaker_train.py starts for `--data`): the train and
   validation parts in, the hosted artifact out.

Everything goes under `s3://<bucket>/<prefix>/motor-archive/<run>/`: `code/`, `motors/`, `meta/`,
`features/{train,validation,test}/`, then the training job's own folders.

The processing jobs run `--processing-image`: an image with Python 3.11 or newer and
model/requirements-archive.txt's and requirements.txt's packages (DuckDB, pydantic, NumPy);
docs/sagemaker.md shows one. The code channel holds this project's `model`, `device` and
`motor_maintenance` packages (Python files only).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CODE_PACKAGES = {
    "model": REPO / "model",
    "device": REPO / "device",
    "motor_maintenance": REPO / "layers" / "shared" / "motor_maintenance",
}
PROCESSING = "/opt/ml/processing"
CODE_PATH = f"{PROCESSING}/input/code"
SPLIT_JOB = "motor-archive-split"
FEATURES_JOB = "motor-archive-features"
TERMINAL = ("Completed", "Failed", "Stopped")
ENTRYPOINT = ["python3", "-u", f"{CODE_PATH}/model/sagemaker_archive.py"]
"""Run as a script, the module puts the code channel on its path: `model`, `device`, `motor_maintenance`."""


class ProcessingFailed(Exception):
    """A processing job ended without its output; the message carries SageMaker's reason."""


@dataclass(frozen=True)
class ArchiveRun:
    """Where one run of the pipeline reads and writes."""

    archive: str
    """s3://bucket/prefix of the archive (its telemetry/ and actions/)."""
    work: str
    """s3://bucket/prefix/motor-archive/<run> for everything the run writes."""

    @property
    def train(self) -> str:
        return f"{self.work}/features/train/"

    @property
    def validation(self) -> str:
        return f"{self.work}/features/validation/"


def archive_location(url: str) -> str:
    """The archive's s3:// URL without a trailing slash; ValueError for anything else."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ValueError(f"--archive {url}: SageMaker jobs read an archive in S3 (s3://bucket/prefix)")
    return url.rstrip("/")


def stage_code(directory: Path) -> Path:
    """The processing jobs' code channel: the three packages' Python files, nothing else of the project."""
    for name, source in CODE_PACKAGES.items():
        for path in source.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            target = directory / name / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return directory


def processing_inputs(step: str, run: ArchiveRun, code: str) -> list[dict[str, Any]]:
    """Each job's channels as (name, s3 uri, local path, distribution)."""
    code_input = {"name": "code", "uri": code, "path": CODE_PATH, "distribution": "FullyReplicated"}
    if step == "split":
        return [
            {"name": "telemetry", "uri": f"{run.archive}/telemetry/", "path": f"{PROCESSING}/input/archive/telemetry",
             "distribution": "FullyReplicated"},
            {"name": "actions", "uri": f"{run.archive}/actions/", "path": f"{PROCESSING}/input/archive/actions",
             "distribution": "FullyReplicated"},
            code_input,
        ]  # fmt: skip
    return [
        # Each motor is one object: sharded by key, every instance gets whole motors.
        {"name": "motors", "uri": f"{run.work}/motors/", "path": f"{PROCESSING}/input/motors",
         "distribution": "ShardedByS3Key"},
        {"name": "meta", "uri": f"{run.work}/meta/", "path": f"{PROCESSING}/input/meta",
         "distribution": "FullyReplicated"},
        code_input,
    ]  # fmt: skip


def processing_outputs(step: str, run: ArchiveRun) -> list[dict[str, str]]:
    names = ("motors", "meta") if step == "split" else ("features",)
    return [{"name": name, "uri": f"{run.work}/{name}/", "path": f"{PROCESSING}/output/{name}"} for name in names]


def start_processing(
    session: Any,
    *,
    step: str,
    run: ArchiveRun,
    code: str,
    image: str,
    role: str | None,
    instance_type: str,
    instances: int,
    arguments: list[str],
    max_runtime_s: int,
    job_name: str,
) -> str:
    """Start one step's processing job with the SDK's Processor; its name."""
    from sagemaker.core.processing import Processor  # noqa: PLC0415 - the SDK is optional
    from sagemaker.core.shapes import (  # noqa: PLC0415
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )

    processor = Processor(
        role=role,
        image_uri=image,
        instance_count=instances,
        instance_type=instance_type,
        entrypoint=ENTRYPOINT,
        max_runtime_in_seconds=max_runtime_s,
        sagemaker_session=session,
    )
    inputs = [
        ProcessingInput(
            input_name=item["name"],
            s3_input=ProcessingS3Input(
                s3_uri=item["uri"],
                local_path=item["path"],
                s3_data_type="S3Prefix",
                s3_input_mode="File",
                s3_data_distribution_type=item["distribution"],
            ),
        )
        for item in processing_inputs(step, run, code)
    ]
    outputs = [
        ProcessingOutput(
            output_name=item["name"],
            s3_output=ProcessingS3Output(s3_uri=item["uri"], local_path=item["path"], s3_upload_mode="EndOfJob"),
        )
        for item in processing_outputs(step, run)
    ]
    processor.run(
        inputs=inputs, outputs=outputs, arguments=[step, *arguments], wait=False, logs=False, job_name=job_name
    )
    return job_name


def follow_processing(
    sagemaker_client: Any, job_name: str, *, poll_s: float, out: Callable[[str], None] = print
) -> dict[str, Any]:
    """Poll a processing job until it ends, printing each status change; ProcessingFailed unless it completed."""
    seen = None
    while True:
        description: dict[str, Any] = sagemaker_client.describe_processing_job(ProcessingJobName=job_name)
        status = description["ProcessingJobStatus"]
        if status != seen:
            seen = status
            out(f"[{time.strftime('%H:%M:%S')}] {job_name}: {status}")
        if status in TERMINAL:
            break
        time.sleep(poll_s)
    if status != "Completed":
        reason = description.get("FailureReason") or description.get("ExitMessage") or "no reason given"
        raise ProcessingFailed(f"processing job {job_name} ended {status}: {reason}")
    return description
