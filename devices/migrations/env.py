"""Alembic environment: runs migrations on the connection `devices.db.migrate` hands over.

Run through `migrate()` (or `alembic -x url=...` with `script_location` here) — autogenerate
compares against `devices.db.metadata` with every table module imported.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from devices.db import import_all_tables, make_engine, metadata

import_all_tables()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass -x url=<SQLAlchemy URL>, or call devices.db.migrate()")
    engine = make_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
