"""Refusals: what a domain raises when it will not do what was asked.

Every package raises these (not HTTP errors); the API maps them to status codes in one place
(`NotFoundError` 404, `DuplicateError` and `ConflictError` 409, any other `RefusedError` 422),
and the CLI prints their message. `field` names what was wrong when one thing was.
"""

from __future__ import annotations

from typing import Any


class RefusedError(Exception):
    """A request refused with a reason a person can act on."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(RefusedError):
    """The thing asked for does not exist."""


class DuplicateError(RefusedError):
    """It exists already."""


class ConflictError(RefusedError):
    """The change would leave the data in a state it must not be in."""


def error_messages(exc: Any) -> list[str]:
    """A pydantic ValidationError as 'field: message' lines."""
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "row"
        out.append(f"{where}: {err.get('msg', '')}")
    return out
