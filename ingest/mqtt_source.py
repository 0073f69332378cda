"""MQTT source: subscribe with a persistent MQTT v5 session, hand messages over, ack in order.

Delivery guarantee: at-least-once. Messages arrive with QoS 1 and are acknowledged (PUBACK)
only when the pipeline says so, after InfluxDB accepted them or they were durably
dead-lettered, and always in arrival order through this one acking path (MQTT 5 §4.6).

- A fixed client id, `clean_start=False` and a Session Expiry Interval: the broker keeps the
  session and queues messages while the ingester is down. paho's default ("clean on first
  connect") would wipe that session on every restart.
- Receive Maximum bounds how many unacknowledged messages the broker sends us, which bounds
  this source's memory; it is set large so Mosquitto's small default window does not throttle.
- After a disconnect, message ids from the old connection could ack different messages on the
  new one, so messages carry a connection generation and stale ones are never acked: the
  broker redelivers them and the idempotent write absorbs the copy.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.model import Inbound
from ingest.mqtt_fastpath import FastPublishClient
from pantau.settings import MqttSettings

log = logging.getLogger(__name__)

_PUBACK = struct.Struct("!BBH")  # fixed header PUBACK (0x40), remaining length 2, message id


def apply_account(client: mqtt.Client, settings: MqttSettings) -> None:
    """The broker account and reconnect back-off of `settings`, on a paho client: what every
    connection the ingester opens shares."""
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    client.reconnect_delay_set(
        min_delay=max(1, round(settings.reconnect_min_delay_s)),
        max_delay=max(1, round(settings.reconnect_max_delay_s)),
    )


class MqttSource:
    """A paho-mqtt 2.x client in its own network thread, feeding a bounded hand-over queue."""

    def __init__(
        self,
        settings: MqttSettings,
        topics: Sequence[str],
        *,
        on_state_change: Callable[[bool], None] | None = None,
        batch_acks: bool = True,
        max_pending: int = 20_000,
        max_pending_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.on_state_change = on_state_change
        self._queue: deque[Inbound] = deque()
        self._ready = threading.Event()
        self._waiting = False
        # Back-pressure: past `max_pending` untaken messages the network thread pauses (in
        # steps well inside the keepalive, so pings still flow: one more message may arrive
        # per step) and TCP holds the rest in the broker. Receive Maximum alone is not enough:
        # Mosquitto 2.0.11 pushes a whole queued backlog at once when a session resumes.
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self._pending_bytes = 0
        self._room = threading.Event()
        self._room.set()
        self._pause_step_s = max(0.5, min(5.0, self.settings.keepalive_s / 4))
        self._stopping = False
        self.paused_s = 0.0
        self._generation = 0
        self._connected = False
        self._connects = 0
        self.session_lost = 0  # reconnects on which the broker had no session for us
        self.redelivered = 0
        self.received = 0
        self._client = self._make_client()
        # Batched PUBACKs need paho's internal packet queue (pinned paho-mqtt 2.2); without
        # it, fall back to one public ack() per message.
        self._batch_acks = batch_acks and hasattr(self._client, "_packet_queue")

    def _make_client(self) -> FastPublishClient:
        client = FastPublishClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=True,
        )
        apply_account(client, self.settings)
        # paho's own queue of outgoing packets (our PUBACKs) must never drop anything.
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message  # messages with properties, through paho
        client.on_inbound_publish = self._receive  # the rest, decoded lean (mqtt_fastpath)
        client.on_subscribe = self._on_subscribe
        return client

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.receive_maximum
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=self.settings.clean_start,
            properties=props,
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect without acking what is pending: the broker keeps it for the next run."""
        self._stopping = True
        self._room.set()
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("mqtt connect refused: %s", reason_code)
            return
        self._connects += 1
        if not flags.session_present:
            if self._connects > 1:
                self.session_lost += 1
                log.warning(
                    "mqtt: broker had no session for %s; messages queued while "
                    "disconnected may be lost",
                    self.settings.client_id,
                )
            else:
                log.info("mqtt: new session for %s", self.settings.client_id)
        else:
            log.info("mqtt: resumed session for %s", self.settings.client_id)
        # Retained messages (devices' last status) only with a new subscription: a resumed
        # session already had them, and every reconnect would otherwise replay them all.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(topic, options) for topic in self.topics])
        self._connected = True
        if self.on_state_change:
            self.on_state_change(True)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        for topic, code in zip(self.topics, reason_codes, strict=False):
            if code.is_failure:
                log.error("mqtt: subscription to %s refused: %s", topic, code)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._generation += 1
        self._connected = False
        if self.on_state_change:
            self.on_state_change(False)
        log.warning(
            "mqtt disconnected (%s); pending acks from that connection are void", reason_code
        )

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        props = message.properties
        content_type = getattr(props, "ContentType", None) if props is not None else None
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers refuse such topics; if one came, dead-letter it
            topic = "(topic not UTF-8) " + message._topic.hex()
        self._receive(
            topic,
            bytes(message.payload),
            message.mid,
            message.qos,
            bool(message.dup),
            content_type,
        )

    def _receive(
        self,
        topic: str,
        payload: bytes,
        mid: int,
        qos: int,
        dup: bool,
        content_type: str | None = None,
    ) -> None:
        if dup:
            self.redelivered += 1
        self.received += 1
        self._queue.append(
            Inbound(
                topic=topic,
                payload=payload,
                mid=mid,
                qos=qos,
                received_ms=int(time.time() * 1000),
                content_type=content_type,
                generation=self._generation,
                dup=dup,
            )
        )
        if self._waiting:  # wake the pipeline once, not once per message
            self._waiting = False
            self._ready.set()
        self._pending_bytes += len(payload)
        if self._full() and not self._stopping:
            self._room.clear()
            if self._full():  # the pipeline may have just taken some
                started = time.monotonic()
                self._room.wait(self._pause_step_s)
                self.paused_s += time.monotonic() - started

    # -- pipeline side ---------------------------------------------------------------------
    def take(self, max_messages: int, timeout_s: float) -> list[Inbound]:
        """Up to `max_messages` in arrival order, waiting at most `timeout_s` for the first."""
        if not self._queue and timeout_s > 0:
            self._ready.clear()
            self._waiting = True
            if not self._queue:  # re-check: a message may have come before _waiting was seen
                self._ready.wait(timeout_s)
            self._waiting = False
        out: list[Inbound] = []
        queue = self._queue
        taken_bytes = 0
        while queue and len(out) < max_messages:
            message = queue.popleft()
            taken_bytes += len(message.payload)
            out.append(message)
        self._pending_bytes -= taken_bytes
        if not self._room.is_set() and (
            len(queue) < self.max_pending // 2 and self._pending_bytes < self.max_pending_bytes // 2
        ):
            self._room.set()
        return out

    def _full(self) -> bool:
        return len(self._queue) >= self.max_pending or (
            self._pending_bytes >= self.max_pending_bytes
        )

    def ack(self, messages: Sequence[Inbound]) -> int:
        """PUBACK each message of the current connection, in the order given. Returns count.

        The PUBACKs of a batch go out as one write: paho's public `ack()` queues one packet
        and wakes its network thread once per message, which costs more than the rest of
        the pipeline per message. So the batch's PUBACKs (the very bytes `ack()` would have
        produced) go to paho's packet queue back to back as one packet: a TCP stream carries
        MQTT packets end to end, so the broker reads them as separate PUBACKs.
        """
        generation = self._generation
        mids = [m.mid for m in messages if m.qos == 1 and m.generation == generation]
        if not mids:
            return 0
        if self._batch_acks and self._connected and generation == self._generation:
            blob = b"".join([_PUBACK.pack(0x40, 2, mid) for mid in mids])
            rc = self._client._packet_queue(0x40, blob, 0, 0)
            return len(mids) if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else 0
        acked = 0
        for mid in mids:
            if self._client.ack(mid, 1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break  # the connection dropped under us: the broker will redeliver the rest
            acked += 1
        return acked
