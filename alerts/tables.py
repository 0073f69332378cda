"""The alerting tables on the shared `pantau.sql.metadata`: episodes, their events, silences.

- `alert_episodes`: one row per episode. The database itself holds "at most one open episode
  per (rule, device)": a partial unique index on (rule, device_id) WHERE resolved_at IS NULL
  (SQLite and PostgreSQL both have partial indexes), so two ingesters racing, a redelivered
  batch or a restart can never open a second one.
- `alert_events`: the history, one row per change (opened, fired, escalated, de-escalated,
  acknowledged, resolved) with the Alert JSON after it, written in the same transaction as the
  episode change. The id is monotonic in commit order (the store serialises writers), so a
  consumer (SSE, MQTT, the notification outbox) follows it with "id > last seen".
- `alert_silences`: a device, a rule, or both, muted until `ends_at`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from pantau.ids import ID_MAX_CHARS
from pantau.sql import BIGINT_ID, metadata

STATES = "('pending', 'firing', 'acknowledged', 'resolved')"

episodes = Table(
    "alert_episodes",
    metadata,
    Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("device_id", String(ID_MAX_CHARS), nullable=False, index=True),
    Column("field", String(64)),
    Column("kind", String(64), nullable=False, default=""),
    Column("site", String(200), nullable=False, default=""),
    Column("district", String(100), nullable=False, default="", index=True),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("severity", String(16), nullable=False),
    Column("level", String(32), nullable=False),
    Column("level_rank", Integer, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("value", Float),
    Column("threshold", Float),
    Column("unit", String(16)),
    Column("trend", String(16)),
    Column("next_level", String(32)),
    Column("reason", String(200)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The reading time of the last change a rule made: an older (redelivered) reading's
    # verdict never overrides a newer one.
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("acknowledged_by", String(100)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("ack_note", Text),
    CheckConstraint(f"state IN {STATES}", name="state"),
    CheckConstraint("severity IN ('info', 'warning', 'critical')", name="severity"),
    Index(
        "uq_alert_episodes_open",
        "rule",
        "device_id",
        unique=True,
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
)

events = Table(
    "alert_events",
    metadata,
    Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    Column(
        "alert_id",
        BIGINT_ID,
        ForeignKey("alert_episodes.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("device_id", String(ID_MAX_CHARS), nullable=False, index=True),
    Column("rule", String(64), nullable=False),
    Column("transition", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("level", String(32), nullable=False),
    Column("value", Float),
    Column("by", String(100)),
    Column("note", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("alert", JSON, nullable=False),
    CheckConstraint(f"state IN {STATES}", name="state"),
)

silences = Table(
    "alert_silences",
    metadata,
    Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    Column("device_id", String(ID_MAX_CHARS)),
    Column("rule", String(64)),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False, index=True),
    Column("reason", Text, nullable=False, default=""),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("device_id IS NOT NULL OR rule IS NOT NULL", name="scope"),
)
