"""`pantau simulate` run by hand beside `pantau up`: the stack's broker refuses anonymous
clients, so the simulator gets itself a publisher account from the registry and is admitted
once the stack's sync has re-rendered the broker's password file. Real Mosquitto with the
registry's password and ACL files, `BrokerAuthSync` as `pantau up` runs it, SQLite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devices.broker import INGESTER_USER, BrokerAuthFiles, BrokerAuthSync
from devices.models import ServiceRole
from devices.registry import Registry
from devices.schemas import DeviceCreate
from pantau.mqtt_publish import Qos1Publisher, RefusedError
from pantau.servers.mosquitto import MosquittoServer
from pantau.settings import Settings
from pantau.sql import make_engine, migrate
from simulators.stack_account import SIMULATE_CLI_USER, use_stack_account
from tests.conftest import eventually
from tests.registry_helpers import MqttClient


def test_the_simulator_gets_an_account_the_stacks_broker_admits(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoServer]
) -> None:
    url = f"sqlite:///{tmp_path / 'pantau.db'}"
    migrate(url)
    engine = make_engine(url)
    registry = Registry(engine)
    registry.create_device(DeviceCreate(id="wl-malili-01", kind="water_level", name="g"))
    ingest_pw = registry.set_service_account(INGESTER_USER, ServiceRole.INGESTER)
    files = BrokerAuthFiles(tmp_path / "auth")
    files.render(registry)
    broker = mosquitto_factory(extra_config=files.mosquitto_config_lines())
    sync = BrokerAuthSync(registry, files, broker.reload, 2.0)  # as `pantau up` runs it
    sync.revision = registry.revision()
    sync.start()
    # What a second terminal has: no MQTT URL (the stack's own broker), no username.
    settings = Settings(
        stack={"mosquitto_port": broker.port, "var_dir": tmp_path / "var"},  # type: ignore[arg-type]
        database={"url": url},  # type: ignore[arg-type]
    )
    assert not settings.mqtt_is_external() and settings.mqtt.username is None
    anonymous = Qos1Publisher("127.0.0.1", broker.port, "t-anonymous")
    with pytest.raises(RefusedError):
        anonymous.connect(timeout_s=5)

    reader = MqttClient(broker.port, INGESTER_USER, ingest_pw)
    assert reader.connect() == 0
    reader.subscribe("pantau/devices/+/telemetry")
    try:
        assert use_stack_account(settings)
        assert settings.mqtt.username == SIMULATE_CLI_USER
        assert settings.mqtt.password is not None
        publisher = Qos1Publisher(
            "127.0.0.1",
            broker.port,
            "t-simulate",
            username=settings.mqtt.username,
            password=settings.mqtt.password.get_secret_value(),
        ).connect()
        publisher.publish("pantau/devices/wl-malili-01/telemetry", b'{"level_cm": 101}')
        assert publisher.wait_acked(5)
        publisher.close()
        topic, payload = eventually(lambda: reader.messages.get(timeout=5), what="reading")
        assert (topic, payload) == ("pantau/devices/wl-malili-01/telemetry", b'{"level_cm": 101}')
    finally:
        reader.client.loop_stop()
        reader.client.disconnect()
        sync.stop()
        engine.dispose()


def test_an_external_broker_or_a_given_username_is_left_as_configured(tmp_path: Path) -> None:
    for mqtt in ({"url": "mqtt://127.0.0.1:1"}, {"username": "someone", "password": "pw"}):
        settings = Settings(
            mqtt=mqtt,  # type: ignore[arg-type]
            database={"url": f"sqlite:///{tmp_path / 'none.db'}"},  # type: ignore[arg-type]
        )
        before = settings.mqtt.model_copy()
        assert not use_stack_account(settings)
        assert settings.mqtt == before
