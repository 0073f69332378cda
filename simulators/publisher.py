"""MQTT links of the simulators: one connection per device, or a few shared by the fleet.

Both publish QoS 1 on `<prefix>/<device_id>/telemetry` and keep persistent sessions
(`clean_start=False` plus a Session Expiry Interval), and both count PUBACKs so the runner can
bound what is in flight.

- `DeviceLinks` — what hardware does: each device its own client id (= device id) and, when
  the broker requires it, its own username (= device id) and password from the credentials
  mapping. Last will `offline` (retained) on `<prefix>/<device_id>/status`, `online` on every
  connect. A dropout disconnects with the will (MQTT 5 reason 0x04) so the broker announces
  it; a reconnect storm cuts sockets so the clients reconnect. One connection and reader
  thread per device: meant for up to ~1,000 devices.
- `SharedLinks` — for scale: `connections` connections publish for the whole fleet (device i
  on connection i mod n, so each device's messages stay in order). A will can name only one
  topic, so device status is published explicitly: `online` at start, `offline`/`online`
  around dropouts, `offline` on a clean stop. A hard crash of the simulator leaves device
  status `online`: use per-device links where that matters.

Both publish with the one QoS 1 publisher, `pantau.mqtt_publish.Qos1Publisher`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import yaml

from pantau.mqtt_publish import Qos1Publisher, utf8
from pantau.settings import MqttSettings
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


class SharedLinks:
    """A few `Qos1Publisher` connections publishing for the whole fleet."""

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
            Qos1Publisher(
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


class DeviceLinks:
    """One `Qos1Publisher` per device, with the device's credentials and last will."""

    def __init__(
        self,
        settings: MqttSettings,
        device_ids: list[str],
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.device_ids = device_ids
        self.prefix = settings.topic_prefix
        self.clients: list[Qos1Publisher] = []
        self._offline = [False] * len(device_ids)
        self._last_bounce = [0.0] * len(device_ids)
        for device_id in device_ids:
            password = None
            if credentials is not None:
                if device_id not in credentials:
                    raise KeyError(f"no MQTT password for {device_id} in the credentials")
                password = credentials[device_id]
            self.clients.append(
                Qos1Publisher(
                    settings.host,
                    settings.port,
                    device_id,
                    username=device_id if credentials is not None else None,
                    password=password,
                    keepalive_s=settings.keepalive_s,
                    session_expiry_s=SESSION_EXPIRY_S,
                    window=1000,
                    will=(self._status_topic(device_id), b"offline"),
                    on_connect=self._online,
                )
            )

    def _status_topic(self, device_id: str) -> str:
        return f"{self.prefix}/{device_id}/status"

    def _online(self, client: Qos1Publisher) -> None:
        client.publish(self._status_topic(client.client_id), b"online", retain=True)

    @property
    def published(self) -> int:
        return sum(c.published for c in self.clients)

    @property
    def acked(self) -> int:
        return sum(c.acked for c in self.clients)

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.clients)

    def wait_acked(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(c.wait_acked(max(0.0, deadline - time.monotonic())) for c in self.clients)

    def start(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        for index, client in enumerate(self.clients):
            try:
                client.connect(max(0.5, deadline - time.monotonic()))
            except ConnectionError as exc:
                raise ConnectionError(f"{self.device_ids[index]} could not connect: {exc}") from exc

    def publish(self, messages: list[Message]) -> None:
        for message in messages:
            if not self._offline[message.device_index]:
                self.clients[message.device_index].publish(
                    message.topic, message.payload, message.content_type, retain=message.retain
                )

    def set_status(self, index: int, state: str) -> None:
        client = self.clients[index]
        if state == "offline" and not self._offline[index]:
            self._offline[index] = True
            # Reason 0x04: the broker publishes the will, as if the device had vanished.
            client.close(with_will=True)
        elif state == "online" and self._offline[index]:
            self._offline[index] = False
            client.connect()

    def bounce(self, indices: list[int]) -> None:
        now = time.monotonic()
        for index in indices:
            if not self._offline[index] and now - self._last_bounce[index] >= 1.0:
                self._last_bounce[index] = now
                self.clients[index].cut()

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.wait_acked(timeout_s):
            log.warning("%d messages not acknowledged at stop", self.pending)
        for index, client in enumerate(self.clients):
            if not self._offline[index]:
                # A clean shutdown of a device: say so, then leave without the will.
                client.publish(self._status_topic(self.device_ids[index]), b"offline", retain=True)
                client.close(2.0)
