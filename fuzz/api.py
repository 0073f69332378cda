"""The API under schemathesis: every operation of its OpenAPI spec, generated valid and invalid
requests, against a real API process with a real SQL database, InfluxDB and Mosquitto.

The rule is schemathesis's `not_a_server_error`: no answer may be a 5xx. The stack is made for
the run under `var/fuzz/api/<backend>/`, once per SQL backend: a fresh SQLite file, and a fresh
database on the PostgreSQL at 127.0.0.1:5432 (`PANTAU_FUZZ_POSTGRES_URL`; created and dropped
by the run, skipped with a note when the server does not answer), seeded with devices of every
kind, dead letters and readings so the read routes have something to find, and stopped by PID
at the end. Requests authenticate
as an admin (`fuzz/api_hooks.py`), so role checks do not stop them at the door.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
NOW_MS = int(time.time() * 1000)


def _seed(settings: object) -> None:
    """Devices, dead letters and readings for the read routes to find."""
    from devices.catalog import default_catalog
    from devices.registry import Registry
    from devices.schemas import DeviceCreate
    from ingest.dead_letters import DeadLetterStore
    from ingest.model import Inbound, Rejection, RejectReason
    from pantau.influxdb import InfluxClient
    from pantau.settings import Settings
    from pantau.sql import make_engine, migrate

    assert isinstance(settings, Settings)
    engine = make_engine(settings.database.url)
    migrate(engine)
    registry = Registry(engine, default_catalog())
    for device_id, kind in [
        ("wl-malili-01", "water_level"),
        ("env-wotu-01", "environment"),
        ("trf-tomoni-01", "traffic"),
    ]:
        registry.create_device(
            DeviceCreate(id=device_id, kind=kind, name=device_id, district="Malili")
        )
    store = DeadLetterStore(engine, settings.mqtt.topic_prefix)
    store.store(
        [
            Rejection(
                Inbound("pantau/devices/wl-malili-01/telemetry", b"{oops", 1, 1, NOW_MS),
                RejectReason.BAD_JSON,
                "unexpected character",
            ),
            Rejection(
                Inbound("pantau/devices/wl-x/telemetry", b"\xff" * 10, 2, 1, NOW_MS),
                RejectReason.BAD_ENCODING,
                "payload is not UTF-8",
            ),
        ]
    )
    engine.dispose()
    with InfluxClient(settings.influx) as influx:
        influx.ensure_database()
        lines = [
            f"water_level,device_id=wl-malili-01 level_cm={100 + i}.5,seq={i}i "
            f"{NOW_MS - i * 60_000}"
            for i in range(50)
        ]
        influx.write("\n".join(lines).encode())


POSTGRES_ADMIN_URL = os.environ.get(
    "PANTAU_FUZZ_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def _database(backend: str, var_dir: Path) -> Iterator[str | None]:
    """A fresh database URL of `backend` for one run (None: the backend is not reachable)."""
    if backend == "sqlite":
        yield f"sqlite:///{var_dir / 'pantau.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    name = f"pantau_fuzz_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"PostgreSQL not reachable ({type(exc).__name__}); its API run is skipped")
        admin.dispose()
        yield None
        return
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class ApiResult:
    backend: str
    cases: int
    server_errors: int
    ok: bool
    skipped: bool = False


def run_api_fuzz(
    examples: int, var_dir: Path, *, backends: list[str], seed: int | None = None
) -> bool:
    """Each backend in turn; prints a table of counts; True when no answer was a 5xx."""
    results = [_run_backend(examples, var_dir / backend, backend, seed) for backend in backends]
    print()
    print(f"{'API on':<12}{'cases':>12}{'5xx':>10}")
    for r in results:
        note = "  (skipped: not reachable)" if r.skipped else ""
        print(f"{r.backend:<12}{r.cases:>12,}{r.server_errors:>10}{note}")
    return all(r.ok for r in results)


def _run_backend(examples: int, var_dir: Path, backend: str, seed: int | None) -> ApiResult:
    """Start the stack on `backend`, run schemathesis over the spec, stop everything."""
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    with _database(backend, var_dir) as url:
        if url is None:
            return ApiResult(backend, 0, 0, ok=True, skipped=True)
        return _run_stack(examples, var_dir, backend, url, seed)


def _run_stack(
    examples: int, var_dir: Path, backend: str, database_url: str, seed: int | None
) -> ApiResult:
    from pantau.servers.influxdb import InfluxServer
    from pantau.servers.mosquitto import MosquittoServer
    from pantau.servers.process import ManagedProcess, free_port, wait_until
    from pantau.settings import Settings, settings_to_env

    mosquitto = MosquittoServer(var_dir / "mosquitto", free_port())
    influx = InfluxServer(var_dir / "influxdb", free_port(), free_port())
    api_port = free_port()
    settings = Settings(
        mqtt={"url": mosquitto.url},  # type: ignore[arg-type]
        influx={"url": influx.url, "database": "pantau_fuzz"},  # type: ignore[arg-type]
        database={"url": database_url},  # type: ignore[arg-type]
        api={"host": "127.0.0.1", "port": api_port},  # type: ignore[arg-type]
        stack={"var_dir": var_dir},  # type: ignore[arg-type]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
    env.update(settings_to_env(settings))
    api = ManagedProcess(
        "api", [sys.executable, "-m", "stack", "api"], var_dir / "api.log", env=env, cwd=REPO
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        mosquitto.start()
        influx.start()
        _seed(settings)
        api.start()
        wait_until(lambda: _answers(f"{base}/health"), 30, "the API", proc=api)
        argv = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(examples),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--report",
            "junit",
            "--report-dir",
            str(var_dir / "report"),
        ]
        if seed is not None:
            argv += ["--seed", str(seed)]
        env_fuzz = dict(env, SCHEMATHESIS_HOOKS="fuzz.api_hooks", PYTHONPATH=str(REPO))
        print(f"fuzzing the API on {backend} at {base} (at most {examples} cases an operation)")
        proc = subprocess.run(
            argv, env=env_fuzz, cwd=REPO, capture_output=True, text=True, check=False
        )
        output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
        (var_dir / "schemathesis.log").write_text(output)
        print(_summary(output))
        print(f"(the whole schemathesis output: {var_dir / 'schemathesis.log'})")
        generated = re.search(r"(\d+) generated", output)
        server_errors = re.search(r"ST101 Server error: (\d+)", output)
        return ApiResult(
            backend,
            int(generated.group(1)) if generated else 0,
            int(server_errors.group(1)) if server_errors else 0,
            ok=proc.returncode == 0 and generated is not None,
        )
    finally:
        api.stop()
        influx.stop()
        mosquitto.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _summary(output: str) -> str:
    """Schemathesis's closing summary (failures, then counts), without the progress lines."""
    clean = output
    for marker in ("=== FAILURES", "===== SUMMARY", "=== SUMMARY", "SUMMARY"):
        at = clean.find(marker)
        if at >= 0:
            return clean[at:].strip()
    return clean[-4000:].strip()
