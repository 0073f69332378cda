"""People's operations in SQL: users, roles, tokens, and who a token belongs to.

One class, `People`, used by the API (`api/deps.py` authenticates every request with it), the
CLI (`pantau users ...`) and the stack. A token's secret is returned once and stored only as
its SHA-256 (`people/tokens.py`). Changes that could leave no active admin take a database
lock first, so two concurrent demotions cannot both pass the "not the last admin" check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pantau.errors import ConflictError, DuplicateError, NotFoundError
from pantau.sql import as_utc, utcnow
from people.models import ApiToken, Role, User
from people.schemas import TokenPublic, UserCreate, UserPublic, UserUpdate
from people.tokens import generate_token, token_hash

# Any 64-bit number: PostgreSQL's advisory lock key serialising changes to people.
_PEOPLE_LOCK_KEY = 0x70656F706C65


class People:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _change(self) -> Iterator[Session]:
        """A write transaction; on PostgreSQL people's writers take turns (SQLite has one)."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                session.execute(select(func.pg_advisory_xact_lock(_PEOPLE_LOCK_KEY)))
            yield session

    def create_user(self, data: UserCreate, token_label: str = "first") -> tuple[UserPublic, str]:
        """A user and a first token for them (shown once)."""
        try:
            with self._change() as session:
                if session.scalar(select(User).where(User.name == data.name)) is not None:
                    raise DuplicateError(f"user {data.name} already exists", "name")
                user = User(name=data.name, role=data.role.value, disabled=False)
                session.add(user)
                session.flush()
                token = generate_token()
                session.add(
                    ApiToken(user_id=user.id, token_hash=token_hash(token), label=token_label)
                )
                return UserPublic.model_validate(user), token
        except IntegrityError as exc:
            raise DuplicateError(f"user {data.name} already exists", "name") from exc

    def list_users(self) -> list[UserPublic]:
        with Session(self.engine) as session:
            return [
                UserPublic.model_validate(u)
                for u in session.scalars(select(User).order_by(User.id))
            ]

    def get_user(self, user_id: int) -> UserPublic:
        with Session(self.engine) as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFoundError(f"no user {user_id}", "user_id")
            return UserPublic.model_validate(user)

    def find_user(self, name: str) -> UserPublic:
        """The user called `name`."""
        with Session(self.engine) as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFoundError(f"no user {name}", "name")
            return UserPublic.model_validate(user)

    def update_user(self, user_id: int, data: UserUpdate) -> UserPublic:
        with self._change() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFoundError(f"no user {user_id}", "user_id")
            was_admin = user.role == Role.ADMIN.value and not user.disabled
            if data.role is not None:
                user.role = data.role.value
            if data.disabled is not None:
                user.disabled = data.disabled
            session.flush()
            if was_admin and (user.role != Role.ADMIN.value or user.disabled):
                admins = session.scalar(
                    select(func.count())
                    .select_from(User)
                    .where(User.role == Role.ADMIN.value, User.disabled.is_(False))
                )
                if not admins:
                    raise ConflictError("the last active admin cannot be demoted or disabled")
            return UserPublic.model_validate(user)

    def issue_token(self, user_id: int, label: str = "") -> tuple[TokenPublic, str]:
        token = generate_token()
        with self._change() as session:
            if session.get(User, user_id) is None:
                raise NotFoundError(f"no user {user_id}", "user_id")
            row = ApiToken(user_id=user_id, token_hash=token_hash(token), label=label)
            session.add(row)
            session.flush()
            return _token_public(row), token

    def list_tokens(self, user_id: int) -> list[TokenPublic]:
        with Session(self.engine) as session:
            if session.get(User, user_id) is None:
                raise NotFoundError(f"no user {user_id}", "user_id")
            rows = session.scalars(
                select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
            )
            return [_token_public(row) for row in rows]

    def revoke_token(self, token_id: int) -> TokenPublic:
        with self._change() as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise NotFoundError(f"no token {token_id}", "token_id")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            session.flush()
            return _token_public(row)

    def authenticate(self, token: str) -> UserPublic | None:
        """The user a live token belongs to, or None (unknown, revoked, or user disabled)."""
        with Session(self.engine) as session:
            user = session.scalar(
                select(User)
                .join(ApiToken, ApiToken.user_id == User.id)
                .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
            )
            if user is None or user.disabled:
                return None
            return UserPublic.model_validate(user)


def _token_public(row: ApiToken) -> TokenPublic:
    return TokenPublic(
        id=row.id,
        user_id=row.user_id,
        label=row.label,
        created_at=as_utc(row.created_at) or utcnow(),
        revoked_at=as_utc(row.revoked_at),
    )
