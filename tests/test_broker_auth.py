"""Device credentials against a real Mosquitto: files rendered from the registry, SIGHUP reload.

A device publishes only under its own id, a wrong password and anonymous clients are refused,
a retired device or a rotated secret stops working after the reload, without a restart.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from devices.broker import INGESTER_USER, BrokerAuthFiles, BrokerAuthSync
from devices.credentials import mosquitto_hash, verify_mosquitto_hash
from devices.models import ServiceRole
from devices.registry import Registry
from devices.schemas import DeviceCreate
from ingest.broker_stats import BrokerStats
from pantau.servers.mosquitto import MosquittoServer
from pantau.settings import MqttSettings
from pantau.sql import make_engine, migrate
from tests.conftest import PantauProcess, eventually, make_settings
from tests.registry_helpers import MqttClient

# CONNACK codes a refused client may get (2.0.11 answers 135 not authorised), or none.
REFUSED = (134, 135, -1)


def _device(device_id: str) -> DeviceCreate:
    return DeviceCreate(id=device_id, kind="water_level", name=device_id)


def test_hash_format_matches_mosquitto_passwd(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(tool).exists():
        pytest.skip("mosquitto_passwd not installed")
    path = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(path), "alice", "s3cret"], check=True)
    stored = path.read_text().strip().split(":", 1)[1]
    assert stored.startswith("$7$101$")
    assert verify_mosquitto_hash("s3cret", stored)
    assert not verify_mosquitto_hash("s3creT", stored)
    ours = mosquitto_hash("s3cret")
    assert ours.startswith("$7$101$") and ours != mosquitto_hash("s3cret")  # salted
    assert verify_mosquitto_hash("s3cret", ours)


def test_broker_enforces_the_registry(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoServer]
) -> None:
    url = f"sqlite:///{tmp_path}/pantau.db"
    migrate(url)
    registry = Registry(make_engine(url))
    _, pw_a = registry.create_device(_device("wl-a"))
    _, pw_b = registry.create_device(_device("wl-b"))
    ingest_pw = registry.set_service_account(INGESTER_USER, ServiceRole.INGESTER)
    files = BrokerAuthFiles(tmp_path / "auth")
    broker: MosquittoServer | None = None

    def reload() -> None:
        if broker is not None:
            broker.reload()

    sync = BrokerAuthSync(registry, files, reload, interval_s=0.1)
    assert sync.sync()
    assert "pattern write pantau/devices/%u/#" in files.acl_file.read_text()
    assert "wl-a:$7$101$" in files.password_file.read_text()
    assert pw_a not in files.password_file.read_text()  # never the plaintext
    broker = mosquitto_factory(extra_config=files.mosquitto_config_lines())

    clients: list[MqttClient] = []

    def client(user: str | None, password: str | None) -> MqttClient:
        c = MqttClient(broker.port, user, password)
        clients.append(c)
        return c

    try:
        ingester = client(INGESTER_USER, ingest_pw)
        assert ingester.connect() == 0
        ingester.subscribe("$share/pantau/pantau/devices/+/telemetry", "pantau/devices/#")
        a = client("wl-a", pw_a)
        assert a.connect() == 0
        # A publishes as B, then as itself: the marker arrives, the spoof never does.
        a.publish("pantau/devices/wl-b/telemetry", b"spoof")
        a.publish("pantau/devices/wl-a/telemetry", b"marker")
        got = [ingester.messages.get(timeout=5)]
        got.append(ingester.messages.get(timeout=5))  # the shared and the plain subscription
        assert {p for _, p in got} == {b"marker"}
        with pytest.raises(queue.Empty):
            ingester.messages.get(timeout=0.5)

        assert client("wl-a", pw_b).connect() in REFUSED
        assert client(None, None).connect() in REFUSED
        assert client("wl-nobody", pw_a).connect() in REFUSED

        # Retire B and rotate A's secret: after the sync's SIGHUP, the old ones are refused.
        connected_b = client("wl-b", pw_b)
        assert connected_b.connect() == 0
        registry.retire_device("wl-b")
        _, new_pw_a = registry.rotate_credentials("wl-a")
        assert sync.sync()
        # Mosquitto re-checks connected clients on reload: B's open session is closed too.
        eventually(
            lambda: not connected_b.client.is_connected(),
            timeout_s=5,
            what="retired device's open connection closed by the reload",
        )
        eventually(
            lambda: client("wl-b", pw_b).connect() in REFUSED,
            timeout_s=5,
            what="retired device refused after reload",
        )
        assert client("wl-a", pw_a).connect() in REFUSED
        assert client("wl-a", new_pw_a).connect() == 0
        assert broker.process.running  # reloaded, not restarted
    finally:
        for c in clients:
            c.close()


def test_broker_sync_command_keeps_a_running_broker_in_step(
    tmp_path: Path,
    mosquitto_factory: Callable[..., MosquittoServer],
    run_pantau: Callable[..., PantauProcess],
) -> None:
    """`pantau broker sync DIR --reload-pid PID`, the production path: a device registered
    while everything runs can connect seconds later, a retired one cannot."""
    settings = make_settings("mqtt://127.0.0.1:1", "http://127.0.0.1:9", tmp_path)
    settings.registry.broker_sync_interval_s = 0.2
    migrate(settings.database.url)
    engine = make_engine(settings.database.url)
    registry = Registry(engine)
    files = BrokerAuthFiles(tmp_path / "auth")
    files.render(registry)  # empty: nobody may connect yet
    broker = mosquitto_factory(extra_config=files.mosquitto_config_lines())
    assert broker.pid is not None
    sync = run_pantau(
        ["broker", "sync", str(files.directory), "--reload-pid", str(broker.pid)], settings
    )
    clients: list[MqttClient] = []

    def connects(user: str, password: str) -> bool:
        client = MqttClient(broker.port, user, password)
        clients.append(client)
        return client.connect() == 0

    try:
        _, password = registry.create_device(_device("wl-late"))
        eventually(lambda: connects("wl-late", password), timeout_s=10, what="new device admitted")
        registry.retire_device("wl-late")
        eventually(
            lambda: not connects("wl-late", password), timeout_s=10, what="retired device refused"
        )
        assert broker.process.running and sync.running, sync.log_tail()
    finally:
        for client in clients:
            client.close()
        engine.dispose()


def test_only_the_ingester_account_reads_the_broker_counters(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoServer]
) -> None:
    """`topic read $SYS/#` is the ingester's (ingest/broker_stats.py); a device gets none."""
    url = f"sqlite:///{tmp_path}/pantau.db"
    migrate(url)
    registry = Registry(make_engine(url))
    _, pw_a = registry.create_device(_device("wl-a"))
    ingest_pw = registry.set_service_account(INGESTER_USER, ServiceRole.INGESTER)
    files = BrokerAuthFiles(tmp_path / "auth")
    files.render(registry)
    acl = files.acl_file.read_text()
    assert acl.count("$SYS") == 1
    assert acl.index(f"user {INGESTER_USER}") < acl.index("topic read $SYS/#")
    broker = mosquitto_factory(extra_config=files.mosquitto_config_lines(), sys_interval_s=1)
    topic = "$SYS/broker/publish/messages/received"
    ingester = MqttClient(broker.port, INGESTER_USER, ingest_pw)
    device = MqttClient(broker.port, "wl-a", pw_a)
    stats: BrokerStats | None = None
    try:
        assert ingester.connect() == 0 and device.connect() == 0
        ingester.subscribe(topic)
        device.subscribe(topic)
        assert ingester.messages.get(timeout=5)[0] == topic
        with pytest.raises(queue.Empty):  # two and a half $SYS intervals: nothing for a device
            device.messages.get(timeout=2.5)
        # The ingester's second connection, with its account, exports the counters.
        metrics = CollectorRegistry()
        stats = BrokerStats(
            MqttSettings(
                url=broker.url,
                username=INGESTER_USER,
                password=SecretStr(ingest_pw),
                client_id="pantau-test-stats",
            ),
            metrics,
        )
        stats.start()
        eventually(
            lambda: metrics.get_sample_value("pantau_broker_messages_dropped_total") is not None,
            timeout_s=5,
            what="broker counters exported",
        )
        assert metrics.get_sample_value("pantau_broker_messages_stored") is not None
        assert metrics.get_sample_value("pantau_broker_stored_bytes") is not None
        assert metrics.get_sample_value("pantau_broker_publish_received_total") is not None
    finally:
        if stats is not None:
            stats.stop()
        ingester.close()
        device.close()
