"""Dead letters: every rejected message, stored durably with its topic, payload, reason, time.

Delivery guarantee: `store` returns after the rows are committed, so a message is acknowledged
to the broker only once its dead letter exists. Payloads are capped at `PAYLOAD_CAP_BYTES`
(the size is kept). The API lists, filters and replays them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    insert,
    select,
)

from ingest.model import Rejection
from pantau.sql import metadata

PAYLOAD_CAP_BYTES = 64 * 1024
TOPIC_CAP_CHARS = 1024
DETAIL_CAP_CHARS = 2000

dead_letters_table = Table(
    "dead_letters",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("topic", String(TOPIC_CAP_CHARS), nullable=False),
    Column("device_id", String(128), nullable=True, index=True),
    Column("reason", String(40), nullable=False, index=True),
    Column("detail", Text, nullable=False),
    Column("content_type", String(200), nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("payload_size", Integer, nullable=False),
    Column("replay_count", Integer, nullable=False, default=0),
    Column("replayed_at", DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str
    content_type: str | None
    payload: bytes
    payload_size: int
    replay_count: int
    replayed_at: datetime | None


def device_id_from_topic(topic: str, prefix: str) -> str | None:
    """The id segment of a device topic, or None; kept only for filtering, never trusted."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    segment = topic[len(head) :].split("/", 1)[0]
    return segment[:128] or None


class DeadLetterStore:
    """SQL-backed store of rejected messages."""

    def __init__(self, engine: Engine, topic_prefix: str = "pantau/devices") -> None:
        self.engine = engine
        self.topic_prefix = topic_prefix

    def create_schema(self) -> None:
        """Upgrade the whole SQL schema (Alembic), this table included."""
        from pantau.sql import migrate

        migrate(self.engine)

    def store(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        rows = [
            {
                "received_at": datetime.fromtimestamp(r.message.received_ms / 1000, UTC),
                "topic": r.message.topic[:TOPIC_CAP_CHARS],
                "device_id": device_id_from_topic(r.message.topic, self.topic_prefix),
                "reason": r.reason.value,
                "detail": r.detail[:DETAIL_CAP_CHARS],
                "content_type": (r.message.content_type or None) and r.message.content_type[:200],
                "payload": bytes(r.message.payload[:PAYLOAD_CAP_BYTES]),
                "payload_size": len(r.message.payload),
                "replay_count": 0,
            }
            for r in rejections
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(dead_letters_table), rows)

    def list(
        self,
        *,
        device_id: str | None = None,
        reason: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[DeadLetter]:
        t = dead_letters_table
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if device_id is not None:
            query = query.where(t.c.device_id == device_id)
        if reason is not None:
            query = query.where(t.c.reason == reason)
        if before_id is not None:
            query = query.where(t.c.id < before_id)
        with self.engine.connect() as conn:
            return [_row(row) for row in conn.execute(query).mappings()]

    def get(self, dead_letter_id: int) -> DeadLetter | None:
        t = dead_letters_table
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == dead_letter_id)).mappings().first()
        return _row(row) if row is not None else None

    def mark_replayed(self, dead_letter_id: int) -> None:
        t = dead_letters_table
        with self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == dead_letter_id)
                .values(replay_count=t.c.replay_count + 1, replayed_at=datetime.now(UTC))
            )


def _row(row: object) -> DeadLetter:
    data = dict(row)  # type: ignore[call-overload]
    for key in ("received_at", "replayed_at"):
        value = data[key]
        if value is not None and value.tzinfo is None:  # SQLite drops the zone
            data[key] = value.replace(tzinfo=UTC)
    return DeadLetter(**data)
