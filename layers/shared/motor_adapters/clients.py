"""boto3 clients with bounded timeouts and retries, created once per execution environment."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode backs off and retries throttling and 5xx; timeouts keep one slow call from
# eating the invocation's whole timeout.
_DEFAULT = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 3, "mode": "standard"})


@cache
def client(
    service: str, endpoint_url: str | None = None, read_timeout: float | None = None, max_attempts: int | None = None
) -> Any:
    """A cached client; AWS_ENDPOINT_URL(_<SERVICE>) still redirects it (the local stack uses that)."""
    config = _DEFAULT
    if read_timeout is not None:
        config = config.merge(Config(read_timeout=read_timeout))
    if max_attempts is not None:
        # total_max_attempts counts the first call; botocore's max_attempts counts retries only.
        config = config.merge(Config(retries={"total_max_attempts": max_attempts, "mode": "standard"}))
    return boto3.client(service, endpoint_url=endpoint_url or None, config=config)  # type: ignore[call-overload]
