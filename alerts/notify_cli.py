"""`pantau notify`: run the notification dispatcher, list the outbox, retry a failed row."""

from __future__ import annotations

from typing import Annotated

import typer

from pantau.logs import configure_logging
from pantau.settings import Settings

notify_app = typer.Typer(help="Alert notifications: webhooks and e-mail through the outbox.")


@notify_app.command("run")
def run_command() -> None:
    """Send alert notifications until SIGTERM/SIGINT (`pantau up` starts this)."""
    import signal
    import threading

    from alerts.dispatcher import Dispatcher
    from pantau.sql import make_engine, migrate

    settings = Settings()
    configure_logging(settings.log_level, settings.display_timezone, "notify")
    engine = make_engine(settings.database.url)
    migrate(engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not settings.notify.enabled:
        typer.echo("notifications are disabled (PANTAU_NOTIFY__ENABLED=false)")
        return
    Dispatcher(engine, settings.notify).run(stop)


@notify_app.command("list")
def list_command(
    state: Annotated[
        str | None,
        typer.Option(
            help="Only rows in this state: pending, sending, delivered, failed, cancelled."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many rows.")] = 50,
) -> None:
    """The newest outbox rows, and how many are in each state."""
    from alerts.outbox import counts, list_rows
    from pantau.sql import make_engine

    settings = Settings()
    engine = make_engine(settings.database.url)
    with engine.connect() as conn:
        rows = list_rows(conn, state, limit)
        totals = counts(conn)
    typer.echo("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "empty"))
    for r in rows:
        typer.echo(
            f"{r['id']:>7}  alert {r['alert_id']:<6} {r['kind']:<10} {r['state']:<9} "
            f"{r['channel']:<7} {r['recipient']}  attempts {r['attempts']}"
            + (f"  last error: {r['last_error']}" if r["last_error"] else "")
        )
    engine.dispose()


@notify_app.command("retry")
def retry_command(row_id: Annotated[int, typer.Argument(help="Outbox row id.")]) -> None:
    """Send a failed notification again (fresh attempts)."""
    from sqlalchemy import update

    from alerts.outbox_tables import outbox
    from pantau.sql import make_engine, utcnow

    settings = Settings()
    engine = make_engine(settings.database.url)
    with engine.begin() as conn:
        changed = conn.execute(
            update(outbox)
            .where(outbox.c.id == row_id, outbox.c.state == "failed")
            .values(state="pending", attempts=0, next_attempt_at=utcnow())
        ).rowcount
    engine.dispose()
    if not changed:
        typer.echo(f"no failed notification {row_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"notification {row_id} queued again")


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
