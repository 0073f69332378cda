"""Registration → first reading accepted: how soon a newly registered device is heard.

Real Mosquitto with per-device credentials kept in step by `BrokerAuthSync` (as `pantau up`
runs it), real InfluxDB, the real ingester (`pantau ingest`) as a child process, the shipped
registry settings; SQLite, and PostgreSQL when one answers at `PANTAU_BENCH_POSTGRES_URL`
(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres, a database is created and
dropped). Each trial registers one device and, from the moment `create_device` returns:

- `admitted_ms`: the device tries to connect with its new credentials every 20 ms; the time
  of the first CONNACK accepted (the broker has reloaded its password file);
- `device_first_accepted_ms`: once admitted the device sends a reading every 20 ms; the send
  time of the earliest one the ingester stored (earlier ones were dead-lettered);
- `replay_first_accepted_ms`: a publisher service account (admitted already) sends a reading
  of the device every 20 ms from the start; the send time of the earliest one stored: the
  ingester's side alone.

One clock (this process), readings told apart by `seq`. `python -m bench registration`;
result in bench/results/registration.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import write_result
from devices.broker import API_USER, INGESTER_USER, BrokerAuthFiles, BrokerAuthSync
from devices.models import ServiceRole
from devices.registry import Registry
from devices.schemas import DeviceCreate
from pantau.influxdb import InfluxClient, quote_string
from pantau.mqtt_publish import Qos1Publisher, RefusedError
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import ManagedProcess, free_port, wait_until
from pantau.settings import Settings, settings_to_env
from pantau.sql import make_engine, migrate

REPO = Path(__file__).resolve().parents[1]
TRIALS = 10
TICK_S = 0.02
WINDOW_S = 4.0  # readings are sent this long after each registration
DEVICE_SEQ = 100_000  # the device's own readings: seq from here; the replay's from 0
POSTGRES_URL = os.environ.get(
    "PANTAU_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _reading(seq: int) -> bytes:
    return orjson.dumps({"ts": int(time.time() * 1000), "seq": seq, "level_cm": 100.0})


def _device_client(
    port: int, device_id: str, password: str, t0: float, sent: dict[int, float]
) -> float | None:
    """Connect as the device until admitted (every TICK_S), then send a reading per tick."""
    admitted = None
    client = None
    while time.perf_counter() - t0 < WINDOW_S:
        candidate = Qos1Publisher(
            "127.0.0.1", port, device_id, username=device_id, password=password
        )
        try:
            client = candidate.connect(timeout_s=2)
        except (RefusedError, ConnectionError):
            time.sleep(TICK_S)
            continue
        admitted = time.perf_counter() - t0
        break
    j = 0
    while client is not None and time.perf_counter() - t0 < WINDOW_S:
        sent[DEVICE_SEQ + j] = time.perf_counter() - t0
        client.publish(f"pantau/devices/{device_id}/telemetry", _reading(DEVICE_SEQ + j))
        j += 1
        time.sleep(TICK_S)
    if client is not None:
        client.close()
    return admitted


def _trials(
    url: str, influx: InfluxServer, workdir: Path, trials: int
) -> dict[str, dict[str, float] | int]:
    migrate(url)
    engine = make_engine(url)
    registry = Registry(engine)
    ingest_pw = registry.set_service_account(INGESTER_USER, ServiceRole.INGESTER)
    api_pw = registry.set_service_account(API_USER, ServiceRole.PUBLISHER)
    files = BrokerAuthFiles(workdir / "auth")
    files.render(registry)
    broker = MosquittoServer(
        workdir / "mosquitto", free_port(), extra_config=files.mosquitto_config_lines()
    )
    broker.start()
    settings = Settings(
        mqtt={"url": broker.url, "username": INGESTER_USER, "password": ingest_pw},  # type: ignore[arg-type]
        influx={
            "url": influx.url,
            "database": f"b_{uuid.uuid4().hex[:8]}",
            "flush_interval_s": 0.05,
        },  # type: ignore[arg-type]
        database={"url": url},  # type: ignore[arg-type]
        ingest={"metrics_port": 0},  # type: ignore[arg-type]
        stack={"var_dir": workdir / "var"},  # type: ignore[arg-type]
    )
    sync = BrokerAuthSync(registry, files, broker.reload, settings.registry.broker_sync_interval_s)
    sync.revision = registry.revision()
    sync.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
    env.update(settings_to_env(settings))
    ingester = ManagedProcess(
        "ingest",
        [sys.executable, "-m", "stack", "ingest"],
        workdir / "ingest.log",
        env=env,
        cwd=REPO,
    )
    ingester.start()
    replay = Qos1Publisher(
        "127.0.0.1", broker.port, "bench-replay", username=API_USER, password=api_pw
    ).connect()
    client = InfluxClient(settings.influx)
    admitted: list[float] = []
    device_first: list[float] = []
    replay_first: list[float] = []
    try:
        wait_until(lambda: "session" in ingester.log_tail(), 30, "the ingester", proc=ingester)
        for trial in range(trials):
            device_id = f"wl-reg-{trial:02d}-{uuid.uuid4().hex[:4]}"
            sent: dict[int, float] = {}
            _, password = registry.create_device(
                DeviceCreate(id=device_id, kind="water_level", name="bench")
            )
            t0 = time.perf_counter()
            result: list[float | None] = []
            device = threading.Thread(
                target=lambda *args, out=result: out.append(_device_client(*args)),
                args=(broker.port, device_id, password, t0, sent),
            )
            device.start()
            i = 0
            while time.perf_counter() - t0 < WINDOW_S:
                sent[i] = time.perf_counter() - t0
                replay.publish(f"pantau/devices/{device_id}/telemetry", _reading(i))
                i += 1
                time.sleep(TICK_S)
            device.join()
            time.sleep(0.5)  # the last batch flushed
            rows = client.query(
                f"SELECT seq FROM water_level WHERE device_id = {quote_string(device_id)}"
            )
            stored = [
                int(row["seq"]) for series in (rows[0] if rows else []) for row in series.rows()
            ]
            if result and result[0] is not None:
                admitted.append(result[0])
            mine = [sent[s] for s in stored if s >= DEVICE_SEQ]
            theirs = [sent[s] for s in stored if s < DEVICE_SEQ]
            if mine:
                device_first.append(min(mine))
            if theirs:
                replay_first.append(min(theirs))
    finally:
        replay.close()
        client.close()
        ingester.stop()
        sync.stop()
        broker.stop()
        engine.dispose()
    return {
        "trials": trials,
        "admitted_ms": _ms(admitted),
        "device_first_accepted_ms": _ms(device_first),
        "replay_first_accepted_ms": _ms(replay_first),
    }


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.array(values) * 1000
    return {
        "n": len(values),
        "p50": round(float(np.percentile(a, 50)), 1),
        "max": round(float(a.max()), 1),
    }


def _postgres(workdir: Path, influx: InfluxServer, trials: int) -> dict[str, Any]:
    name = f"pantau_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        return {"skipped": f"PostgreSQL not reachable ({type(exc).__name__})"}
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        return _trials(url, influx, workdir, trials)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(workdir: Path, trials: int = TRIALS) -> dict[str, Any]:
    influx = InfluxServer(workdir / "influxdb", free_port(), free_port())
    influx.start()
    try:
        sqlite = _trials(
            f"sqlite:///{workdir / 'sqlite' / 'pantau.db'}", influx, workdir / "s", trials
        )
        postgres = _postgres(workdir / "p", influx, trials)
    finally:
        influx.stop()
    return {
        "sqlite": sqlite,
        "postgresql": postgres,
        "registry_settings": Settings().registry.model_dump(),
        "note": "ms after create_device returned; the device retries its CONNECT every 20 ms "
        "and sends a reading every 20 ms once admitted; the replay account sends every 20 ms",
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pantau-bench-") as tmp:
        write_result("registration", run(Path(tmp)))


if __name__ == "__main__":
    main()
