"""Dashboards → JSON files: `pantau dashboards build` writes them, a test holds them equal.

Every board is built with the SDK, given stable panel ids, encoded with the SDK's encoder and
written with sorted keys, so the files in the repository change only when a board does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard

from dashboards.boards import air_weather, city, device_health, pipeline, rivers, traffic
from dashboards.queries import register_query_variants

BOARDS = (city, rivers, air_weather, traffic, device_health, pipeline)
JSON_DIR = Path(__file__).resolve().parent / "json"


def build_model(module: Any) -> dashboard.Dashboard:
    board: dashboard.Dashboard = module.build().build()
    panel_id = 0
    for panel in board.panels or []:
        panel_id += 1
        panel.id_val = panel_id
        for inner in getattr(panel, "panels", None) or []:
            panel_id += 1
            inner.id_val = panel_id
    return board


def to_dict(model: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data, via the SDK's encoder."""
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return data


def render_all() -> dict[str, str]:
    """File name → the JSON text of every dashboard."""
    return {
        module.FILE: json.dumps(
            to_dict(build_model(module)), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
        for module in BOARDS
    }


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Names of the files that differ from what the builders produce (or are missing)."""
    out = []
    for name, text in render_all().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def load_model(data: dict[str, Any]) -> dashboard.Dashboard:
    """Read a dashboard's JSON back into the SDK's model (our query types registered)."""
    register_query_variants()
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    return dashboard.Dashboard.from_json(data)


def load_files(directory: Path = JSON_DIR) -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }
