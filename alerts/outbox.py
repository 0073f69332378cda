"""The durable notification outbox: enqueue from alert events, claim due rows, record outcomes.

Guarantee: every alert event that needs telling becomes one row per (channel, recipient) in
`alert_outbox`, and each row ends delivered, failed (after `max_attempts`, logged and listed by
`pantau notify list --state failed`) or cancelled (a reminder whose alert was acknowledged or
resolved first) — never silently dropped, never enqueued twice:

- the relay (`relay_events`) reads `alert_events` after a stored high-water mark and writes the
  outbox rows and the new mark in one transaction, so a crash repeats the whole step or none of
  it; the unique constraint (alert, cause, channel, recipient) turns any repeat into nothing.
  The core commits event ids in order (alerts/store.py), so "id > mark" skips no event;
- `enqueue_notifications(conn, event, groups)` is the same step for one event, for a writer
  that wants the rows in its own transaction;
- `claim_due` hands a batch of due rows to one dispatcher (PostgreSQL: FOR UPDATE SKIP LOCKED;
  SQLite: one UPDATE … RETURNING under its single writer) with a lease; a dispatcher that dies
  mid-send leaves rows whose lease runs out and which another (or the restarted) one claims.
  Delivery is therefore at least once; every retry of a row carries the same delivery id
  (`X-Pantau-Delivery`, the e-mail Message-ID), so a receiver that keeps ids sees it once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from alerts import tables
from alerts.outbox_tables import cursor, outbox, watch
from pantau.settings import NotifySettings, RecipientGroup
from pantau.sql import as_utc

log = logging.getLogger(__name__)

CURSOR_NAME = "events"
# Which changes of an episode people are told of (a pending episode is not news yet).
NOTIFY_TRANSITIONS = frozenset({"firing", "escalated", "deescalated", "acknowledged", "resolved"})


@dataclass(frozen=True, slots=True)
class Target:
    """One recipient of one channel, in a group."""

    group: str
    channel: str  # webhook | email
    recipient: str  # URL or address


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row handed to one dispatcher."""

    id: int
    alert_id: int
    kind: str
    group: str
    channel: str
    recipient: str
    attempts: int
    payload: dict[str, Any]


def targets(groups: Iterable[RecipientGroup], severity: str, *, escalation: bool) -> list[Target]:
    """The recipients of the groups that take `severity`: the immediate groups, or (with
    `escalation`) the escalation groups."""
    out: list[Target] = []
    for group in groups:
        if severity not in group.severities or (group.escalate_after_min > 0) != escalation:
            continue
        out += [Target(group.name, "webhook", w.url) for w in group.webhooks]
        out += [Target(group.name, "email", address) for address in group.emails]
    return out


def insert_ignoring_repeats(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert outbox rows; one that is already there (same alert, cause, channel, recipient)
    is skipped by the database. The number inserted."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(outbox).on_conflict_do_nothing(
        index_elements=["alert_id", "cause", "channel", "recipient"]
    )
    return int(conn.execute(statement, list(rows)).rowcount or 0)


def payload_for(alert: dict[str, Any], kind: str, event_id: int | None, **extra: Any) -> dict:
    """The body a channel sends: the Alert JSON plus a `notification` part saying why."""
    body = dict(alert)
    body["notification"] = {"kind": kind, "event_id": event_id, **extra}
    return body


def enqueue_notifications(
    conn: Connection, event: Any, groups: Sequence[RecipientGroup], now: datetime
) -> int:
    """The outbox rows for one `alert_events` row (an AlertEvent or a row mapping), in the
    caller's transaction; a repeat inserts nothing. The number of rows inserted."""

    def get(key: str) -> Any:
        return event[key] if isinstance(event, dict) else getattr(event, key)

    transition = str(get("transition"))
    if transition not in NOTIFY_TRANSITIONS:
        return 0
    alert = dict(get("alert"))
    recipients = targets(groups, str(alert.get("severity")), escalation=False)
    if transition in ("acknowledged", "resolved"):
        # An escalation group that was told an alert is unattended hears when it is attended.
        told = conn.execute(
            select(outbox.c.group_name, outbox.c.channel, outbox.c.recipient)
            .where(outbox.c.alert_id == get("alert_id"), outbox.c.kind == "escalation")
            .distinct()
        ).all()
        recipients += [Target(g, c, r) for g, c, r in told if Target(g, c, r) not in recipients]
    rows = [
        {
            "alert_id": get("alert_id"),
            "event_id": get("id"),
            "cause": f"event:{get('id')}",
            "kind": "event",
            "transition": transition,
            "group_name": target.group,
            "channel": target.channel,
            "recipient": target.recipient,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "payload": payload_for(alert, "event", get("id"), transition=transition),
            "created_at": now,
        }
        for target in recipients
    ]
    return insert_ignoring_repeats(conn, rows)


def lock_outbox(conn: Connection) -> bool:
    """Begin the caller's transaction with a write (a row lock on PostgreSQL, the write lock on
    SQLite) before anything is read, so two relays or schedulers take turns instead of both
    reading the same state — and SQLite never has to upgrade a read to a write, which fails
    at once when another writer committed in between. False when the cursor row is missing."""
    return bool(
        conn.execute(
            update(cursor)
            .where(cursor.c.name == CURSOR_NAME)
            .values(last_event_id=cursor.c.last_event_id)
        ).rowcount
    )


def relay_events(
    conn: Connection, groups: Sequence[RecipientGroup], now: datetime, limit: int = 500
) -> int:
    """Move the events after the high-water mark into the outbox, and the mark past them,
    in the caller's transaction. The number of events relayed."""
    if not lock_outbox(conn):
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(cursor)
            .values(name=CURSOR_NAME, last_event_id=0)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    mark = conn.execute(
        select(cursor.c.last_event_id).where(cursor.c.name == CURSOR_NAME)
    ).scalar_one()
    e = tables.events
    rows = conn.execute(select(e).where(e.c.id > mark).order_by(e.c.id).limit(limit)).all()
    if not rows:
        return 0
    for row in rows:
        event = dict(row._mapping)
        enqueue_notifications(conn, event, groups, now)
        watch_unacknowledged(conn, event["alert_id"], str(event["state"]), now)
    conn.execute(
        update(cursor).where(cursor.c.name == CURSOR_NAME).values(last_event_id=rows[-1].id)
    )
    return len(rows)


def watch_unacknowledged(conn: Connection, alert_id: int, state: str, now: datetime) -> None:
    """Keep `alert_outbox_watch` in step with an event: firing starts the unacknowledged
    clock (unless it runs already), acknowledged or resolved stops it."""
    if state == "firing":
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(watch)
            .values(alert_id=alert_id, unacked_since=now)
            .on_conflict_do_nothing(index_elements=["alert_id"])
        )
        conn.execute(
            update(watch)
            .where(watch.c.alert_id == alert_id, watch.c.unacked_since.is_(None))
            .values(unacked_since=now)
        )
    elif state in ("acknowledged", "resolved"):
        conn.execute(update(watch).where(watch.c.alert_id == alert_id).values(unacked_since=None))


def _due(now: datetime) -> Any:
    return ((outbox.c.state == "pending") & (outbox.c.next_attempt_at <= now)) | (
        (outbox.c.state == "sending") & (outbox.c.claimed_until < now)
    )


def work_waiting(conn: Connection, now: datetime) -> bool:
    """A read-only look: are there events past the mark or rows due? Idle rounds take no
    write lock (the ingester writes the same database)."""
    mark = conn.execute(select(cursor.c.last_event_id).where(cursor.c.name == CURSOR_NAME)).scalar()
    newest = conn.execute(select(func.max(tables.events.c.id))).scalar()
    if newest is not None and (mark is None or newest > mark):
        return True
    return conn.execute(select(outbox.c.id).where(_due(now)).limit(1)).first() is not None


def claim_due(
    conn: Connection, worker: str, now: datetime, lease_s: float, limit: int
) -> list[Claimed]:
    """Claim up to `limit` due rows for `worker` (pending and due, or sending with a lapsed
    lease); each claim counts as an attempt. A row waits while an earlier row for the same
    alert and recipient is unfinished, so each recipient hears of an alert's changes in order
    (a recipient that is down holds back only its own later notifications)."""
    earlier = outbox.alias("earlier")
    blocked = (
        select(earlier.c.id)
        .where(
            earlier.c.alert_id == outbox.c.alert_id,
            earlier.c.channel == outbox.c.channel,
            earlier.c.recipient == outbox.c.recipient,
            earlier.c.id < outbox.c.id,
            earlier.c.state.in_(("pending", "sending")),
        )
        .exists()
    )
    due = select(outbox.c.id).where(_due(now)).where(~blocked).order_by(outbox.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(
            state="sending",
            claimed_by=worker,
            claimed_until=now + timedelta(seconds=lease_s),
            attempts=outbox.c.attempts + 1,
        )
        .returning(
            outbox.c.id,
            outbox.c.alert_id,
            outbox.c.kind,
            outbox.c.group_name,
            outbox.c.channel,
            outbox.c.recipient,
            outbox.c.attempts,
            outbox.c.payload,
        )
    ).all()
    return sorted(
        (
            Claimed(
                r.id,
                r.alert_id,
                r.kind,
                r.group_name,
                r.channel,
                r.recipient,
                r.attempts,
                r.payload,
            )
            for r in rows
        ),
        key=lambda c: c.id,
    )


def mark_delivered(conn: Connection, row_id: int, worker: str, now: datetime) -> bool:
    """Delivered, if the row is still this worker's claim (else another took it over)."""
    return bool(
        conn.execute(
            update(outbox)
            .where(outbox.c.id == row_id, outbox.c.claimed_by == worker)
            .where(outbox.c.state == "sending")
            .values(state="delivered", delivered_at=now, claimed_until=None, last_error=None)
        ).rowcount
    )


def mark_cancelled(conn: Connection, row_id: int, worker: str, reason: str) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == row_id, outbox.c.claimed_by == worker)
        .values(state="cancelled", claimed_until=None, last_error=reason)
    )


def retry_delay_s(attempts: int, settings: NotifySettings, rng: random.Random) -> float:
    """Exponential back-off with jitter: base·2^(attempts-1), capped, times 0.5 to 1.0."""
    delay = min(settings.retry_max_s, settings.retry_base_s * 2 ** max(attempts - 1, 0))
    return delay * (0.5 + rng.random() / 2)


def mark_failed_attempt(
    conn: Connection,
    claim: Claimed,
    worker: str,
    now: datetime,
    error: str,
    settings: NotifySettings,
    rng: random.Random,
) -> str:
    """After a failed send: back to pending with a later next attempt, or failed for good
    after the last attempt. The row's new state."""
    final = claim.attempts >= settings.max_attempts
    state = "failed" if final else "pending"
    next_at = now + timedelta(seconds=retry_delay_s(claim.attempts, settings, rng))
    conn.execute(
        update(outbox)
        .where(outbox.c.id == claim.id, outbox.c.claimed_by == worker)
        .values(state=state, next_attempt_at=next_at, claimed_until=None, last_error=error[:1000])
    )
    if final:
        log.error(
            "notification %s (alert %s, %s to %s) failed after %d attempts: %s",
            claim.id,
            claim.alert_id,
            claim.channel,
            claim.recipient,
            claim.attempts,
            error,
        )
    else:
        log.warning(
            "notification %s to %s failed (attempt %d), next try in %.1f s: %s",
            claim.id,
            claim.recipient,
            claim.attempts,
            (next_at - now).total_seconds(),
            error,
        )
    return state


def list_rows(conn: Connection, state: str | None = None, limit: int = 100) -> list[dict]:
    """Outbox rows, newest first, for the CLI and the API."""
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if state:
        query = query.where(outbox.c.state == state)
    out = []
    for row in conn.execute(query):
        m = dict(row._mapping)
        for key in ("next_attempt_at", "claimed_until", "created_at", "delivered_at"):
            m[key] = as_utc(m[key])
        out.append(m)
    return out


def counts(conn: Connection) -> dict[str, int]:
    """Rows per state."""
    rows = conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()
    return {state: int(n) for state, n in rows}
