"""A small publisher for tests: the one QoS 1 publisher, waiting for each PUBACK by default."""

from __future__ import annotations

from pantau.mqtt_publish import Qos1Publisher
from pantau.settings import MqttSettings


class Publisher:
    def __init__(self, settings: MqttSettings, client_id: str = "test-publisher") -> None:
        self.client = Qos1Publisher(settings.host, settings.port, client_id, window=1000)
        self.client.connect()
        self.prefix = settings.topic_prefix

    def publish(
        self, topic: str, payload: bytes, *, content_type: str | None = None, wait: bool = True
    ) -> int:
        packet_id = self.client.publish(topic, payload, content_type)
        if wait:
            assert self.client.wait_acked(10), f"no PUBACK for {topic}"
        return packet_id

    def telemetry(
        self, device_id: str, payload: bytes, *, content_type: str | None = None, wait: bool = True
    ) -> int:
        topic = f"{self.prefix}/{device_id}/telemetry"
        return self.publish(topic, payload, content_type=content_type, wait=wait)

    def close(self) -> None:
        self.client.close()
