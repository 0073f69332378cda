"""`pantau up` as a user runs it: services up on its own ports, readings flowing, the API
answering; Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pantau.servers.process import free_port
from tests.conftest import REPO, eventually
from tests.registry_helpers import MqttClient

pytestmark = pytest.mark.e2e


def processes_with_env(marker: str) -> list[int]:
    """PIDs whose environment or command line mentions `marker` (our unique var dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in blob:
            found.append(int(entry.name))
    return found


def test_pantau_up_runs_the_city_and_stops_cleanly(tmp_path: Path) -> None:
    var_dir = tmp_path / "var-up"
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTAU_")}
    env.update(
        {
            "PANTAU_STACK__VAR_DIR": str(var_dir),
            "PANTAU_STACK__MOSQUITTO_PORT": str(free_port()),
            "PANTAU_STACK__INFLUX_PORT": str(free_port()),
            "PANTAU_STACK__INFLUX_RPC_PORT": str(free_port()),
            "PANTAU_API__PORT": str(api_port),
            "PANTAU_INGEST__METRICS_PORT": str(free_port()),
            "PANTAU_INGEST__STATUS_INTERVAL_S": "1",
            "PANTAU_SIMULATE__INTERVAL_S": "0.5",
        }
    )
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "stack", "up", "--devices", "2"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        api = f"http://127.0.0.1:{api_port}"
        since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

        def api_up() -> bool:
            try:
                return httpx.get(f"{api}/health").status_code == 200
            except httpx.HTTPError:
                return False

        eventually(api_up, timeout_s=60, what="the API of pantau up")
        # Readings need a token: make a viewer the way an operator would.
        created = subprocess.run(
            [sys.executable, "-m", "stack", "users", "create", "tester", "--role", "viewer"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
        assert httpx.get(f"{api}/readings/wl-malili-01").status_code == 401
        anonymous = MqttClient(int(env["PANTAU_STACK__MOSQUITTO_PORT"]), None, None)
        assert anonymous.connect() in (134, 135, -1), "the stack's broker let anonymous in"
        anonymous.close()

        def readings() -> int:
            try:
                response = httpx.get(
                    f"{api}/readings/wl-malili-01", params={"since": since}, headers=headers
                )
            except httpx.HTTPError:
                return 0
            return int(response.json()["count"]) if response.status_code == 200 else 0

        eventually(lambda: readings() >= 3, timeout_s=60, what="readings through pantau up")
        eventually(
            lambda: "received=" in log_path.read_text(),
            timeout_s=10,
            what="a progress line with counts",
        )

        def metrics_text() -> str:
            port = env["PANTAU_INGEST__METRICS_PORT"]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.HTTPError:
                return ""

        # The ingester's second connection reads $SYS with its account (the ACL allows it).
        eventually(
            lambda: "pantau_broker_publish_received_total" in metrics_text(),
            timeout_s=20,
            what="the broker's $SYS counters on the ingester's /metrics",
        )
        children = processes_with_env(str(var_dir))
        assert len(children) >= 5, f"expected broker, influxd, ingest, api, simulate: {children}"
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
    assert code == 0, log_path.read_text()[-3000:]
    time.sleep(0.2)
    assert processes_with_env(str(var_dir)) == [], "processes left behind"
    assert (var_dir / "mosquitto" / "mosquitto.conf").exists()
    # The stack's broker ran with access control from the registry (PANTAU_MQTT__AUTH=true).
    conf = (var_dir / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file" in conf
    passwords = (var_dir / "mosquitto" / "auth" / "passwords").read_text()
    assert "wl-malili-01:$7$" in passwords and "pantau_ingest:$7$" in passwords
    assert (var_dir / "influxdb" / "influxdb.conf").exists()
