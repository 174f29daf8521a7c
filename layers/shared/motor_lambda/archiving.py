"""ArchiveFunction's work (IngestionMode batched): a batch from TelemetryStream into the archive's Firehose stream.

Its own event source mapping on TelemetryStream, beside InferenceFunction's: the archive and the alarms fail
apart. A batch goes in whole or is retried whole (the function raises), until the stream's retention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from motor_adapters.firehose_archive import FirehoseArchive
from motor_lambda.responses import BatchArchived
from motor_lambda.stream_records import accepted, raw
from motor_maintenance.errors import ArchiveUnavailable


def archive_batch(
    records: Sequence[dict[str, Any]], archive: FirehoseArchive, logger: Logger, metrics: Metrics
) -> BatchArchived:
    """Put the batch's records into the archive as the rule delivered them. ArchiveUnavailable if some did not get in.

    The readings the schema accepts are packed several to a Firehose record; the others travel alone, so
    one Firehose cannot convert fails by itself. The archive is at least once: a batch retried after a
    partial put is archived twice in part, and its readers deduplicate (docs/archive.md).
    """
    readings: list[bytes] = []
    alone: list[bytes] = []
    for record in records:
        data = raw(record)
        if data is not None:
            (readings if accepted(data) else alone).append(data)
    try:
        resent = archive.put_readings(readings, alone)
    except ArchiveUnavailable as exc:
        logger.error("batch not archived; delivered again", reason=str(exc), records=len(records))
        metrics.add_metric(name="ArchiveWriteFailed", unit=MetricUnit.Count, value=len(records))
        raise
    if resent:
        metrics.add_metric(name="ArchiveRecordsResent", unit=MetricUnit.Count, value=resent)
    return BatchArchived(readings=len(readings), alone=len(alone), skipped=len(records) - len(readings) - len(alone))
