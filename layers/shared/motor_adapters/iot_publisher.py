"""Alarm events to MQTT ({namespace}/{motor_id}/alarms) through the IoT data plane."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.errors import PublishFailed
from motor_maintenance.topics import DEFAULT_NAMESPACE, alarms_topic


class IotAlarmPublisher:
    """Implements motor_maintenance.service.EventPublisher with iot-data Publish at QoS 1.

    `namespace` is the stack's first topic level (template.yaml's TopicNamespace, TOPIC_NAMESPACE).
    """

    def __init__(self, client: Any, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._client = client
        self._namespace = namespace

    def publish(self, event: AlarmEvent) -> None:
        topic = alarms_topic(event.motor_id, self._namespace)
        try:
            self._client.publish(topic=topic, qos=1, payload=event.model_dump_json().encode())
        except (ClientError, BotoCoreError) as exc:
            raise PublishFailed(f"cannot publish {event.event_id} to {topic}: {exc}") from exc
