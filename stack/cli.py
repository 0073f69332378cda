"""The `pantau` command. Each subcommand lives in the package it drives and registers here."""

from __future__ import annotations

from pathlib import Path

import typer

from alerts.cli import register as register_alerts
from alerts.notify_cli import register as register_notify
from api.cli import register as register_api
from dashboards.cli import register as register_dashboards
from devices.cli import register as register_devices
from ingest.anomaly.cli import register as register_detect
from ingest.cli import register as register_ingest
from people.cli import register as register_people
from simulators.cli import register as register_simulate
from stack.up import register as register_up

app = typer.Typer(
    help="Pantau: IoT sensor ingestion and monitoring for Luwu Timur.",
    no_args_is_help=True,
    add_completion=False,
)
settings_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(settings_app, name="settings")
db_app = typer.Typer(help="The SQL schema and its migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _print_version(value: bool) -> None:
    if value:
        from pantau import __version__

        typer.echo(f"pantau {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Pantau: IoT sensor ingestion and monitoring for Luwu Timur."""


register_up(app)
register_ingest(app)
register_detect(app)
register_api(app)
register_simulate(app)
register_devices(app)
register_people(app)
register_dashboards(app)
register_alerts(app)
register_notify(app)


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


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the configured database to the newest schema (every command also does it)."""
    from pantau.settings import Settings
    from pantau.sql import migrate

    migrate(Settings().database.url)


@db_app.command("revision")
def db_revision(
    message: str = typer.Option(..., "--message", "-m", help="What the migration does."),
) -> None:
    """Autogenerate a migration: the models of every package against the configured database
    (migrated to the newest revision first). Review the file before committing it."""
    from alembic import command
    from alembic.config import Config

    from pantau.settings import Settings
    from pantau.sql import MIGRATIONS_DIR, make_engine, migrate
    from stack.schema import all_tables

    all_tables()
    engine = make_engine(Settings().database.url)
    migrate(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
    engine.dispose()


def main() -> None:
    app()
