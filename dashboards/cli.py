"""`pantau dashboards build|push|pictures`: render the dashboards, upload them, draw them."""

from __future__ import annotations

from pathlib import Path

import typer

from dashboards.render import JSON_DIR


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Grafana dashboards as code.", no_args_is_help=True)
    app.add_typer(group, name="dashboards")

    @group.command("build")
    def build(
        output: Path = typer.Option(JSON_DIR, "--output", "-o", help="Directory for the JSON."),
        check: bool = typer.Option(
            False, "--check", help="Write nothing; fail if the files differ from the builders."
        ),
    ) -> None:
        """Render every dashboard to JSON (dashboards/json/ by default)."""
        from dashboards.render import stale, write_all

        if check:
            behind = stale(output)
            if behind:
                typer.echo(f"out of date: {', '.join(behind)} (run `pantau dashboards build`)")
                raise typer.Exit(1)
            typer.echo("dashboards up to date")
            return
        for path in write_all(output):
            typer.echo(f"wrote {path}")

    @group.command("push")
    def push_command(
        url: str = typer.Option(
            ..., "--url", help="Grafana's base URL, e.g. http://localhost:3000"
        ),
        token: str = typer.Option(
            ...,
            "--token",
            envvar="GRAFANA_TOKEN",
            help="A service-account token (Editor or Admin).",
        ),
        datasources: bool = typer.Option(
            True, "--datasources/--no-datasources", help="Create or update the datasources too."
        ),
        set_url: list[str] = typer.Option(
            [], "--datasource-url", help="uid=URL: where Grafana reaches that datasource."
        ),
    ) -> None:
        """Create the folder and datasources and upload every dashboard (idempotent)."""
        from grafana_client import GrafanaApi
        from grafana_client.client import GrafanaException

        from dashboards.push import push

        urls = {}
        for item in set_url:
            uid, sep, value = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"{item!r}: want uid=URL", param_hint="--datasource-url")
            urls[uid] = value
        try:
            report = push(
                GrafanaApi.from_url(url, credential=token), urls=urls, with_datasources=datasources
            )
        except KeyError as exc:
            raise typer.BadParameter(str(exc.args[0])) from None
        except GrafanaException as exc:
            typer.echo(f"Grafana refused: {exc.status_code} {exc.message}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"folder {report.folder}")
        for uid, what in report.datasources.items():
            typer.echo(f"datasource {uid} {what}")
        typer.echo(f"dashboards uploaded: {', '.join(report.dashboards)}")

    @group.command("pictures")
    def pictures(
        output: Path = typer.Option(Path("docs/dashboards"), "--output", "-o"),
    ) -> None:
        """Draw each dashboard's panel grid with its titles as a PNG."""
        from dashboards.picture import draw_all

        for path in draw_all(output):
            typer.echo(f"wrote {path}")
