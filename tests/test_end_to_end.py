"""The first end-to-end path: a reading published over MQTT comes back from the API.

Real Mosquitto, real InfluxDB, the ingester as a real child process, the FastAPI app.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from devices.registry import Registry
from pantau.settings import Settings
from pantau.sql import make_engine, migrate
from simulators.fleet import simulated_devices
from simulators.registration import register_simulated_devices
from simulators.runner import Simulation
from simulators.scenario import parse_scenario
from tests.conftest import PantauProcess, eventually
from tests.mqtt_helpers import Publisher
from tests.registry_helpers import bearer, register_devices, role_tokens

pytestmark = pytest.mark.e2e


def _readings(client: TestClient, device_id: str, since: datetime) -> list[dict[str, object]]:
    response = client.get(f"/readings/{device_id}", params={"since": since.isoformat()})
    assert response.status_code == 200, response.text
    readings: list[dict[str, object]] = response.json()["readings"]
    return readings


def test_published_reading_is_returned_by_the_api(
    settings: Settings, run_pantau: Callable[..., PantauProcess]
) -> None:
    register_devices(settings.database.url, ["wl-malili-01"])
    token = role_tokens(settings.database.url)["viewer"]
    ingester = run_pantau(["ingest"], settings)
    ts = datetime.now(UTC).replace(microsecond=123000)
    publisher = Publisher(settings.mqtt)
    try:
        # Published before the ingester subscribed? Then it would be lost; wait for it.
        eventually(
            lambda: "new session" in ingester.log_tail() or "resumed" in ingester.log_tail(),
            what="ingester connected",
        )
        payload = {
            "ts": int(ts.timestamp() * 1000),
            "seq": 41,
            "level_cm": 143.2,
            "battery_v": 12.61,
        }
        publisher.telemetry("wl-malili-01", orjson.dumps(payload))
    finally:
        publisher.close()
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        readings = eventually(
            lambda: _readings(client, "wl-malili-01", ts - timedelta(minutes=1)),
            what="reading stored",
        )
    assert readings == [
        {
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "kind": "water_level",
            "fields": {"level_cm": 143.2, "battery_v": 12.61},
            "raw": {},
            "seq": 41,
            "anomaly_score": 0.0,  # a new series learns before it may score
            "anomaly_reason": None,
            "ts_from_arrival": False,
        }
    ]
    assert ingester.running, ingester.log_tail()


def test_simulated_gauges_reach_the_api(
    settings: Settings, run_pantau: Callable[..., PantauProcess]
) -> None:
    scenario = parse_scenario(
        # No afternoon showers: the rain field follows the wall clock, and a flood wave at the
        # hour the suite runs is not what this test is about.
        {
            "name": "e2e",
            "kinds": ["water_level"],
            "only": ["wl-malili-0[123]"],
            "shower_probability": 0,
        }
    )
    engine = make_engine(settings.database.url)
    migrate(engine)
    fleet_info = [
        d
        for d in simulated_devices(scenario, seed=1)
        if d.id in {"wl-malili-01", "wl-malili-02", "wl-malili-03"}
    ]
    assert register_simulated_devices(Registry(engine), fleet_info) == 3
    engine.dispose()
    token = role_tokens(settings.database.url)["viewer"]
    ingester = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
    started = datetime.now(UTC) - timedelta(seconds=5)
    sim = Simulation(settings.mqtt, scenario, seed=1, interval_s=0.2, client_id="test-sim")
    stats = sim.run(duration_s=1.0)
    assert stats.messages >= 3 * 5
    assert {spec.device_id for spec in sim.fleet} == {d.id for d in fleet_info}
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        for index, gauge in enumerate(sim.fleet):
            sent = int(sim.engine.seq[index])

            def all_stored(device_id: str = gauge.device_id, n: int = sent) -> list[Any]:
                r = _readings(client, device_id, started)
                return r if len(r) == n else []

            readings = eventually(all_stored, what=f"all readings of {gauge.device_id}")
            assert isinstance(readings, list)
            assert [r["seq"] for r in readings] == list(range(1, sent + 1))
            base = gauge.base.base_level_cm  # type: ignore[union-attr]
            assert all(abs(r["fields"]["level_cm"] - base) < 50 for r in readings)
            assert all(r["fields"]["flow_m3s"] > 0 for r in readings)


def test_api_rejects_bad_requests(settings: Settings) -> None:
    token = role_tokens(settings.database.url)["viewer"]
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        bad_id = client.get("/readings/WL%20bad,id=1")
        assert bad_id.status_code == 422
        assert "device_id" in bad_id.text
        naive = client.get("/readings/wl-1", params={"since": "2026-11-28T00:00:00"})
        assert naive.status_code == 422
        assert "time zone" in naive.json()["detail"]
        backwards = client.get(
            "/readings/wl-1",
            params={"since": "2026-11-28T01:00:00Z", "until": "2026-11-28T00:00:00Z"},
        )
        assert backwards.status_code == 422
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json()["ready"] is True


def test_ingester_stops_cleanly_on_sigterm(
    settings: Settings, run_pantau: Callable[..., PantauProcess]
) -> None:
    ingester = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
    started = time.monotonic()
    assert ingester.stop(timeout_s=10) == 0, ingester.log_tail()
    assert time.monotonic() - started < 10
    assert "ingester stopped" in ingester.log_tail()


def test_type_conflict_is_dead_lettered_then_replayed_after_the_fix(
    settings: Settings, run_pantau: Callable[..., PantauProcess]
) -> None:
    from pantau.influxdb import InfluxClient

    register_devices(settings.database.url, ["wl-conflict"])
    register_devices(settings.database.url, ["env-fine"], kind="environment")
    token = role_tokens(settings.database.url)["technician"]
    influx = InfluxClient(settings.influx)
    influx.ensure_database()
    # Someone wrote level_cm as a string: InfluxDB will now refuse our float for that series.
    broken_ms = int(time.time() * 1000) - 60_000
    influx.write(f'water_level,device_id=wl-conflict level_cm="broken" {broken_ms}\n'.encode())
    ingester = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
    ts_ms = int(datetime.now(UTC).timestamp() * 1000)
    publisher = Publisher(settings.mqtt)
    publisher.telemetry("wl-conflict", orjson.dumps({"ts": ts_ms, "seq": 1, "level_cm": 99.5}))
    # InfluxDB 1.x keeps one type per field and measurement (per shard): other kinds still go.
    publisher.telemetry("env-fine", orjson.dumps({"ts": ts_ms, "seq": 1, "temperature_c": 28.5}))
    publisher.close()
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        letters = eventually(
            lambda: client.get("/dead-letters", params={"device_id": "wl-conflict"}).json(),
            what="dead letter",
        )
        assert isinstance(letters, list) and len(letters) == 1
        letter = letters[0]
        assert letter["reason"] == "storage_rejected"
        assert "conflict" in letter["detail"]
        assert orjson.loads(letter["payload_text"])["level_cm"] == 99.5
        since = datetime.now(UTC) - timedelta(minutes=5)
        assert len(eventually(lambda: _readings(client, "env-fine", since), what="good")) == 1
        # The fix: the bad string series is dropped. Then the replay stores the reading.
        influx.execute('DROP MEASUREMENT "water_level"')
        replay = client.post(f"/dead-letters/{letter['id']}/replay")
        assert replay.status_code == 202, replay.text
        assert replay.json()["replayed"]["replay_count"] == 1
        stored = eventually(lambda: _readings(client, "wl-conflict", since), what="replayed")
        assert isinstance(stored, list) and stored[0]["fields"] == {"level_cm": 99.5}
        assert client.post("/dead-letters/999999/replay").status_code == 404
    influx.close()
