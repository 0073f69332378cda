"""The broker's own counters, read from Mosquitto's `$SYS` topics and exported as metrics.

A message Mosquitto drops because the ingester's queue is full (`max_queued_messages`) was
acknowledged to its device and never reaches the ingester, so the ingester cannot count it
itself except as a sequence gap (`ingest/lag.py`); the broker counts it. `BrokerStats` opens
a second MQTT connection, `<client_id>-sys` (same account, clean session, QoS 0 — it holds
no session and no data), subscribes to the `$SYS` topics below (Mosquitto 2.0, published
every `sys_interval` seconds, 10 by default, and retained, so a new subscriber gets the last
values at once) and serves them on the ingester's `/metrics`:

| metric | `$SYS` topic | kind |
| --- | --- | --- |
| `pantau_broker_messages_dropped_total` | `$SYS/broker/publish/messages/dropped` | counter |
| `pantau_broker_publish_received_total` | `$SYS/broker/publish/messages/received` | counter |
| `pantau_broker_messages_stored` | `$SYS/broker/store/messages/count` | gauge |
| `pantau_broker_stored_bytes` | `$SYS/broker/store/messages/bytes` | gauge |

The counters count from the broker's start (a broker restart resets them, which Prometheus'
`increase()` and `rate()` handle); a metric appears only once the broker has sent its value.
Dropped messages are counted per subscriber that missed them. With broker access control the
ingester's account needs `topic read $SYS/#` (`devices/broker.py` renders it; devices do
not get it). Members of a shared subscription each export the same broker-wide values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.mqtt_source import apply_account
from pantau.settings import MqttSettings

log = logging.getLogger(__name__)

# $SYS topic → (metric name without _total, help, True for a counter)
SYS_METRICS: dict[str, tuple[str, str, bool]] = {
    "$SYS/broker/publish/messages/dropped": (
        "pantau_broker_messages_dropped",
        "PUBLISH messages the broker dropped because a client's queue or in-flight limit was "
        "full (max_queued_messages), per subscriber that missed one",
        True,
    ),
    "$SYS/broker/publish/messages/received": (
        "pantau_broker_publish_received",
        "PUBLISH messages the broker received from clients",
        True,
    ),
    "$SYS/broker/store/messages/count": (
        "pantau_broker_messages_stored",
        "Messages held in the broker's store (queued for sessions, in flight, retained)",
        False,
    ),
    "$SYS/broker/store/messages/bytes": (
        "pantau_broker_stored_bytes",
        "Payload bytes held in the broker's store",
        False,
    ),
}


class BrokerStats(Collector):
    """A `$SYS` subscriber in its own paho network thread, and the collector of its values."""

    def __init__(self, settings: MqttSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.client_id = f"{settings.client_id}-sys"
        self.values: dict[str, float] = {}  # metric name → last value the broker sent
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=True,
        )
        apply_account(self._client, settings)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        if registry is not None:
            registry.register(self)

    def start(self) -> None:
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=True,
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def value(self, topic: str) -> float | None:
        """The last value of a `$SYS` topic of `SYS_METRICS`, None before the broker sent it."""
        return self.values.get(SYS_METRICS[topic][0])

    @property
    def dropped(self) -> float | None:
        return self.value("$SYS/broker/publish/messages/dropped")

    @property
    def stored(self) -> float | None:
        """Messages the broker holds: queued for sessions, in flight, retained."""
        return self.value("$SYS/broker/store/messages/count")

    # -- paho callbacks (its network thread) ----------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker stats: connection refused: %s", reason_code)
            return
        client.subscribe([(topic, 0) for topic in SYS_METRICS])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        for topic, code in zip(SYS_METRICS, reason_codes, strict=False):
            if code.is_failure:
                log.error("broker stats: subscription to %s refused: %s", topic, code)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        metric = SYS_METRICS.get(message.topic)
        if metric is None:
            return
        try:
            self.values[metric[0]] = float(message.payload)
        except ValueError:
            log.warning("broker stats: %s is not a number: %r", message.topic, message.payload[:40])

    # -- Prometheus collector (the scrape's thread) --------------------------------------------
    def collect(self) -> Iterator[Metric]:
        values = dict(self.values)
        for name, doc, is_counter in SYS_METRICS.values():
            value = values.get(name)
            if value is None:
                continue
            if is_counter:
                yield CounterMetricFamily(name, doc, value=value)
            else:
                yield GaugeMetricFamily(name, doc, value=value)

    def describe(self) -> Iterator[Metric]:
        """The metric names, so the registry refuses a clash at registration."""
        for name, doc, is_counter in SYS_METRICS.values():
            yield CounterMetricFamily(name, doc) if is_counter else GaugeMetricFamily(name, doc)
