"""The emulated AWS APIs' addresses on loopback, and boto3 clients of them.

moto's server answers DynamoDB, SNS, SQS, SSM, S3 and Kinesis; the local SageMaker runtime, IoT data plane
and Firehose (local.firehose_api, into local.firehose's delivery streams) answer their own services. The
functions reach the same addresses through the `AWS_ENDPOINT_URL*` variables of `environment()`, with their
boto3 clients unchanged.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import boto3
from botocore.config import Config

from local.options import REGION
from local.sagemaker_endpoint import STATS_PATH

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


class LocalAws:
    """Where each emulated API listens (set as the stack starts them), and clients that call them."""

    def __init__(self) -> None:
        self.url = ""
        """moto's server."""
        self.model_url: str | None = None
        """The local SageMaker runtime, when a model is served behind an endpoint."""
        self.iot_data_url = ""
        self.firehose_url = ""
        """The local Firehose API (local.firehose_api), once the pipeline has started it."""
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """A new boto3 client of the local API that serves `service`."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name=REGION,
            endpoint_url=self._endpoint_for(service),
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
        )

    def shared(self, service: str) -> Any:
        """One client of `service` for the whole stack (boto3 clients are thread-safe)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.client(service)
            return self._clients[service]

    def environment(self) -> dict[str, str]:
        """The variables that point boto3 at the local APIs (what the functions run with)."""
        env = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ENDPOINT_URL_IOT_DATA_PLANE": self.iot_data_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **FAKE_CREDENTIALS,
        }
        if self.model_url:
            env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = self.model_url
        if self.firehose_url:
            env["AWS_ENDPOINT_URL_FIREHOSE"] = self.firehose_url
        return env

    def urls(self) -> list[str]:
        others = [url for url in (self.model_url, self.firehose_url) if url]
        return [self.url, self.iot_data_url, *others]

    def endpoint_stats(self) -> dict[str, int]:
        """The local SageMaker endpoint's counters: `invocations` (InvokeEndpoint calls) and `rows` scored."""
        if not self.model_url:
            raise RuntimeError("no SageMaker endpoint runs (no model, or inference_mode 'embedded')")
        with urllib.request.urlopen(f"{self.model_url}{STATS_PATH}", timeout=5) as answer:  # noqa: S310 - loopback
            stats: dict[str, int] = json.loads(answer.read())
        return stats

    def _endpoint_for(self, service: str) -> str:
        if service == "sagemaker-runtime" and self.model_url:
            return self.model_url
        if service == "firehose" and self.firehose_url:
            return self.firehose_url
        if service == "iot-data":
            if not self.iot_data_url:
                raise RuntimeError("the local stack is not running")
            return self.iot_data_url
        return self.url
