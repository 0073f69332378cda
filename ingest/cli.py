"""`pantau ingest`: run the ingester in the foreground."""

from __future__ import annotations

import typer

from pantau.logs import configure_logging
from pantau.settings import Settings


def ingest_command() -> None:
    """Subscribe to device telemetry and write validated readings to InfluxDB."""
    from ingest.service import run_ingester

    settings = Settings()
    configure_logging(settings.log_level, settings.display_timezone, "ingest")
    run_ingester(settings)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)
