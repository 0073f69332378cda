"""Alert notification outbox: one row per (alert, cause, channel, recipient), and the relay's
high-water mark over alert_events, the unacknowledged-since watch.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", _ID, nullable=False),
        sa.Column("event_id", _ID, nullable=True),
        sa.Column("cause", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("transition", sa.String(length=16), nullable=True),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'sending', 'delivered', 'failed', 'cancelled')",
            name=op.f("ck_alert_outbox_state"),
        ),
        sa.CheckConstraint("channel IN ('webhook', 'email')", name=op.f("ck_alert_outbox_channel")),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert_episodes.id"],
            name=op.f("fk_alert_outbox_alert_id_alert_episodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_outbox")),
        sa.UniqueConstraint(
            "alert_id", "cause", "channel", "recipient", name="uq_alert_outbox_once"
        ),
    )
    with op.batch_alter_table("alert_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_alert_outbox_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_alert_outbox_alert_id", ["alert_id"], unique=False)
    op.create_table(
        "alert_outbox_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_event_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_outbox_cursor")),
    )
    # Events already recorded before notifications existed are history, not news.
    op.execute(
        "INSERT INTO alert_outbox_cursor (name, last_event_id) "
        "SELECT 'events', COALESCE(MAX(id), 0) FROM alert_events"
    )
    op.create_table(
        "alert_outbox_watch",
        sa.Column("alert_id", _ID, nullable=False),
        sa.Column("unacked_since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert_episodes.id"],
            name=op.f("fk_alert_outbox_watch_alert_id_alert_episodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alert_outbox_watch")),
    )


def downgrade() -> None:
    op.drop_table("alert_outbox_watch")
    op.drop_table("alert_outbox_cursor")
    with op.batch_alter_table("alert_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_outbox_alert_id")
        batch_op.drop_index("ix_alert_outbox_due")
    op.drop_table("alert_outbox")
