"""Wire shapes of people (Create / Update / Public per resource), with validation.

The API and the CLI validate through these, so a bad name or role is refused the same way
everywhere. A token's secret crosses the wire once, in `TokenIssued`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pantau.text import Text100
from people.models import Role

UserName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"),
    Field(description="Login name: letters, digits, . _ @ -", examples=["rina.technician"]),
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: UserName
    role: Role


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    disabled: bool
    created_at: Annotated[datetime, AfterValidator(_utc)]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Text100 = ""


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    label: str
    created_at: datetime
    revoked_at: datetime | None


class TokenIssued(BaseModel):
    """A new token: the only time its secret is shown."""

    token: str = Field(description="Send as `Authorization: Bearer <token>`; shown once")
    info: TokenPublic
