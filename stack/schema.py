"""Every SQL table module, imported together, so `pantau.sql.metadata` knows the whole schema.

Each package declares its own tables on the shared metadata; only the composition room may
import them all. Autogenerating a migration (`pantau db revision`) and the test that holds the
migrations to the models both need the whole schema.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from pantau.sql import metadata


def all_tables() -> MetaData:
    """The shared metadata with every table of every package declared on it."""
    import alerts.outbox_tables
    import alerts.tables
    import devices.models
    import ingest.dead_letters
    import people.models

    del alerts, devices, ingest, people  # imported for their tables
    return metadata
