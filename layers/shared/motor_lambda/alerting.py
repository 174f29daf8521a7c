"""AlertFunction's adapters, built from its settings: SNS for people, and the records that make each alert once."""

from __future__ import annotations

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from motor_adapters import clients
from motor_adapters.sns_notifier import SnsNotifier
from motor_lambda.settings import AlertSettings


def notifier(settings: AlertSettings) -> SnsNotifier:
    return SnsNotifier(settings.alert_topic_arn, clients.client("sns"))


def idempotency_store(settings: AlertSettings) -> DynamoDBPersistenceLayer:
    """Where AlertFunction remembers each alarm event it alerted (Powertools idempotency)."""
    return DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name, boto3_client=clients.client("dynamodb"))
