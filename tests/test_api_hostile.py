"""The API on hostile input (issue 14), on both SQL backends: every answer a 4xx with a message,
never a 500; bodies limited (413); a 422 never echoes large or non-JSON inputs back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from pantau.settings import Settings
from tests.registry_helpers import bearer, database_url, role_tokens

BODY_LIMIT = 256 * 1024


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    for url in database_url(request.param, tmp_path):
        settings = Settings(
            database={"url": url},  # type: ignore[arg-type]
            influx={"url": "http://127.0.0.1:9"},  # type: ignore[arg-type]
            api={"max_body_bytes": BODY_LIMIT},  # type: ignore[arg-type]
        )
        tokens = role_tokens(url)
        # raise_server_exceptions=False: a bug must show as the 500 a user would get
        with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
            test_client.headers.update(bearer(tokens["technician"]))
            yield test_client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dead-letters/99999999999999999999999"),
        ("POST", "/dead-letters/99999999999999999999999/replay"),
        ("GET", "/dead-letters/9223372036854775808"),
        ("GET", "/dead-letters?before_id=99999999999999999999999"),
        ("GET", "/dead-letters/0"),
    ],
)
def test_ids_beyond_64_bits_are_a_bad_request(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 422, response.text
    assert "dead_letter_id" in response.text or "before_id" in response.text


def test_the_largest_64_bit_id_is_simply_not_found(client: TestClient) -> None:
    response = client.get("/dead-letters/9223372036854775807")
    assert response.status_code == 404, response.text


GAUGE = {"id": "wl-hostile-01", "kind": "water_level", "name": "Hostile"}


@pytest.mark.parametrize(
    ("raw_field", "field"),
    [
        ('"latitude": NaN', "latitude"),
        ('"longitude": -Infinity', "longitude"),
        ('"interval_s": 1e400', "interval_s"),
        ('"elevation_m": Infinity', "elevation_m"),
        ('"thresholds": {"level_cm": {"siaga": NaN}}', "thresholds"),
    ],
)
def test_non_finite_numbers_are_a_json_safe_422(
    client: TestClient, raw_field: str, field: str
) -> None:
    body = json.dumps(GAUGE)[:-1] + ", " + raw_field + "}"
    response = client.post("/devices", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]  # strict JSON: no NaN / Infinity in the answer
    json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{c} in the answer"))
    assert any(field in ".".join(map(str, d["loc"])) + d["msg"] for d in detail), detail
    assert client.get("/devices/wl-hostile-01").status_code == 404  # nothing stored


def test_a_body_over_the_limit_is_413_and_never_echoed(client: TestClient) -> None:
    huge = dict(GAUGE, name="x" * (2 * BODY_LIMIT))
    response = client.post("/devices", json=huge)
    assert response.status_code == 413, response.text[:200]
    assert len(response.content) < 1000 and str(BODY_LIMIT) in response.text
    # without a Content-Length (chunked), the limit holds while reading
    chunks = iter([b'{"id": "wl-x", "name": "', b"y" * BODY_LIMIT, b'"}'])
    response = client.post("/devices", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text[:200]
    import_response = client.post(
        "/devices/import",
        content="id,kind,name\n" + "wl-1,water_level,x\n" * 20_000,
        headers={"Content-Type": "text/csv"},
    )
    assert import_response.status_code == 413


def test_a_422_never_echoes_a_large_input(client: TestClient) -> None:
    long_name = "n" * 100_000  # under the body limit, far over the field's 200 characters
    response = client.post("/devices", json=dict(GAUGE, name=long_name))
    assert response.status_code == 422
    assert len(response.content) < 2000, len(response.content)
    assert "name" in response.text
    nested = client.post("/devices", json=dict(GAUGE, thresholds=[list(range(5000))]))
    assert nested.status_code == 422 and len(nested.content) < 2000


def test_small_inputs_are_still_echoed_to_help(client: TestClient) -> None:
    response = client.post("/devices", json=dict(GAUGE, kind="boat"))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "kind"] and error["input"] == "boat"
    assert "unknown kind" in error["msg"]


@pytest.mark.parametrize(
    ("csv_text", "words"),
    [
        ("\x00\x01garbage;;;\nwl-1,water_level,x\n", ["missing columns: id, kind, name"]),
        ("name,colour\nx,red\n", ["missing columns: id, kind", "unknown columns: colour"]),
        ("id,kind,name,id\nwl-1,water_level,x,wl-2\n", ["repeated columns: id"]),
        ("just one line with no commas", ["missing columns"]),
    ],
)
def test_an_import_with_a_garbage_header_is_refused_with_the_reason(
    client: TestClient, csv_text: str, words: list[str]
) -> None:
    response = client.post(
        "/devices/import", content=csv_text, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "header"
    for word in words:
        assert word in body["detail"]
    assert client.get("/devices").json()["total"] == 0
