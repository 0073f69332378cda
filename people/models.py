"""People's tables as SQLAlchemy 2 models: users with one role each, and their API tokens.

Storage shapes only; what crosses the API is in `people/schemas.py`. Tokens are stored as the
SHA-256 of their 32 random bytes (`people/tokens.py`), never in the clear.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from pantau.sql import BIGINT_ID, Base, utcnow


class Role(enum.StrEnum):
    """API roles, least to most powerful; admin can do everything."""

    VIEWER = "viewer"  # read readings, devices, alerts, dead letters
    TECHNICIAN = "technician"  # register, edit, calibrate, retire devices; silence alerts
    RESPONDER = "responder"  # acknowledge and resolve alerts
    ADMIN = "admin"  # users and tokens


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'technician', 'responder', 'admin')", name="role"),
    )

    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        BIGINT_ID, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 hex of the token: a 32-byte random token needs no slow hash or salt.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
