"""`pantau api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

import typer

from pantau.logs import configure_logging
from pantau.settings import Settings


def api_command() -> None:
    """Serve the HTTP API (host and port from PANTAU_API__HOST / PANTAU_API__PORT)."""
    import uvicorn

    from api.app import create_app

    settings = Settings()
    configure_logging(settings.log_level, settings.display_timezone, "api")
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=False,
    )


def register(app: typer.Typer) -> None:
    app.command("api")(api_command)
