"""What a newcomer stumbled on (issue 14, should fix): `make run` re-printing old log lines out
of order, alembic noise at every start, a port in use as a 4,230-character line, a broker config
saying both `allow_anonymous true` and `false`, and the CLI's missing `--version` and device
commands. Real files, sockets, SQLite and a real Mosquitto where it matters."""

from __future__ import annotations

import io
import logging
import socket
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.broker import BrokerAuthFiles
from pantau.logs import configure_logging
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import free_port
from pantau.settings import Settings
from pantau.sql import migrate
from stack.cli import app
from stack.launcher import LocalStack, LogFollower
from tests.conftest import REPO

# -- make run: the children's logs -----------------------------------------------------------


def test_the_log_follower_prints_only_new_lines_in_time_order(tmp_path: Path) -> None:
    ingest, api = tmp_path / "ingest.log", tmp_path / "api.log"
    ingest.write_text(
        "2026-12-01T10:00:00.000+08:00 level=info component=ingest msg='old run'\n"
        "Traceback (most recent call last):\n  old traceback\n"
    )
    api.write_text("2026-12-01T10:00:01.000+08:00 level=info component=api msg='old api'\n")
    out = io.StringIO()
    follower = LogFollower([ingest, api, tmp_path / "simulate.log"], out=out)
    assert follower.pump() == 0 and out.getvalue() == ""  # an earlier run is not news
    with ingest.open("a") as handle:
        handle.write("2026-12-02T10:00:00.100+08:00 level=info component=ingest msg='i1'\n")
        handle.write("2026-12-02T10:00:00.300+08:00 level=error component=ingest msg='i2'\n")
        handle.write("Traceback (most recent call last):\n  File x\nValueError: boom\n")
        handle.write("2026-12-02T10:00:00.500+08:00 level=info component=ingest msg='i3'\n")
        handle.write("2026-12-02T10:00:00.600+08:00 level=info component=ingest msg='half")
    with api.open("a") as handle:
        # another zone, as a child with other settings would log: ordered by the instant
        handle.write("2026-12-02T02:00:00.200Z level=info component=api msg='a1'\n")
        handle.write("2026-12-02T10:00:00.400+08:00 level=info component=api msg='a2'\n")
    (tmp_path / "simulate.log").write_text(
        "2026-12-02T10:00:00.000+08:00 level=info component=simulate msg='s1'\n"
    )
    assert follower.pump() == 6
    printed = out.getvalue()
    order = [line.split("msg=")[1] for line in printed.splitlines() if "msg=" in line]
    assert order == ["'s1'", "'i1'", "'a1'", "'i2'", "'a2'", "'i3'"]
    assert "old" not in printed
    assert "component=ingest msg='i2'\nTraceback (most recent call last):\n  File x\n" in printed
    assert "'half" not in printed  # an incomplete line waits for its end
    with ingest.open("a") as handle:
        handle.write("'\n")
    out.truncate(0)
    out.seek(0)
    assert follower.pump() == 1 and out.getvalue().endswith("msg='half'\n")


def test_start_up_says_one_line_about_the_schema_and_only_when_it_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "Asia/Makassar", "test")
    try:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        migrate(url)
        first = capsys.readouterr().err.splitlines()
        migrate(url)
        second = capsys.readouterr().err.splitlines()
    finally:
        logging.getLogger().handlers.clear()
    assert len(first) == 1 and "SQL schema upgraded from nothing to" in first[0], first
    assert second == []


def test_a_multi_line_log_message_is_not_one_long_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "Asia/Makassar", "test")
    try:
        logging.getLogger("t").error("the API exited with 1:\n" + "a log line\n" * 40)
    finally:
        logging.getLogger().handlers.clear()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("msg='the API exited with 1:'") and len(lines) == 41
    assert all(len(line) < 200 for line in lines)


def test_a_port_in_use_is_said_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        settings = Settings(
            api={"port": taken},  # type: ignore[arg-type]
            database={"url": f"sqlite:///{tmp_path / 'p.db'}"},  # type: ignore[arg-type]
            stack={  # type: ignore[arg-type]
                "var_dir": tmp_path / "var",
                "mosquitto_port": free_port(),
                "influx_port": free_port(),
                "influx_rpc_port": free_port(),
            },
            ingest={"metrics_port": free_port()},  # type: ignore[arg-type]
        )
        configure_logging("INFO", "Asia/Makassar", "up")
        try:
            code = LocalStack(settings, simulators=False).run()
        finally:
            logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert code == 1
    [line] = [line for line in err.splitlines() if "level=error" in line]
    assert f"port {taken} on 127.0.0.1 is in use (the API, PANTAU_API__PORT)" in line
    assert len(line) < 300 and "Traceback" not in err
    assert not (tmp_path / "var" / "mosquitto" / "mosquitto.log").exists()  # nothing started


# -- the stack's broker config ------------------------------------------------------------------


def test_the_broker_config_says_allow_anonymous_once(tmp_path: Path) -> None:
    files = BrokerAuthFiles(tmp_path / "auth", "pantau/devices")
    with_auth = MosquittoServer(
        tmp_path / "a", free_port(), extra_config=files.mosquitto_config_lines()
    )
    lines = with_auth.render_config().splitlines()
    assert [line for line in lines if line.startswith("allow_anonymous")] == [
        "allow_anonymous false"
    ]
    anonymous = MosquittoServer(tmp_path / "b", free_port()).render_config().splitlines()
    assert [line for line in anonymous if line.startswith("allow_anonymous")] == [
        "allow_anonymous true"
    ]


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANTAU_DATABASE__URL", f"sqlite:///{tmp_path}/cli.db")


def test_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"pantau {version}"


def test_devices_add_list_show_retire(cli_env: None) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "devices",
            "add",
            "wl-cli-01",
            "--kind",
            "water_level",
            "--name",
            "CLI gauge",
            "--district",
            "Malili",
            "--latitude",
            "-2.64",
            "--longitude",
            "121.1",
        ],
    )
    assert added.exit_code == 0, added.output
    password = added.stdout.strip().splitlines()[-1]
    assert len(password) >= 20 and "registered wl-cli-01" in added.output
    again = runner.invoke(
        app, ["devices", "add", "wl-cli-01", "--kind", "water_level", "--name", "x"]
    )
    assert again.exit_code == 1 and "wl-cli-01" in again.output
    bad = runner.invoke(
        app, ["devices", "add", "WL 2", "--kind", "boat", "--name", "x", "--latitude", "91"]
    )
    assert bad.exit_code == 2
    assert "id" in bad.output and "kind" in bad.output and "latitude" in bad.output
    runner.invoke(app, ["devices", "add", "env-cli-01", "--kind", "environment", "--name", "Env"])

    listed = runner.invoke(app, ["devices", "list"])
    assert listed.exit_code == 0, listed.output
    assert "wl-cli-01" in listed.stdout and "env-cli-01" in listed.stdout
    assert "2 devices" in listed.output
    only = runner.invoke(app, ["devices", "list", "--kind", "environment"])
    assert "env-cli-01" in only.stdout and "wl-cli-01" not in only.stdout
    assert runner.invoke(app, ["devices", "list", "--status", "gone"]).exit_code == 2

    shown = runner.invoke(app, ["devices", "show", "wl-cli-01"])
    assert shown.exit_code == 0 and '"district": "Malili"' in shown.stdout
    assert password not in shown.stdout and "hash" not in shown.stdout
    assert runner.invoke(app, ["devices", "show", "wl-nope"]).exit_code == 1

    retired = runner.invoke(app, ["devices", "retire", "wl-cli-01"])
    assert retired.exit_code == 0 and "retired wl-cli-01" in retired.stdout
    assert '"status": "retired"' in runner.invoke(app, ["devices", "show", "wl-cli-01"]).stdout
    assert runner.invoke(app, ["devices", "retire", "wl-nope"]).exit_code == 1


@pytest.mark.parametrize("name", ["ingest", "pantau ingest", "pantau_ingést", "_" * 65, "a+b_c"])
def test_the_service_account_rule_says_what_it_wants(cli_env: None, name: str) -> None:
    result = CliRunner().invoke(app, ["broker", "service-account", name, "--role", "ingester"])
    assert result.exit_code == 1
    assert "at least one '_'" in result.output and "e.g. pantau_ingest" in result.output


def test_service_accounts_and_their_roles(cli_env: None) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["broker", "service-account", "pantau_ingest-2", "--role", "ingester"])
    assert ok.exit_code == 0 and len(ok.stdout.strip()) >= 20
    role = runner.invoke(app, ["broker", "service-account", "pantau_x", "--role", "reader"])
    assert role.exit_code == 2 and "ingester, publisher" in role.output
