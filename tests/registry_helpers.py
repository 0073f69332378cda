"""Test helpers for the registry: databases of both backends, MQTT clients with credentials."""

from __future__ import annotations

import functools
import os
import queue
import threading
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from pantau.sql import make_engine, migrate

# The PostgreSQL leg's server (trust auth); each test creates and drops its own database there.
POSTGRES_ADMIN_URL = os.environ.get(
    "PANTAU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@functools.cache
def postgres_reason() -> str | None:
    """None when PostgreSQL at 127.0.0.1:5432 answers; else why the PostgreSQL leg skips."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        where = make_url(POSTGRES_ADMIN_URL).render_as_string(hide_password=True)
        return f"PostgreSQL not reachable at {where} ({type(exc).__name__}: {exc})"[:300]
    return None


def database_url(backend: str, tmp_path: object) -> Iterator[str]:
    """A fresh, migrated database of `backend` for one test; dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/registry-{uuid.uuid4().hex[:6]}.db"
        migrate(url)
        yield url
        return
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    name = f"pantau_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def engine_for(url: str) -> Engine:
    return make_engine(url)


class MqttClient:
    """A paho client that connects with a username/password and reports the CONNACK."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: queue.Queue[int] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc.value)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()

    def connect(self, timeout_s: float = 5.0) -> int:
        """The CONNACK reason code: 0 accepted, 134 bad username or password, 135 not
        authorised; -1 when the broker closed the connection without one."""
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        try:
            return self.connack.get(timeout=timeout_s)
        except queue.Empty:
            return -1

    def subscribe(self, *topics: str) -> None:
        self.subscribed.clear()
        self.client.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(5), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def role_tokens(url: str) -> dict[str, str]:
    """One user per role on the database at `url`; their tokens by role name."""
    from people.accounts import People
    from people.models import Role
    from people.schemas import UserCreate

    migrate(url)
    engine = make_engine(url)
    people = People(engine)
    tokens = {}
    for role in Role:
        _, token = people.create_user(
            UserCreate(name=f"{role.value}-{uuid.uuid4().hex[:6]}", role=role)
        )
        tokens[role.value] = token
    engine.dispose()
    return tokens


def register_devices(url: str, device_ids: list[str], kind: str = "water_level") -> dict[str, str]:
    """Register devices on the database at `url`; their MQTT passwords by id."""
    from devices.registry import Registry
    from devices.schemas import DeviceCreate

    migrate(url)
    engine = make_engine(url)
    registry = Registry(engine)
    passwords = {}
    for device_id in device_ids:
        _, passwords[device_id] = registry.create_device(
            DeviceCreate(id=device_id, kind=kind, name=device_id, district="Malili", site="test")
        )
    engine.dispose()
    return passwords


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
