"""MQTT links of the simulators: one connection per device, or a few shared by the fleet.

Both publish QoS 1 on `<prefix>/<device_id>/telemetry` and keep persistent sessions
(`clean_start=False` plus a Session Expiry Interval), and both count PUBACKs so the runner can
bound what is in flight.

- `DeviceLinks` — what hardware does: each device its own client id (= device id) and, when
  the broker requires it, its own username (= device id) and password from the credentials
  mapping. Last will `offline` (retained) on `<prefix>/<device_id>/status`, `online` on every
  connect. A dropout disconnects with the will (MQTT 5 reason 0x04) so the broker announces
  it; a reconnect storm cuts sockets so the clients reconnect. One paho network thread per
  device: meant for up to ~1,000 devices.
- `SharedLinks` — for scale: `connections` lean MQTT 5 clients (`fastmqtt`) publish for the
  whole fleet (device i on connection i mod n, so each device's messages stay in order). A
  will can name only one topic, so device status is published explicitly: `online` at start,
  `offline`/`online` around dropouts, `offline` on a clean stop. A hard crash of the
  simulator leaves device status `online`: use per-device links where that matters.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from pantau.settings import MqttSettings
from simulators.fastmqtt import FastPublisher, utf8
from simulators.wire import Message

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 3600
MIN_BOUNCE_INTERVAL_S = 2.0
TEXT_PLAIN = utf8("text/plain")


def load_credentials(path: Path) -> dict[str, str]:
    """Device passwords from a JSON or YAML mapping `{device_id: password}`."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a mapping of device id to password")
    return data


def _connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    return props


def _publish_properties(content_type: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    return props


class Link(Protocol):
    @property
    def published(self) -> int: ...
    @property
    def acked(self) -> int: ...

    def start(self, timeout_s: float = 10.0) -> None: ...
    def publish(self, messages: list[Message]) -> None: ...
    def set_status(self, index: int, state: str) -> None: ...
    def bounce(self, indices: list[int]) -> None: ...
    def stop(self, timeout_s: float = 10.0) -> None: ...
    @property
    def pending(self) -> int: ...


class _Counting:
    """PUBACK bookkeeping shared by both links."""

    def __init__(self) -> None:
        self.published = 0
        self.acked = 0
        self._lock = threading.Lock()
        self._props: dict[str, Properties] = {}

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, *args: object) -> None:
        with self._lock:
            self.acked += 1

    @property
    def pending(self) -> int:
        return self.published - self.acked

    def _send(self, client: mqtt.Client, message: Message) -> None:
        props = self._props.get(message.content_type)
        if props is None:
            props = self._props[message.content_type] = _publish_properties(message.content_type)
        self._count_one()
        client.publish(
            message.topic, message.payload, qos=1, retain=message.retain, properties=props
        )

    def _count_one(self) -> None:
        with self._lock:
            self.published += 1

    def wait_acked(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.pending > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.pending <= 0


def _new_client(client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.reconnect_delay_set(1, 10)
    return client


def _cut(client: mqtt.Client) -> None:
    """Drop the TCP connection under paho's feet, as a flaky network would."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class SharedLinks:
    """A few `FastPublisher` connections publishing for the whole fleet."""

    def __init__(
        self,
        settings: MqttSettings,
        device_ids: list[str],
        *,
        connections: int = 1,
        client_id: str = "pantau-simulator",
    ) -> None:
        self.settings = settings
        self.device_ids = device_ids
        prefix = settings.topic_prefix
        password = settings.password.get_secret_value() if settings.password else None
        self.connections = [
            FastPublisher(
                settings.host,
                settings.port,
                f"{client_id}-{k}" if connections > 1 else client_id,
                username=settings.username,
                password=password if settings.username else None,
                keepalive_s=settings.keepalive_s,
                session_expiry_s=SESSION_EXPIRY_S,
            )
            for k in range(connections)
        ]
        self._status_topics = [utf8(f"{prefix}/{d}/status") for d in device_ids]
        self._topics: dict[str, bytes] = {}
        self._content_types: dict[str, bytes] = {}
        self._last_bounce = [0.0] * connections

    @property
    def published(self) -> int:
        return sum(c.published for c in self.connections)

    @property
    def acked(self) -> int:
        return sum(c.acked for c in self.connections)

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.connections)

    def start(self, timeout_s: float = 10.0) -> None:
        for connection in self.connections:
            connection.connect(timeout_s)
        self._statuses(range(len(self.device_ids)), b"online")

    def _statuses(self, indices: Iterable[int], state: bytes) -> None:
        by_connection: dict[int, list[tuple[bytes, bytes, bytes, bool]]] = {}
        for index in indices:
            by_connection.setdefault(index % len(self.connections), []).append(
                (self._status_topics[index], state, TEXT_PLAIN, True)
            )
        for k, batch in by_connection.items():
            self.connections[k].publish_many(batch)

    def publish(self, messages: list[Message]) -> None:
        n = len(self.connections)
        batches: list[list[tuple[bytes, bytes, bytes, bool]]] = [[] for _ in range(n)]
        topics, types = self._topics, self._content_types
        for m in messages:
            topic = topics.get(m.topic)
            if topic is None:
                topic = topics[m.topic] = utf8(m.topic)
            content_type = types.get(m.content_type)
            if content_type is None:
                content_type = types[m.content_type] = utf8(m.content_type)
            batches[m.device_index % n].append((topic, m.payload, content_type, m.retain))
        for connection, batch in zip(self.connections, batches, strict=True):
            if batch:
                connection.publish_many(batch)

    def set_status(self, index: int, state: str) -> None:
        self._statuses([index], state.encode())

    def bounce(self, indices: list[int]) -> None:
        now = time.monotonic()
        for k in sorted({i % len(self.connections) for i in indices}):
            if now - self._last_bounce[k] >= MIN_BOUNCE_INTERVAL_S:
                self._last_bounce[k] = now
                self.connections[k].cut()

    def stop(self, timeout_s: float = 10.0) -> None:
        try:
            self._statuses(range(len(self.device_ids)), b"offline")
        finally:
            for connection in self.connections:
                connection.close(timeout_s)


class DeviceLinks(_Counting):
    def __init__(
        self,
        settings: MqttSettings,
        device_ids: list[str],
        credentials: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.device_ids = device_ids
        self.prefix = settings.topic_prefix
        self.clients: list[mqtt.Client] = []
        self._connected = [threading.Event() for _ in device_ids]
        self._offline = [False] * len(device_ids)
        self._last_bounce = [0.0] * len(device_ids)
        for index, device_id in enumerate(device_ids):
            client = _new_client(device_id)
            status = f"{self.prefix}/{device_id}/status"
            client.will_set(status, b"offline", qos=1, retain=True)
            if credentials is not None:
                if device_id not in credentials:
                    raise KeyError(f"no MQTT password for {device_id} in the credentials")
                client.username_pw_set(device_id, credentials[device_id])
            client.on_publish = self._on_publish
            client.on_connect = self._make_on_connect(index, status)
            self.clients.append(client)

    def _make_on_connect(self, index: int, status: str) -> Callable[..., None]:
        def on_connect(
            client: mqtt.Client,
            userdata: object,
            flags: object,
            rc: ReasonCode,
            props: object = None,
        ) -> None:
            if rc.is_failure:
                log.warning("%s: connection refused: %s", self.device_ids[index], rc)
                return
            self._connected[index].set()
            self._count_one()
            client.publish(status, b"online", qos=1, retain=True)

        return on_connect

    def _connect(self, client: mqtt.Client) -> None:
        client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=_connect_properties(),
        )
        client.loop_start()

    def start(self, timeout_s: float = 10.0) -> None:
        for client in self.clients:
            self._connect(client)
        deadline = time.monotonic() + timeout_s
        for index, event in enumerate(self._connected):
            if not event.wait(max(0.0, deadline - time.monotonic())):
                raise ConnectionError(f"{self.device_ids[index]} could not connect")

    def publish(self, messages: list[Message]) -> None:
        for message in messages:
            if not self._offline[message.device_index]:
                self._send(self.clients[message.device_index], message)

    def set_status(self, index: int, state: str) -> None:
        client = self.clients[index]
        if state == "offline" and not self._offline[index]:
            self._offline[index] = True
            self._connected[index].clear()
            # Reason 0x04: the broker publishes the will, as if the device had vanished.
            client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
            client.loop_stop()
        elif state == "online" and self._offline[index]:
            self._offline[index] = False
            self._connect(client)

    def bounce(self, indices: list[int]) -> None:
        now = time.monotonic()
        for index in indices:
            if not self._offline[index] and now - self._last_bounce[index] >= 1.0:
                self._last_bounce[index] = now
                _cut(self.clients[index])

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.wait_acked(timeout_s):
            log.warning("%d messages not acknowledged at stop", self.pending)
        for index, client in enumerate(self.clients):
            if not self._offline[index] and self._connected[index].is_set():
                # A clean shutdown of a device: say so, then leave without the will.
                self._count_one()
                info = client.publish(
                    f"{self.prefix}/{self.device_ids[index]}/status",
                    b"offline",
                    qos=1,
                    retain=True,
                )
                info.wait_for_publish(timeout=2.0)
            client.disconnect()
            client.loop_stop()
