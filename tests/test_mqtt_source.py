"""The MQTT source against a real Mosquitto: what arrives, and back-pressure bounds what it
holds."""

from __future__ import annotations

import time

import orjson

from ingest.model import Inbound
from ingest.mqtt_source import MqttSource
from pantau.mqtt_publish import Qos1Publisher
from pantau.servers.mosquitto import MosquittoServer
from pantau.settings import MqttSettings
from tests.conftest import eventually
from tests.mqtt_helpers import Publisher


def test_a_resumed_backlog_is_held_back_by_the_pending_bound(mosquitto: MosquittoServer) -> None:
    settings = MqttSettings(
        url=mosquitto.url, client_id="bp-source", keepalive_s=5, receive_maximum=20_000
    )
    topics = ["pantau/devices/+/telemetry"]
    first = MqttSource(settings, topics)
    first.start()
    eventually(lambda: first.connected, what="connected")
    first.stop()
    publisher = Qos1Publisher(settings.host, settings.port, "bp-pub", window=10_000).connect()
    for i in range(5_000):
        publisher.publish(
            f"pantau/devices/wl-{i % 10}/telemetry", orjson.dumps({"seq": i, "level_cm": 1.0})
        )
    assert publisher.wait_acked(60)
    publisher.close()
    # Mosquitto pushes the whole queued backlog on resume; the source must not swallow it.
    source = MqttSource(settings, topics, max_pending=200)
    source.start()
    eventually(lambda: source.pending >= 200, what="backlog arriving")
    time.sleep(8)  # longer than the keepalive: the paused reader must keep the link alive
    # One more message per pause step at most: the reader wakes to let keepalive pings through.
    assert source.pending <= 200 + 8 / 1.25 + 1, source.pending
    assert source.connected and source.paused_s > 0
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(seen) < 5_000 and time.monotonic() < deadline:
        batch = source.take(500, 0.5)
        source.ack(batch)
        seen.extend(orjson.loads(m.payload)["seq"] for m in batch)
    source.stop()
    assert sorted(seen) == list(range(5_000))
    assert source.session_lost == 0


def test_messages_with_and_without_properties_arrive_whole(mosquitto: MosquittoServer) -> None:
    """Property-less messages take the lean decoder, the rest paho's: both arrive alike."""
    settings = MqttSettings(url=mosquitto.url, client_id="mixed-source")
    source = MqttSource(settings, ["pantau/devices/+/telemetry"])
    source.start()
    eventually(lambda: source.connected, what="connected")
    publisher = Publisher(settings, "mixed-pub")
    sent = []
    for i in range(200):
        device = f"wl-ü{i % 3}"  # a non-ASCII topic level
        body = orjson.dumps({"seq": i, "level_cm": 1.0}) + b"\x00\xff" * (i % 5)
        content_type = "application/json" if i % 2 else None
        publisher.telemetry(device, body, content_type=content_type, wait=False)
        sent.append((f"pantau/devices/{device}/telemetry", body, 1, content_type))
    got: list[Inbound] = []
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        got.extend(source.take(500, 0.5))
    source.ack(got)
    source.stop()
    publisher.close()
    assert [(m.topic, m.payload, m.qos, m.content_type) for m in got] == sent
    assert len({m.mid for m in got}) == len(got) and not any(m.dup for m in got)
