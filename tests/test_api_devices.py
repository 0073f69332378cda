"""/devices and /users over HTTP, on both SQL backends: CRUD, filters, pages, calibrations,
credential rotation, CSV import; 404 / 409 / 422 naming the field; hostile input refused with
nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from devices.credentials import verify_mosquitto_hash
from devices.registry import Registry
from devices.schemas import RESERVED_IDS
from pantau.settings import Settings
from pantau.sql import make_engine
from tests.registry_helpers import bearer, database_url, role_tokens


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    for url in database_url(request.param, tmp_path):
        settings = Settings(
            database={"url": url},  # type: ignore[arg-type]
            influx={"url": "http://127.0.0.1:9"},  # type: ignore[arg-type]
        )
        tokens = role_tokens(url)
        with TestClient(create_app(settings)) as test_client:
            test_client.headers.update(bearer(tokens["technician"]))
            test_client.tokens = tokens
            yield test_client


GAUGE = {
    "id": "wl-malili-01",
    "kind": "water_level",
    "name": "Malili bridge",
    "district": "Malili",
    "site": "Jembatan Malili",
    "latitude": -2.64,
    "longitude": 121.1,
    "thresholds": {"level_cm": {"waspada": 250, "siaga": 300, "awas": 350}},
}


def device_count(client: TestClient) -> int:
    return int(client.get("/devices").json()["total"])


def test_device_crud(client: TestClient) -> None:
    created = client.post("/devices", json=GAUGE)
    assert created.status_code == 201, created.text
    body = created.json()
    password = body["mqtt_password"]
    assert body["mqtt_username"] == "wl-malili-01" and len(password) >= 20
    assert body["device"]["interval_s"] == 60 and body["device"]["has_credentials"]
    assert "mqtt_password_hash" not in body["device"]
    duplicate = client.post("/devices", json=GAUGE)
    assert duplicate.status_code == 409 and "wl-malili-01" in duplicate.json()["detail"]
    got = client.get("/devices/wl-malili-01").json()
    assert "password" not in str(got) and got["thresholds"]["level_cm"]["siaga"] == 300
    patched = client.patch("/devices/wl-malili-01", json={"status": "maintenance", "notes": "x"})
    assert patched.status_code == 200 and patched.json()["status"] == "maintenance"
    bad_patch = client.patch("/devices/wl-malili-01", json={"thresholds": {"pm25_ugm3": {"a": 1}}})
    assert bad_patch.status_code == 422 and "thresholds" in bad_patch.text
    assert client.patch("/devices/wl-malili-01", json={"kind": "traffic"}).status_code == 422
    assert client.patch("/devices/wl-malili-01", json={"name": None}).status_code == 422

    first = client.post(
        "/devices/wl-malili-01/calibrations", json={"fields": {"level_cm": {"offset": -3.5}}}
    )
    assert first.status_code == 201 and first.json()["version"] == 1
    assert first.json()["created_by"].startswith("technician-")
    client.post("/devices/wl-malili-01/calibrations", json={"fields": {"level_cm": {"scale": 2}}})
    history = client.get("/devices/wl-malili-01/calibrations").json()
    assert [c["version"] for c in history] == [2, 1]
    assert client.get("/devices/wl-malili-01").json()["calibration_version"] == 2
    bad_cal = client.post(
        "/devices/wl-malili-01/calibrations", json={"fields": {"level_cm": {"scale": 0}}}
    )
    assert bad_cal.status_code == 422 and "scale" in bad_cal.text

    rotated = client.post("/devices/wl-malili-01/credentials/rotate").json()
    assert rotated["mqtt_password"] != password
    engine = make_engine(str(client.app.state.services.settings.database.url))  # type: ignore[attr-defined]
    stored = {a.username: a.password_hash for a in Registry(engine).broker_accounts()}
    assert verify_mosquitto_hash(rotated["mqtt_password"], stored["wl-malili-01"])
    assert not verify_mosquitto_hash(password, stored["wl-malili-01"])

    retired = client.delete("/devices/wl-malili-01")
    assert retired.status_code == 200 and retired.json()["status"] == "retired"
    assert "wl-malili-01" not in {a.username for a in Registry(engine).broker_accounts()}
    engine.dispose()
    for method, path in (
        ("GET", "/devices/wl-nope"),
        ("PATCH", "/devices/wl-nope"),
        ("DELETE", "/devices/wl-nope"),
        ("GET", "/devices/wl-nope/calibrations"),
        ("POST", "/devices/wl-nope/credentials/rotate"),
    ):
        response = client.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path, response.text)


def test_listing_filters_and_pages(client: TestClient) -> None:
    for i in range(7):
        district = "Malili" if i < 4 else "Nuha"
        client.post("/devices", json={**GAUGE, "id": f"wl-{i}", "district": district})
    client.post("/devices", json={"id": "aq-1", "kind": "environment", "name": "Sorowako air"})
    assert device_count(client) == 8
    assert client.get("/devices", params={"district": "Nuha"}).json()["total"] == 3
    assert client.get("/devices", params={"kind": "environment"}).json()["total"] == 1
    assert client.get("/devices", params={"q": "soro"}).json()["total"] == 1
    assert client.get("/devices", params={"status": "retired"}).json()["total"] == 0
    pages = [client.get("/devices", params={"limit": 3, "offset": o}).json() for o in (0, 3, 6)]
    ids = [d["id"] for page in pages for d in page["items"]]
    assert ids == sorted(ids) and len(set(ids)) == 8
    for params, field in (
        ({"kind": "rocket"}, "kind"),
        ({"status": "broken"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"q": "x" * 101}, "q"),
        ({"q": "x" * 20_000}, "q"),
        ({"district": "a\nb"}, "district"),
    ):
        response = client.get("/devices", params=params)
        assert response.status_code == 422 and field in response.text, (params, response.text)


HOSTILE_IDS = [
    "wl,1",
    "wl=1",
    "wl 1",
    'wl"1',
    "wl'1",
    "wl+1",
    "wl#1",
    "wl/1",
    "wl\n1",
    "WL-1",
    "x" * 65,
    "y" * 10_000,
    "1' OR '1'='1",
    "wl-1; DROP TABLE devices; --",
    "",
    "export",  # reserved: it names /devices/export
]


def test_hostile_input_is_refused_and_nothing_stored(client: TestClient) -> None:
    for hostile in HOSTILE_IDS:
        check_hostile(client, hostile)
    assert device_count(client) == 0


def check_hostile(client: TestClient, hostile: str) -> None:
    response = client.post("/devices", json={**GAUGE, "id": hostile})
    assert response.status_code == 422 and "id" in response.text, hostile
    for field, value in (
        ("district", hostile + "\n"),
        ("name", "n" * 201),
        ("notes", "z" * 100_000),
        ("site", "a\x00b"),
        ("latitude", 1e9),
        ("kind", hostile or "?"),
        ("thresholds", {"level_cm": {hostile.upper() or "?": 1}}),
    ):
        response = client.post("/devices", json={**GAUGE, field: value})
        assert response.status_code == 422 and field in response.text, (field, response.text)
    assert client.post("/devices", json={**GAUGE, "surprise": 1}).status_code == 422
    # In a path and in filters: 404/422 or an empty answer, never an error or a match.
    if hostile and hostile not in RESERVED_IDS:
        assert client.get(f"/devices/{quote(hostile, safe='')}").status_code in (404, 422)
    listing = client.get("/devices", params={"q": hostile[:100]})
    assert listing.status_code in (200, 422) and listing.json().get("total", 0) == 0


def test_csv_import_and_export(client: TestClient) -> None:
    csv_text = (
        "id,kind,name,district\n"
        "wl-1,water_level,One,Malili\n"
        "bad id,water_level,Two,Malili\n"
        "wl-3,water_level,,Malili\n"
        "aq-4,environment,Four,Nuha\n"
    )
    response = client.post(
        "/devices/import", content=csv_text, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["created"] == ["wl-1", "aq-4"] and set(report["credentials"]) == {"wl-1", "aq-4"}
    assert [(e["line"], e["device_id"]) for e in report["errors"]] == [(3, "bad id"), (4, "wl-3")]
    assert "id" in report["errors"][0]["errors"][0] and "name" in report["errors"][1]["errors"][0]
    exported = client.get("/devices/export")
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[0].startswith("id,kind,name")
    assert len(exported.text.splitlines()) == 3
    assert (
        client.post(
            "/devices/import", content=b"\xff\xfe", headers={"Content-Type": "text/csv"}
        ).status_code
        == 422
    )


def test_users_and_tokens_over_http(client: TestClient) -> None:
    admin = bearer(client.tokens["admin"])
    created = client.post("/users", json={"name": "rina", "role": "responder"}, headers=admin)
    assert created.status_code == 201
    token, user_id = created.json()["token"], created.json()["user"]["id"]
    assert client.get("/me", headers=bearer(token)).json()["role"] == "responder"
    assert (
        client.post("/users", json={"name": "rina", "role": "viewer"}, headers=admin).status_code
        == 409
    )
    bad = client.post("/users", json={"name": "a b", "role": "root"}, headers=admin)
    assert bad.status_code == 422 and "name" in bad.text and "role" in bad.text
    issued = client.post(f"/users/{user_id}/tokens", json={"label": "phone"}, headers=admin).json()
    assert client.get("/me", headers=bearer(issued["token"])).status_code == 200
    client.delete(f"/tokens/{issued['info']['id']}", headers=admin)
    assert client.get("/me", headers=bearer(issued["token"])).status_code == 401
    client.patch(f"/users/{user_id}", json={"disabled": True}, headers=admin)
    assert client.get("/me", headers=bearer(token)).status_code == 401
    assert client.get("/users/999999", headers=admin).status_code == 404
