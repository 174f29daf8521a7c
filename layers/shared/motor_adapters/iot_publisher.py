"""Alarm events to MQTT (motors/{motor_id}/alarms) through the IoT data plane."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from motor_maintenance.alarms import AlarmEvent
from motor_maintenance.errors import PublishFailed

ALARM_TOPIC = "motors/{motor_id}/alarms"


class IotAlarmPublisher:
    """Implements motor_maintenance.service.EventPublisher with iot-data Publish at QoS 1."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(self, event: AlarmEvent) -> None:
        topic = ALARM_TOPIC.format(motor_id=event.motor_id)
        try:
            self._client.publish(topic=topic, qos=1, payload=event.model_dump_json().encode())
        except (ClientError, BotoCoreError) as exc:
            raise PublishFailed(f"cannot publish {event.event_id} to {topic}: {exc}") from exc
