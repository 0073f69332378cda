"""A QoS 1 publisher with a bounded in-flight window, for simulators, tests and benchmarks.

paho-mqtt refuses a publish whose message id is still in flight (ids wrap at 65,535), and an
unbounded queue hides back-pressure; this wrapper keeps at most `window` messages unacknowledged
and can wait until every PUBACK arrived, so a caller knows the broker holds what it sent.
A caller that must know *which* messages the broker acknowledged passes `on_ack` and keeps the
`mid` of each `publish`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class WindowedPublisher:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        window: int = 10_000,
        username: str | None = None,
        password: str | None = None,
        will: tuple[str, bytes] | None = None,
        on_ack: Callable[[int, ReasonCode], None] | None = None,
    ) -> None:
        """`on_ack(mid, reason_code)` is called for every PUBACK, on paho's network thread and
        under paho's outgoing-message lock: it must be quick and must not call the client. It
        can run before the `publish` that sent `mid` has returned."""
        self.window = window
        self.on_ack = on_ack
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        if will:
            self.client.will_set(will[0], will[1], qos=1)
        # paho's own in-flight limit rescans every queued message on each PUBACK (O(n) per
        # ack); switch it off and keep the window here instead.
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.disconnects = 0
        self._connected = threading.Event()
        self.refused: str | None = None
        self.last_disconnect = ""
        self._lock = threading.Condition()
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.host, self.port = host, port

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self.acked += 1
            if reason_code.is_failure:
                self.failed += 1
            self._lock.notify_all()
        if self.on_ack is not None:
            self.on_ack(mid, reason_code)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
        else:
            # The broker's Receive Maximum caps our window: exceeding it is a protocol error.
            server_max = getattr(properties, "ReceiveMaximum", None) if properties else None
            if server_max:
                self.window = min(self.window, int(server_max))
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # paho re-sends unacknowledged messages after a reconnect, but a caller waiting on a
        # full window across a disconnect gets an error, not a silent hang.
        with self._lock:
            self.disconnects += 1
            self.last_disconnect = str(reason_code)
            self._lock.notify_all()

    def connect(self, keepalive_s: int = 30, timeout_s: float = 10.0) -> WindowedPublisher:
        self.refused = None
        self.client.connect(self.host, self.port, keepalive=keepalive_s)
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            raise TimeoutError(f"no CONNACK from {self.host}:{self.port}")
        if self.refused:
            raise ConnectionRefusedError(f"broker refused the connection: {self.refused}")
        return self

    def publish(
        self, topic: str, payload: bytes, content_type: str | None = None, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Send one QoS 1 message once the window has room; its `mid` names it in `on_ack`.

        While disconnected paho keeps the message and sends it after the reconnect, as it
        re-sends every unacknowledged one.
        """
        with self._lock:
            while self.sent - self.acked >= self.window:
                if self.disconnects:
                    raise ConnectionError(f"broker disconnected us: {self.last_disconnect}")
                if not self._lock.wait(timeout=30):
                    raise TimeoutError("no PUBACK for 30 s")
            self.sent += 1
        properties = None
        if content_type:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ContentType = content_type
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        return info

    def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> int:
        count = 0
        for topic, payload in messages:
            self.publish(topic, payload)
            count += 1
        return count

    def wait_all_acked(self, timeout_s: float = 60.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self.acked >= self.sent, timeout=timeout_s)

    def close(self) -> None:
        self.wait_all_acked(30.0)
        self.client.disconnect()
        self.client.loop_stop()
