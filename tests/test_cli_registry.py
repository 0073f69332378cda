"""`pantau users create`, `pantau devices import/export`, `pantau broker render` as a shell
user runs them (in-process through typer's runner, against a real SQLite file)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pantau.sql import make_engine
from people.accounts import People
from stack.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("PANTAU_DATABASE__URL", url)
    return {"PANTAU_DATABASE__URL": url}


def test_first_admin_is_bootstrapped_from_the_shell(env: dict[str, str]) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["users", "create", "admin", "--role", "admin"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    engine = make_engine(env["PANTAU_DATABASE__URL"])
    user = People(engine).authenticate(token)
    engine.dispose()
    assert user is not None and user.role.value == "admin"
    again = runner.invoke(app, ["users", "create", "admin", "--role", "admin"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(app, ["users", "create", "x y", "--role", "root"])
    assert bad.exit_code == 2 and "role" in bad.output


def test_import_reports_bad_rows_and_export_round_trips(
    env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "devices.csv"
    source.write_text(
        "id,kind,name,district,latitude,longitude\n"
        "wl-1,water_level,One,Malili,-2.6,121.1\n"
        "wl 2,water_level,Two,Malili,,\n"
        "wl-3,water_level,Three,Malili,-95,0\n"
        "aq-4,environment,Four,Nuha,,\n"
    )
    secrets = tmp_path / "passwords.csv"
    runner = CliRunner()
    result = runner.invoke(
        app, ["devices", "import", str(source), "--credentials-out", str(secrets)]
    )
    assert result.exit_code == 1, result.output  # some rows were refused
    assert "created 2" in result.output and "rejected 2" in result.output
    assert "latitude" in result.output and "wl 2" in result.output
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert [line.split(",")[0] for line in secrets.read_text().splitlines()] == [
        "device_id",
        "wl-1",
        "aq-4",
    ]
    exported = tmp_path / "out.csv"
    result = runner.invoke(app, ["devices", "export", "-o", str(exported)])
    assert result.exit_code == 0
    lines = exported.read_text().splitlines()
    assert lines[0].startswith("id,kind,name") and [x.split(",")[0] for x in lines[1:]] == [
        "aq-4",
        "wl-1",
    ]
    result = runner.invoke(app, ["devices", "import", str(exported), "--update-existing"])
    assert result.exit_code == 0 and "updated 2" in result.output
    result = runner.invoke(app, ["broker", "render", str(tmp_path / "auth")])
    assert result.exit_code == 0 and "allow_anonymous false" in result.stdout
    assert (tmp_path / "auth" / "passwords").read_text().count(":$7$101$") == 2


def test_import_of_a_file_without_a_header_says_so(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "no-header.csv"
    source.write_text("wl-1,water_level,One\nwl-2,water_level,Two\n")
    result = CliRunner().invoke(app, ["devices", "import", str(source)])
    assert result.exit_code == 2, result.output
    assert "header: missing columns: id, kind, name" in result.output
    assert "Traceback" not in result.output
