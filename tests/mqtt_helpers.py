"""A small paho-mqtt publisher for tests, waiting for every PUBACK."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pantau.settings import MqttSettings


class Publisher:
    def __init__(self, settings: MqttSettings, client_id: str = "test-publisher") -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(settings.host, settings.port, keepalive=30)
        self.client.loop_start()
        self.prefix = settings.topic_prefix

    def publish(
        self, topic: str, payload: bytes, *, content_type: str | None = None, wait: bool = True
    ) -> mqtt.MQTTMessageInfo:
        props = None
        if content_type:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = content_type
        info = self.client.publish(topic, payload, qos=1, properties=props)
        if wait:
            info.wait_for_publish(timeout=10)
            assert info.is_published(), f"no PUBACK for {topic}"
        return info

    def telemetry(self, device_id: str, payload: bytes, **kwargs: object) -> mqtt.MQTTMessageInfo:
        return self.publish(f"{self.prefix}/{device_id}/telemetry", payload, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
