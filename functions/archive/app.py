"""ArchiveFunction (IngestionMode batched): a batch of readings from TelemetryStream -> the archive's Firehose stream.

Its own event source mapping on TelemetryStream, beside InferenceFunction's, so the archive and the alarms
fail apart (docs/architecture.md, "Batched ingestion"). A batch the archive does not take raises: Lambda
delivers the batch again until it gets in, or until the stream's retention ends.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from motor_adapters.firehose_archive import FirehoseArchive
from motor_lambda.archiving import archive_batch
from motor_lambda.settings import ArchiveSettings
from motor_lambda.shell import lambda_entry, powertools
from motor_lambda.wiring import telemetry_archive

logger, tracer, metrics = powertools()
settings = ArchiveSettings.from_env()


@cache
def archive() -> FirehoseArchive:
    """The archive's stream, its client made on the first batch and kept for the execution environment."""
    return telemetry_archive(settings)


@lambda_entry(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return archive_batch(event["Records"], archive(), logger, metrics).model_dump()
