"""Dashboards as code: the JSON in the repository is what the builders make, the SDK's model
reads it back, the pictures match it, and `pantau dashboards push` speaks Grafana's HTTP API
(a local HTTP server stands in for Grafana, which cannot be installed here)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from dashboards.picture import CELL_H, CELL_W, HEADER, MARGIN, draw
from dashboards.push import datasources
from dashboards.render import BOARDS, JSON_DIR, load_files, load_model, render_all, stale, to_dict
from stack.cli import app

REPO = Path(__file__).resolve().parents[1]


def test_rendered_json_equals_the_builders() -> None:
    assert stale() == [], "run `pantau dashboards build` and commit dashboards/json/"
    assert sorted(p.name for p in JSON_DIR.glob("*.json")) == sorted(m.FILE for m in BOARDS)


def test_build_check_command_reports_drift(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["dashboards", "build", "--check"]).exit_code == 0
    result = runner.invoke(app, ["dashboards", "build", "--check", "-o", str(tmp_path)])
    assert result.exit_code == 1 and "out of date" in result.output
    assert runner.invoke(app, ["dashboards", "build", "-o", str(tmp_path)]).exit_code == 0
    assert stale(tmp_path) == []


def _without_annotation_targets(data: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    for item in copy["annotations"]["list"]:
        item.pop("target")
    return copy


@pytest.mark.parametrize("name", sorted(m.FILE for m in BOARDS))
def test_every_dashboard_reads_back_into_the_sdk_model(name: str) -> None:
    data = load_files()[name]
    model = load_model(data)
    back = to_dict(model)
    # The SDK models an annotation target only for Grafana's own annotations; the InfluxQL
    # fields of ours are the one thing it cannot carry (dashboards/common.py). All else,
    # panels, queries, options, variables, reads back identical.
    assert _without_annotation_targets(back) == _without_annotation_targets(data)
    assert [a["target"]["query"] for a in data["annotations"]["list"]]
    assert data["timezone"] == "Asia/Makassar"
    assert {p["datasource"]["uid"] for p in data["panels"] if "datasource" in p} <= {
        "pantau-influxdb",
        "pantau-registry",
        "pantau-prometheus",
        "-- Mixed --",
    }


def test_titles_indonesian_descriptions_english() -> None:
    for data in load_files().values():
        for panel in data["panels"]:
            assert panel["title"]
            if panel["type"] != "row":
                assert panel["description"], panel["title"]
    rivers = load_files()["rivers.json"]
    assert any(
        p.get("repeat") == "gauge" and p.get("repeatDirection") == "h" for p in rivers["panels"]
    )


def test_pictures_are_drawn_from_the_current_json() -> None:
    """Each PNG shows the current grid: its size, and every panel's box in its type's colour
    (checked away from the text, so a different font does not matter)."""
    readme = (REPO / "README.md").read_text()
    for name, data in load_files().items():
        path = REPO / "docs" / "dashboards" / (Path(name).stem + ".png")
        assert path.exists(), f"run `pantau dashboards pictures` ({path.name} missing)"
        fresh = draw(data)
        with Image.open(path) as saved:
            image = saved.convert("RGB")
            assert image.size == fresh.size, path.name
            for panel in data["panels"]:
                pos = panel["gridPos"]
                x = MARGIN + (pos["x"] + pos["w"]) * CELL_W - 12
                y = MARGIN + HEADER + pos["y"] * CELL_H + pos["h"] * CELL_H // 2
                assert image.getpixel((x, y)) == fresh.getpixel((x, y)), (path.name, panel["title"])
        assert f"docs/dashboards/{path.name}" in readme


# --- push, against a stand-in for Grafana's HTTP API -----------------------------------------


class FakeGrafana:
    """Grafana's folder, datasource and dashboard endpoints, in memory; records requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None, Any]] = []
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}

    def handle(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, auth, body))
        if auth != "Bearer glsa_test":
            return 401, {"message": "Unauthorized"}
        if method == "GET" and path.startswith("/api/folders/"):
            uid = path.rsplit("/", 1)[1]
            return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "nf"})
        if method == "POST" and path == "/api/folders":
            self.folders[body["uid"]] = body
            return 200, {"uid": body["uid"], "title": body["title"]}
        if method == "GET" and path.startswith("/api/datasources/uid/"):
            uid = path.rsplit("/", 1)[1]
            found = self.datasources.get(uid)
            return (200, found) if found else (404, {"message": "Data source not found"})
        if method == "POST" and path == "/api/datasources":
            self.datasources[body["uid"]] = body
            return 200, {"message": "Datasource added"}
        if method == "PUT" and path.startswith("/api/datasources/uid/"):
            self.datasources[path.rsplit("/", 1)[1]] = body
            return 200, {"message": "Datasource updated"}
        if method == "POST" and path == "/api/dashboards/db":
            self.dashboards[body["dashboard"]["uid"]] = body
            return 200, {"status": "success", "uid": body["dashboard"]["uid"]}
        return 404, {"message": f"no route {method} {path}"}


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, answer = fake.handle(
                self.command,
                self.path,
                self.headers.get("Authorization"),
                json.loads(raw) if raw else None,
            )
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


ENV = {"INFLUX_PASSWORD": "influx-secret", "POSTGRES_PASSWORD": "pg-secret"}


def test_push_creates_then_updates_everything_idempotently(
    grafana: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = grafana
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    args = ["dashboards", "push", "--url", url, "--token", "glsa_test"]
    args += ["--datasource-url", "pantau-prometheus=http://prom.internal:9090"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    uids = [d.uid for d in (m.build().build() for m in BOARDS)]
    ds_uids = ["pantau-influxdb", "pantau-registry", "pantau-prometheus"]
    expected_first = [("GET", "/api/folders/pantau"), ("POST", "/api/folders")]
    for uid in ds_uids:
        expected_first += [("GET", f"/api/datasources/uid/{uid}"), ("POST", "/api/datasources")]
    expected_first += [("POST", "/api/dashboards/db")] * len(uids)
    assert [(m, p) for m, p, _, _ in fake.requests] == expected_first
    assert {auth for _, _, auth, _ in fake.requests} == {"Bearer glsa_test"}
    assert fake.requests[1][3] == {"title": "Pantau", "uid": "pantau"}
    influx = fake.datasources["pantau-influxdb"]
    assert influx["secureJsonData"] == {"password": "influx-secret"}
    assert influx["type"] == "influxdb" and influx["jsonData"]["dbName"] == "pantau"
    assert fake.datasources["pantau-registry"]["secureJsonData"] == {"password": "pg-secret"}
    assert fake.datasources["pantau-prometheus"]["url"] == "http://prom.internal:9090"
    files = {d["uid"]: d for d in load_files().values()}
    assert sorted(fake.dashboards) == sorted(uids) == sorted(files)
    for uid, body in fake.dashboards.items():
        assert body["folderUid"] == "pantau" and body["overwrite"] is True
        assert body["dashboard"] == {**files[uid], "id": None}

    fake.requests.clear()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    expected_second = [("GET", "/api/folders/pantau")]
    for uid in ds_uids:
        expected_second += [
            ("GET", f"/api/datasources/uid/{uid}"),
            ("PUT", f"/api/datasources/uid/{uid}"),
        ]
    expected_second += [("POST", "/api/dashboards/db")] * len(uids)
    assert [(m, p) for m, p, _, _ in fake.requests] == expected_second
    assert len(fake.folders) == 1 and len(fake.datasources) == 3 and len(fake.dashboards) == 6
    assert "folder exists" in second.output


def test_push_refused_token_and_missing_secret_are_clear(
    grafana: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = grafana
    monkeypatch.delenv("INFLUX_PASSWORD", raising=False)
    monkeypatch.setenv("POSTGRES_PASSWORD", "x")
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", url, "--token", "glsa_test"])
    assert result.exit_code == 2 and "INFLUX_PASSWORD" in result.output
    assert not fake.datasources and not fake.dashboards
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", url, "--token", "wrong"])
    assert result.exit_code == 1 and "Grafana refused: 401" in result.output
    assert [(m, p, a) for m, p, a, _ in fake.requests] == [
        ("GET", "/api/folders/pantau", "Bearer wrong")
    ]
    assert not fake.folders and not fake.dashboards


def test_provisioned_datasources_match_the_dashboards_references() -> None:
    bodies = datasources(env=ENV)
    assert {b["uid"] for b in bodies} == {"pantau-influxdb", "pantau-registry", "pantau-prometheus"}
    used = set()
    for text in render_all().values():
        used |= {
            t["datasource"]["uid"] for p in json.loads(text)["panels"] for t in p.get("targets", [])
        }
    assert used == {b["uid"] for b in bodies}
