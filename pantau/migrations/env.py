"""Alembic environment: runs migrations on the connection `pantau.sql.migrate` hands over.

Run through `migrate()` (or `alembic -x url=...` with `script_location` here). Revisions are
plain `op` scripts that import nothing of Pantau. To autogenerate one, the table modules must be
imported first so `pantau.sql.metadata` knows them: `pantau db revision -m "..."` does that
(the composition room, `stack/`, is the one place allowed to import every package).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from pantau.sql import make_engine, metadata


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
        raise SystemExit("pass -x url=<SQLAlchemy URL>, or call pantau.sql.migrate()")
    engine = make_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
