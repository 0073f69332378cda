"""Reminders and escalation for alerts left firing unacknowledged.

Counted on the wall clock from `alert_outbox_watch.unacked_since` (set by the relay when an
episode fires, cleared when it is acknowledged or resolved):

- every `reminder_interval_min` minutes a reminder to the immediate groups, cause
  `reminder:<since>:<n>` — the unique constraint makes the n-th reminder of one unacknowledged
  stretch a single row, however many dispatchers look, and a dispatcher that was down sends
  the latest reminder only, not the backlog;
- once a group's `escalate_after_min` has passed, the escalation group is told, cause
  `escalation:<since>:<group>` (once per stretch).

An acknowledgement or resolution stops both: the dispatcher cancels a reminder or escalation
row whose alert is no longer firing when it comes to send it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from alerts import tables
from alerts.outbox import insert_ignoring_repeats, lock_outbox, payload_for, targets
from alerts.outbox_tables import watch
from alerts.store import alert_from_row
from pantau.settings import RecipientGroup
from pantau.sql import as_utc


def schedule_reminders(
    conn: Connection,
    groups: Sequence[RecipientGroup],
    reminder_interval_min: float,
    now: datetime,
) -> int:
    """Enqueue the reminders and escalations due at `now`. The number of rows inserted."""
    lock_outbox(conn)
    e = tables.episodes
    rows = conn.execute(
        select(e, watch.c.unacked_since)
        .join(watch, watch.c.alert_id == e.c.id)
        .where(watch.c.unacked_since.is_not(None), e.c.state == "firing")
    ).all()
    inserted = 0
    for row in rows:
        since = as_utc(row.unacked_since)
        assert since is not None
        minutes = (now - since).total_seconds() / 60
        if minutes <= 0:
            continue
        alert = alert_from_row(row).to_json()
        stamp = int(since.timestamp())
        out: list[dict[str, Any]] = []
        if reminder_interval_min > 0 and minutes >= reminder_interval_min:
            n = int(minutes // reminder_interval_min)
            cause = f"reminder:{stamp}:{n}"
            body = payload_for(alert, "reminder", None, number=n)
            out += [
                _row(row.id, cause, "reminder", t.group, t.channel, t.recipient, body, now)
                for t in targets(groups, alert["severity"], escalation=False)
            ]
        for t in targets(groups, alert["severity"], escalation=True):
            group = next(g for g in groups if g.name == t.group)
            if minutes >= group.escalate_after_min:
                body = payload_for(alert, "escalation", None, after_min=group.escalate_after_min)
                cause = f"escalation:{stamp}:{t.group}"
                out.append(
                    _row(row.id, cause, "escalation", t.group, t.channel, t.recipient, body, now)
                )
        inserted += insert_ignoring_repeats(conn, out)
    return inserted


def _row(
    alert_id: int,
    cause: str,
    kind: str,
    group: str,
    channel: str,
    recipient: str,
    payload: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "event_id": None,
        "cause": cause,
        "kind": kind,
        "transition": None,
        "group_name": group,
        "channel": channel,
        "recipient": recipient,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "payload": payload,
        "created_at": now,
    }
