"""Every route of the app, for every caller (no token, bad token, each role): 2xx, 401 or 403.

The matrix below is the access policy. A route missing from it, or one whose declared
`require(...)` differs from it, fails the test — a new endpoint cannot ship unprotected by
accident.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount, Route

from alerts.model import DeviceInfo, Severity, Signal
from alerts.store import AlertStore
from api.app import create_app
from api.deps import required_role
from ingest.dead_letters import DeadLetterStore
from ingest.model import Inbound, Rejection, RejectReason
from pantau.influxdb import InfluxClient
from pantau.settings import Settings
from pantau.sql import make_engine
from people.accounts import People
from people.models import Role
from people.schemas import UserCreate
from tests.registry_helpers import bearer, register_devices, role_tokens

V, T, R, A = Role.VIEWER, Role.TECHNICIAN, Role.RESPONDER, Role.ADMIN
PUBLIC = None

MATRIX: dict[tuple[str, str], Role | None] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/readings/{device_id}"): V,
    ("GET", "/dead-letters"): V,
    ("GET", "/dead-letters/{dead_letter_id}"): V,
    ("POST", "/dead-letters/{dead_letter_id}/replay"): T,
    ("GET", "/devices"): V,
    ("POST", "/devices"): T,
    ("GET", "/devices/export"): V,
    ("POST", "/devices/import"): T,
    ("GET", "/devices/{device_id}"): V,
    ("PATCH", "/devices/{device_id}"): T,
    ("DELETE", "/devices/{device_id}"): T,
    ("GET", "/devices/{device_id}/calibrations"): V,
    ("POST", "/devices/{device_id}/calibrations"): T,
    ("POST", "/devices/{device_id}/credentials/rotate"): T,
    ("GET", "/me"): V,
    ("GET", "/"): PUBLIC,  # a redirect to /console/ (static files, mounted: not a route)
    ("GET", "/catalog"): V,
    ("GET", "/latest"): V,
    ("GET", "/series/{device_id}"): V,
    ("GET", "/users"): A,
    ("POST", "/users"): A,
    ("GET", "/users/{user_id}"): A,
    ("PATCH", "/users/{user_id}"): A,
    ("GET", "/users/{user_id}/tokens"): A,
    ("POST", "/users/{user_id}/tokens"): A,
    ("DELETE", "/tokens/{token_id}"): A,
    ("GET", "/alerts"): V,
    ("GET", "/alerts/stream"): V,
    ("GET", "/alerts/{alert_id}"): V,
    ("POST", "/alerts/{alert_id}/ack"): R,
    ("POST", "/alerts/{alert_id}/resolve"): R,
    ("GET", "/devices/{device_id}/alerts"): V,
    ("POST", "/silences"): T,
    ("GET", "/silences"): V,
    ("DELETE", "/silences/{silence_id}"): T,
    ("GET", "/notifications"): R,
}
ALLOWED = {
    V: set(Role),
    T: {T, A},
    R: {R, A},
    A: {A},
}


def app_routes(app: Any) -> dict[tuple[str, str], BaseRoute]:
    """Every (method, path) of `app.routes`, included routers walked into."""
    found: dict[tuple[str, str], BaseRoute] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            continue  # static files (/console, the offline docs' assets): public by design
        assert isinstance(route, Route | APIRoute), route
        for method in route.methods or ():
            if method != "HEAD":
                found[(method, str(context.path))] = route
    return found


def declared_role(route: APIRoute) -> Role | None:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        for dep in dependant.dependencies:
            role = required_role(dep.call)
            if role is not None:
                return role
            pending.append(dep)
    return None


def test_every_route_is_in_the_matrix_with_the_role_it_declares(settings: Settings) -> None:
    routes = app_routes(create_app(settings))
    assert set(routes) == set(MATRIX), "add new routes to MATRIX with their role"
    for key, route in routes.items():
        role = declared_role(route) if isinstance(route, APIRoute) else None
        assert role == MATRIX[key], key


def test_auth_matrix(settings: Settings) -> None:
    url = settings.database.url
    tokens = role_tokens(url)
    register_devices(url, ["wl-base"])
    InfluxClient(settings.influx).ensure_database()
    engine = make_engine(url)
    registry = People(engine)
    admin_user, _ = registry.create_user(UserCreate(name="matrix-target", role=Role.VIEWER))
    store = DeadLetterStore(engine)
    store.store(
        [
            Rejection(
                Inbound("pantau/devices/wl-x/telemetry", b"{}", 1, 1, int(time.time() * 1000)),
                RejectReason.EMPTY,
                "test",
            )
        ]
    )
    letter_id = store.list()[0].id
    counter = itertools.count()
    alerts = AlertStore(engine)
    soon = datetime.now(UTC) + timedelta(hours=1)

    def signal_for(rule: str) -> Signal:
        return Signal(
            rule, DeviceInfo("wl-base", "water_level"), "awas", 3, Severity.CRITICAL, soon
        )

    def request_for(method: str, path: str) -> dict[str, Any]:
        """A request that succeeds for an allowed caller: fresh ids, existing objects."""
        n = next(counter)
        device = f"wl-m-{n}"
        if ("{device_id}" in path and method != "GET") or path.endswith("/calibrations"):
            register_devices(url, [device])
        else:
            device = "wl-base"
        concrete = (
            path.replace("{device_id}", device)
            .replace("{dead_letter_id}", str(letter_id))
            .replace("{user_id}", str(admin_user.id))
        )
        if "{alert_id}" in path:
            opened = alerts.apply([signal_for(f"matrix_{n}")])
            concrete = concrete.replace("{alert_id}", str(opened[0].alert_id))
        if "{silence_id}" in path:
            silence = alerts.add_silence(
                rule=f"matrix_{n}", ends_at=soon, reason="matrix", created_by="t"
            )
            concrete = concrete.replace("{silence_id}", str(silence.id))
        if "{token_id}" in path:
            info, _ = registry.issue_token(admin_user.id, f"t{n}")
            concrete = path.replace("{token_id}", str(info.id))
        bodies: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("POST", "/devices"): lambda: {
                "json": {"id": f"wl-new-{n}", "kind": "water_level", "name": "n"}
            },
            ("POST", "/devices/import"): lambda: {
                "content": f"id,kind,name\nwl-imp-{n},water_level,x\n",
                "headers": {"Content-Type": "text/csv"},
            },
            ("PATCH", "/devices/{device_id}"): lambda: {"json": {"notes": "checked"}},
            ("POST", "/devices/{device_id}/calibrations"): lambda: {
                "json": {"fields": {"level_cm": {"offset": 1.5}}}
            },
            ("POST", "/users"): lambda: {"json": {"name": f"user-{n}", "role": "viewer"}},
            ("PATCH", "/users/{user_id}"): lambda: {"json": {"role": "viewer"}},
            ("POST", "/users/{user_id}/tokens"): lambda: {"json": {"label": "x"}},
            ("POST", "/silences"): lambda: {
                "json": {"device_id": "wl-base", "ends_at": soon.isoformat(), "reason": "x"}
            },
            ("GET", "/alerts/stream"): lambda: {"params": {"timeout_s": 0.2}},
            ("POST", "/alerts/{alert_id}/ack"): lambda: {"json": {"note": "on my way"}},
        }
        return {"url": concrete, **bodies.get((method, path), dict)()}

    callers: dict[str, str | None] = {"none": None, "bad": "pt_not-a-real-token", **tokens}
    failures = []
    with TestClient(create_app(settings)) as client:
        for (method, path), role in sorted(MATRIX.items(), key=str):
            for caller, token in callers.items():
                request = request_for(method, path)
                headers = {**request.pop("headers", {}), **(bearer(token) if token else {})}
                response = client.request(method, headers=headers, **request)
                if role is PUBLIC:
                    expected = {200}
                elif caller in ("none", "bad"):
                    expected = {401}
                elif Role(caller) in ALLOWED[role]:
                    expected = {200, 201, 202}
                else:
                    expected = {403}
                if response.status_code not in expected:
                    failures.append(
                        f"{method} {path} as {caller}: {response.status_code} "
                        f"(expected {expected}) {response.text[:120]}"
                    )
    engine.dispose()
    assert failures == []


@pytest.mark.parametrize(
    "header", ["Bearer", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000, "Token abc"]
)
def test_malformed_authorization_is_401(settings: Settings, header: str) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/devices", headers={"Authorization": header})
        assert response.status_code == 401, response.text
