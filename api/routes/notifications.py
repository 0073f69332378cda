"""Alert notifications: the outbox as responders see it — what went out, what is waiting,
what failed after its last attempt (never dropped silently). Responder or admin: the rows name
recipients (e-mail addresses, webhook URLs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from alerts.outbox import counts, list_rows
from api.deps import Responder, ServicesDep

router = APIRouter(tags=["alerts"])
OutboxState = Literal["pending", "sending", "delivered", "failed", "cancelled"]


class NotificationOut(BaseModel):
    id: int
    alert_id: int
    event_id: int | None
    kind: str
    transition: str | None
    group: str
    channel: str
    recipient: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> NotificationOut:
        return cls(group=row["group_name"], **{k: row[k] for k in cls.model_fields if k != "group"})


class NotificationList(BaseModel):
    counts: dict[str, int]
    notifications: list[NotificationOut]


@router.get("/notifications", summary="The notification outbox, newest first")
async def list_notifications(
    services: ServicesDep,
    _user: Responder,
    state: Annotated[OutboxState | None, Query(description="Only rows in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> NotificationList:
    def read() -> NotificationList:
        with services.engine.connect() as conn:
            rows = list_rows(conn, state, limit)
            totals = counts(conn)
        return NotificationList(counts=totals, notifications=[NotificationOut.of(r) for r in rows])

    return await run_in_threadpool(read)
