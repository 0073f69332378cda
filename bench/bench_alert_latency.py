"""Alert latency: publish of the crossing reading → signed webhook received, through the real
pipeline, under 2,000 background readings/s.

Real Mosquitto, real InfluxDB, SQLite, the real ingester (`pantau ingest`) and the real
notification dispatcher (`pantau notify run`) as child processes; the webhook receiver is a
local HTTP listener in this process. 200 background gauges publish steady levels (no alerts)
at 2,000 readings/s in total; one gauge with registry levels (Waspada 250 cm) is taken across
Waspada and back, `trials` times. Each latency is from just before the crossing reading is
published to the moment its `firing` webhook arrives (one clock: this process). The reading
stages (and so the alert rules) run on each hand-over from the MQTT source and commit their
transitions to SQL at once: the alert does not wait for the InfluxDB write batch to close.

`python -m bench alert_latency`; result in bench/results/alert_latency.json.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.common import scratch_dir, write_result
from pantau.mqtt_publish import Qos1Publisher
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import ManagedProcess, free_port, wait_until
from pantau.settings import Settings, settings_to_env

REPO = Path(__file__).resolve().parents[1]
BACKGROUND_DEVICES = 200
ALERT_DEVICE = "wl-latency-01"


class Receiver:
    """Webhook receiver: the arrival time of each river_level `firing` notification."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[int, float] = {}  # trial number (the crossing value) → perf time
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                self.send_response(204)
                self.end_headers()
                alert = orjson.loads(body)
                if (
                    alert.get("rule") == "river_level"
                    and alert["notification"].get("transition") == "firing"
                ):
                    with receiver.cond:
                        # the crossing value encodes the trial: 260 + trial/100 cm
                        trial = round((alert["value"] - 260) * 100)
                        receiver.arrivals.setdefault(trial, now)
                        receiver.cond.notify_all()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, trial: int, timeout_s: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: trial in self.arrivals, timeout=timeout_s)
            return self.arrivals.get(trial)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def register(url: str) -> None:
    from devices.registry import Registry
    from devices.schemas import DeviceCreate
    from pantau.sql import make_engine, migrate

    migrate(url)
    engine = make_engine(url)
    registry = Registry(engine)
    for i in range(BACKGROUND_DEVICES):
        registry.create_device(
            DeviceCreate(id=f"wl-bg-{i:03d}", kind="water_level", name=f"bg {i}", interval_s=60)
        )
    registry.create_device(
        DeviceCreate(
            id=ALERT_DEVICE,
            kind="water_level",
            name="latency gauge",
            site="Jembatan Malili",
            district="Malili",
            interval_s=60,
            thresholds={"level_cm": {"waspada": 250, "siaga": 300, "awas": 380}},
        )
    )
    engine.dispose()


def background(port: int, rate: float, stop: threading.Event, sent: list[int]) -> None:
    """`rate` readings/s from the background gauges, in 10 ms ticks, steady levels."""
    publisher = Qos1Publisher("127.0.0.1", port, "bench-latency-bg", window=10_000).connect()
    rng = np.random.default_rng(3)
    tick = 0.01
    per_tick = int(rate * tick)
    seq = 0
    next_at = time.perf_counter()
    while not stop.is_set():
        now_ms = int(time.time() * 1000)
        noise = rng.normal(0, 0.3, per_tick)
        for j in range(per_tick):
            d = (seq + j) % BACKGROUND_DEVICES
            body = {
                "ts": now_ms,
                "seq": seq + j,
                "level_cm": round(150 + d * 0.1 + float(noise[j]), 2),
            }
            publisher.publish(f"pantau/devices/wl-bg-{d:03d}/telemetry", orjson.dumps(body))
        seq += per_tick
        sent[0] = seq
        next_at += tick
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    publisher.close()


def pantau(name: str, args: list[str], settings: Settings, log: Path) -> ManagedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
    env.update(settings_to_env(settings))
    proc = ManagedProcess(name, [sys.executable, "-m", "stack", *args], log, env=env, cwd=REPO)
    proc.start()
    return proc


def run(trials: int = 40, rate: float = 2000.0) -> dict[str, Any]:
    (REPO / "var").mkdir(exist_ok=True)
    base = scratch_dir("bench-alert-latency-")
    mosquitto = MosquittoServer(base / "mosquitto", free_port())
    influx = InfluxServer(base / "influxdb", free_port(), free_port())
    receiver = Receiver()
    mosquitto.start()
    influx.start()
    procs: list[ManagedProcess] = []
    stop = threading.Event()
    sent = [0]
    try:
        settings = Settings.model_validate(
            {
                "mqtt": {"url": mosquitto.url, "client_id": "bench-latency"},
                "influx": {"url": influx.url, "database": "bench"},
                "database": {"url": f"sqlite:///{base / 'pantau.db'}"},
                "ingest": {"metrics_port": free_port()},
                "stack": {"var_dir": base},
                "notify": {
                    "groups": [
                        {
                            "name": "bpbd",
                            "webhooks": [
                                {"url": f"http://127.0.0.1:{receiver.port}/hook", "secret": "x"}
                            ],
                        }
                    ],
                    "reminder_interval_min": 0,
                },
            }
        )
        register(settings.database.url)
        ingest = pantau("ingest", ["ingest"], settings, base / "ingest.log")
        procs.append(ingest)
        wait_until(lambda: "session for" in ingest.log_tail(), 60, "ingester", proc=ingest)
        notify = pantau("notify", ["notify", "run"], settings, base / "notify.log")
        procs.append(notify)
        wait_until(lambda: "dispatcher" in notify.log_tail(), 60, "dispatcher", proc=notify)
        feeder = threading.Thread(target=background, args=(mosquitto.port, rate, stop, sent))
        feeder.start()
        time.sleep(3)  # the background load is running before the first trial
        publisher = Qos1Publisher("127.0.0.1", mosquitto.port, "bench-latency-gauge").connect()
        topic = f"pantau/devices/{ALERT_DEVICE}/telemetry"
        latencies_ms: list[float] = []
        missed: list[int] = []
        seq = 0
        started = time.perf_counter()
        bg_start = sent[0]
        for trial in range(trials):
            seq += 1
            value = 260 + trial / 100
            body = orjson.dumps({"ts": int(time.time() * 1000), "seq": seq, "level_cm": value})
            t0 = time.perf_counter()
            publisher.publish(topic, body)
            arrived = receiver.wait(trial, 10.0)
            if arrived is None:
                missed.append(trial)
            else:
                latencies_ms.append((arrived - t0) * 1000)
            time.sleep(0.3)
            seq += 1
            normal = {"ts": int(time.time() * 1000), "seq": seq, "level_cm": 150.0}
            publisher.publish(topic, orjson.dumps(normal))  # resolves the episode
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        background_rate = (sent[0] - bg_start) / elapsed
        publisher.close()
        notify_ms, notify_missed = notify_segment(settings, receiver, trials)
    finally:
        stop.set()
        for proc in reversed(procs):
            proc.stop()
        receiver.stop()
        influx.stop()
        mosquitto.stop()
    return {
        "trials": trials,
        "missed_trials": missed,
        "background_readings_per_s": round(background_rate),
        "end_to_end": {
            **percentiles(latencies_ms),
            "path": "MQTT publish → ingester (hand-over, validate, detect, rules, SQL commit: "
            "while the write batch is still open) → notify dispatcher (relay, claim, HMAC) → "
            "HTTP POST received",
            "flush_interval_s": settings.influx.flush_interval_s,
        },
        "notify_segment": {
            **percentiles(notify_ms),
            "missed": notify_missed,
            "path": "alert event committed to SQL → webhook received (same background load)",
            "poll_interval_s": settings.notify.poll_interval_s,
        },
        "target_p99_ms": 50,
    }


def percentiles(values_ms: list[float]) -> dict[str, float]:
    values = np.array(values_ms) if values_ms else np.array([float("nan")])
    return {
        "latency_ms_p50": round(float(np.percentile(values, 50)), 1),
        "latency_ms_p99": round(float(np.percentile(values, 99)), 1),
        "latency_ms_max": round(float(values.max()), 1),
    }


def notify_segment(settings: Settings, receiver: Receiver, trials: int) -> tuple[list[float], int]:
    """The dispatcher's share alone: an event committed by AlertStore here → webhook."""
    from datetime import UTC, datetime

    from alerts.model import DeviceInfo, Severity, Signal
    from alerts.store import AlertStore
    from pantau.sql import make_engine

    engine = make_engine(settings.database.url)
    store = AlertStore(engine)
    device = DeviceInfo("wl-direct-01", "water_level", "Jembatan Malili", "Malili")
    out: list[float] = []
    missed = 0
    for k in range(trials):
        trial = trials + k
        value = 260 + trial / 100
        signal = Signal(
            rule="river_level",
            device=device,
            level="waspada",
            level_rank=1,
            severity=Severity.WARNING,
            at=datetime.now(UTC),
            field="level_cm",
            value=value,
            threshold=250.0,
            unit="cm",
        )
        store.apply([signal])
        t0 = time.perf_counter()
        arrived = receiver.wait(trial, 10.0)
        if arrived is None:
            missed += 1
        else:
            out.append((arrived - t0) * 1000)
        time.sleep(0.1)
        store.apply(
            [
                Signal(
                    rule="river_level",
                    device=device,
                    level="normal",
                    level_rank=0,
                    severity=Severity.WARNING,
                    at=datetime.now(UTC),
                    field="level_cm",
                    value=150.0,
                )
            ]
        )
        time.sleep(0.2)
    engine.dispose()
    return out, missed


def main() -> None:
    write_result("alert_latency", run())


if __name__ == "__main__":
    main()
