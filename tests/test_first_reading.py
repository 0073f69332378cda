"""A device's first reading, sent the moment its registration returns, is stored.

The field case: a technician registers a device and it publishes within a second or two. Real
Mosquitto with per-device credentials kept in step by `BrokerAuthSync` (as `pantau up` runs
it), the real ingester (`pantau ingest`) with the shipped registry settings, SQLite and
PostgreSQL. Right after `create_device` returns, two readings of the new device are sent at
once: one by the device itself, with its new credentials (a paho client that, like device
firmware, keeps its QoS 1 reading queued and reconnects until the broker admits it), and one
through a publisher service account (the API's replay, the simulators), which the broker admits
already. Both must be stored, and nothing dead-lettered.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.broker import API_USER, INGESTER_USER, BrokerAuthFiles, BrokerAuthSync
from devices.models import ServiceRole
from devices.registry import Registry
from devices.schemas import DeviceCreate
from ingest.dead_letters import DeadLetterStore
from pantau.influxdb import InfluxClient
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.settings import Settings
from pantau.sql import make_engine
from tests.conftest import PantauProcess, eventually, make_settings
from tests.delivery_helpers import device_points
from tests.registry_helpers import database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from database_url(request.param, tmp_path)


class Device:
    """A device's MQTT client: connects with its own credentials and, like firmware, keeps
    reconnecting until the broker admits it; a QoS 1 reading published meanwhile waits in
    its queue and is sent once connected."""

    def __init__(self, port: int, device_id: str, password: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"dev-{device_id}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(device_id, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.connacks: list[int] = []
        self.client.on_connect = lambda c, u, f, rc, p: self.connacks.append(rc.value)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _reading(seq: int) -> bytes:
    return orjson.dumps({"ts": int(time.time() * 1000), "seq": seq, "level_cm": 120.5})


def test_first_reading_right_after_registration_is_stored(
    db_url: str,
    tmp_path: Path,
    influx_server: InfluxServer,
    mosquitto_factory: Callable[..., MosquittoServer],
    run_pantau: Callable[..., PantauProcess],
) -> None:
    engine = make_engine(db_url)
    registry = Registry(engine)
    ingest_pw = registry.set_service_account(INGESTER_USER, ServiceRole.INGESTER)
    api_pw = registry.set_service_account(API_USER, ServiceRole.PUBLISHER)
    files = BrokerAuthFiles(tmp_path / "auth")
    files.render(registry)
    broker = mosquitto_factory(extra_config=files.mosquitto_config_lines())
    settings: Settings = make_settings(
        broker.url,
        influx_server.url,
        tmp_path,
        mqtt={"username": INGESTER_USER, "password": ingest_pw},
        database={"url": db_url},
    )
    assert settings.registry == Settings().registry  # the shipped refresh settings
    sync = BrokerAuthSync(
        registry, files, broker.reload, settings.registry.broker_sync_interval_s
    )  # as `pantau up` runs it
    sync.revision = registry.revision()
    sync.start()
    ingester = run_pantau(["ingest"], settings)
    influx = InfluxClient(settings.influx)
    dead = DeadLetterStore(engine)
    replay = Device(broker.port, API_USER, api_pw)  # a publisher account: admitted already
    devices: list[Device] = [replay]

    points = partial(device_points, influx)

    try:
        eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
        eventually(lambda: replay.client.is_connected(), what="publisher account connected")
        for round_ in range(3):  # a few, so a lucky poll cannot pass it by chance
            by_device = f"wl-new-{round_}-{uuid.uuid4().hex[:4]}"
            by_replay = f"wl-rep-{round_}-{uuid.uuid4().hex[:4]}"
            _, password = registry.create_device(
                DeviceCreate(id=by_device, kind="water_level", name="baru", district="Malili")
            )
            device = Device(broker.port, by_device, password)
            devices.append(device)
            device.publish(f"pantau/devices/{by_device}/telemetry", _reading(1))
            registry.create_device(
                DeviceCreate(id=by_replay, kind="water_level", name="replay", district="Malili")
            )
            replay.publish(f"pantau/devices/{by_replay}/telemetry", _reading(1))
            for device_id in (by_device, by_replay):
                rows = eventually(
                    lambda device_id=device_id: points(device_id),  # type: ignore[misc]
                    what=f"first reading of {device_id} stored",
                )
                assert rows[0]["district"] == "Malili"
            assert dead.list(device_id=by_device) == []
            assert dead.list(device_id=by_replay) == []
        assert ingester.running, ingester.log_tail()
    finally:
        for device in devices:
            device.close()
        sync.stop()
        influx.close()
        engine.dispose()
