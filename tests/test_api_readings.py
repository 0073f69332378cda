"""GET /readings/<device>: a registered device only, times InfluxDB can store, pages with a
`next` link (issue 14). Readings are written as the ingester writes them (ingest/points.py)
into a real InfluxDB and read back through the real app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ingest.model import Reading
from ingest.points import reading_to_line
from pantau.influx_schema import (
    MAX_TIME,
    MIN_TIME,
    TimeOutOfRangeError,
    influx_time_ns,
    stored_reading,
)
from pantau.influxdb import InfluxClient
from pantau.settings import Settings
from tests.registry_helpers import bearer, register_devices, role_tokens


def _write(settings: Settings, readings: list[Reading]) -> None:
    influx = InfluxClient(settings.influx)
    try:
        influx.ensure_database()
        influx.write("\n".join(reading_to_line(r) for r in readings).encode())
    finally:
        influx.close()


def test_an_unknown_device_is_404_not_an_empty_list(settings: Settings) -> None:
    token = role_tokens(settings.database.url)["viewer"]
    register_devices(settings.database.url, ["wl-known"])
    InfluxClient(settings.influx).ensure_database()
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        known = client.get("/readings/wl-known")
        assert known.status_code == 200, known.text
        assert known.json()["readings"] == []
        unknown = client.get("/readings/wl-nobody")
        assert unknown.status_code == 404, unknown.text
        assert "wl-nobody" in unknown.json()["detail"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"since": "0001-01-01T00:00:00Z"}, "since"),
        ({"since": "0001-01-01T00:00:00+08:00"}, "since"),
        ({"since": "1600-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"}, "until"),
        ({"since": "2026-01-01T00:00:00Z", "until": "9999-12-31T23:59:59-08:00"}, "until"),
    ],
)
def test_times_influxdb_cannot_store_are_422_not_503(
    settings: Settings, params: dict[str, str], named: str
) -> None:
    token = role_tokens(settings.database.url)["viewer"]
    register_devices(settings.database.url, ["wl-known"])
    InfluxClient(settings.influx).ensure_database()
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        response = client.get("/readings/wl-known", params=params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(named), detail
    assert "outside the times InfluxDB can store" in detail


def test_readings_come_in_pages_linked_by_next(settings: Settings) -> None:
    token = role_tokens(settings.database.url)["viewer"]
    register_devices(settings.database.url, ["wl-paged"])
    start = datetime(2026, 11, 28, tzinfo=UTC)
    start_ms = int(start.timestamp() * 1000)
    # 25 readings one second apart, and one just past `until` that no page may show.
    _write(
        settings,
        [
            Reading("wl-paged", "water_level", start_ms + i * 1000, {"level_cm": 100.0 + i}, seq=i)
            for i in range(26)
        ],
    )
    until = start + timedelta(seconds=25)
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        url: str | None = "/readings/wl-paged"
        params: dict[str, str | int] | None = {
            "since": start.isoformat(),
            "until": until.isoformat(),
            "limit": 10,
        }
        pages = []
        while url is not None:
            response = client.get(url, params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            pages.append(page)
            url, params = page["next"], None
            assert len(pages) < 10, "the next links do not end"
    assert [p["count"] for p in pages] == [10, 10, 5]
    assert [p["limit"] for p in pages] == [10, 10, 10]
    assert [p["next"] is None for p in pages] == [False, False, True]
    seqs = [r["seq"] for p in pages for r in p["readings"]]
    assert seqs == list(range(25))
    assert [r["fields"]["level_cm"] for r in pages[2]["readings"]] == [
        120.0,
        121.0,
        122.0,
        123.0,
        124.0,
    ]


def test_a_page_exactly_full_at_the_end_has_no_next(settings: Settings) -> None:
    token = role_tokens(settings.database.url)["viewer"]
    register_devices(settings.database.url, ["wl-exact"])
    start = datetime(2026, 11, 28, tzinfo=UTC)
    start_ms = int(start.timestamp() * 1000)
    _write(
        settings,
        [
            Reading("wl-exact", "water_level", start_ms + i, {"level_cm": 1.0}, seq=i)
            for i in range(4)
        ],
    )
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        page = client.get(
            "/readings/wl-exact", params={"since": start.isoformat(), "limit": 4}
        ).json()
    assert page["count"] == 4
    assert page["next"] is None


def test_the_schema_module_reads_back_what_the_points_module_writes() -> None:
    reading = Reading(
        "wl-1",
        "water_level",
        1_764_288_000_123,
        {"level_cm": 143.2},
        seq=7,
        raw={"level_cm": 140.0},
        anomaly_score=0.9,
        anomaly_reason="level_cm:rate_of_change",
        ts_from_arrival=True,
        tags=(("district", "malili"),),
    )
    row = {
        "time": reading.ts_ms,
        "device_id": "wl-1",
        "district": "malili",
        "site": None,
        "level_cm": 143.2,
        "level_cm_raw": 140.0,
        "seq": 7,
        "anomaly_score": 0.9,
        "anomaly_reason": "level_cm:rate_of_change",
        "ts_from_arrival": True,
    }
    for name in row:
        if name not in ("time", "device_id", "district", "site"):
            assert name in reading_to_line(reading), name
    back = stored_reading("water_level", row)
    assert back.fields == reading.fields
    assert back.raw == reading.raw
    assert (back.seq, back.anomaly_score, back.anomaly_reason, back.ts_from_arrival) == (
        7,
        0.9,
        "level_cm:rate_of_change",
        True,
    )


def test_influx_time_bounds() -> None:
    assert influx_time_ns(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005_000
    assert influx_time_ns(MIN_TIME) < 0 < influx_time_ns(MAX_TIME)
    for outside in (MIN_TIME - timedelta(microseconds=1), MAX_TIME + timedelta(microseconds=1)):
        with pytest.raises(TimeOutOfRangeError):
            influx_time_ns(outside)
