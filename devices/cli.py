"""`pantau devices ...`, `pantau broker ...`: the registry from a shell.

Every command migrates the configured database first, so it works on a fresh install.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pantau.settings import Settings

if TYPE_CHECKING:
    from devices.registry import Registry

devices_app = typer.Typer(help="The device registry.", no_args_is_help=True)
broker_app = typer.Typer(
    help="Broker credentials rendered from the registry.", no_args_is_help=True
)


def _registry() -> tuple[Settings, Registry]:
    from devices.registry import Registry
    from pantau.sql import make_engine, migrate

    settings = Settings()
    engine = make_engine(settings.database.url)
    migrate(engine)
    return settings, Registry(engine)


@devices_app.command("import")
def import_command(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV file to import."),
    update_existing: bool = typer.Option(
        False, "--update-existing", help="Update devices that exist instead of reporting them."
    ),
    credentials_out: Path | None = typer.Option(
        None,
        "--credentials-out",
        help="Write new devices' MQTT passwords here (mode 0600) instead of printing them.",
    ),
) -> None:
    """Register devices from CSV (columns: id,kind,name,site,district,latitude,longitude,
    elevation_m,status,interval_s,thresholds,notes); prints an error report per bad row."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from devices.registry import check_import_header
    from pantau.errors import RefusedError

    _, registry = _registry()
    text = path.read_text(encoding="utf-8-sig")
    try:
        check_import_header(next(csv.reader(io.StringIO(text)), []))
        rows = max(0, sum(1 for _ in csv.reader(io.StringIO(text))) - 1)
    except (RefusedError, csv.Error) as exc:
        typer.echo(f"{path}: {exc}", err=True)
        raise typer.Exit(2) from None
    console = Console(stderr=True)
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task(f"importing {path.name}", total=rows)
        report = registry.import_csv(
            text,
            update_existing=update_existing,
            progress=lambda n: progress.advance(task, n),
        )
    console.print(
        f"created {len(report.created)}, updated {len(report.updated)}, "
        f"rejected {len(report.errors)} row(s)"
    )
    if report.errors:
        table = Table("line", "id", "errors", title="rows not imported")
        for error in report.errors:
            table.add_row(str(error.line), error.device_id or "", "\n".join(error.errors))
        console.print(table)
    if report.credentials:
        if credentials_out is not None:
            credentials_out.touch(mode=0o600)
            credentials_out.chmod(0o600)
            with credentials_out.open("w", encoding="utf-8") as handle:
                handle.write("device_id,mqtt_password\n")
                for device_id, password in report.credentials.items():
                    handle.write(f"{device_id},{password}\n")
            console.print(f"MQTT passwords of new devices written to {credentials_out}")
        else:
            console.print("MQTT passwords of new devices (shown once, only hashes are stored):")
            for device_id, password in report.credentials.items():
                typer.echo(f"{device_id},{password}")
    raise typer.Exit(1 if report.errors else 0)


@devices_app.command("export")
def export_command(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not stdout."),
) -> None:
    """Every device as CSV, in the import format."""
    _, registry = _registry()
    if output is None:
        registry.export_csv(sys.stdout)
    else:
        with output.open("w", encoding="utf-8", newline="") as handle:
            count = registry.export_csv(handle)
        typer.echo(f"{count} devices written to {output}", err=True)


@devices_app.command("list")
def list_command(
    kind: str | None = typer.Option(None, "--kind", help="Only this kind of the catalog."),
    district: str | None = typer.Option(None, "--district", help="Only this district."),
    status: str | None = typer.Option(
        None, "--status", help="Only active, maintenance or retired devices."
    ),
    text: str | None = typer.Option(None, "--search", "-q", help="Text in id, name, site."),
    limit: int = typer.Option(1000, "--limit", min=1, max=100_000, help="At most this many."),
) -> None:
    """Devices of the registry, by id: kind, status, district, site, name, calibration."""
    from rich.console import Console
    from rich.table import Table

    from devices.models import DeviceStatus

    statuses = [s.value for s in DeviceStatus]
    if status is not None and status not in statuses:
        typer.echo(f"--status: one of {', '.join(statuses)}", err=True)
        raise typer.Exit(2)
    _, registry = _registry()
    if kind is not None and kind not in registry.catalog.kinds:
        typer.echo(f"--kind: one of {', '.join(sorted(registry.catalog.kinds))}", err=True)
        raise typer.Exit(2)
    page = registry.list_devices(
        kind=kind,
        district=district,
        status=DeviceStatus(status) if status else None,
        q=text,
        limit=limit,
    )
    table = Table("id", "kind", "status", "district", "site", "name", "calibration")
    for device in page.items:
        version = device.calibration_version
        table.add_row(
            device.id,
            device.kind,
            device.status.value,
            device.district,
            device.site,
            device.name,
            "-" if version is None else f"v{version}",
        )
    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(table)
    shown = len(page.items)
    more = f" (the first {shown}; --limit for more)" if page.total > shown else ""
    typer.echo(f"{page.total} devices{more}", err=True)


@devices_app.command("show")
def show_command(device_id: str = typer.Argument(..., help="The device's id.")) -> None:
    """One device, as JSON (the API's shape), without its secret."""
    from pantau.errors import RefusedError

    _, registry = _registry()
    try:
        device = registry.get_device(device_id)
    except RefusedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(device.model_dump_json(indent=2))


@devices_app.command("add")
def add_command(
    device_id: str = typer.Argument(..., help="Lowercase slug, also its MQTT username."),
    kind: str = typer.Option(..., "--kind", help="A kind of the catalog: water_level, ..."),
    name: str = typer.Option(..., "--name", help="Human name."),
    district: str = typer.Option("", "--district", help="Kecamatan (an InfluxDB tag)."),
    site: str = typer.Option("", "--site", help="Where it is installed (an InfluxDB tag)."),
    latitude: float | None = typer.Option(None, "--latitude", help="WGS 84 degrees."),
    longitude: float | None = typer.Option(None, "--longitude", help="WGS 84 degrees."),
    elevation_m: float | None = typer.Option(None, "--elevation-m", help="Metres a.s.l."),
    interval_s: float | None = typer.Option(
        None, "--interval-s", help="Expected seconds between readings (default: the kind's)."
    ),
    notes: str = typer.Option("", "--notes", help="Free text."),
) -> None:
    """Register a device and print its MQTT password (shown once; only a hash is stored)."""
    from pydantic import ValidationError

    from devices.schemas import DeviceCreate
    from pantau.errors import RefusedError, error_messages

    values: dict[str, object] = {
        "id": device_id,
        "kind": kind,
        "name": name,
        "district": district,
        "site": site,
        "notes": notes,
    }
    optional = {
        "latitude": latitude,
        "longitude": longitude,
        "elevation_m": elevation_m,
        "interval_s": interval_s,
    }
    values.update({key: value for key, value in optional.items() if value is not None})
    try:
        data = DeviceCreate.model_validate(values)
    except ValidationError as exc:
        typer.echo("; ".join(error_messages(exc)), err=True)
        raise typer.Exit(2) from None
    _, registry = _registry()
    try:
        device, password = registry.create_device(data)
    except RefusedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"registered {device.id} ({device.kind}); MQTT username {device.id}, password "
        "(shown once):",
        err=True,
    )
    typer.echo(password)


@devices_app.command("retire")
def retire_command(device_id: str = typer.Argument(..., help="The device's id.")) -> None:
    """Retire a device: refused by the broker and the ingester from now on; history kept."""
    from pantau.errors import RefusedError

    _, registry = _registry()
    try:
        device = registry.retire_device(device_id)
    except RefusedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"retired {device.id}; its readings and history are kept")


@devices_app.command("rotate")
def rotate_command(device_id: str) -> None:
    """A new MQTT password for a device, printed once."""
    from pantau.errors import RefusedError

    _, registry = _registry()
    try:
        _, password = registry.rotate_credentials(device_id)
    except RefusedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(password)


@broker_app.command("render")
def render_command(
    directory: Path = typer.Argument(..., help="Where to write `passwords` and `acl`."),
) -> None:
    """Write Mosquitto's password_file and acl_file from the registry (for a broker Pantau does
    not run: point its config there and send it SIGHUP after a change)."""
    from devices.broker import BrokerAuthFiles

    settings, registry = _registry()
    files = BrokerAuthFiles(directory, settings.mqtt.topic_prefix)
    count = files.render(registry)
    typer.echo(f"{count} accounts; add to mosquitto.conf:", err=True)
    for line in files.mosquitto_config_lines():
        typer.echo(line)


@broker_app.command("sync")
def sync_command(
    directory: Path = typer.Argument(..., help="Where to keep `passwords` and `acl`."),
    reload_pid: int | None = typer.Option(
        None, "--reload-pid", help="Send this process SIGHUP after each change (the broker)."
    ),
    file_uid: int | None = typer.Option(
        None, "--file-uid", help="Give the files to this user id (the broker's, if not ours)."
    ),
) -> None:
    """Keep a broker's password and ACL files in step with the registry until SIGTERM: after
    every registry change rewrite them and SIGHUP the broker. `pantau up` does this itself;
    docker-compose runs it beside Mosquitto (shared PID namespace, `--reload-pid 1`)."""
    import os
    import signal
    import threading

    from devices.broker import BrokerAuthFiles, BrokerAuthSync
    from pantau.logs import configure_logging

    settings, registry = _registry()
    configure_logging(settings.log_level, settings.display_timezone, "broker-sync")
    files = BrokerAuthFiles(directory, settings.mqtt.topic_prefix, owner_uid=file_uid)

    def reload() -> None:
        if reload_pid is not None:
            os.kill(reload_pid, signal.SIGHUP)

    sync = BrokerAuthSync(
        registry,
        files,
        reload,
        settings.registry.broker_sync_interval_s,
        settings.registry.sqlite_poll_interval_s,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        try:
            sync.sync()
        except Exception as exc:  # keep the last files; try again next round
            typer.echo(f"broker sync failed: {exc}", err=True)
        stop.wait(settings.registry.broker_sync_interval_s)


@broker_app.command("service-account")
def service_account_command(
    username: str = typer.Argument(..., help="Contains '_' (device ids cannot): pantau_ingest."),
    role: str = typer.Option(..., "--role", help="ingester (read) or publisher (write)."),
) -> None:
    """Create or re-key a broker account for a Pantau service; prints its password once."""
    from devices.models import ServiceRole
    from pantau.errors import RefusedError

    roles = [r.value for r in ServiceRole]
    if role not in roles:
        typer.echo(f"role: {role[:40]!r} is not one of {', '.join(roles)}", err=True)
        raise typer.Exit(2)
    _, registry = _registry()
    try:
        password = registry.set_service_account(username, ServiceRole(role))
    except RefusedError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(password)


def register(app: typer.Typer) -> None:
    app.add_typer(devices_app, name="devices")
    app.add_typer(broker_app, name="broker")
