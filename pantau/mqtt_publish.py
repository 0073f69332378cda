"""The one QoS 1 publisher (`Qos1Publisher`): simulators, the API's dead-letter replay, tests
and benchmarks all publish with it.

A lean MQTT 5 client that only publishes, written from the MQTT 5.0 specification. Why not
paho here: paho-mqtt 2.2 rescans its whole outgoing-message table on every PUBACK
(`_update_inflight`), so one client with thousands of messages in flight acknowledges a few
hundred per second, and even with a small window it tops out near 10,000 messages/s on a
shared core. This client:

- CONNECTs with `clean_start=False` and a Session Expiry Interval, username/password and an
  optional retained QoS 1 last will; checks the CONNACK and honours the server's Receive
  Maximum (never more than `min(window, Receive Maximum)` messages unacknowledged);
- PUBLISHes QoS 1 with an optional Content Type: `publish` sends one message,
  `publish_many` packs a whole batch of pre-encoded messages into one write (the fast path:
  about 20 times the rate of one call each); every message is kept until its PUBACK and
  re-sent (DUP set) after a reconnect, in order;
- tells the caller of every PUBACK (`on_ack(packet_id, reason_code)`) and counts them
  (`published`, `acked`, `refused` — PUBACKs with a failure reason, e.g. 0x87 not
  authorised); `wait_acked` returns once the broker acknowledged everything sent;
- sends PINGREQ for keepalive, reconnects with back-off when the connection drops (`cut()`
  drops it on purpose, for reconnect storms), calls `on_connect` after every connect, and
  sends DISCONNECT on `close` (reason 0x04 with `close(with_will=True)`: the broker then
  publishes the will, as if the device had vanished).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable

from pantau.retry import RetryStoppedError, retry_policy

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
PINGREQ, PINGRESP, DISCONNECT = 0xC0, 0xD0, 0xE0
PROP_SESSION_EXPIRY, PROP_CONTENT_TYPE, PROP_RECEIVE_MAXIMUM = 0x11, 0x03, 0x21
MAX_IN_FLIGHT = 60_000  # packet ids are 16 bits; leave room to find a free one


class RefusedError(ConnectionRefusedError):
    """The broker answered CONNECT with a failure reason (bad credentials, not authorised)."""


def varint(n: int) -> bytes:
    """MQTT Variable Byte Integer."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def _read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None when the buffer ends inside the integer."""
    value, shift = 0, 0
    while pos < len(buf):
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ValueError("malformed variable byte integer")
    return None


def connect_packet(
    client_id: str,
    *,
    keepalive_s: int,
    session_expiry_s: int,
    username: str | None = None,
    password: str | None = None,
    will: tuple[str, bytes] | None = None,
) -> bytes:
    """CONNECT; `will` (topic, payload) is published by the broker, QoS 1 and retained, if
    the connection ends without a normal DISCONNECT."""
    flags = 0  # bit 1 (clean start) stays 0: resume the session
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    if will is not None:
        flags |= 0x04 | 0x08 | 0x20  # will flag, will QoS 1, will retain
    props = bytes([PROP_SESSION_EXPIRY]) + struct.pack("!I", session_expiry_s)
    body = utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive_s)
    body += varint(len(props)) + props + utf8(client_id)
    if will is not None:
        body += varint(0) + utf8(will[0]) + struct.pack("!H", len(will[1])) + will[1]
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += utf8(password)
    return bytes([CONNECT]) + varint(len(body)) + body


def publish_packet(
    topic: bytes, packet_id: int, payload: bytes, content_type: bytes, retain: bool
) -> bytes:
    """PUBLISH QoS 1; `topic` and `content_type` already length-prefixed (see `utf8`)."""
    props = bytes([PROP_CONTENT_TYPE]) + content_type if content_type else b""
    head = topic + struct.pack("!H", packet_id) + varint(len(props)) + props
    return (
        bytes([PUBLISH | 0x02 | (0x01 if retain else 0)])
        + varint(len(head) + len(payload))
        + head
        + payload
    )


class Qos1Publisher:
    """One MQTT 5 connection publishing QoS 1; `publish` and `publish_many` are thread-safe."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        session_expiry_s: int = 3600,
        window: int = MAX_IN_FLIGHT,
        will: tuple[str, bytes] | None = None,
        on_ack: Callable[[int, int], None] | None = None,
        on_connect: Callable[[Qos1Publisher], None] | None = None,
    ) -> None:
        """`window`: most messages unacknowledged (the broker's Receive Maximum may lower it).
        `on_ack(packet_id, reason_code)` runs on the reader thread for every PUBACK of a
        message in flight, possibly before the `publish` that sent it returned; it must be
        quick. `on_connect(self)` runs after every successful connect and reconnect (on the
        reader thread for a reconnect); it may publish."""
        self.host, self.port = host, port
        self.client_id = client_id
        self.username, self.password = username, password
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.window = max(1, min(window, MAX_IN_FLIGHT))
        self.will = will
        self.on_ack = on_ack
        self.on_connect = on_connect
        self.receive_maximum = self.window
        self.published = 0
        self.acked = 0
        self.reconnects = 0
        self.refused = 0  # PUBACKs with a failure reason: the broker dropped those messages
        self._sock: socket.socket | None = None
        self._lock = threading.Condition()
        self._write_lock = threading.Lock()
        self._in_flight: dict[int, bytes] = {}  # packet id → PUBLISH, until its PUBACK
        self._next_id = 1
        self._stopping = threading.Event()  # set by `close`: no more reconnects
        self._reconnect_retry = retry_policy(
            OSError,
            initial_s=0.5,
            max_s=10.0,
            stop=self._stopping,
            before_retry=self._before_reconnect,
        )
        self._topics: dict[str, bytes] = {}  # topic / content type → length-prefixed
        self._reader: threading.Thread | None = None
        self._last_send = time.monotonic()

    # -- connection -------------------------------------------------------------------------

    def _open(self, timeout_s: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            connect_packet(
                self.client_id,
                keepalive_s=self.keepalive_s,
                session_expiry_s=self.session_expiry_s,
                username=self.username,
                password=self.password,
                will=self.will,
            )
        )
        buf = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("broker closed the connection before CONNACK")
            buf += chunk
            header = _read_varint(buf, 1)
            if header and len(buf) >= header[1] + header[0]:
                break
        assert header is not None
        length, pos = header
        if buf[0] != CONNACK:
            raise ConnectionError(f"expected CONNACK, got packet type {buf[0] >> 4}")
        reason = buf[pos + 1]
        if reason >= 0x80:
            sock.close()
            raise RefusedError(f"broker refused the connection: reason 0x{reason:02x}")
        self._parse_connack_props(buf[pos + 2 : pos + length])
        sock.settimeout(None)
        return sock

    def _parse_connack_props(self, data: bytes) -> None:
        parsed = _read_varint(data, 0)
        if parsed is None:
            return
        length, pos = parsed
        end = pos + length
        while pos < end:
            prop = data[pos]
            pos += 1
            if prop == PROP_RECEIVE_MAXIMUM:
                self.receive_maximum = min(self.window, struct.unpack_from("!H", data, pos)[0])
                return
            # Skip other properties by their type's width.
            if prop in (0x01, 0x24, 0x25, 0x28, 0x29, 0x2A):
                pos += 1
            elif prop in (0x13, 0x21, 0x22):
                pos += 2
            elif prop in (0x11, 0x27):
                pos += 4
            elif prop == 0x26:  # user property: two strings
                for _ in range(2):
                    pos += 2 + struct.unpack_from("!H", data, pos)[0]
            else:  # strings and binary data
                pos += 2 + struct.unpack_from("!H", data, pos)[0]

    def connect(self, timeout_s: float = 10.0) -> Qos1Publisher:
        """Connect, retrying while the broker is not there yet; refusals (RefusedError) are
        not retried. Connecting again after `close` resumes with what is still in flight."""
        self._stopping.clear()
        deadline = time.monotonic() + timeout_s

        def open_and_resend() -> None:
            sock = self._open(max(0.5, deadline - time.monotonic()))
            with self._lock:
                self._sock = sock
                sock.sendall(self._resend())  # what a `close` left unacknowledged

        retry = retry_policy(
            OSError, initial_s=0.2, max_s=1.0, give_up_after_s=timeout_s, not_on=RefusedError
        )
        try:
            retry(open_and_resend)
        except RefusedError:
            raise
        except OSError as exc:
            raise ConnectionError(f"{self.client_id}: no broker: {exc}") from exc
        self._reader = threading.Thread(
            target=self._read_loop, name=f"mqtt-{self.client_id}", daemon=True
        )
        self._reader.start()
        if self.on_connect is not None:
            self.on_connect(self)
        return self

    @property
    def connected(self) -> bool:
        """`connect` succeeded and `close` was not called (the link may be reconnecting)."""
        return self._reader is not None and self._reader.is_alive() and not self._stopping.is_set()

    def cut(self) -> None:
        """Drop the TCP connection as a flaky network would; the reader reconnects."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _reconnect(self) -> None:
        def reopen() -> None:
            sock = self._open(10.0)
            with self._lock:
                self._sock = sock
                self.reconnects += 1
                sock.sendall(self._resend())

        try:
            self._reconnect_retry(reopen)
        except RetryStoppedError:
            return
        if self.on_connect is not None:
            self.on_connect(self)

    def _before_reconnect(self, exc: BaseException, wait_s: float) -> None:
        log.warning("%s: reconnect failed (%s); retrying in %.1fs", self.client_id, exc, wait_s)

    def _resend(self) -> bytes:
        """Under the lock: what the broker has not acknowledged, in publish order, marked DUP."""
        return b"".join(bytes([p[0] | 0x08]) + p[1:] for p in self._in_flight.values())

    def _read_loop(self) -> None:
        buf = bytearray()
        while not self._stopping.is_set():
            sock = self._sock
            assert sock is not None
            try:
                sock.settimeout(max(1.0, self.keepalive_s / 2))
                chunk = sock.recv(65536)
            except TimeoutError:
                self._ping()
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if self._stopping.is_set():
                    return
                buf.clear()
                with contextlib.suppress(OSError):
                    sock.close()
                self._reconnect()
                continue
            buf += chunk
            pos = 0
            acked = []
            while True:
                header = _read_varint(buf, pos + 1) if len(buf) > pos + 1 else None
                if header is None or len(buf) < header[1] + header[0]:
                    break
                length, body = header
                kind = buf[pos] & 0xF0
                if kind == PUBACK:
                    reason = buf[body + 2] if length >= 3 else 0  # no reason code: success
                    acked.append((struct.unpack_from("!H", buf, body)[0], reason))
                    if reason >= 0x80:  # e.g. 0x87 not authorised
                        self.refused += 1
                        if self.refused == 1:
                            log.warning(
                                "%s: broker refused a message: reason 0x%02x",
                                self.client_id,
                                buf[body + 2],
                            )
                elif kind == DISCONNECT:
                    log.warning("%s: broker sent DISCONNECT", self.client_id)
                pos = body + length
            del buf[:pos]
            if acked:
                done = []
                with self._lock:
                    for packet_id, reason in acked:
                        if self._in_flight.pop(packet_id, None) is not None:
                            self.acked += 1
                            done.append((packet_id, reason))
                    self._lock.notify_all()
                if self.on_ack is not None:
                    for packet_id, reason in done:
                        self.on_ack(packet_id, reason)
            if time.monotonic() - self._last_send > self.keepalive_s / 2:
                self._ping()

    def _ping(self) -> None:
        self._write(bytes([PINGREQ, 0]))

    def _write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None or not data:
            return
        try:
            with self._write_lock:  # the reader pings from its own thread
                sock.sendall(data)
            self._last_send = time.monotonic()
        except OSError:
            self.cut()  # the reader notices and reconnects, then re-sends what is in flight

    # -- publishing -------------------------------------------------------------------------

    def _packet_id(self) -> int:
        while True:
            packet_id = self._next_id
            self._next_id = packet_id % 65535 + 1
            if packet_id not in self._in_flight:
                return packet_id

    def _wait_for_room(self, timeout_s: float) -> None:
        """Under the lock: block while the window is full."""
        deadline = time.monotonic() + timeout_s
        while len(self._in_flight) >= self.receive_maximum:
            if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"broker stopped acknowledging for {timeout_s:g} s")

    def _encoded(self, text: str) -> bytes:
        encoded = self._topics.get(text)
        if encoded is None:
            encoded = utf8(text)
            if len(self._topics) < 100_000:
                self._topics[text] = encoded
        return encoded

    def publish(
        self,
        topic: str,
        payload: bytes,
        content_type: str | None = None,
        *,
        retain: bool = False,
        timeout_s: float = 60.0,
    ) -> int:
        """Send one QoS 1 message once the window has room; returns its packet id (the one
        `on_ack` names). While disconnected the message waits in flight and goes out after
        the reconnect, as every unacknowledged one does."""
        topic_b = self._encoded(topic)
        type_b = self._encoded(content_type) if content_type else b""
        with self._lock:
            if len(self._in_flight) >= self.receive_maximum:
                self._wait_for_room(timeout_s)
            packet_id = self._packet_id()
            packet = publish_packet(topic_b, packet_id, payload, type_b, retain)
            self._in_flight[packet_id] = packet
            self.published += 1
            self._write(packet)
        return packet_id

    def publish_many(
        self, messages: Iterable[tuple[bytes, bytes, bytes, bool]], timeout_s: float = 60.0
    ) -> None:
        """Publish (topic, payload, content type, retain) tuples, QoS 1, in order.

        `topic` and `content type` are length-prefixed (`utf8()`), so callers can cache them.
        Blocks while the window (or the broker's Receive Maximum) is full. One write per
        window's worth: the fast path.
        """
        chunk: list[bytes] = []
        with self._lock:
            for topic, payload, content_type, retain in messages:
                if len(self._in_flight) >= self.receive_maximum:
                    self._write(b"".join(chunk))
                    chunk = []
                    self._wait_for_room(timeout_s)
                packet_id = self._packet_id()
                packet = publish_packet(topic, packet_id, payload, content_type, retain)
                self._in_flight[packet_id] = packet
                chunk.append(packet)
                self.published += 1
            self._write(b"".join(chunk))

    @property
    def pending(self) -> int:
        return len(self._in_flight)

    def wait_acked(self, timeout_s: float = 60.0) -> bool:
        """True once every message sent was acknowledged; False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._in_flight:
                if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                    return False
        return True

    def close(self, timeout_s: float = 10.0, *, with_will: bool = False) -> None:
        """Wait up to `timeout_s` for the PUBACKs, then DISCONNECT: normally (the will is
        discarded), or with reason 0x04 when `with_will` (the broker publishes it)."""
        if not with_will and not self.wait_acked(timeout_s):
            log.warning("%s: %d messages not acknowledged at close", self.client_id, self.pending)
        self._stopping.set()
        self._write(bytes([DISCONNECT, 2, 0x04, 0]) if with_will else bytes([DISCONNECT, 0]))
        self.cut()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=5.0)
        if self._sock is not None:
            self._sock.close()
