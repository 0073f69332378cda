"""`pantau users ...`: people and their API tokens from a shell.

Every command migrates the configured database first, so `pantau users create NAME --role
admin` bootstraps the first admin on a fresh install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from pantau.settings import Settings

if TYPE_CHECKING:
    from people.accounts import People

users_app = typer.Typer(help="People and their API tokens.", no_args_is_help=True)


def _people() -> People:
    from pantau.sql import make_engine, migrate
    from people.accounts import People

    engine = make_engine(Settings().database.url)
    migrate(engine)
    return People(engine)


@users_app.command("create")
def create_user_command(
    name: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option("viewer", "--role", help="viewer, technician, responder or admin."),
) -> None:
    """Create a user and print their first API token (shown once). Bootstraps the first admin."""
    from pantau.errors import RefusedError, error_messages
    from people.schemas import UserCreate

    try:
        data = UserCreate.model_validate({"name": name, "role": role})
    except ValidationError as exc:
        typer.echo("; ".join(error_messages(exc)), err=True)
        raise typer.Exit(2) from None
    try:
        user, token = _people().create_user(data)
    except RefusedError as exc:
        typer.echo(f"{exc}; `pantau users token {name}` issues a new token", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {user.name} ({user.role.value}); API token, shown once:", err=True)
    typer.echo(token)


@users_app.command("token")
def token_command(
    name: str = typer.Argument(..., help="Login name of an existing user."),
    label: str = typer.Option("cli", "--label", help="What the token is for."),
) -> None:
    """Issue a new API token for an existing user and print it (shown once)."""
    from pantau.errors import RefusedError

    people = _people()
    try:
        user = people.find_user(name)
        _, token = people.issue_token(user.id, label)
    except RefusedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"new API token for {user.name} ({user.role.value}), shown once:", err=True)
    typer.echo(token)


@users_app.command("list")
def list_users_command() -> None:
    """Every user and role."""
    for user in _people().list_users():
        flag = " (disabled)" if user.disabled else ""
        typer.echo(f"{user.id}\t{user.name}\t{user.role.value}{flag}")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
