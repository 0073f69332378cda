"""The SQL database (SQLite by default, PostgreSQL in production): engine and shared metadata.

All of Pantau's tables are declared on `metadata` so one schema (and its migrations) covers
the registry and the dead letters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


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


def import_all_tables() -> None:
    """Declare every table on `metadata` (they live in the modules that own them)."""
    import devices.models  # noqa: F401
    import ingest.dead_letters  # noqa: F401


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
            command.upgrade(config, revision)
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()
