"""Alerts: list and filter, one with its history, acknowledge and resolve (responder), silences
(technician), a device's alert history, and the live Server-Sent Events stream.

Shapes follow the alerts contract (the Alert JSON of `alerts.model.Alert.to_json`). The SSE
stream follows the `alert_events` table by id (SQL, never InfluxDB): on connect it sends the
active alerts (or, with `Last-Event-ID`, every event after that id), then each new event,
and a `: ping` comment every 15 s. EventSource cannot set headers, so the stream also takes
the token as `?token=`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alerts.model import Alert, AlertEvent, Severity, State, iso
from alerts.store import AlertStore
from api.deps import Responder, ServicesDep, Technician, Viewer
from pantau.errors import RefusedError
from pantau.ids import DEVICE_ID_PATTERN
from pantau.text import Text200
from people.models import Role
from people.schemas import UserPublic

MAX_ID = 2**63 - 1
AlertIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="An alert (episode) id")]
SilenceIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="A silence's id")]
DeviceIdPath = Annotated[str, Path(max_length=64, pattern=f"^{DEVICE_ID_PATTERN}$")]
PING_INTERVAL_S = 15.0
POLL_INTERVAL_S = 0.25

router = APIRouter(tags=["alerts"])


def store_of(services: ServicesDep) -> AlertStore:
    return AlertStore(services.engine)


StoreDep = Annotated[AlertStore, Depends(store_of)]


class NoteBody(BaseModel):
    note: Text200 | None = Field(default=None, description="What was done, for the history")


class SilenceCreate(BaseModel):
    device_id: str | None = Field(default=None, max_length=64, pattern=f"^{DEVICE_ID_PATTERN}$")
    rule: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9_]+$")
    ends_at: AwareDatetime
    reason: Text200 = ""


def _with_history(store: AlertStore, alert: Alert) -> dict[str, Any]:
    body = alert.to_json()
    body["history"] = [
        {
            "at": iso(e.at),
            "transition": e.transition.value,
            "state": e.state.value,
            "level": e.level,
            "value": e.value,
            "by": e.by,
            "note": e.note,
        }
        for e in store.history(alert.id)
    ]
    return body


@router.get("/alerts", summary="Alerts, newest first, filtered and paged")
def list_alerts(
    request: Request,
    store: StoreDep,
    _: Viewer,
    state: Annotated[
        str | None,
        Query(
            pattern="^(active|pending|firing|acknowledged|resolved)$",
            description="active = not resolved",
        ),
    ] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    district: Annotated[str | None, Query(max_length=100)] = None,
    severity: Annotated[Severity | None, Query()] = None,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    alerts = store.list_alerts(
        state=state,
        device_id=device_id,
        district=district,
        severity=severity.value if severity else None,
        rule=rule,
        limit=limit,
        before_id=before_id,
    )
    next_url = None
    if len(alerts) == limit:
        params = {k: v for k, v in request.query_params.items() if k != "before_id"}
        params["before_id"] = str(alerts[-1].id)
        next_url = f"/alerts?{urlencode(params)}"
    return {"alerts": [a.to_json() for a in alerts], "next": next_url}


_bearer = HTTPBearer(auto_error=False)


def stream_viewer(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[str | None, Query(max_length=200, description="For EventSource")] = None,
) -> UserPublic:
    """A viewer (or more), by bearer header or `?token=`."""
    secret = credentials.credentials if credentials else token
    challenge = {"WWW-Authenticate": "Bearer"}
    if not secret:
        raise HTTPException(401, "authentication required: send a bearer token", challenge)
    user = services.people.authenticate(secret) if len(secret) <= 200 else None
    if user is None:
        raise HTTPException(401, "invalid token", challenge)
    return user


stream_viewer.required_role = Role.VIEWER  # type: ignore[attr-defined]


def _sse(event_id: int, body: dict[str, Any]) -> bytes:
    return b"id: %d\nevent: alert\ndata: %s\n\n" % (event_id, orjson.dumps(body))


@router.get(
    "/alerts/stream",
    summary="Live alerts as Server-Sent Events (active ones first, then every change)",
    response_class=StreamingResponse,
)
async def stream_alerts(
    store: StoreDep,
    _: Annotated[UserPublic, Depends(stream_viewer)],
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    timeout_s: Annotated[
        float | None, Query(gt=0, le=86400, description="Close the stream after this long")
    ] = None,
) -> StreamingResponse:
    try:
        resume = int(last_event_id) if last_event_id else None
    except ValueError:
        raise HTTPException(422, "Last-Event-ID must be an event id") from None

    async def events() -> AsyncIterator[bytes]:
        started = last_ping = time.monotonic()
        if resume is None:
            cursor = await run_in_threadpool(store.last_event_id)
            for alert in await run_in_threadpool(store.active):
                yield _sse(cursor, alert.to_json())
        else:
            cursor = resume
        yield b": connected\n\n"
        while timeout_s is None or time.monotonic() - started < timeout_s:
            batch: list[AlertEvent] = await run_in_threadpool(store.events_after, cursor)
            for event in batch:
                cursor = event.id
                yield _sse(event.id, event.alert)
            now = time.monotonic()
            if now - last_ping >= PING_INTERVAL_S:
                last_ping = now
                yield b": ping\n\n"
            if not batch:
                await asyncio.sleep(POLL_INTERVAL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/alerts/{alert_id}", summary="One alert with its full history")
def get_alert(alert_id: AlertIdPath, store: StoreDep, _: Viewer) -> dict[str, Any]:
    return _with_history(store, store.get(alert_id))


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge: I have it (409 when resolved)")
def acknowledge_alert(
    alert_id: AlertIdPath, store: StoreDep, user: Responder, body: NoteBody | None = None
) -> dict[str, Any]:
    alert, _ = store.acknowledge(alert_id, user.name, body.note if body else None)
    return alert.to_json()


@router.post("/alerts/{alert_id}/resolve", summary="Resolve the episode")
def resolve_alert(
    alert_id: AlertIdPath, store: StoreDep, user: Responder, body: NoteBody | None = None
) -> dict[str, Any]:
    alert, _ = store.resolve(alert_id, user.name, body.note if body else None)
    return alert.to_json()


@router.get("/devices/{device_id}/alerts", summary="A device's alerts, newest first")
def device_alerts(
    device_id: DeviceIdPath,
    services: ServicesDep,
    store: StoreDep,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    services.registry.get_device(device_id)  # 404 for an unknown device
    return {"alerts": [a.to_json() for a in store.list_alerts(device_id=device_id, limit=limit)]}


@router.post(
    "/silences", status_code=201, summary="Silence a device, a rule, or both, until ends_at"
)
def create_silence(body: SilenceCreate, store: StoreDep, user: Technician) -> dict[str, Any]:
    if body.ends_at <= datetime.now(body.ends_at.tzinfo):
        raise RefusedError("ends_at must be in the future", "ends_at")
    silence = store.add_silence(
        device_id=body.device_id,
        rule=body.rule,
        ends_at=body.ends_at,
        reason=body.reason,
        created_by=user.name,
    )
    return silence.to_json()


@router.get("/silences", summary="Silences in force")
def list_silences(store: StoreDep, _: Viewer) -> dict[str, Any]:
    return {"silences": [s.to_json() for s in store.silences()]}


@router.delete("/silences/{silence_id}", summary="End a silence now")
def delete_silence(silence_id: SilenceIdPath, store: StoreDep, _: Technician) -> dict[str, Any]:
    store.delete_silence(silence_id)
    return {"deleted": silence_id}


__all__ = ["State", "router"]
