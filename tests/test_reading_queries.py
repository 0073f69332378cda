"""The console's read side (api/reading_queries.py) against a real InfluxDB: each device's
newest reading across kinds, and one field's bucketed series with its rate of rise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.reading_queries import field_series, latest_per_device, rate_per_hour
from pantau.influxdb import InfluxClient
from pantau.settings import Settings


def test_latest_reading_per_device_and_a_series_with_its_rate(settings: Settings) -> None:
    client = InfluxClient(settings.influx)
    client.ensure_database()
    now = datetime.now(UTC).replace(microsecond=0)
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    lines = []
    # A gauge rising 10 cm every 10 minutes for the last hour, and an older silent one.
    for i in range(7):
        ts = now - timedelta(minutes=60 - 10 * i)
        lines.append(
            f"water_level,device_id=wl-a,district=Malili level_cm={100 + 10 * i},"
            f"battery_v=12.5,seq={i}i,anomaly_score=0 {ms(ts)}"
        )
    lines.append(f"water_level,device_id=wl-b level_cm=55 {ms(now - timedelta(days=2))}")
    lines.append(f"environment,device_id=env-a temperature_c=29.5 {ms(now)}")
    lines.append(f"water_level,device_id=wl-old level_cm=1 {ms(now - timedelta(days=60))}")
    client.write(("\n".join(lines) + "\n").encode())

    latest = latest_per_device(client, ["water_level", "environment", "traffic"])
    assert set(latest) == {"wl-a", "wl-b", "env-a"}  # wl-old is past the 30 days
    assert latest["wl-a"].fields == {"level_cm": 160.0, "battery_v": 12.5}
    assert latest["wl-a"].ts == now
    assert latest["wl-a"].kind == "water_level"
    assert latest["env-a"].fields == {"temperature_c": 29.5}

    series = field_series(client, kind="water_level", device_id="wl-a", field="level_cm")
    assert [v for _, v in series.points] == [100, 110, 120, 130, 140, 150, 160]
    assert series.rate_per_h is not None and abs(series.rate_per_h - 60.0) < 1e-6
    empty = field_series(client, kind="water_level", device_id="wl-none", field="level_cm")
    assert empty.points == [] and empty.rate_per_h is None
    client.close()


def test_rate_of_rise_uses_the_last_window_only() -> None:
    t0 = datetime(2026, 12, 3, tzinfo=UTC)
    points = [(t0, 500.0)] + [(t0 + timedelta(hours=5, minutes=m), 100.0 + m) for m in (0, 30)]
    assert rate_per_hour(points, timedelta(hours=1)) == 60.0
    assert rate_per_hour(points[:1], timedelta(hours=1)) is None


def test_console_routes_answer_and_refuse_clearly(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.registry_helpers import bearer, register_devices, role_tokens

    token = role_tokens(settings.database.url)["viewer"]
    register_devices(settings.database.url, ["wl-q"])
    InfluxClient(settings.influx).ensure_database()
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        catalog = client.get("/catalog").json()
        assert catalog["kinds"]["water_level"]["fields"]["level_cm"]["unit"] == "cm"
        assert "battery_v" in catalog["kinds"]["water_level"]["fields"]
        assert catalog["broker"]["port"] == settings.mqtt.port
        assert catalog["broker"]["topic_prefix"] == "pantau/devices"
        assert client.get("/latest").json() == {"devices": {}}
        series = client.get("/series/wl-q").json()
        assert series["field"] == "level_cm" and series["points"] == []
        assert series["rate_per_h"] is None
        assert client.get("/series/wl-none").status_code == 404
        refused = client.get("/series/wl-q", params={"field": "pm25_ugm3"})
        assert refused.status_code == 422 and "not a water_level field" in refused.text
        assert client.get("/series/wl-q", params={"hours": 0}).status_code == 422
        assert client.get("/", follow_redirects=False).headers["location"] == "/console/"
        page = client.get("/console/")
        assert page.status_code == 200 and 'src="app.js"' in page.text
