"""The `pantau` command. Each subcommand lives in the package it drives and registers here."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli import register as register_api
from devices.cli import register as register_devices
from ingest.anomaly.cli import register as register_detect
from ingest.cli import register as register_ingest
from pantau.stack.cli import register as register_up
from simulators.cli import register as register_simulate

app = typer.Typer(
    help="Pantau: IoT sensor ingestion and monitoring for Luwu Timur.",
    no_args_is_help=True,
    add_completion=False,
)
settings_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(settings_app, name="settings")

register_up(app)
register_ingest(app)
register_detect(app)
register_api(app)
register_simulate(app)
register_devices(app)


@settings_app.command("env-example")
def env_example(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not stdout."),
) -> None:
    """Print (or write) `.env.example`: every setting with its description and default."""
    from pantau.settings import render_env_example

    text = render_env_example()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


@settings_app.command("show")
def show() -> None:
    """Print the settings in force (secrets hidden), as JSON."""
    from pantau.settings import Settings

    typer.echo(Settings().model_dump_json(indent=2))


def main() -> None:
    app()
