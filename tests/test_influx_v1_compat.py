"""InfluxDB 2.x/3.x through their v1 API: with `prepare_database` off the ingester creates
nothing (those servers refuse CREATE DATABASE / RETENTION POLICY / CONTINUOUS QUERY) and
writes into what the operator made: here a database with only the `raw` policy, standing in
for a bucket mapped as pantau/raw."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from pantau.influxdb import InfluxClient
from pantau.settings import Settings
from tests.conftest import PantauProcess, eventually
from tests.mqtt_helpers import Publisher
from tests.registry_helpers import register_devices

pytestmark = pytest.mark.e2e


def test_ingester_writes_without_preparing_the_database(
    settings: Settings, run_pantau: Callable[..., PantauProcess]
) -> None:
    settings = settings.model_copy(
        update={"influx": settings.influx.model_copy(update={"prepare_database": False})}
    )
    db = settings.influx.database
    influx = InfluxClient(settings.influx)
    influx.execute(f'CREATE DATABASE "{db}" WITH DURATION 400d NAME "raw"', database="")
    register_devices(settings.database.url, ["wl-malili-01"])
    ingester = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
    publisher = Publisher(settings.mqtt)
    try:
        publisher.telemetry("wl-malili-01", orjson.dumps({"seq": 1, "level_cm": 120.5}))
    finally:
        publisher.close()

    def stored() -> object:
        result = influx.query('SELECT "level_cm" FROM "raw"."water_level"')
        return result and result[0] and result[0][0].values

    eventually(stored, what="reading written")
    policies = influx.query(f'SHOW RETENTION POLICIES ON "{db}"')[0][0].rows()
    assert [p["name"] for p in policies] == ["raw"]
    queries = influx.query("SHOW CONTINUOUS QUERIES")[0]
    assert not [row for s in queries if s.name == db for row in s.rows()]
    influx.close()
    assert ingester.running, ingester.log_tail()
