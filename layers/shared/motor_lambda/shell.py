"""What wraps every handler: Powertools' Logger, Tracer and Metrics made one way, and one decorator applying them.

A handler module starts with

    logger, tracer, metrics = powertools()

    @lambda_entry(logger, tracer, metrics)
    def lambda_handler(event, context): ...

The service name and the metric namespace come from the template's POWERTOOLS_* variables (Globals).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer

from motor_adapters.clients import within_lambda_timeout

Handler = TypeVar("Handler", bound=Callable[..., Any])


def powertools() -> tuple[Logger, Tracer, Metrics]:
    """The handler's Logger, Tracer and Metrics, created once at module level (once per execution environment)."""
    # The tracer patches botocore alone, the only library the functions do I/O with: patching every library
    # X-Ray supports imports `requests` and probes a dozen database drivers, about 20 ms of each cold start.
    return Logger(), Tracer(patch_modules=["botocore"]), Metrics()


def lambda_entry(logger: Logger, tracer: Tracer, metrics: Metrics) -> Callable[[Handler], Handler]:
    """The decorators of every handler, outermost first:

    1. the logger's Lambda context (request id, cold start), the keys of the last invocation cleared;
    2. the metrics, flushed when the handler returns or raises, with the ColdStart metric;
    3. the X-Ray segment, without the response (it carries device data), unless tracing is disabled;
    4. the invocation's deadline, known to every AWS call (motor_adapters.clients.within_lambda_timeout).
    """

    def wrap(handler: Handler) -> Handler:
        bounded = within_lambda_timeout(handler)
        # A disabled Tracer still opens and annotates a dummy subsegment on every invocation: about 60 µs a
        # reading (benchmarks/warm_inference.py). The template disables it unless FunctionTracing is Active.
        traced = bounded if tracer.disabled else tracer.capture_lambda_handler(bounded, capture_response=False)
        measured = metrics.log_metrics(traced, capture_cold_start_metric=True)
        return logger.inject_lambda_context(cast(Handler, measured), log_event=False, clear_state=True)

    return wrap
