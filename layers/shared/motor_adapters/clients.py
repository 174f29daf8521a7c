"""boto3 clients with bounded timeouts and retries, and a guard that keeps every call inside the invocation.

Every call has a worst case: its attempts, each waiting at most connect + read timeout, plus the
backoff between attempts. `worst_case_s` computes it from the client's own configuration. While a
handler runs under `within_lambda_timeout`, a call is started only if that worst case still fits
in the time Lambda has left (minus `RESERVE_S` for the work between and after calls); otherwise it
fails at once with `OutOfTime`, a BotoCoreError the adapters turn into their usual domain errors.
So an invocation ends with an error it can log and Lambda can retry, never killed by its Timeout
half-way (docs/operations.md, "Timeout budget").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from functools import cache, wraps
from typing import Any, Protocol, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

CONNECT_TIMEOUT_S = 1.0
"""TCP connect to a regional AWS endpoint takes milliseconds; a second means a lost packet, so retry."""
READ_TIMEOUT_S = 1.0
"""DynamoDB, IoT data, SNS and SSM answer these small requests in tens of milliseconds."""
MAX_ATTEMPTS = 3
"""The first call and two retries: enough to ride out throttling of a burst of readings."""
RESERVE_S = 1.0
"""Kept back for the work between calls and after the last one (parsing, logs, metrics)."""

# botocore's standard retry mode (botocore.retries.standard.ExponentialBackoff): the delay before
# retry i (1-based) is at most min(1 s * 2**(i-1), 20 s) for a throttling error, and a response's
# x-amz-retry-after header can stretch it by up to 5 s more. tests/unit/test_timeout_budget.py
# checks these against the installed botocore.
THROTTLING_BACKOFF_S = 1.0
MAX_BACKOFF_S = 20.0
RETRY_AFTER_EXTRA_S = 5.0

_DEFAULT = Config(
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    # The adapters build every request the same way, and the tests send each through moto, which parses it
    # as AWS does; AWS validates it again. botocore's own check walks each request against the service model
    # on every call: about 4 % of the inference handler's CPU per reading (benchmarks/warm_inference.py).
    parameter_validation=False,
)

_deadline: ContextVar[float | None] = ContextVar("invocation_deadline", default=None)
_clock: Callable[[], float] = time.monotonic


class OutOfTime(BotoCoreError):
    """Not enough of the invocation left for this call's worst case."""

    fmt = "not calling {operation}: {left_s:.1f} s left in the invocation, the call may take {needed_s:.1f} s"


def worst_case_s(config: Any) -> float:
    """Longest one call can take: every attempt timing out, with the longest backoff between them.

    `config` is a botocore Config (its stubs do not declare the attributes read here).
    """
    retries = config.retries or {}
    attempts = int(retries.get("total_max_attempts", 1))
    per_attempt = float(config.connect_timeout) + float(config.read_timeout)
    backoffs = sum(
        min(THROTTLING_BACKOFF_S * 2**retry, MAX_BACKOFF_S) + RETRY_AFTER_EXTRA_S for retry in range(attempts - 1)
    )
    return float(attempts * per_attempt + backoffs)


def time_left_s() -> float | None:
    """Seconds left in the current invocation (None outside one)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - _clock()


class _LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


Handler = TypeVar("Handler", bound=Callable[..., Any])


def within_lambda_timeout(handler: Handler) -> Handler:
    """Run a Lambda handler with its invocation's deadline known to every client call."""

    @wraps(handler)
    def bounded(event: Any, context: _LambdaContext) -> Any:
        token = _deadline.set(_clock() + context.get_remaining_time_in_millis() / 1000)
        try:
            return handler(event, context)
        finally:
            _deadline.reset(token)

    return bounded  # type: ignore[return-value]


def _refuse_if_it_may_not_fit(model: Any, context: dict[str, Any], **_: Any) -> None:
    """botocore before-call hook: refuse a call whose worst case would run past the deadline."""
    left = time_left_s()
    if left is None:
        return
    needed = worst_case_s(context["client_config"])
    if left < needed + RESERVE_S:
        raise OutOfTime(operation=model.name, left_s=left, needed_s=needed + RESERVE_S)


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
    made = boto3.client(service, endpoint_url=endpoint_url or None, config=config)  # type: ignore[call-overload]
    made.meta.events.register("before-call", _refuse_if_it_may_not_fit)
    return made
