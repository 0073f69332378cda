"""Registry costs: DeviceDirectory lookups on the ingest hot path, the directory's reload, and
API latency (p50/p99) for one device and a 1,000-device listing, on a SQLite file.

The API is measured twice: over HTTP against a real uvicorn on a free port (one keep-alive
client, sequential requests) and in-process through FastAPI's TestClient. Neither is a load
test: they show the cost of one request, authentication included.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from bench.common import write_result
from devices.directory import DeviceDirectory
from devices.registry import Registry
from devices.schemas import CalibrationCreate, DeviceCreate
from ingest.calibrate import CalibrationStage, DeviceTagStage
from ingest.model import Reading
from ingest.registry_gate import RegistryKindResolver
from pantau.servers.process import free_port, wait_until
from pantau.settings import Settings
from pantau.sql import make_engine, migrate
from people.accounts import People
from people.models import Role
from people.schemas import UserCreate

DEVICES = 1000


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
        "requests": len(ordered),
    }


def _measure_api(get: Callable[..., Any], ids: list[str]) -> dict[str, object]:
    """p50/p99 of GET /devices/{id} (2,000 requests) and of a 1,000-device page (60)."""
    for _ in range(50):  # warm up
        get(f"/devices/{ids[0]}")
    one = []
    for i in range(2000):
        t0 = time.perf_counter()
        response = get(f"/devices/{ids[(i * 7) % len(ids)]}")
        one.append(time.perf_counter() - t0)
        assert response.status_code == 200
    listing = []
    for _ in range(60):
        t0 = time.perf_counter()
        response = get("/devices", params={"limit": 1000})
        listing.append(time.perf_counter() - t0)
        assert response.status_code == 200 and len(response.json()["items"]) == len(ids)
    return {"get_device": _percentiles(one), "list_1000_devices": _percentiles(listing)}


def run(workdir: Path) -> dict[str, object]:
    url = f"sqlite:///{workdir / 'bench.db'}"
    migrate(url)
    engine = make_engine(url)
    registry = Registry(engine)
    started = time.perf_counter()
    ids = []
    for i in range(DEVICES):
        device_id = f"wl-bench-{i:04d}"
        registry.create_device(
            DeviceCreate(
                id=device_id,
                kind="water_level",
                name=f"gauge {i}",
                district=f"district-{i % 11}",
                site=f"site-{i}",
            )
        )
        ids.append(device_id)
        if i % 2 == 0:
            registry.add_calibration(
                device_id,
                CalibrationCreate.model_validate({"fields": {"level_cm": {"offset": -1.5}}}),
                "bench",
            )
    register_s = time.perf_counter() - started

    directory = DeviceDirectory(registry)
    started = time.perf_counter()
    directory.load()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(20):
        directory.refresh()
    refresh_unchanged_s = (time.perf_counter() - started) / 20

    lookups = 1_000_000
    started = time.perf_counter()
    for i in range(lookups):
        directory.get(ids[i % DEVICES])
    lookup_s = time.perf_counter() - started

    resolver = RegistryKindResolver(directory, require_registered=True)
    names = {"level_cm", "battery_v"}
    started = time.perf_counter()
    for i in range(lookups):
        resolver(ids[i % DEVICES], names)
    resolve_s = time.perf_counter() - started

    now_ms = int(time.time() * 1000)
    readings = [
        Reading(ids[i % DEVICES], "water_level", now_ms + i, {"level_cm": 100.0, "battery_v": 12.0})
        for i in range(200_000)
    ]
    stages: list[CalibrationStage | DeviceTagStage] = [
        CalibrationStage(directory),
        DeviceTagStage(directory),
    ]
    started = time.perf_counter()
    for stage in stages:
        readings = stage.process(readings)
    stages_s = time.perf_counter() - started

    _, token = People(engine).create_user(UserCreate(name="bench", role=Role.VIEWER))
    settings = Settings(database={"url": url}, influx={"url": "http://127.0.0.1:9"})  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings), headers=headers) as client:
        in_process = _measure_api(client.get, ids)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 20, "uvicorn")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
            over_http = _measure_api(http.get, ids)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    engine.dispose()
    return {
        "devices": DEVICES,
        "register_1000_devices_s": round(register_s, 2),
        "directory_load_ms": round(load_s * 1000, 1),
        "directory_refresh_unchanged_ms": round(refresh_unchanged_s * 1000, 3),
        "directory_lookups_per_s": round(lookups / lookup_s),
        "kind_resolver_calls_per_s": round(lookups / resolve_s),
        "calibrate_and_tag_readings_per_s": round(len(readings) / stages_s),
        "api_uvicorn_http": over_http,
        "api_testclient_in_process": in_process,
        "api_note": "one client, sequential requests, SQLite file; each request authenticates "
        "its token (one SELECT) and reads the registry",
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pantau-bench-") as tmp:
        write_result("registry", run(Path(tmp)))


if __name__ == "__main__":
    main()
