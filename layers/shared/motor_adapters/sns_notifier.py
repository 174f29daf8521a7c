"""Alerts for people through SNS: e-mail subject and body, SMS text, filterable attributes."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.alerts import Alert
from motor_maintenance.errors import PublishFailed


class SnsNotifier:
    """Publishes one alert per alarm event. Subscribers filter on the message attributes."""

    def __init__(self, topic_arn: str, client: Any) -> None:
        self._topic_arn = topic_arn
        self._client = client

    def send(self, alert: Alert, event: AlarmEvent) -> str:
        message = {"default": alert.body, "email": alert.body, "sms": alert.sms}
        attributes = {
            "severity": event.severity.value,
            "motor_id": event.motor_id,
            "alarm_kind": event.kind.value,
            "alarm": event.alarm,
            "transition": event.transition.value,
            # The alarm event's deterministic id: a subscriber can deduplicate, and trace an alert to its event.
            "event_id": event.event_id,
        }
        try:
            response = self._client.publish(
                TopicArn=self._topic_arn,
                Subject=alert.subject,
                Message=json.dumps(message),
                MessageStructure="json",
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise PublishFailed(f"cannot send alert {event.event_id}: {exc}") from exc
        return str(response["MessageId"])
