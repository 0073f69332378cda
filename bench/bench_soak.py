"""Ingester memory over a sustained run: RSS sampled while a steady stream flows.

A publisher sends single-reading JSON messages at a fixed rate for `PANTAU_BENCH_SOAK_S`
seconds (default 600) to a real Mosquitto; the real ingester writes them to a real InfluxDB.
The result holds the RSS samples and the growth between the second minute and the end
(the first minute is warm-up: caches, detector arrays, allocator pools).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from typing import Any

import orjson

from bench.bench_ingest import DEVICES, Ingester, register_bench_devices
from bench.common import scratch_dir, write_result
from pantau.mqtt_publish import Qos1Publisher
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import free_port
from pantau.settings import Settings


def run(seconds: float, rate_per_s: int) -> dict[str, Any]:
    base = scratch_dir("bench-soak-")
    mosquitto = MosquittoServer(base / "mosquitto", free_port())
    influx = InfluxServer(base / "influxdb", free_port(), free_port())
    mosquitto.start()
    influx.start()
    stop = threading.Event()
    sent = 0
    try:
        settings = Settings(
            mqtt={"url": mosquitto.url, "client_id": "bench-soak"},  # type: ignore[arg-type]
            influx={"url": influx.url, "database": "soak"},  # type: ignore[arg-type]
            database={"url": f"sqlite:///{base / 'pantau.db'}"},  # type: ignore[arg-type]
            ingest={"metrics_port": free_port(), "status_interval_s": 30},  # type: ignore[arg-type]
            stack={"var_dir": base},  # type: ignore[arg-type]
        )
        register_bench_devices(settings.database.url)
        ingester = Ingester(settings, base / "ingest.log")
        ingester.start()
        publisher = Qos1Publisher("127.0.0.1", mosquitto.port, "soak-pub", window=10_000).connect()

        def publish() -> None:
            nonlocal sent
            started = time.monotonic()
            while not stop.is_set():
                now_ms = int(time.time() * 1000)
                i = sent
                payload = {"ts": now_ms, "seq": i, "level_cm": 100.0 + (i % 300) / 10}
                device = f"wl-bench-{i % DEVICES:03d}"
                publisher.publish(f"pantau/devices/{device}/telemetry", orjson.dumps(payload))
                sent += 1
                delay = started + sent / rate_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            samples.append((round(elapsed, 1), round(ingester.rss_mb(), 1)))
            time.sleep(10)
        stop.set()
        thread.join(30)
        publisher.close()
        drain_until = time.monotonic() + 30  # the last batches are still on their way
        while True:
            counters = ingester.counters()
            written = counters.get("pantau_ingest_readings_written_total", 0)
            if written >= sent or time.monotonic() > drain_until:
                break
            time.sleep(0.5)
        ingester.proc.stop()
        after_warmup = [rss for t, rss in samples if t >= 60] or [samples[-1][1]]
        return {
            "seconds": seconds,
            "rate_per_s": rate_per_s,
            "published": sent,
            "written": int(written),
            "rss_mb_samples": samples,
            "rss_mb_at_60s": after_warmup[0],
            "rss_mb_end": after_warmup[-1],
            "rss_mb_max": max(rss for _, rss in samples),
            "rss_growth_after_warmup_mb": round(after_warmup[-1] - after_warmup[0], 1),
        }
    finally:
        stop.set()
        mosquitto.stop()
        influx.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    seconds = float(os.environ.get("PANTAU_BENCH_SOAK_S", "600"))
    rate = int(os.environ.get("PANTAU_BENCH_SOAK_RATE", "3000"))
    write_result("soak", run(seconds, rate))


if __name__ == "__main__":
    main()
