"""InferenceFunction: readings from {namespace}/{id}/telemetry -> prediction, detector, state, alarm events.

Two ways in (template parameter IngestionMode): TelemetryRule invokes it with one reading (direct), or
Lambda's event source mapping hands it a batch of readings from TelemetryStream (batched), applied with
one model call and one state write per motor (docs/architecture.md, "Batched ingestion").
"""

from __future__ import annotations

import gc
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from motor_lambda.ingestion import Ingestion, is_batch
from motor_lambda.settings import InferenceSettings
from motor_lambda.shell import lambda_entry, powertools
from motor_maintenance.telemetry import TelemetryEvent

logger, tracer, metrics = powertools()
settings = InferenceSettings.from_env()
ingestion = Ingestion(settings, logger, metrics)


@lambda_entry(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_batch(event):
        return ingestion.batch(event, context)
    try:
        telemetry = parse(event=event, model=TelemetryEvent)
    except (ValidationError, ValueError, TypeError) as exc:
        return ingestion.reject(event, exc).model_dump()

    logger.append_keys(motor_id=telemetry.motor_id)
    return ingestion.reading(telemetry).model_dump()


# Last at init: what the imports and module-level set-up made (Powertools, botocore, pydantic's validators)
# lives as long as the execution environment. Moved out of the cyclic collector's generations, it is no
# longer walked by the collections that every reading's allocations trigger (benchmarks/warm_inference.py).
gc.freeze()
