"""Drives simulated devices: reads each on its interval and publishes over MQTT (QoS 1)."""

from __future__ import annotations

import logging
import threading
import time

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pantau.settings import MqttSettings
from simulators.water_level import WaterLevelGauge

log = logging.getLogger(__name__)

RIVERS = ["malili", "larona", "kalaena", "angkona"]


def default_gauges(count: int, seed: int) -> list[WaterLevelGauge]:
    return [
        WaterLevelGauge(
            device_id=f"wl-{RIVERS[i % len(RIVERS)]}-{i // len(RIVERS) + 1:02d}",
            base_level_cm=80.0 + 25.0 * (i % 5),
            seed=seed,
        )
        for i in range(count)
    ]


class Simulation:
    def __init__(
        self,
        mqtt_settings: MqttSettings,
        gauges: list[WaterLevelGauge],
        interval_s: float,
        client_id: str = "pantau-simulator",
    ) -> None:
        self.settings = mqtt_settings
        self.gauges = gauges
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.published = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if mqtt_settings.username:
            password = mqtt_settings.password.get_secret_value() if mqtt_settings.password else None
            self.client.username_pw_set(mqtt_settings.username, password)
        self.client.max_queued_messages_set(0)

    def topic(self, device_id: str) -> str:
        return f"{self.settings.topic_prefix}/{device_id}/telemetry"

    def run(self, duration_s: float | None = None, progress_every_s: float = 5.0) -> int:
        self.client.connect(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()
        started = time.monotonic()
        next_tick = started
        last_report = started
        last_count = 0
        try:
            while not self.stop.is_set():
                now_s = time.time()
                for gauge in self.gauges:
                    payload = orjson.dumps(gauge.read(now_s))
                    self.client.publish(self.topic(gauge.device_id), payload, qos=1)
                    self.published += 1
                mono = time.monotonic()
                if mono - last_report >= progress_every_s:
                    rate = (self.published - last_count) / (mono - last_report)
                    log.info(
                        "simulate devices=%d published=%d (%.0f msg/s)",
                        len(self.gauges),
                        self.published,
                        rate,
                    )
                    last_report, last_count = mono, self.published
                if duration_s is not None and mono - started >= duration_s:
                    break
                next_tick += self.interval_s
                self.stop.wait(max(0.0, next_tick - time.monotonic()))
        finally:
            self.client.loop_stop()
            self.client.disconnect()
        return self.published
