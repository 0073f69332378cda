"""`pantau alerts list|ack|resolve|tail`: alerts from a shell, straight from the SQL database.

`tail` follows the `alert_events` table (like the API's SSE stream) and prints one line per
change in Bahasa Indonesia (or English with `--en`), times in WITA. `ack` and `resolve` record
who did it (`--by`, default the shell user) and an optional note.
"""

from __future__ import annotations

import getpass
import time
from typing import TYPE_CHECKING

import typer

from pantau.settings import Settings

if TYPE_CHECKING:
    from alerts.model import Alert
    from alerts.store import AlertStore

alerts_app = typer.Typer(help="Alerts: list, acknowledge, resolve, follow.", no_args_is_help=True)


def _store() -> AlertStore:
    from alerts.store import AlertStore
    from pantau.sql import make_engine, migrate

    engine = make_engine(Settings().database.url)
    migrate(engine)
    return AlertStore(engine)


def _line(alert: Alert, english: bool) -> str:
    text = alert.text.get("en" if english else "id", "")
    return f"#{alert.id:<6} {alert.state.value:<12} {alert.severity.value:<8} {text}"


@alerts_app.command("list")
def list_command(
    state: str = typer.Option("active", help="active | pending | firing | acknowledged | resolved"),
    device: str | None = typer.Option(None, "--device", help="Only this device."),
    district: str | None = typer.Option(None, help="Only this district."),
    limit: int = typer.Option(50, min=1, max=1000),
    en: bool = typer.Option(False, "--en", help="English instead of Bahasa Indonesia."),
) -> None:
    """Alerts, newest first."""
    alerts = _store().list_alerts(state=state, device_id=device, district=district, limit=limit)
    if not alerts:
        typer.echo("tidak ada peringatan / no alerts")
    for alert in alerts:
        typer.echo(_line(alert, en))


def _act(alert_id: int, by: str | None, note: str | None, resolve: bool) -> None:
    from pantau.errors import RefusedError

    store = _store()
    who = by or getpass.getuser()
    try:
        if resolve:
            alert, _ = store.resolve(alert_id, who, note)
        else:
            alert, _ = store.acknowledge(alert_id, who, note)
    except RefusedError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(_line(alert, False))


@alerts_app.command("ack")
def ack_command(
    alert_id: int = typer.Argument(..., min=1),
    note: str | None = typer.Option(None, "--note", help="What is being done."),
    by: str | None = typer.Option(None, "--by", help="Who (default: the shell user)."),
) -> None:
    """Acknowledge an alert: a responder has it."""
    _act(alert_id, by, note, resolve=False)


@alerts_app.command("resolve")
def resolve_command(
    alert_id: int = typer.Argument(..., min=1),
    note: str | None = typer.Option(None, "--note"),
    by: str | None = typer.Option(None, "--by", help="Who (default: the shell user)."),
) -> None:
    """Resolve an alert."""
    _act(alert_id, by, note, resolve=True)


@alerts_app.command("tail")
def tail_command(
    en: bool = typer.Option(False, "--en", help="English instead of Bahasa Indonesia."),
    poll_s: float = typer.Option(0.5, min=0.05, help="How often to look for changes, seconds."),
    duration_s: float | None = typer.Option(None, help="Stop after this long (default: never)."),
) -> None:
    """Print the active alerts, then every change as it happens (Ctrl-C to stop)."""
    store = _store()
    cursor = store.last_event_id()
    for alert in store.active():
        typer.echo(_line(alert, en))
    started = time.monotonic()
    try:
        while duration_s is None or time.monotonic() - started < duration_s:
            events = store.events_after(cursor)
            for event in events:
                cursor = event.id
                text = event.alert.get("text", {}).get("en" if en else "id", "")
                typer.echo(f"#{event.alert_id:<6} {event.transition.value:<12} {text}", color=None)
            if not events:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
