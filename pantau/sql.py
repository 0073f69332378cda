"""The SQL database (SQLite by default, PostgreSQL in production): engine, metadata, migrations.

Every table of Pantau is declared on `metadata` (through `Base` for ORM models) by the package
that owns it — devices, people, dead letters — so one Alembic history (`pantau/migrations/`)
covers them all. This module knows none of those tables: it is the floor they stand on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase

log = logging.getLogger(__name__)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A 64-bit primary key on PostgreSQL; SQLite autoincrements only a plain INTEGER.
BIGINT_ID = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    """The declarative base of every ORM model, on the shared `metadata`."""

    metadata = metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite drops the zone of a stored datetime; every time we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def make_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file gets its folder, WAL mode and a busy timeout."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the API read while the ingester writes; a committed row survives a
            # process crash.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any 64-bit number: PostgreSQL's advisory lock key serialising concurrent migrations.
_MIGRATION_LOCK_KEY = 0x70616E746175


def migrate(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Upgrade the database to `revision` (Alembic); safe to call at every start.

    The API, the ingester and `pantau up` call it; on PostgreSQL an advisory lock makes
    processes starting together take turns instead of racing on the same DDL.
    """
    from alembic import command
    from alembic.config import Config

    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
            config.attributes["connection"] = connection
            before = _schema_revision(connection)
            command.upgrade(config, revision)
            after = _schema_revision(connection)
        if after != before:
            log.info("SQL schema upgraded from %s to %s", before or "nothing", after)
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()


def _schema_revision(connection: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
