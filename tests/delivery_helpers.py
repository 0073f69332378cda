"""Helpers of the delivery fault tests: numbered messages out, stored (device, seq) back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from pantau.influxdb import InfluxClient, quote_string
from pantau.mqtt_publish import Qos1Publisher
from pantau.servers.mosquitto import MosquittoServer
from pantau.settings import Settings


def device_of(i: int, devices: int) -> str:
    return f"wl-fault-{i % devices:02d}"


def numbered_messages(
    first: int, count: int, devices: int, start_ms: int
) -> Iterator[tuple[str, bytes]]:
    """Message i: device i % devices, seq i, device time start_ms + i (unique per device)."""
    for i in range(first, first + count):
        payload = {"ts": start_ms + i, "seq": i, "level_cm": 100.0 + (i % 500) / 10}
        yield f"pantau/devices/{device_of(i, devices)}/telemetry", orjson.dumps(payload)


class BackgroundPublisher:
    """Publishes numbered messages from a thread, optionally paced, waiting for every PUBACK."""

    def __init__(
        self, settings: Settings, client_id: str = "fault-publisher", *, window: int = 2000
    ) -> None:
        self.publisher = Qos1Publisher(
            settings.mqtt.host, settings.mqtt.port, client_id, window=window, on_ack=self._on_ack
        ).connect()
        self.thread: threading.Thread | None = None
        self.published = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def start(self, messages: Iterator[tuple[str, bytes]], rate_per_s: float | None = None) -> None:
        def run() -> None:
            started = time.monotonic()
            try:
                for topic, payload in messages:
                    if self._stopping.is_set():
                        break
                    self._send(topic, payload)
                    self.published += 1
                    if rate_per_s:
                        delay = started + self.published / rate_per_s - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                self.publisher.wait_acked(120)
            except BaseException as exc:  # reported by join()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Publish nothing more; what was sent is still re-sent until acknowledged."""
        self._stopping.set()

    def join(self, timeout_s: float = 300) -> int:
        assert self.thread is not None
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "publisher did not finish"
        if self.error:
            raise self.error
        assert self.publisher.wait_acked(60), "broker did not acknowledge every publish"
        return self.published

    def close(self) -> None:
        self.publisher.close()

    def _send(self, topic: str, payload: bytes) -> None:
        self.publisher.publish(topic, payload)

    def _on_ack(self, mid: int, reason_code: int) -> None:
        """A PUBACK arrived (the publisher's reader thread); see `RecordingPublisher`."""


class RecordingPublisher(BackgroundPublisher):
    """A `BackgroundPublisher` that records which (device, seq) the broker acknowledged, and when.

    Published is not acknowledged: a fault test holds the system to what the broker
    acknowledged (PUBACK), and a broker crash can make the difference. `acked` maps each
    (device, seq), read from the message itself, to the wall-clock time (ns) its PUBACK
    arrived, comparable with a file's mtime such as `MosquittoServer.store_path`'s. A message
    whose PUBACK is lost is re-sent by the publisher after the reconnect; it counts as
    acknowledged when an answer comes.
    The default window is wide so that a broker outage of a few seconds at a few thousand
    messages a second never fills it (a full window blocks the publishing thread).
    """

    def __init__(
        self, settings: Settings, client_id: str = "recording-publisher", *, window: int = 20_000
    ) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[int, tuple[str, int]] = {}  # mid -> (device, seq), no PUBACK yet
        self._early: dict[int, tuple[int, bool]] = {}  # PUBACKs that beat their publish() back
        self._acked: dict[tuple[str, int], int] = {}
        self._refused: set[tuple[str, int]] = set()
        super().__init__(settings, client_id, window=window)

    def _send(self, topic: str, payload: bytes) -> None:
        pair = (topic.split("/")[-2], int(orjson.loads(payload)["seq"]))
        # The publisher is called outside our lock: its reader calls _on_ack, which takes it.
        mid = self.publisher.publish(topic, payload)
        with self._lock:
            early = self._early.pop(mid, None)
            if early is None:
                self._in_flight[mid] = pair
            else:
                self._record(pair, *early)

    def _on_ack(self, mid: int, reason_code: int) -> None:
        at_ns = time.time_ns()
        failed = reason_code >= 0x80
        with self._lock:
            pair = self._in_flight.pop(mid, None)
            if pair is None:
                self._early[mid] = (at_ns, failed)
            else:
                self._record(pair, at_ns, failed)

    def _record(self, pair: tuple[str, int], at_ns: int, failed: bool) -> None:
        if failed:
            self._refused.add(pair)
        else:
            self._acked[pair] = at_ns

    @property
    def acked(self) -> dict[tuple[str, int], int]:
        """(device, seq) → time.time_ns() of its PUBACK, for every message acknowledged so far."""
        with self._lock:
            return dict(self._acked)

    @property
    def acked_count(self) -> int:
        with self._lock:
            return len(self._acked)

    @property
    def refused(self) -> set[tuple[str, int]]:
        """Messages the broker answered with a failure reason code (not stored, not expected)."""
        with self._lock:
            return set(self._refused)


def stored_pairs(settings: Settings, measurement: str = "water_level") -> list[tuple[str, int]]:
    """Every stored (device_id, seq), duplicates kept (there should be none)."""
    with InfluxClient(settings.influx) as client:
        try:
            result = client.query(f'SELECT "seq", "device_id" FROM "{measurement}"')
        except Exception:
            return []
    if not result or not result[0]:
        return []
    return [(row[2], int(row[1])) for row in result[0][0].values]


def stored_count(settings: Settings, measurement: str = "water_level") -> int:
    with InfluxClient(settings.influx) as client:
        try:
            result = client.query(f'SELECT count("seq") FROM "{measurement}"')
        except Exception:
            return 0
    return int(result[0][0].values[0][1]) if result and result[0] else 0


def wait_for_count(settings: Settings, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = stored_count(settings)
        if count >= expected:
            return count
        time.sleep(0.5)
    return count


def stored_settled(
    settings: Settings, at_least: int, timeout_s: float, quiet_s: float = 2.0
) -> int:
    """The stored count once it reached `at_least` and then stopped moving for `quiet_s`: for
    runs whose exact outcome is unknown (a broker crash loses some messages)."""
    deadline = time.monotonic() + timeout_s
    count, since = stored_count(settings), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = stored_count(settings)
        if now != count:
            count, since = now, time.monotonic()
        elif count >= at_least and time.monotonic() - since >= quiet_s:
            return count
    return count


def last_save_ns(broker: MosquittoServer) -> int:
    """When the broker last wrote its persistent store (file mtime, ns), 0 if it never did."""
    try:
        return broker.store_path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def wait_for_save(broker: MosquittoServer, after_ns: int, timeout_s: float) -> int:
    """The mtime (ns) of the first save of the broker's store written after `after_ns`.

    Mosquitto writes its store to a new file and renames it, so the file is always a whole
    save and its mtime is when that save ended. Mosquitto is single-threaded: a PUBACK that
    reached us before that time left the broker before the save began, so its message is in
    the save (the file system's coarse clock only makes the mtime a little early: safe).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        saved = last_save_ns(broker)
        if saved > after_ns:
            return saved
        time.sleep(0.02)
    raise AssertionError(f"no save of {broker.store_path} in {timeout_s}s")


def metrics(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def check_exactly_once(settings: Settings, expected: set[tuple[str, int]]) -> tuple[int, int, int]:
    """(missing, duplicates, unexpected) between what was published-and-acked and stored."""
    pairs = stored_pairs(settings)
    stored = set(pairs)
    return len(expected - stored), len(pairs) - len(stored), len(stored - expected)


def flood(
    port: int,
    client_id: str,
    devices: list[str],
    seconds: float,
    results: Any,
    start_together: Any = None,
    max_rate_per_s: float = 8_000,
) -> None:
    """Publish as fast as the broker acknowledges for `seconds` (run in a process of its own):
    each device its own consecutive seqs from 0 and strictly increasing device times (now, or
    1 ms after its previous one, so no two points of a series share a timestamp). Puts the
    counts and each device's next seq and last time on the `results` queue. Floods sharing a
    `start_together` barrier begin at once, so each device's first reading reaches the broker
    before its queue fills (one flood alone fills it in a fraction of a second). At most
    `max_rate_per_s`: a flood far above the ingester's capacity, yet leaving it the CPU share
    the test's capacity figures assume (the publisher alone could send ~50,000/s)."""
    publisher = Qos1Publisher("127.0.0.1", port, client_id, window=5000).connect()
    if start_together is not None:
        start_together.wait(60)
    next_seq = dict.fromkeys(devices, 0)
    last_ts = dict.fromkeys(devices, 0)
    topics = {d: f"pantau/devices/{d}/telemetry" for d in devices}
    began = time.monotonic()
    deadline = began + seconds
    sent = 0
    error = ""
    try:
        while time.monotonic() < deadline:
            ahead_s = began + sent / max_rate_per_s - time.monotonic()
            if ahead_s > 0:
                time.sleep(ahead_s)
            sent += len(devices)
            now_ms = int(time.time() * 1000)
            for device in devices:
                seq = next_seq[device]
                ts = last_ts[device] = max(now_ms, last_ts[device] + 1)
                body = {"ts": ts, "seq": seq, "level_cm": 100.0 + (seq % 500) / 10}
                publisher.publish(topics[device], orjson.dumps(body))
                next_seq[device] = seq + 1
        if not publisher.wait_acked(60):
            error = "not every publish was acknowledged"
    except Exception as exc:  # reported to the test, which fails on it
        error = f"{type(exc).__name__}: {exc}"
    results.put(
        {
            "sent": publisher.published,
            "acked": publisher.acked,
            "failed": publisher.refused,
            "disconnects": publisher.reconnects,
            "error": error,
            "next_seq": next_seq,
            "last_ts": last_ts,
        }
    )
    publisher.close()


def device_points(influx: InfluxClient, device_id: str) -> list[dict[str, object]]:
    """The stored water_level points of one device; none while the database is not there."""
    try:
        result = influx.query(
            f"SELECT * FROM water_level WHERE device_id = {quote_string(device_id)}"
        )
    except Exception:
        return []
    return [row for series in (result[0] if result else []) for row in series.rows()]
