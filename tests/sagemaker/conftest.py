"""Fixtures for the SageMaker training scripts: a small exported dataset, and a moto server on loopback."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from motor_maintenance.features import FEATURE_NAMES

REGION = "eu-west-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/motor-training"
REQUIRED = os.environ.get("SAGEMAKER_TESTS") == "required"
"""Set by `make test-sagemaker`: there a missing SDK or moto server fails the tests instead of skipping them."""


def write_dataset(
    directory: Path,
    *,
    rows: int = 300,
    feature_names: Sequence[str] = FEATURE_NAMES,
    with_names_file: bool = True,
    seed: int = 0,
) -> Path:
    """train.csv and validation.csv as `model/train.py --export-dataset` writes them: label first, empty = missing."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, count in (("train", rows), ("validation", rows // 3)):
        features = rng.normal(size=(count, len(feature_names))).astype(np.float32)
        labels = (features[:, 1] + 0.5 * rng.normal(size=count) > 1.0).astype(int)
        features[rng.random(features.shape) < 0.05] = np.nan
        lines = [
            ",".join([str(label), *("" if np.isnan(value) else f"{value:.7g}" for value in row)])
            for label, row in zip(labels, features, strict=True)
        ]
        (directory / f"{name}.csv").write_text("\n".join(lines) + "\n")
    if with_names_file:
        (directory / "feature_names.json").write_text(json.dumps(list(feature_names)) + "\n")
    return directory


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "dataset")


def _unavailable(what: str, exc: ImportError) -> None:
    reason = f"{what} is not installed ({exc}); `make test-sagemaker` installs it into .venv-sagemaker"
    if REQUIRED:
        pytest.fail(f"make test-sagemaker must run these tests, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sagemaker_sdk() -> None:
    """The SageMaker Python SDK v3 is importable (skip without it, except under `make test-sagemaker`)."""
    try:
        import sagemaker.train  # noqa: F401
    except ImportError as exc:
        _unavailable("the SageMaker Python SDK v3", exc)


@dataclass
class MotoServer:
    """A moto server on loopback, and clients of it for the test to look at what the script did."""

    endpoint: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def environment(self, sagemaker_config: Path, **extra: str) -> dict[str, str]:
        """The script's environment: fake credentials, every AWS call to moto, no SDK telemetry."""
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SAGEMAKER_"))}
        environment.update(
            AWS_CONFIG_FILE=str(sagemaker_config.parent / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(sagemaker_config.parent / "no-aws-credentials"),
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fake credentials
            AWS_DEFAULT_REGION=REGION,
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_EC2_METADATA_DISABLED="true",
            # moto answers 500 to what it does not implement (iam:SimulatePrincipalPolicy): no retries.
            AWS_MAX_ATTEMPTS="1",
            # moto implements no iam:SimulatePrincipalPolicy, which the SDK's role check calls.
            SAGEMAKER_VALIDATE_ROLE="false",
            SAGEMAKER_ADMIN_CONFIG_OVERRIDE=str(sagemaker_config),
            SAGEMAKER_USER_CONFIG_OVERRIDE=str(sagemaker_config),
        )
        environment.update(extra)
        return environment


def sagemaker_config(path: Path, *, default_bucket: str | None = None) -> Path:
    """The SDK's config file: telemetry off (no call to AWS's telemetry bucket), optionally a default bucket."""
    modules: dict[str, Any] = {"TelemetryOptOut": True}
    if default_bucket:
        modules["Session"] = {"DefaultS3Bucket": default_bucket}
    path.write_text(json.dumps({"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": modules}}}))
    return path


@pytest.fixture
def moto_server(sagemaker_sdk: None) -> Iterator[MotoServer]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        _unavailable("moto[server]", exc)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto's state lives in the process, not in the server: start each test from an empty account.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)  # noqa: S310
    try:
        yield MotoServer(endpoint=endpoint)
    finally:
        server.stop()
