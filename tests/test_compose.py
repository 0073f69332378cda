"""The production stack (docker-compose.yml, Dockerfile) against the Compose specification,
and against what `pantau up` and the test suite run: the same commands, the same broker
directives, the same Prometheus scrape config, the Grafana provisioning that was tested.
(Docker cannot run here; the images' own behaviour is not tested.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml

from dashboards.push import datasources
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.prometheus import PRODUCTION_CONFIG, render_config
from pantau.settings import Settings
from stack.cli import app

REPO = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PANTAU_SERVICES = {name for name, s in SERVICES.items() if s.get("build") == "."}


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((REPO / "deploy" / "schema" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(COMPOSE)
    broken = {**COMPOSE, "services": {"x": {"image": "a", "restart": ["always"]}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def test_every_service_restarts_and_long_running_ones_report_health() -> None:
    expected = {
        "mosquitto", "broker-auth", "influxdb", "postgres", "ingest", "api",
        "prometheus", "grafana", "simulate", "notify",
    }  # fmt: skip
    assert set(SERVICES) == expected
    for name, service in SERVICES.items():
        assert service["restart"] == "unless-stopped", name
        if name not in {"broker-auth", "simulate"}:
            assert service["healthcheck"]["test"], name
    assert SERVICES["simulate"]["profiles"] == ["demo"]
    assert all("profiles" not in s for n, s in SERVICES.items() if n != "simulate")


def test_data_lives_in_named_volumes_and_secrets_come_from_the_environment() -> None:
    named = set(COMPOSE["volumes"])
    for volume, path in [
        ("mosquitto-data", "/mosquitto/data"),
        ("influxdb-data", "/var/lib/influxdb"),
        ("postgres-data", "/var/lib/postgresql/data"),
        ("prometheus-data", "/prometheus"),
        ("grafana-data", "/var/lib/grafana"),
    ]:
        assert volume in named
        assert any(v == f"{volume}:{path}" for s in SERVICES.values() for v in s.get("volumes", []))
    text = (REPO / "docker-compose.yml").read_text()
    secrets = set(re.findall(r"\$\{(\w+)", text))
    assert secrets == {
        "POSTGRES_PASSWORD", "INFLUX_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
        "INGEST_MQTT_PASSWORD", "API_MQTT_PASSWORD", "SIMULATOR_MQTT_PASSWORD",
    }  # fmt: skip
    example = (REPO / "deploy" / "env.example").read_text()
    assert all(f"\n{name}=\n" in example for name in secrets)
    for line in text.splitlines():  # every password is a variable, never a literal
        if re.search(r"PASSWORD\w*:", line) and "healthcheck" not in line:
            assert "${" in line, line


@pytest.mark.parametrize("service", sorted(["ingest", "api", "broker-auth", "simulate"]))
def test_pantau_services_run_real_commands_of_the_cli(service: str) -> None:
    """Each command parses, options and all, with the `pantau` CLI the image's entrypoint runs."""
    assert service in PANTAU_SERVICES
    args = list(SERVICES[service]["command"])
    # Typer carries its own copy of click: walk its groups by what they do, not their class.
    command: Any = typer.main.get_command(app)
    name = "pantau"
    while hasattr(command, "resolve_command"):
        ctx = command.make_context(name, args)
        # the subcommand and what follows it, kept apart from the group's own options
        rest = [*ctx._protected_args, *ctx.args]
        found_name, found, args = command.resolve_command(ctx, rest)
        assert found is not None and found_name is not None, SERVICES[service]["command"]
        name, command = found_name, found
    command.make_context(name, args)  # raises on an unknown option or a bad value


def test_the_local_stack_runs_the_same_pantau_commands() -> None:
    """`pantau up` starts `ingest`, `api` and `simulate` (stack/launcher.py); so does compose."""
    launcher = (REPO / "stack" / "launcher.py").read_text()
    for name in ("ingest", "api", "simulate"):
        assert f'self._pantau("{name}"' in launcher
        assert SERVICES[name]["command"][0] == name


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value)
    return out


def test_broker_runs_the_directives_the_tests_run(tmp_path: Path) -> None:
    production = _directives((REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text())
    local = _directives(
        MosquittoServer(
            tmp_path,
            1883,
            extra_config=["allow_anonymous false", "password_file p", "acl_file a"],
        ).render_config()
    )
    # Places and the process user differ; the autosave interval is production's own (60 s).
    place_bound = {"listener", "persistence_location", "user", "password_file", "acl_file"}
    for key in set(production) | set(local):
        if key not in place_bound | {"autosave_interval"}:
            assert production.get(key) == local.get(key), key
    assert place_bound - {"user"} <= set(production)
    assert production["autosave_interval"] == ["60"]
    mounted = SERVICES["mosquitto"]["volumes"]
    assert "./deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in mounted
    assert SERVICES["mosquitto"]["command"][-1] == "/mosquitto/config/mosquitto.conf"
    sync = SERVICES["broker-auth"]["command"]
    assert production["password_file"] == [f"{sync[2]}/passwords"]
    assert production["acl_file"] == [f"{sync[2]}/acl"]


def test_prometheus_scrapes_the_ingester_with_the_tested_config() -> None:
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (SERVICES["prometheus"]["volumes"])
    )
    config = yaml.safe_load(PRODUCTION_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    port = Settings().ingest.metrics_port
    assert job["static_configs"] == [{"targets": [f"ingest:{port}"]}]
    assert SERVICES["ingest"]["environment"]["PANTAU_INGEST__METRICS_HOST"] == "0.0.0.0"
    assert f"{port}/readyz" in " ".join(SERVICES["ingest"]["healthcheck"]["test"])
    tested = yaml.safe_load(render_config(["127.0.0.1:1"], 1.0))  # what the query tests run
    assert tested["scrape_configs"][0]["metrics_path"] == job["metrics_path"]


def test_grafana_gets_the_tested_provisioning_and_dashboards() -> None:
    volumes = SERVICES["grafana"]["volumes"]
    provider = yaml.safe_load(
        (REPO / "dashboards" / "provisioning" / "dashboards.yaml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert f"./dashboards/json:{path}:ro" in volumes
    assert any(v.startswith("./dashboards/provisioning/datasources.yaml:") for v in volumes)
    env = SERVICES["grafana"]["environment"]
    assert env["GF_DATE_FORMATS_DEFAULT_TIMEZONE"] == "Asia/Makassar"
    bodies = datasources(env={"INFLUX_PASSWORD": "x", "POSTGRES_PASSWORD": "y"})
    hosts = {b["uid"]: b["url"] for b in bodies}
    assert hosts["pantau-influxdb"] == SERVICES["ingest"]["environment"]["PANTAU_INFLUX__URL"]
    assert hosts["pantau-registry"].split(":")[0] in SERVICES
    assert hosts["pantau-prometheus"].split("//")[1].split(":")[0] in SERVICES
    for name in ("INFLUX_PASSWORD", "POSTGRES_PASSWORD"):
        assert name in env  # the provisioning file's $VARIABLES
    influx = SERVICES["influxdb"]["environment"]
    assert influx["INFLUXDB_DB"] == Settings().influx.database == "pantau"


def test_image_installs_the_whole_project() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY . ." in dockerfile and 'ENTRYPOINT ["pantau"]' in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    for package in ("pantau", "people", "devices", "ingest", "api", "stack", "dashboards"):
        assert package not in ignored
    assert ".venv" in ignored and ".env" in ignored
