"""Simulators against a real Mosquitto: topics, sequence numbers, timestamps, status, last will
and per-device credentials, checked by a subscriber."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.decode import decode_payload
from pantau.mqtt_publish import Qos1Publisher, utf8
from pantau.servers.mosquitto import MosquittoServer
from pantau.settings import MqttSettings
from simulators.publisher import DeviceLinks
from simulators.runner import Simulation
from simulators.scenario import parse_scenario
from tests.conftest import eventually


@dataclass
class Received:
    topic: str
    payload: bytes
    content_type: str | None
    retain: bool


class Subscriber:
    """Collects everything under the device prefix, QoS 1."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None):
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"watch-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe("pantau/devices/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber not subscribed"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        content_type = getattr(msg.properties, "ContentType", None) if msg.properties else None
        with self.lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), content_type, msg.retain))

    def telemetry(self) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.topic.endswith("/telemetry")]

    def statuses(self, device_id: str) -> list[str]:
        """Status changes published while we listened (not retained ones of earlier runs)."""
        with self.lock:
            return [
                m.payload.decode()
                for m in self.messages
                if m.topic == f"pantau/devices/{device_id}/status" and not m.retain
            ]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def subscriber(mosquitto: MosquittoServer) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto.port)
    yield sub
    sub.close()


def _by_device(messages: list[Received]) -> dict[str, list[tuple[int, int | None]]]:
    """device id → [(ts_ms, seq)] in arrival order, decoding every wire format."""
    out: dict[str, list[tuple[int, int | None]]] = {}
    for m in messages:
        device_id = m.topic.split("/")[2]
        for record in decode_payload(m.payload, m.content_type):
            assert record.ts_ms is not None
            out.setdefault(device_id, []).append((record.ts_ms, record.seq))
    return out


def test_accelerated_scenario_arrives_with_topics_sequence_numbers_and_times(
    mosquitto: MosquittoServer, subscriber: Subscriber
) -> None:
    scenario = parse_scenario(
        {
            "name": "short",
            "duration": "2h",
            "formats": {"env-*": "senml", "wl-larona-*": "batch"},
            "batch_size": 4,
        }
    )
    interval = 60.0
    start = time.time() - 2 * 3600  # accelerated runs start in the past...
    sim = Simulation(
        MqttSettings(url=mosquitto.url),
        scenario,
        seed=3,
        interval_s=interval,
        speed=3600.0,
        start_s=start,
        client_id="test-sim-accelerated",
    )
    began = time.monotonic()
    stats = sim.run()
    assert time.monotonic() - began < 15  # two simulated hours in about two seconds
    ticks = int(2 * 3600 / interval) + 1
    assert stats.ticks == ticks
    ids = sim.engine.ids
    eventually(lambda: len(subscriber.telemetry()) >= stats.messages, what="all telemetry")
    received = subscriber.telemetry()
    assert len(received) == stats.messages
    assert {m.topic for m in received} == {f"pantau/devices/{i}/telemetry" for i in ids}
    for m in received:
        expected = "application/senml+json" if "/env-" in m.topic else "application/json"
        assert m.content_type == expected, m.topic
    now_ms = time.time() * 1000
    for device_id, readings in _by_device(received).items():
        seqs = [seq for _, seq in readings]
        expected_count = ticks - ticks % 4 if device_id.startswith("wl-larona") else ticks
        assert seqs == list(range(1, expected_count + 1)), device_id
        stamps = [ts for ts, _ in readings]
        steps = {b - a for a, b in itertools.pairwise(stamps)}
        assert steps == {int(interval * 1000)}, (device_id, steps)  # the simulated clock's pace
        assert start * 1000 - interval * 1000 <= stamps[0] <= start * 1000
        assert stamps[-1] <= now_ms  # ...so they never run ahead of the present
    for device_id in ids:

        def offline_at_the_end(d: str = device_id) -> bool:
            return subscriber.statuses(d)[-1:] == ["offline"]

        eventually(offline_at_the_end, what=f"{device_id} offline at the end")
        assert subscriber.statuses(device_id)[0] == "online"
    assert stats.acked == stats.messages + 2 * len(ids)


def _password_broker(
    mosquitto_factory: Callable[..., MosquittoServer], tmp_path: Path, users: dict[str, str]
) -> MosquittoServer:
    binary = shutil.which("mosquitto_passwd")
    if binary is None:
        pytest.skip("mosquitto_passwd is not installed")
    password_file = tmp_path / "passwd"
    password_file.touch()
    for user, password in users.items():
        subprocess.run([binary, "-b", str(password_file), user, password], check=True)
    password_file.chmod(0o600)
    return mosquitto_factory(
        extra_config=["allow_anonymous false", f"password_file {password_file}"]
    )


def test_per_device_connections_use_credentials_and_the_last_will(
    mosquitto_factory: Callable[..., MosquittoServer], tmp_path: Path
) -> None:
    devices = ["wl-malili-01", "wl-malili-02", "wl-malili-03", "wl-malili-04"]
    credentials = {d: f"secret-{d}" for d in devices}
    broker = _password_broker(mosquitto_factory, tmp_path, {**credentials, "watcher": "w"})
    settings = MqttSettings(url=broker.url)
    # A device with the wrong password is refused.
    wrong = DeviceLinks(settings, ["wl-malili-01"], {"wl-malili-01": "guess"})
    with pytest.raises(ConnectionError):
        wrong.start(timeout_s=1.0)
    wrong.stop(timeout_s=0.1)

    subscriber = Subscriber(broker.port, "watcher", "w")
    try:
        scenario = parse_scenario(
            {
                "name": "dropout",
                "duration": "30m",
                "kinds": ["water_level"],
                "only": ["wl-malili-*"],
                "faults": [
                    {
                        "kind": "dropout",
                        "devices": "wl-malili-02",
                        "start": "10m",
                        "duration": "5m",
                    },
                    {
                        "kind": "reconnect_storm",
                        "devices": "wl-malili-04",
                        "start": "20m",
                        "duration": "2m",
                    },
                ],
            }
        )
        sim = Simulation(
            settings,
            scenario,
            interval_s=30.0,
            speed=900.0,
            start_s=time.time() - 1800,
            credentials=credentials,
        )
        stats = sim.run()
        eventually(lambda: len(subscriber.telemetry()) >= stats.messages, what="telemetry")
        readings = _by_device(subscriber.telemetry())
        assert set(readings) == set(devices)
        ticks = 61
        for device_id in ("wl-malili-01", "wl-malili-03", "wl-malili-04"):
            # wl-malili-04 lost its connection in the storm: its session and paho's queue
            # carry it over, in order (at least once: a re-sent message may come twice).
            assert all(s is not None for _, s in readings[device_id]), device_id
            seqs = [s for _, s in readings[device_id] if s is not None]
            assert sorted(set(seqs)) == list(range(1, ticks + 1)), device_id
            assert seqs == sorted(seqs), device_id
        gapped = [s for _, s in readings["wl-malili-02"]]
        assert len(gapped) == ticks - 10 and gapped[-1] == ticks  # 5 minutes lost: a gap of 10
        # The broker published the will ("offline") when the link went down; the device
        # said "online" on reconnecting, and "offline" on the clean stop.
        eventually(
            lambda: (
                subscriber.statuses("wl-malili-02") == ["online", "offline", "online", "offline"]
            ),
            what="status of wl-malili-02",
        )
        assert subscriber.statuses("wl-malili-01") == ["online", "offline"]
        # The cut connection: the broker announced the will, the device came back online.
        assert subscriber.statuses("wl-malili-04")[:3] == ["online", "offline", "online"]
    finally:
        subscriber.close()


def test_fleet_link_resends_what_was_in_flight_when_the_connection_drops(
    mosquitto: MosquittoServer, subscriber: Subscriber
) -> None:
    publisher = Qos1Publisher("127.0.0.1", mosquitto.port, "test-fast-publisher")
    publisher.connect()
    topic, content_type = utf8("pantau/devices/wl-test-77/telemetry"), utf8("application/json")
    total = 6000
    try:
        for start in range(0, total, 500):
            batch = [
                (
                    topic,
                    orjson.dumps({"ts": 1_800_000_000_000 + i, "seq": i + 1}),
                    content_type,
                    False,
                )
                for i in range(start, start + 500)
            ]
            publisher.publish_many(batch)
            if start in (1500, 4000):
                publisher.cut()  # a reconnect storm in miniature
        assert publisher.wait_acked(20.0)
    finally:
        publisher.close()
    assert publisher.reconnects >= 1
    assert publisher.acked == publisher.published == total
    eventually(
        lambda: len({m.payload for m in subscriber.telemetry()}) == total, what="every message"
    )
    seqs = sorted({orjson.loads(m.payload)["seq"] for m in subscriber.telemetry()})
    assert seqs == list(range(1, total + 1))  # at least once: duplicates allowed, no gaps
