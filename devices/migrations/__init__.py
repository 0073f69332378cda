"""Alembic migrations of Pantau's SQL schema (registry, people, dead letters); see `db.migrate`."""
