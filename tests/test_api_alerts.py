"""The alerts API on SQLite and PostgreSQL: list, filter and page; one alert with its history;
acknowledge with a note and resolve (responder); silences (technician); a device's alerts;
the SSE stream with ?token=, the active alerts first, live changes and Last-Event-ID."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from alerts.model import DeviceInfo, Severity, Signal
from alerts.store import AlertStore
from api.app import create_app
from pantau.settings import Settings
from pantau.sql import make_engine
from tests.conftest import make_settings
from tests.registry_helpers import bearer, database_url, register_devices, role_tokens

T0 = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def app_settings(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[Settings]:
    for url in database_url(request.param, tmp_path):
        yield make_settings(
            settings.mqtt.url, settings.influx.url or "", tmp_path, database={"url": url}
        )


def signal(device: str, level: str, rank: int, minutes: float, district: str = "Malili") -> Signal:
    return Signal(
        rule="river_level",
        device=DeviceInfo(device, "water_level", "Jembatan Malili", district),
        level=level,
        level_rank=rank,
        severity=Severity.CRITICAL if rank == 3 else Severity.WARNING,
        at=T0 + timedelta(minutes=minutes),
        field="level_cm",
        value=300.0 + rank,
        threshold=300.0,
        unit="cm",
    )


def test_list_get_ack_resolve(app_settings: Settings) -> None:
    url = app_settings.database.url
    tokens = role_tokens(url)
    register_devices(url, ["wl-a", "wl-b", "wl-c"])
    engine = make_engine(url)
    store = AlertStore(engine)
    first = store.apply([signal("wl-a", "siaga", 2, 1)])[0].alert_id
    store.apply([signal("wl-b", "waspada", 1, 1, district="Nuha"), signal("wl-c", "awas", 3, 1)])
    with TestClient(create_app(app_settings)) as client:
        viewer, responder = bearer(tokens["viewer"]), bearer(tokens["responder"])
        page = client.get("/alerts", params={"state": "active", "limit": 2}, headers=viewer)
        assert page.status_code == 200
        body = page.json()
        assert [a["device_id"] for a in body["alerts"]] == ["wl-c", "wl-b"]
        assert body["next"] and "before_id=" in body["next"] and "state=active" in body["next"]
        rest = client.get(body["next"], headers=viewer).json()
        assert [a["device_id"] for a in rest["alerts"]] == ["wl-a"] and rest["next"] is None
        nuha = client.get("/alerts", params={"district": "Nuha"}, headers=viewer).json()
        assert [a["device_id"] for a in nuha["alerts"]] == ["wl-b"]
        critical = client.get("/alerts", params={"severity": "critical"}, headers=viewer).json()
        assert [a["level"] for a in critical["alerts"]] == ["awas"]
        assert client.get("/alerts", params={"state": "nope"}, headers=viewer).status_code == 422

        assert client.post(f"/alerts/{first}/ack", headers=viewer).status_code == 403
        acked = client.post(
            f"/alerts/{first}/ack", json={"note": "tim ke lokasi"}, headers=responder
        )
        assert acked.status_code == 200, acked.text
        assert (
            acked.json()["state"] == "acknowledged" and acked.json()["ack_note"] == "tim ke lokasi"
        )
        resolved = client.post(
            f"/alerts/{first}/resolve", json={"note": "surut"}, headers=responder
        )
        assert resolved.json()["state"] == "resolved" and resolved.json()["resolved_at"]
        assert client.post(f"/alerts/{first}/ack", headers=responder).status_code == 409
        one = client.get(f"/alerts/{first}", headers=viewer).json()
        by = acked.json()["acknowledged_by"]
        assert by.startswith("responder")
        assert [(h["state"], h["by"], h["note"]) for h in one["history"]] == [
            ("firing", None, None),
            ("acknowledged", by, "tim ke lokasi"),
            ("resolved", by, "surut"),
        ]
        assert "SIAGA" in one["text"]["id"] and "WITA" in one["text"]["en"]
        assert client.get("/alerts/999999", headers=viewer).status_code == 404
        device = client.get("/devices/wl-a/alerts", headers=viewer).json()
        assert [a["id"] for a in device["alerts"]] == [first]
        assert client.get("/devices/wl-nope/alerts", headers=viewer).status_code == 404
    engine.dispose()


def test_silences(app_settings: Settings) -> None:
    url = app_settings.database.url
    tokens = role_tokens(url)
    ends = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    with TestClient(create_app(app_settings)) as client:
        technician, responder = bearer(tokens["technician"]), bearer(tokens["responder"])
        body = {"device_id": "wl-a", "ends_at": ends, "reason": "perbaikan sensor"}
        assert client.post("/silences", json=body, headers=responder).status_code == 403
        created = client.post("/silences", json=body, headers=technician)
        assert created.status_code == 201, created.text
        silence = created.json()
        assert silence["created_by"].startswith("technician") and silence["rule"] is None
        listed = client.get("/silences", headers=responder).json()["silences"]
        assert [s["id"] for s in listed] == [silence["id"]]
        past = {"device_id": "wl-a", "ends_at": "2020-01-01T00:00:00Z"}
        assert client.post("/silences", json=past, headers=technician).status_code == 422
        assert (
            client.post("/silences", json={"ends_at": ends}, headers=technician).status_code == 409
        )
        assert client.delete(f"/silences/{silence['id']}", headers=technician).status_code == 200
        assert client.get("/silences", headers=responder).json()["silences"] == []
        assert client.delete(f"/silences/{silence['id']}", headers=technician).status_code == 404
    store = AlertStore(make_engine(url))
    assert not store.silenced("river_level", "wl-a")


def sse_events(text: str) -> list[tuple[int, dict[str, object]]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if lines.get("event") == "alert":
            out.append((int(lines["id"]), orjson.loads(lines["data"])))
    return out


def test_sse_stream(app_settings: Settings) -> None:
    url = app_settings.database.url
    token = role_tokens(url)["viewer"]
    engine = make_engine(url)
    store = AlertStore(engine)
    opened = store.apply([signal("wl-a", "siaga", 2, 1)])[0]
    with TestClient(create_app(app_settings)) as client:
        assert client.get("/alerts/stream", params={"timeout_s": 0.1}).status_code == 401
        assert (
            client.get("/alerts/stream", params={"token": "pt_bad", "timeout_s": 0.1}).status_code
            == 401
        )
        first = client.get("/alerts/stream", params={"token": token, "timeout_s": 0.3})
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/event-stream")
        snapshot = sse_events(first.text)
        assert [(i, a["level"]) for i, a in snapshot] == [(opened.id, "siaga")]
        # Live changes after the client's last event id, in order.
        escalated = store.apply([signal("wl-a", "awas", 3, 2)])[0]
        store.apply([signal("wl-a", "normal", 0, 3)])
        resumed = client.get(
            "/alerts/stream",
            params={"timeout_s": 0.5},
            headers={**bearer(token), "Last-Event-ID": str(opened.id)},
        )
        events = sse_events(resumed.text)
        assert [i for i, _ in events] == [escalated.id, escalated.id + 1]
        assert [(a["level"], a["state"]) for _, a in events] == [
            ("awas", "firing"),
            ("awas", "resolved"),
        ]
    engine.dispose()
