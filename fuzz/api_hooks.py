"""Schemathesis hooks for `fuzz/api.py` (loaded through SCHEMATHESIS_HOOKS): authentication.

Every request carries an admin's bearer token, so every route is reached past its role check.
The fuzzer itself may disable that admin or revoke its token (`PATCH /users/{id}`,
`DELETE /tokens/{id}` with a generated id): on a 401 schemathesis asks again, and `get` makes
a fresh admin straight in the database under test.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import schemathesis

_serial = itertools.count(1)


@schemathesis.auth(refresh_interval=None, retry_on=[401])
class FreshAdminToken:
    """An admin token minted in the API's own database (PANTAU_DATABASE__URL)."""

    def __init__(self) -> None:
        self._people: Any = None

    def get(self, case: Any, context: Any) -> str:
        from pantau.sql import make_engine
        from people.accounts import People
        from people.models import Role
        from people.schemas import UserCreate

        if self._people is None:
            self._people = People(make_engine(os.environ["PANTAU_DATABASE__URL"]))
        name = f"fuzz-admin-{os.getpid()}-{next(_serial)}"
        _, token = self._people.create_user(UserCreate(name=name, role=Role.ADMIN))
        return str(token)

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
