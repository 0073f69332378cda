"""Every query of every dashboard runs against real services and returns data.

One city is simulated (the `sensor-faults` scenario: 6 hours in ~6 s, every kind of device,
spikes, dropouts with offline status, malformed payloads) through real Mosquitto into a real
ingester, which writes to a real InfluxDB, dead-letters to a real PostgreSQL registry and is
scraped by a real Prometheus (Debian's `prometheus`, the production scrape config). Grafana's
macros are substituted as Grafana would ($timeFilter, $__interval, template variables;
PostgreSQL's $__timeFilter / $__timeGroupAlias), and each query must return at least one value.

The `alerts` measurement is written by alerting (landing separately); its points here are
written by the test in the schema alerting writes (two changes of one gauge's alert).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from dashboards.render import load_files
from devices.models import DeviceStatus
from devices.registry import Registry
from devices.schemas import DeviceUpdate
from pantau.influxdb import InfluxClient
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import free_port
from pantau.servers.prometheus import PrometheusServer
from pantau.sql import make_engine
from simulators.fleet import simulated_devices
from simulators.registration import register_simulated_devices
from simulators.runner import Simulation
from simulators.scenario import load_scenario
from tests.conftest import PantauProcess, eventually, make_settings
from tests.registry_helpers import database_url, postgres_reason

pytestmark = pytest.mark.e2e

SIMULATED_H = 6
VARIABLES = {
    "district": ".*",
    "site": ".*",
    "device": ".*",
    "river": "malili",
    "gauge": "wl-malili-02",
}


@dataclass
class City:
    influx: InfluxClient
    database_url: str
    prometheus_url: str
    started: float


def _write_alerts(influx: InfluxClient) -> None:
    now_ms = int(time.time() * 1000)
    tags = "device_id=wl-malili-02,district=Malili,rule=river_level,severity=critical,site=Baruga"
    lines = [
        f'alerts,{tags} level="siaga",level_rank=2i,state="firing",value=301.5,threshold=290,'
        f'text="Siaga di Baruga",alert_id=1i {now_ms - 3_600_000}',
        f'alerts,{tags} level="siaga",level_rank=2i,state="resolved",value=250.0,threshold=290,'
        f'text="Selesai",alert_id=1i {now_ms - 600_000}',
    ]
    influx.write("\n".join(lines).encode())


@pytest.fixture(scope="module")
def city(
    mosquitto: MosquittoServer,
    influx_server: InfluxServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[City]:
    if postgres_reason():
        pytest.skip(postgres_reason() or "")
    tmp = tmp_path_factory.mktemp("dashboard-city")
    pg = database_url("postgresql", tmp)
    url = next(pg)
    metrics_port = free_port()
    settings = make_settings(
        mosquitto.url,
        influx_server.url,
        tmp,
        database={"url": url},
        ingest={"metrics_port": metrics_port},
    )
    scenario = load_scenario("sensor-faults")
    engine = make_engine(url)
    register_simulated_devices(Registry(engine), simulated_devices(scenario, seed=5))
    engine.dispose()
    prometheus = PrometheusServer(tmp / "prometheus", free_port(), [f"127.0.0.1:{metrics_port}"])
    ingester = PantauProcess(["ingest"], settings, tmp / "ingest.log")
    try:
        ingester.start()
        eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
        prometheus.start()
        started = time.time()
        sim = Simulation(
            settings.mqtt,
            scenario,
            seed=5,
            interval_s=60.0,
            speed=3600.0,
            start_s=time.time() - SIMULATED_H * 3600,
            client_id="test-dashboard-sim",
        )
        stats = sim.run()
        influx = InfluxClient(settings.influx)
        eventually(
            lambda: _count(influx) >= stats.messages * 0.9,
            timeout_s=60,
            what="the simulated city stored",
        )
        _write_alerts(influx)
        engine = make_engine(url)  # a technician takes one station off for cleaning
        Registry(engine).update_device("env-wotu-01", DeviceUpdate(status=DeviceStatus.MAINTENANCE))
        engine.dispose()
        # The hourly roll-up, as its continuous query computes it, over the simulated hours.
        influx.query(
            f"{influx.hourly_rollup_select()} WHERE time > now() - {SIMULATED_H + 1}h "
            "GROUP BY time(1h), *",
            method="POST",
        )
        time.sleep(3)  # a few more scrapes after the last write
        # The broker's counters come from Mosquitto's $SYS tree every sys_interval (10 s): a
        # fast run can end before Prometheus scraped two of them.
        eventually(
            lambda: (
                _prometheus_samples(prometheus.url, "pantau_broker_messages_dropped_total") >= 2
            ),
            timeout_s=40,
            what="two scrapes of the broker's counters",
        )
        yield City(influx, url, prometheus.url, started)
        influx.close()
    finally:
        prometheus.stop()
        ingester.stop()
        next(pg, None)


def _count(influx: InfluxClient) -> int:
    result = influx.query('SELECT count("seq") FROM "raw"./^(water_level|environment|traffic)$/')
    return sum(int(s.values[0][1]) for s in result[0]) if result and result[0] else 0


# --- the queries, as the dashboards hold them -------------------------------------------------


def _queries(kind: str) -> list[tuple[str, str]]:
    """(where, query) for every query of that datasource kind in every dashboard."""
    found: list[tuple[str, str]] = []
    for name, data in load_files().items():
        for panel in data["panels"]:
            for target in panel.get("targets", []):
                where = f"{name}: {panel['title']} ({target['refId']})"
                if kind == "influxdb" and "query" in target and "rawSql" not in target:
                    found.append((where, target["query"]))
                elif kind == "sql" and "rawSql" in target:
                    found.append((where, target["rawSql"]))
                elif kind == "prometheus" and "expr" in target:
                    found.append((where, target["expr"]))
        if kind == "influxdb":
            for variable in data.get("templating", {}).get("list", []):
                if variable["type"] == "query":
                    found.append((f"{name}: variable {variable['name']}", variable["query"]))
            for annotation in data["annotations"]["list"]:
                found.append(
                    (f"{name}: annotation {annotation['name']}", annotation["target"]["query"])
                )
    return found


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def _substitute(query: str, rp: str) -> str:
    """Grafana's macros and template variables, as Grafana expands them for this range."""
    query = query.replace("$timeFilter", f"time > now() - {SIMULATED_H + 1}h")
    query = query.replace("$__interval", "10m").replace("$__rate_interval", "15s")
    query = re.sub(
        r"\$__timeGroupAlias\((\w+), 10m\)",
        r'floor(extract(epoch from \1)/600)*600 AS "time"',
        query,
    )
    query = re.sub(
        r"\$__timeFilter\((\w+)\)",
        rf"\1 BETWEEN now() - interval '{SIMULATED_H + 1} hours' AND now()",
        query,
    )
    values = {**VARIABLES, "rp": rp}
    return _VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], query)


def _has_values(series: list[Any]) -> bool:
    return any(v is not None for s in series for row in s.values for v in row[1:])


INFLUX_QUERIES = _queries("influxdb")


def test_the_dashboards_have_queries_of_every_kind() -> None:
    assert len(INFLUX_QUERIES) > 40
    assert len(_queries("sql")) >= 4 and len(_queries("prometheus")) >= 10


@pytest.mark.parametrize(("where", "query"), INFLUX_QUERIES, ids=[w for w, _ in INFLUX_QUERIES])
def test_influxql_returns_data(city: City, where: str, query: str) -> None:
    for rp in ("raw", "hourly") if "$rp" in query else ("raw",):
        q = _substitute(query, rp)
        assert not re.search(r"\$[\w{]", q), q
        result = city.influx.query(q)
        series = result[0] if result else []
        if q.startswith("SHOW TAG VALUES"):
            assert any(s.values for s in series), (where, q)
        else:
            assert _has_values(series), (where, rp, q)


@pytest.mark.parametrize(("where", "query"), _queries("sql"), ids=[w for w, _ in _queries("sql")])
def test_registry_sql_returns_data(city: City, where: str, query: str) -> None:
    q = _substitute(query, "raw")
    engine = make_engine(city.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(q)).all()
    finally:
        engine.dispose()
    assert rows and any(v is not None for row in rows for v in row), (where, q)


def _prometheus_samples(url: str, metric: str) -> int:
    answer = httpx.get(
        f"{url}/api/v1/query", params={"query": f"count_over_time({metric}[5m])"}, timeout=10
    ).json()
    result = answer.get("data", {}).get("result", [])
    return int(float(result[0]["value"][1])) if result else 0


@pytest.mark.parametrize(
    ("where", "expr"), _queries("prometheus"), ids=[w for w, _ in _queries("prometheus")]
)
def test_promql_returns_data(city: City, where: str, expr: str) -> None:
    q = _substitute(expr, "raw")
    answer = httpx.get(
        f"{city.prometheus_url}/api/v1/query_range",
        params={"query": q, "start": city.started, "end": time.time(), "step": "1s"},
        timeout=10,
    ).json()
    assert answer["status"] == "success", (where, q, answer)
    values = [v for series in answer["data"]["result"] for _, v in series["values"]]
    assert values and any(v != "NaN" for v in values), (where, q, answer["data"])


def test_river_thresholds_reach_the_panel(city: City) -> None:
    (query,) = [q for w, q in _queries("sql") if "waspada" in q]
    engine = make_engine(city.database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(_substitute(query, "raw"))).one()
    finally:
        engine.dispose()
    assert tuple(row) == (240.0, 290.0, 340.0)  # wl-malili-02, simulators/geography.py


def test_json_is_what_grafana_loads() -> None:
    for name, data in load_files().items():
        assert json.loads(json.dumps(data)) == data, name
        assert Path(name).suffix == ".json"


def test_annotations_carry_their_text_and_tag_columns(city: City) -> None:
    for name, data in load_files().items():
        for annotation in data["annotations"]["list"]:
            target = annotation["target"]
            (series,) = city.influx.query(_substitute(target["query"], "raw"))
            columns = {c for s in series for c in s.columns}
            wanted = {target["textColumn"], *target["tagsColumn"].split(",")}
            assert wanted <= columns, (name, annotation["name"], columns)
