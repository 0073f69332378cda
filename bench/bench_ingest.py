"""Ingest throughput against real Mosquitto and InfluxDB, next to the bare-paho ceiling.

Each phase preloads a persistent session with N QoS 1 messages while its consumer is away,
then times how fast the consumer drains them:
- `ceiling`: a bare paho-mqtt 2.x client (MQTT v5, QoS 1, auto-ack, no processing);
- `ingest_json`: the real ingester (`pantau ingest` child process) on single-reading JSON
  messages, acknowledging after InfluxDB accepted each batch;
- `ingest_senml`: the ingester on SenML packs of 50 readings.
The ingester's rate is read from its own /metrics (acknowledged messages, written readings).
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.common import scratch_dir, write_result
from pantau.influxdb import InfluxClient
from pantau.mqtt_publish import Qos1Publisher, utf8
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import ManagedProcess, free_port, wait_until
from pantau.settings import Settings, settings_to_env

REPO = Path(__file__).resolve().parents[1]
DEVICES = 200
TOPIC = "pantau/devices/+/telemetry"


def _bare_client(client_id: str, receive_maximum: int) -> tuple[mqtt.Client, Properties]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = receive_maximum
    return client, props


def drop_session(mosquitto: MosquittoServer, client_id: str) -> None:
    """Delete a persistent session, so later phases do not also queue messages for it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", mosquitto.port, clean_start=True, properties=props)
    client.loop(0.5)
    client.disconnect()


def json_messages(n: int, start_ms: int) -> list[tuple[str, bytes]]:
    """Single readings, the gauges in turn, a millisecond apart: a slowly moving level with
    sensor noise, as in `senml_messages` (a sawtooth of 48 cm every 97 readings made every
    gauge flap its rate-of-rise alert: an alert storm, which measures the alert path)."""
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.5, n)
    out = []
    for i in range(n):
        d = i % DEVICES
        level = 150 + 40 * math.sin(2 * math.pi * (i / 3_600_000 + d / DEVICES)) + float(noise[i])
        body = {"ts": start_ms + i, "seq": i, "level_cm": round(level, 2)}
        out.append((f"pantau/devices/wl-bench-{d:03d}/telemetry", orjson.dumps(body)))
    return out


def senml_messages(n_readings: int, start_ms: int, pack: int = 50) -> list[tuple[str, bytes]]:
    """Each gauge sends packs of `pack` readings taken a second apart, as a logger that
    buffers a minute would: a slowly moving level with sensor noise (not a ramp of 1 cm per
    millisecond, which would make every reading an anomaly and measure the alert path)."""
    rng = np.random.default_rng(7)
    packs = n_readings // pack
    out = []
    for m in range(packs):
        d = m % DEVICES
        device = f"wl-bench-{d:03d}"
        first = (m // DEVICES) * pack  # this gauge's reading count so far
        base_s = start_ms / 1000 + first
        t = np.arange(first, first + pack)
        level = 150 + 40 * np.sin(2 * np.pi * (t / 3600 + d / DEVICES)) + rng.normal(0, 0.5, pack)
        records: list[dict[str, Any]] = [{"bn": f"{device}:", "bt": base_s}]
        for j in range(pack):
            records.append({"n": "level_cm", "u": "cm", "v": round(float(level[j]), 2), "t": j})
        out.append((f"pantau/devices/{device}/telemetry", orjson.dumps(records)))
    return out


def register_bench_devices(url: str) -> None:
    """The benchmark's gauges in the registry: unregistered devices are dead-lettered."""
    from devices.registry import Registry
    from devices.schemas import DeviceCreate
    from pantau.sql import make_engine, migrate

    migrate(url)
    engine = make_engine(url)
    registry = Registry(engine)
    for i in range(DEVICES):
        device_id = f"wl-bench-{i:03d}"
        registry.create_device(DeviceCreate(id=device_id, kind="water_level", name=device_id))
    engine.dispose()


def preload(mosquitto: MosquittoServer, messages: list[tuple[str, bytes]]) -> float:
    publisher = Qos1Publisher("127.0.0.1", mosquitto.port, "bench-publisher", window=10_000)
    publisher.connect()
    started = time.perf_counter()
    publisher.publish_many((utf8(topic), payload, b"", False) for topic, payload in messages)
    publisher.wait_acked(300)
    elapsed = time.perf_counter() - started
    publisher.close()
    return len(messages) / elapsed


def measure_ceiling(
    mosquitto: MosquittoServer, n: int, receive_maximum: int, client_id: str = "bench-bare"
) -> dict[str, Any]:
    client, props = _bare_client(client_id, receive_maximum)
    client.connect("127.0.0.1", mosquitto.port, clean_start=True, properties=props)
    client.subscribe(TOPIC, qos=1)
    client.loop(1.0)
    client.disconnect()
    publish_rate = preload(mosquitto, json_messages(n, int(time.time() * 1000) - 2 * n))
    received = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received, first, last
        now = time.perf_counter()
        if not received:
            first = now
        received += 1
        last = now
        if received >= n:
            done.set()

    client, props = _bare_client(client_id, receive_maximum)
    client.on_message = on_message
    client.connect("127.0.0.1", mosquitto.port, clean_start=False, properties=props)
    client.loop_start()
    done.wait(300)
    client.loop_stop()
    client.disconnect()
    drop_session(mosquitto, client_id)
    return {
        "messages": received,
        "messages_per_s": round(received / (last - first)) if last > first else 0,
        "publish_messages_per_s": round(publish_rate),
    }


class Ingester:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
        env.update(settings_to_env(settings))
        self.metrics_url = f"http://127.0.0.1:{settings.ingest.metrics_port}/metrics"
        self.client_id = settings.mqtt.client_id
        self.proc = ManagedProcess(
            "ingest", [sys.executable, "-m", "stack", "ingest"], log_path, env=env, cwd=REPO
        )

    def start(self) -> None:
        self.proc.start()
        wait_until(lambda: "session for" in self.proc.log_tail(), 60, "ingester", proc=self.proc)

    def counters(self) -> dict[str, float]:
        try:
            text = httpx.get(self.metrics_url, timeout=2).text
        except httpx.HTTPError:
            return {}
        values = {}
        for line in text.splitlines():
            if line.startswith("pantau_ingest_") and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return kb / 1024


def measure_ingester(
    settings: Settings,
    mosquitto: MosquittoServer,
    messages: list[tuple[str, bytes]],
    readings_expected: int,
    log_path: Path,
    members: int = 1,
) -> dict[str, Any]:
    """Drain a preloaded backlog with one ingester, or `members` sharing the subscription
    (`$share/bench/...`, each with its own persistent session and metrics port)."""
    group = []
    for m in range(members):
        member = settings.model_copy(deep=True)
        if members > 1:
            member.mqtt.shared_group = "bench"
            member.mqtt.client_id = f"{settings.mqtt.client_id}-{m}"
            member.ingest.metrics_port = free_port()
        group.append(Ingester(member, log_path.with_suffix(f".{m}.log")))
    for ingester in group:
        ingester.start()  # creates the persistent session (and the shared subscription)
    for ingester in group:
        ingester.proc.stop()
    preload(mosquitto, messages)
    first = last = 0.0
    for ingester in group:
        ingester.start()
        # From the first resumed session (the backlog starts flowing then) to the last ack:
        # timing from the first ack seen would leave out the first batch's latency.
        first = first or time.perf_counter()
    n = len(messages)
    acked = 0.0
    deadline = time.monotonic() + 600
    rss_peak = 0.0
    while time.monotonic() < deadline:
        acked = sum(i.counters().get("pantau_ingest_messages_acked_total", 0.0) for i in group)
        now = time.perf_counter()
        rss_peak = max(rss_peak, max(i.rss_mb() for i in group))
        if acked >= n:
            last = now
            break
        time.sleep(0.1)  # polling /metrics costs the ingester CPU: not too often
    finals = [i.counters() for i in group]
    written = sum(f.get("pantau_ingest_readings_written_total", 0.0) for f in finals)
    rejected = sum(
        v for f in finals for k, v in f.items() if k.startswith("pantau_ingest_messages_rejected")
    )
    for ingester in group:
        ingester.proc.stop()
    for ingester in group:
        drop_session(mosquitto, ingester.client_id)
    elapsed = last - first if last > first else float("nan")
    return {
        "ingesters": members,
        "messages": n,
        "acked": int(acked),
        "readings_written": int(written),
        "readings_expected": readings_expected,
        "rejected": int(rejected),
        "seconds": round(elapsed, 3),
        "messages_per_s": round(n / elapsed) if last else 0,
        "readings_per_s": round(written / elapsed) if last else 0,
        "rss_peak_mb": round(rss_peak, 1),
    }


def run(n_json: int = 100_000, n_senml_readings: int = 500_000, repeats: int = 3) -> dict[str, Any]:
    base = scratch_dir("bench-ingest-")
    mosquitto = MosquittoServer(base / "mosquitto", free_port())
    influx = InfluxServer(base / "influxdb", free_port(), free_port())
    mosquitto.start()
    influx.start()
    try:
        settings = Settings(
            mqtt={"url": mosquitto.url, "client_id": "bench-ingest"},  # type: ignore[arg-type]
            influx={"url": influx.url, "database": "bench"},  # type: ignore[arg-type]
            database={"url": f"sqlite:///{base / 'pantau.db'}"},  # type: ignore[arg-type]
            ingest={"metrics_port": free_port(), "status_interval_s": 5},  # type: ignore[arg-type]
            # the detector's snapshots too: a run must not resume an earlier run's state
            stack={"var_dir": base},  # type: ignore[arg-type]
        )
        register_bench_devices(settings.database.url)
        # The machine's speed drifts (shared cores): interleave ceiling and ingester runs
        # and compare medians, so both see the same conditions.
        ceilings, jsons = [], []
        for round_ in range(repeats):
            ceilings.append(
                measure_ceiling(
                    mosquitto,
                    n_json,
                    settings.mqtt.receive_maximum,
                    client_id=f"bench-bare-{round_}",
                )
            )
            settings.mqtt.client_id = f"bench-ingest-{round_}"
            start_ms = int(time.time() * 1000) - 3_000_000 - round_ * 10 * n_json
            jsons.append(
                measure_ingester(
                    settings,
                    mosquitto,
                    json_messages(n_json, start_ms),
                    n_json,
                    base / f"ingest-json-{round_}.log",
                )
            )
        ceiling_rate = statistics.median(c["messages_per_s"] for c in ceilings)
        json_rate = statistics.median(j["messages_per_s"] for j in jsons)
        ingest_senml: dict[str, Any] | None = None
        ingest_senml_shared: dict[str, Any] | None = None
        if n_senml_readings:  # 0: the JSON rounds only (a quick run)
            # Each gauge's packs cover n/DEVICES seconds, ending two minutes ago: after the JSON
            # rounds' times (the detector learns only from readings newer than a series has seen).
            span_ms = n_senml_readings // DEVICES * 1000
            start_ms = int(time.time() * 1000) - span_ms - 120_000
            settings.mqtt.client_id = "bench-ingest-senml"
            ingest_senml = measure_ingester(
                settings,
                mosquitto,
                senml_messages(n_senml_readings, start_ms),
                n_senml_readings,
                base / "ingest-senml.log",
            )
            # The same load shared by two ingesters on one machine (MQTT v5 shared subscription):
            # a single ingester is bound to one core by the GIL. Each member keeps its own
            # detector state, so a gauge's series is split between them (see ARCHITECTURE.md).
            settings.mqtt.client_id = "bench-ingest-senml-shared"
            ingest_senml_shared = measure_ingester(
                settings,
                mosquitto,
                # an earlier window that overlaps neither the JSON rounds nor the first SenML run
                senml_messages(n_senml_readings, start_ms - span_ms - 3_000_000),
                n_senml_readings,
                base / "ingest-senml-shared.log",
                members=2,
            )
        stored = InfluxClient(settings.influx).query('SELECT count("level_cm") FROM "water_level"')
        return {
            "rounds": repeats,
            "ceiling_bare_paho_qos1": ceilings,
            "ingest_json_single_reading": jsons,
            "ceiling_median_messages_per_s": round(ceiling_rate),
            "ingest_json_median_messages_per_s": round(json_rate),
            "ingest_senml_pack50": ingest_senml,
            "ingest_senml_pack50_two_shared_ingesters": ingest_senml_shared,
            "json_ratio_to_ceiling": round(json_rate / ceiling_rate, 3),
            "points_in_influx": stored[0][0].values[0][1] if stored and stored[0] else 0,
            "targets": {"json_ratio_to_ceiling": 0.8, "senml_readings_per_s": 150_000},
            "detection": "on" if settings.detect.enabled else "off",
        }
    finally:
        mosquitto.stop()
        influx.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    n_json = int(os.environ.get("PANTAU_BENCH_JSON_MESSAGES", "100000"))
    n_senml = int(os.environ.get("PANTAU_BENCH_SENML_READINGS", "500000"))
    write_result("ingest", run(n_json, n_senml))


if __name__ == "__main__":
    main()
