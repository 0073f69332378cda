"""Alembic migrations of Pantau's SQL schema (registry, people, dead letters); see `db.migrate`.

A new revision: `.venv/bin/alembic -c pantau/migrations/alembic.ini -x url=sqlite:///var/x.db
revision --autogenerate -m "..."` against a database at head, then review the file by hand.
"""
