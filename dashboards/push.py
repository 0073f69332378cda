"""`pantau dashboards push`: folder, datasources and dashboards into a running Grafana over
its HTTP API (grafana-client), idempotently: what exists is updated in place, never doubled.

The datasources are the ones in provisioning/datasources.yaml (same uids, so the dashboards'
references hold), with `$VARIABLES` taken from the environment as Grafana would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.common import FOLDER
from dashboards.render import JSON_DIR, load_files

PROVISIONING_DIR = Path(__file__).resolve().parent / "provisioning"
FOLDER_UID = "pantau"
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass
class PushReport:
    folder: str = ""  # "created" or "exists"
    datasources: dict[str, str] = field(default_factory=dict)  # uid → created / updated
    dashboards: list[str] = field(default_factory=list)  # uids uploaded


def expand(value: Any, env: Mapping[str, str]) -> Any:
    """Grafana's `$VAR` / `${VAR}` expansion over a YAML tree; a missing variable is an error."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in env:
                raise KeyError(f"datasources.yaml needs ${name} in the environment")
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env) for v in value]
    return value


def datasources(
    env: Mapping[str, str] | None = None, urls: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The provisioned datasources as API bodies; `urls` overrides a datasource's URL by uid."""
    data = yaml.safe_load((PROVISIONING_DIR / "datasources.yaml").read_text(encoding="utf-8"))
    out = []
    for item in expand(data["datasources"], os.environ if env is None else env):
        body = {k: v for k, v in item.items() if k != "editable"}
        if urls and body["uid"] in urls:
            body["url"] = urls[body["uid"]]
        out.append(body)
    return out


def push(
    api: GrafanaApi,
    json_dir: Path = JSON_DIR,
    env: Mapping[str, str] | None = None,
    urls: Mapping[str, str] | None = None,
    with_datasources: bool = True,
) -> PushReport:
    report = PushReport()
    bodies = datasources(env, urls) if with_datasources else []  # a missing secret: no request
    try:
        api.folder.get_folder(FOLDER_UID)
        report.folder = "exists"
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.folder.create_folder(FOLDER, uid=FOLDER_UID)
        report.folder = "created"
    for body in bodies:
        try:
            api.datasource.get_datasource_by_uid(body["uid"])
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.datasource.create_datasource(body)
            report.datasources[body["uid"]] = "created"
        else:
            api.datasource.update_datasource_by_uid(body["uid"], body)
            report.datasources[body["uid"]] = "updated"
    for data in load_files(json_dir).values():
        api.dashboard.update_dashboard(
            {
                "dashboard": {**data, "id": None},
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "pantau dashboards push",
            }
        )
        report.dashboards.append(data["uid"])
    return report
