"""The MQTT source against a real Mosquitto: back-pressure bounds what it holds."""

from __future__ import annotations

import time

import orjson

from ingest.mqtt_source import MqttSource
from pantau.mqtt_publish import WindowedPublisher
from pantau.settings import MqttSettings
from pantau.stack.mosquitto import MosquittoServer
from tests.conftest import eventually


def test_a_resumed_backlog_is_held_back_by_the_pending_bound(mosquitto: MosquittoServer) -> None:
    settings = MqttSettings(
        url=mosquitto.url, client_id="bp-source", keepalive_s=5, receive_maximum=20_000
    )
    topics = ["pantau/devices/+/telemetry"]
    first = MqttSource(settings, topics)
    first.start()
    eventually(lambda: first.connected, what="connected")
    first.stop()
    publisher = WindowedPublisher(settings.host, settings.port, "bp-pub").connect()
    for i in range(5_000):
        publisher.publish(
            f"pantau/devices/wl-{i % 10}/telemetry", orjson.dumps({"seq": i, "level_cm": 1.0})
        )
    assert publisher.wait_all_acked(60)
    publisher.close()
    # Mosquitto pushes the whole queued backlog on resume; the source must not swallow it.
    source = MqttSource(settings, topics, max_pending=200)
    source.start()
    eventually(lambda: source.pending >= 200, what="backlog arriving")
    time.sleep(8)  # longer than the keepalive: the paused reader must keep the link alive
    # One more message per pause step at most: the reader wakes to let keepalive pings through.
    assert source.pending <= 200 + 8 / 1.25 + 1, source.pending
    assert source.connected and source.paused_s > 0
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < 5_000 and time.monotonic() < deadline:
        batch = source.take(500, 0.5)
        source.ack(batch)
        seen.extend(orjson.loads(m.payload)["seq"] for m in batch)
    source.stop()
    assert sorted(seen) == list(range(5_000))
    assert source.session_lost == 0
