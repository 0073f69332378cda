"""`pantau up`: start the local stack (Mosquitto, InfluxDB, ingester, API, simulators)."""

from __future__ import annotations

import typer

from pantau.logs import configure_logging
from pantau.settings import Settings


def up_command(
    simulators: bool = typer.Option(
        True, "--simulators/--no-simulators", help="Also run the field simulators."
    ),
    devices: int = typer.Option(25, min=1, help="Simulated devices (25: the base city)."),
) -> None:
    """Run the whole stack locally until Ctrl-C; nothing is left running afterwards."""
    from stack.launcher import LocalStack

    settings = Settings()
    configure_logging(settings.log_level, settings.display_timezone, "up")
    raise typer.Exit(LocalStack(settings, simulators=simulators, simulator_devices=devices).run())


def register(app: typer.Typer) -> None:
    app.command("up")(up_command)
