"""Fixtures: real Mosquitto and InfluxDB processes on free ports, started by the same launcher
code as `pantau up`, and stopped by PID at the end."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import settings as hyp_settings

from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import ManagedProcess, free_port, wait_until
from pantau.settings import Settings, settings_to_env

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """One broker for the session's tests that do not kill it."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """One InfluxDB for the session's tests that do not kill it; each test gets a database."""
    server = InfluxServer(tmp_path_factory.mktemp("influxdb"), free_port(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoServer]]:
    """Brokers of a test's own, for fault tests that kill and restart them."""
    servers: list[MosquittoServer] = []

    def make(**kwargs: object) -> MosquittoServer:
        server = MosquittoServer(tmp_path / f"mosquitto-{len(servers)}", free_port(), **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def influx_factory(tmp_path: Path) -> Iterator[Callable[[], InfluxServer]]:
    """InfluxDB servers of a test's own, for fault tests that stop and restart them."""
    servers: list[InfluxServer] = []

    def make() -> InfluxServer:
        server = InfluxServer(tmp_path / f"influxdb-{len(servers)}", free_port(), free_port())
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


def make_settings(mqtt_url: str, influx_url: str, tmp_path: Path, **overrides: object) -> Settings:
    """Settings for one test: its own InfluxDB database, client id and SQLite file."""
    tag = uuid.uuid4().hex[:10]
    base: dict[str, dict[str, object]] = {
        "mqtt": {"url": mqtt_url, "client_id": f"pantau-test-{tag}"},
        "influx": {"url": influx_url, "database": f"t_{tag}", "flush_interval_s": 0.05},
        "database": {"url": f"sqlite:///{tmp_path / 'pantau.db'}"},
        "ingest": {"metrics_port": 0, "status_interval_s": 1.0},
        "stack": {"var_dir": tmp_path / "var"},
    }
    for key, value in overrides.items():
        assert isinstance(value, dict)
        base.setdefault(key, {}).update(value)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(mosquitto: MosquittoServer, influx_server: InfluxServer, tmp_path: Path) -> Settings:
    return make_settings(mosquitto.url, influx_server.url, tmp_path)


class PantauProcess(ManagedProcess):
    """`python -m pantau <command>` as a real child process with the test's settings."""

    def __init__(self, command: list[str], settings: Settings, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
        env.update(settings_to_env(settings))
        env["PYTHONUNBUFFERED"] = "1"
        super().__init__(
            command[0], [sys.executable, "-m", "stack", *command], log_path, env=env, cwd=REPO
        )


@pytest.fixture
def run_pantau(tmp_path: Path) -> Iterator[Callable[..., PantauProcess]]:
    procs: list[PantauProcess] = []

    def start(command: list[str], settings: Settings) -> PantauProcess:
        proc = PantauProcess(command, settings, tmp_path / f"{command[0]}-{len(procs)}.log")
        procs.append(proc)
        proc.start()
        return proc

    yield start
    for proc in procs:
        proc.stop()


T = TypeVar("T")


def eventually(
    check: Callable[[], T],
    timeout_s: float = 20.0,
    what: str = "condition",
    interval_s: float = 0.1,
) -> T:
    """Poll until `check()` returns something truthy; return it, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what}: not true after {timeout_s}s (last: {last!r})")


__all__ = ["eventually", "make_settings", "wait_until"]

# `make test` replays a fixed exploration (derandomised) on every machine, so a fresh clone
# passes or fails the same way as CI; random exploration is `make fuzz`, which selects the
# "fuzz" profile through PANTAU_HYPOTHESIS_PROFILE.
hyp_settings.register_profile("ci", derandomize=True, max_examples=300, deadline=None)
hyp_settings.register_profile("fuzz", max_examples=20_000, deadline=None)
hyp_settings.load_profile(os.environ.get("PANTAU_HYPOTHESIS_PROFILE", "ci"))
