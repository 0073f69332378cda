"""The notification outbox tables on the shared `pantau.sql.metadata`.

- `alert_outbox`: one row per notification to send — (alert, cause, channel, recipient), where
  the cause is `event:<alert_events.id>`, `reminder:<since>:<n>` or `escalation:<since>:<group>`.
  A unique constraint on (alert_id, cause, channel, recipient) means one notification is
  enqueued once, whoever enqueues it and however often. A row moves pending → sending (claimed,
  with a lease) → delivered, or back to pending with a later `next_attempt_at`, or to failed
  after the last attempt, or to cancelled (a reminder whose alert was acknowledged meanwhile).
- `alert_outbox_cursor`: the relay's high-water mark over `alert_events.id` (one row).
- `alert_outbox_watch`: per alert, since when (wall clock) it has been firing unacknowledged,
  set and cleared by the relay from the events; reminders and escalation count from it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from pantau.sql import BIGINT_ID, metadata

OUTBOX_STATES = ("pending", "sending", "delivered", "failed", "cancelled")

outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    Column(
        "alert_id",
        BIGINT_ID,
        ForeignKey("alert_episodes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", BIGINT_ID),  # the alert_events row it tells of (null for reminders)
    Column("cause", String(80), nullable=False),  # event:<id> | reminder:.. | escalation:..
    Column("kind", String(16), nullable=False),  # event | reminder | escalation
    Column("transition", String(16)),  # the event's transition (firing, escalated, ...)
    Column("group_name", String(64), nullable=False),
    Column("channel", String(16), nullable=False),  # webhook | email
    Column("recipient", String(500), nullable=False),  # URL or e-mail address
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", String(64)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint("alert_id", "cause", "channel", "recipient", name="uq_alert_outbox_once"),
    CheckConstraint(
        "state IN ('pending', 'sending', 'delivered', 'failed', 'cancelled')", name="state"
    ),
    CheckConstraint("channel IN ('webhook', 'email')", name="channel"),
    Index("ix_alert_outbox_due", "state", "next_attempt_at"),
    Index("ix_alert_outbox_alert_id", "alert_id"),
)

cursor = Table(
    "alert_outbox_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("last_event_id", BIGINT_ID, nullable=False),
)

watch = Table(
    "alert_outbox_watch",
    metadata,
    Column(
        "alert_id",
        BIGINT_ID,
        ForeignKey("alert_episodes.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("unacked_since", DateTime(timezone=True)),  # null: acknowledged or resolved
)
