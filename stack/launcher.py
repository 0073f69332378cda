"""`pantau up`: the whole local stack in one command, stopped cleanly with Ctrl-C.

Starts Mosquitto and InfluxDB (unless PANTAU_MQTT__URL / PANTAU_INFLUX__URL name existing
servers) with configs and data under `var/`, waits until each is healthy, then starts the
ingester, the API and the simulators as child processes.

Before that it migrates the SQL schema and registers the simulated devices. With
`PANTAU_MQTT__AUTH=true` (the default) the stack's own broker refuses anonymous clients: its
password and ACL files are rendered from the registry under `var/mosquitto/auth/`, the
ingester, the API and the simulators get service accounts with passwords made fresh at every
start (only their hashes are stored; the plaintext reaches each child in its environment), and
a sync thread re-renders the files and reloads the broker (SIGHUP) after any registry change.

On Ctrl-C or SIGTERM — or when any child dies — it stops them all in reverse order, by PID,
and leaves no process behind.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

import httpx

from devices.broker import (
    API_USER,
    INGESTER_USER,
    SIMULATOR_USER,
    BrokerAuthFiles,
    BrokerAuthSync,
)
from devices.models import ServiceRole
from devices.registry import Registry
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import ManagedProcess, port_free, wait_until
from pantau.settings import Settings, settings_to_env
from pantau.sql import make_engine, migrate

log = logging.getLogger(__name__)


class StackError(Exception):
    """The stack cannot start, for a reason that fits in one line."""


class LocalStack:
    def __init__(
        self, settings: Settings, *, simulators: bool = True, simulator_devices: int = 25
    ) -> None:
        self.settings = settings
        self.var_dir = settings.stack.var_dir.resolve()
        self.simulators = simulators
        self.simulator_devices = simulator_devices
        self.mosquitto: MosquittoServer | None = None
        self.influx: InfluxServer | None = None
        self.apps: list[ManagedProcess] = []
        self.stop_event = threading.Event()
        self.engine = make_engine(settings.database.url)
        self.registry = Registry(self.engine)
        self.auth_files = BrokerAuthFiles(
            self.var_dir / "mosquitto" / "auth", settings.mqtt.topic_prefix
        )
        self.auth_sync: BrokerAuthSync | None = None
        self.mqtt_credentials: dict[str, tuple[str, str]] = {}  # child name → (user, password)
        self.follower: LogFollower | None = None

    @property
    def broker_auth(self) -> bool:
        """The stack runs its own broker with access control from the registry."""
        return self.settings.mqtt.auth and not self.settings.mqtt_is_external()

    def ports_to_bind(self) -> list[tuple[str, int, str]]:
        """(host, port, what) of every port the stack's own processes will listen on."""
        stack, ports = self.settings.stack, []
        if not self.settings.mqtt_is_external():
            ports.append(
                ("127.0.0.1", stack.mosquitto_port, "Mosquitto, PANTAU_STACK__MOSQUITTO_PORT")
            )
        if not self.settings.influx_is_external():
            ports.append(("127.0.0.1", stack.influx_port, "InfluxDB, PANTAU_STACK__INFLUX_PORT"))
            ports.append(
                (
                    "127.0.0.1",
                    stack.influx_rpc_port,
                    "InfluxDB's RPC, PANTAU_STACK__INFLUX_RPC_PORT",
                )
            )
        ports.append((self.settings.api.host, self.settings.api.port, "the API, PANTAU_API__PORT"))
        if self.settings.ingest.metrics_port:
            ports.append(
                (
                    "127.0.0.1",
                    self.settings.ingest.metrics_port,
                    "the ingester's metrics, PANTAU_INGEST__METRICS_PORT",
                )
            )
        return ports

    def check_ports(self) -> None:
        """Refuse to start, in one line, when a port the stack needs is taken."""
        for host, port, what in self.ports_to_bind():
            if not port_free(host, port):
                raise StackError(
                    f"port {port} on {host} is in use ({what}): stop what listens there "
                    f"or set another port"
                )

    def prepare_registry(self) -> None:
        """Migrate, register the simulated devices, make service accounts, render the files."""
        migrate(self.engine)
        if self.simulators:
            from simulators.fleet import simulated_devices
            from simulators.registration import register_simulated_devices
            from simulators.scenario import load_scenario

            scenario = load_scenario(self.settings.simulate.scenario)
            register_simulated_devices(
                self.registry,
                simulated_devices(scenario, self.simulator_devices, self.settings.simulate.seed),
            )
        if not self.broker_auth:
            return
        for child, user, role in (
            ("ingest", INGESTER_USER, ServiceRole.INGESTER),
            ("api", API_USER, ServiceRole.PUBLISHER),
            ("simulate", SIMULATOR_USER, ServiceRole.PUBLISHER),
        ):
            self.mqtt_credentials[child] = (user, self.registry.set_service_account(user, role))
        self.auth_files.render(self.registry)

    def child_env(self) -> dict[str, str]:
        """The environment of Pantau's own children: every URL resolved, paths absolute."""
        env = dict(os.environ)
        env.update(settings_to_env(self.settings))
        env["PANTAU_STACK__VAR_DIR"] = str(self.var_dir)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def start_services(self) -> None:
        timeout = self.settings.stack.start_timeout_s
        if self.settings.mqtt_is_external():
            log.info("using the existing broker at %s", self.settings.mqtt.url)
        else:
            self.mosquitto = MosquittoServer(
                self.var_dir / "mosquitto",
                self.settings.stack.mosquitto_port,
                extra_config=self.auth_files.mosquitto_config_lines() if self.broker_auth else [],
            )
            self.mosquitto.start(timeout)
            if self.broker_auth:
                self.auth_sync = BrokerAuthSync(
                    self.registry,
                    self.auth_files,
                    self.mosquitto.reload,
                    self.settings.registry.broker_sync_interval_s,
                    self.settings.registry.sqlite_poll_interval_s,
                )
                self.auth_sync.revision = self.registry.revision()  # just rendered
                self.auth_sync.start()
        if self.settings.influx_is_external():
            log.info("using the existing InfluxDB at %s", self.settings.influx.url)
        else:
            self.influx = InfluxServer(
                self.var_dir / "influxdb",
                self.settings.stack.influx_port,
                self.settings.stack.influx_rpc_port,
            )
            self.influx.start(timeout)

    def _pantau(self, name: str, *args: str) -> ManagedProcess:
        argv = [sys.executable, "-m", "stack", name, *args]
        env = self.child_env()
        if name in self.mqtt_credentials:
            user, password = self.mqtt_credentials[name]
            env["PANTAU_MQTT__USERNAME"] = user
            env["PANTAU_MQTT__PASSWORD"] = password
        return ManagedProcess(name, argv, self.var_dir / "log" / f"{name}.log", env=env)

    def start_apps(self) -> None:
        ingest = self._pantau("ingest")
        api = self._pantau("api")
        self.apps = [ingest, api]
        if self.settings.notify.enabled:
            self.apps.append(self._pantau("notify", "run"))
        if self.simulators:
            self.apps.append(
                # --yield: a scenario run by hand beside the stack takes over its devices
                self._pantau("simulate", "--devices", str(self.simulator_devices), "--yield")
            )
        # From the files' ends before the children start: their earlier runs are not news.
        self.follower = LogFollower([p.log_path for p in self.apps])
        for proc in self.apps:
            proc.start()
        api_url = f"http://{self.settings.api.host}:{self.settings.api.port}"
        wait_until(
            lambda: _http_ok(f"{api_url}/health"),
            self.settings.stack.start_timeout_s,
            "the API",
            proc=api,
        )
        log.info("API ready on %s (OpenAPI at %s/docs)", api_url, api_url)

    def stop(self) -> None:
        for proc in reversed(self.apps):
            proc.stop()
        if self.auth_sync is not None:
            self.auth_sync.stop()
        for server in (self.mosquitto, self.influx):
            if server is not None:
                server.stop()
        self.engine.dispose()

    def run(self) -> int:
        """Start everything, report every few seconds, stop on a signal or a dead child."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop_event.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        code = 0
        try:
            self.check_ports()
            self.prepare_registry()
            self.start_services()
            self.start_apps()
            follower = self.follower
            assert follower is not None
            follower.pump()
            log.info("stack up; logs in %s; Ctrl-C stops everything", self.var_dir / "log")
            while not self.stop_event.wait(1.0):
                follower.pump()
                dead = [p for p in self.apps if not p.running]
                if dead:
                    for proc in dead:
                        log.error(
                            "%s exited with %s:\n%s", proc.name, proc.returncode, proc.log_tail()
                        )
                    code = 1
                    break
        except StackError as exc:
            log.error("%s", exc)
            code = 1
        except Exception as exc:
            log.error("stack failed: %s", exc)
            code = 1
        finally:
            if self.follower is not None:
                self.follower.pump()
            log.info("stopping the stack")
            self.stop()
            if self.follower is not None:
                self.follower.pump()  # the children's last words (counts at shutdown)
            log.info("stopped")
        return code


class LogFollower:
    """Echoes new lines of the children's logs to our stderr, so `make run` shows progress.

    Only what the children write from now on: a log file of an earlier run (the files are
    appended to) is not printed again. Each pump merges the new records of every file by
    their timestamps, so the children's lines come out in the order they happened, not file
    by file; a record's continuation lines (a traceback) stay with it.
    """

    def __init__(self, paths: list[Path], out: TextIO | None = None) -> None:
        self.out = out
        self.offsets = {path: _size(path) for path in paths}
        self.last_time: dict[Path, str] = {}  # of each file's latest record, for its tail

    def pump(self) -> int:
        """Print what was appended since the last pump; returns the number of records."""
        records: list[tuple[str, int, list[str]]] = []  # (UTC time, order read, lines)
        for path, offset in self.offsets.items():
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            complete = data.rfind(b"\n") + 1
            if not complete:
                continue
            self.offsets[path] = offset + complete
            current: list[str] | None = None
            for line in data[:complete].decode("utf-8", "replace").splitlines(keepends=True):
                match = _TIMESTAMP.match(line)
                if match is None and current is not None:
                    current.append(line)  # a continuation line: a traceback, a log tail
                    continue
                if match is not None:
                    self.last_time[path] = _utc_key(match.group(0))
                current = [line]
                records.append((self.last_time.get(path, ""), len(records), current))
        if records:
            out = self.out or sys.stderr
            ordered = sorted(records, key=lambda record: record[:2])
            out.write("".join(line for _, _, lines in ordered for line in lines))
            out.flush()
        return len(records)


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


def _utc_key(stamp: str) -> str:
    """A sortable UTC form of a log timestamp (children may log in different zones)."""
    try:
        return datetime.fromisoformat(stamp).astimezone(UTC).isoformat(timespec="microseconds")
    except ValueError:
        return stamp


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
