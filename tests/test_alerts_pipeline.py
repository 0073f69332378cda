"""Alerts through the real pipeline: the simulators publish over a real Mosquitto, a real
ingester process evaluates the rules, episodes land in SQL, the state on MQTT (retained) and
points in InfluxDB — compared with the simulator's ground-truth log."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from alerts import tables
from alerts.model import iso
from alerts.store import AlertStore
from devices.registry import Registry
from pantau.influxdb import InfluxClient
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.settings import Settings
from pantau.sql import make_engine, migrate
from simulators.fleet import simulated_devices
from simulators.groundtruth import HYSTERESIS_CM
from simulators.registration import register_simulated_devices
from simulators.runner import Simulation
from simulators.scenario import parse_scenario
from tests.conftest import PantauProcess, eventually, make_settings

pytestmark = pytest.mark.e2e
INTERVAL_S = 60.0  # the gauges' simulated reporting interval
LEVELS = ("waspada", "siaga", "awas")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(
    mosquitto_factory: Callable[..., MosquittoServer],
    influx_server: InfluxServer,
    tmp_path: Path,
) -> Settings:
    """A broker of these tests' own: the simulators leave retained status messages (and the
    ingester retained alert states) that must not reach other tests' subscribers."""
    return make_settings(mosquitto_factory().url, influx_server.url, tmp_path)


def scenario_of(name: str, **changes: object) -> Any:
    raw = yaml.safe_load((REPO / "simulators" / "scenarios" / f"{name}.yaml").read_text())
    raw.update(changes)
    return parse_scenario(raw, name)


def rows(influx: InfluxClient, query: str) -> list[dict[str, Any]]:
    return [row for series in influx.query(query)[0] for row in series.rows()]


def events_of(engine: Any, rule: str) -> dict[str, list[dict[str, Any]]]:
    ev = tables.events
    with engine.connect() as conn:
        rows = conn.execute(select(ev).where(ev.c.rule == rule).order_by(ev.c.id)).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row.device_id, []).append(dict(row._mapping))
    return out


def retained(settings: Settings, topic: str) -> dict[str, Any]:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-alert-reader")
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        eventually(lambda: got, timeout_s=10, what=f"retained message on {topic}")
    finally:
        client.loop_stop()
        client.disconnect()
    document: dict[str, Any] = orjson.loads(got[-1])
    return document


def test_flood_malili_walks_each_gauge_up_and_down_the_ladder(
    settings: Settings, run_pantau: Callable[..., PantauProcess], tmp_path: Path
) -> None:
    # 16 h instead of 10: long enough for every gauge to come back down.
    scenario = scenario_of(
        "flood-malili", kinds=["water_level"], only=["wl-malili-0[1234]"], duration="16h"
    )
    engine = make_engine(settings.database.url)
    migrate(engine)
    register_simulated_devices(Registry(engine), simulated_devices(scenario))
    ingester = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
    truth_path = tmp_path / "truth.jsonl"
    hours = 16.0
    sim = Simulation(
        settings.mqtt,
        scenario,
        interval_s=INTERVAL_S,
        speed=hours * 3600 / 20,  # sixteen hours in about 20 s
        start_s=time.time() - hours * 3600 - 120,
        truth_path=truth_path,
        client_id="test-flood-sim",
    )
    sim.run()
    truth = [orjson.loads(line) for line in truth_path.read_text().splitlines()]
    floods: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in truth:
        if entry["kind"].startswith("flood_"):
            floods.setdefault(entry["device"], {})[entry["kind"][6:]] = entry
    assert "wl-malili-03" in floods and set(floods["wl-malili-03"]) == set(LEVELS)

    def settled() -> dict[str, list[dict[str, Any]]] | None:
        got = events_of(engine, "river_level")
        done = all(got.get(d) and got[d][-1]["transition"] == "resolved" for d in floods)
        return got if done else None

    events = eventually(settled, timeout_s=60, what="every flooded gauge back to normal")
    assert isinstance(events, dict)
    assert set(events) == set(floods)  # no alert on a gauge that did not flood
    influx = InfluxClient(settings.influx)
    for device, windows in floods.items():
        reached = [lv for lv in LEVELS if lv in windows]
        got = events[device]
        expected = reached + list(reversed(reached[:-1])) + [reached[0]]
        assert [e["level"] for e in got] == expected, (device, got)
        assert [e["transition"] for e in got] == (
            ["firing"]
            + ["escalated"] * (len(reached) - 1)
            + ["deescalated"] * (len(reached) - 1)
            + ["resolved"]
        )
        assert len({e["alert_id"] for e in got}) == 1  # one episode
        for level, event in zip(reached, got[: len(reached)], strict=True):
            start = windows[level]["start"]
            lag = _ts(iso(event["at"]) or "") - _ts(start)
            assert 0 <= lag <= INTERVAL_S, (device, level, lag)
        # Down: the first reading below the level minus the hysteresis (as the truth closes).
        downs = got[len(reached) :]
        for level, event in zip(reversed(reached), downs, strict=True):
            window = windows[level]
            limit = window["detail"]["threshold_cm"] - HYSTERESIS_CM
            assert event["value"] < limit
            between = rows(
                influx,
                f"SELECT level_cm FROM water_level WHERE device_id = '{device}' "
                f"AND time > '{window['end']}' AND time < '{iso(event['at'])}'",
            )
            assert all(row["level_cm"] >= limit for row in between), (device, level)
    state = retained(settings, "pantau/alerts/wl-malili-03")
    assert state["device_id"] == "wl-malili-03"
    # the river alert is over; the simulator's devices said `offline` as it stopped, so an
    # offline episode may be pending (it fires after a minute)
    assert [(a["rule"], a["state"]) for a in state["alerts"]] in ([], [("offline", "pending")])
    points = rows(
        influx,
        "SELECT level, state FROM alerts WHERE device_id = 'wl-malili-03' AND rule = 'river_level'",
    )
    assert [p["level"] for p in points if p["state"] != "resolved"][:3] == list(LEVELS)
    influx.close()
    store = AlertStore(engine)
    alert = store.get(events["wl-malili-03"][0]["alert_id"])
    assert alert.device.site == "Jembatan Malili" and alert.device.district == "Malili"
    engine.dispose()
    assert ingester.running, ingester.log_tail()


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_scenario(
    settings: Settings,
    run_pantau: Callable[..., PantauProcess],
    scenario: Any,
    hours: float,
    wall_s: float,
    interval_s: float | None = None,
) -> Any:
    """Register the scenario's devices, start an ingester, play `hours` in about `wall_s`."""
    engine = make_engine(settings.database.url)
    migrate(engine)
    registry = Registry(engine)
    register_simulated_devices(registry, simulated_devices(scenario))
    if interval_s is not None:
        from devices.schemas import DeviceUpdate

        for info in simulated_devices(scenario):
            registry.update_device(info.id, DeviceUpdate(interval_s=interval_s))
    ingester = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
    Simulation(
        settings.mqtt,
        scenario,
        interval_s=INTERVAL_S,
        speed=hours * 3600 / wall_s,
        start_s=time.time() - hours * 3600 - 120,
        client_id="test-scenario-sim",
    ).run()
    return engine


def test_haze_raises_an_ispu_alert(
    settings: Settings, run_pantau: Callable[..., PantauProcess]
) -> None:
    scenario = scenario_of("haze", kinds=["environment"], only=["env-wotu-01"], duration="14h")
    engine = run_scenario(settings, run_pantau, scenario, hours=14, wall_s=12)
    events = eventually(
        lambda: events_of(engine, "ispu_pm25").get("env-wotu-01"), what="an ISPU alert"
    )
    assert isinstance(events, list)
    firing = [e for e in events if e["state"] == "firing"]
    assert firing and firing[0]["level"] == "tidak_sehat"
    assert events[0]["transition"] == "pending"  # its 5 minute for-duration first
    assert len({e["alert_id"] for e in events}) == 1
    text = firing[0]["alert"]["text"]
    assert "Tidak Sehat" in text["id"] and "PM2.5" in text["en"] and "WITA" in text["id"]
    engine.dispose()


def test_a_dropout_raises_a_no_data_alert(
    settings: Settings, run_pantau: Callable[..., PantauProcess]
) -> None:
    # wl-larona-03 drops out from 45 to 75 min; -02 keeps reporting. At 300x a reading
    # comes every 0.2 s; registered with interval_s 1, 3 s of silence is no-data.
    dropout = {"kind": "dropout", "devices": "wl-larona-03", "start": "45m", "duration": "30m"}
    scenario = scenario_of(
        "sensor-faults",
        kinds=["water_level"],
        only=["wl-larona-0[23]"],
        duration="85m",
        faults=[dropout],  # the scenario's own dropout, without faults of other devices
    )
    engine = run_scenario(
        settings, run_pantau, scenario, hours=85 / 60, wall_s=85 * 60 / 300, interval_s=1.0
    )
    events = eventually(
        lambda: (got := events_of(engine, "nodata").get("wl-larona-03")) and len(got) >= 2 and got,
        what="no-data opened and resolved",
    )
    assert isinstance(events, list)
    assert [e["transition"] for e in events] == ["firing", "resolved"]
    assert "wl-larona-02" not in events_of(engine, "nodata")
    engine.dispose()


def test_kill_9_restart_and_redelivery_keep_one_episode(
    settings: Settings, run_pantau: Callable[..., PantauProcess]
) -> None:
    from devices.schemas import DeviceCreate
    from tests.mqtt_helpers import Publisher

    engine = make_engine(settings.database.url)
    migrate(engine)
    Registry(engine).create_device(
        DeviceCreate.model_validate(
            {
                "id": "wl-r",
                "kind": "water_level",
                "name": "r",
                "site": "Jembatan Malili",
                "district": "Malili",
                "thresholds": {"level_cm": {"waspada": 260, "siaga": 320, "awas": 380}},
            }
        )
    )
    t0 = int(time.time() * 1000) - 3_600_000

    def send(levels: list[tuple[int, float]]) -> None:
        publisher = Publisher(settings.mqtt, client_id="test-restart-pub")
        for seq, level in levels:
            body = {"ts": t0 + seq * 60_000, "seq": seq, "level_cm": level}
            publisher.telemetry("wl-r", orjson.dumps(body))
        publisher.close()

    def levels() -> list[tuple[str, str]]:
        return [
            (e["transition"], e["level"]) for e in events_of(engine, "river_level").get("wl-r", [])
        ]

    first = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in first.log_tail(), what="ingester connected")
    rising = [(1, 200.0), (2, 265.0), (3, 330.0)]
    send(rising)
    eventually(lambda: len(levels()) == 2, what="waspada then siaga")
    first.kill()  # kill -9: no goodbye, state only in SQL
    second = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in second.log_tail(), what="restarted ingester connected")
    send(rising)  # the same readings again, as a redelivery would bring them
    send([(4, 390.0), (5, 300.0)])
    eventually(lambda: len(levels()) >= 4, what="awas, then back to waspada")
    time.sleep(1.0)  # anything extra would have arrived by now
    assert levels() == [
        ("firing", "waspada"),
        ("escalated", "siaga"),
        ("escalated", "awas"),
        ("deescalated", "waspada"),
    ]
    assert len({e["alert_id"] for e in events_of(engine, "river_level")["wl-r"]}) == 1
    state = retained(settings, "pantau/alerts/wl-r")
    active = {a["rule"]: (a["level"], a["state"]) for a in state["alerts"]}
    assert active == {
        "river_level": ("waspada", "firing"),
        "rate_of_rise": ("rate_of_rise", "firing"),
    }
    engine.dispose()


def test_a_last_will_raises_an_offline_alert_and_online_resolves_it(
    settings: Settings, run_pantau: Callable[..., PantauProcess], tmp_path: Path
) -> None:
    """A field device connects with its last will (`offline`, retained) on its status topic
    and then loses its connection without a goodbye: the broker publishes the will, the
    ingester opens an offline episode (pending, then firing after the rule's for_s — 2 s in
    this test's copy of the rules), and the device's `online` on reconnecting resolves it."""
    from devices.schemas import DeviceCreate

    rules = yaml.safe_load((REPO / "alerts" / "rules.yaml").read_text())
    rules["rules"]["offline"]["for_s"] = 2
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules))
    settings.alerts.rules_path = rules_path
    engine = make_engine(settings.database.url)
    migrate(engine)
    Registry(engine).create_device(
        DeviceCreate.model_validate(
            {"id": "aq-will", "kind": "environment", "name": "w", "site": "Pasar Wotu"}
        )
    )
    ingest = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingest.log_tail(), what="ingester connected")
    status = "pantau/devices/aq-will/status"

    def device() -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="aq-will", protocol=mqtt.MQTTv5)
        client.will_set(status, b"offline", qos=1, retain=True)
        client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=5)
        client.loop_start()
        client.publish(status, b"online", qos=1, retain=True).wait_for_publish(5)
        return client

    def transitions() -> list[str]:
        return [e["transition"] for e in events_of(engine, "offline").get("aq-will", [])]

    field = device()
    sock = field.socket()
    assert sock is not None
    field.loop_stop()
    sock.close()  # the connection dies unannounced (power cut): the broker sends the will
    eventually(lambda: transitions() == ["pending", "firing"], what="offline pending, firing")
    back = device()  # power is back: the device says online
    eventually(lambda: transitions() == ["pending", "firing", "resolved"], what="resolved")
    back.disconnect()
    back.loop_stop()
    engine.dispose()


def test_a_road_accident_raises_an_incident_alert_and_rush_hour_does_not(
    settings: Settings, run_pantau: Callable[..., PantauProcess], tmp_path: Path
) -> None:
    """rush-hour-accident: a truck crash at Tomoni in the morning peak and a breakdown at
    Malili in the afternoon. Each blocked counter gets one incident alert, opened within
    20 minutes of the ground-truth start (the 10-minute count sum must fall first; how soon
    depends on the day's simulated traffic, see tests/test_alert_incident_days.py) and while
    the blockage lasts, and resolved after it; Wotu's counter, with the same rush hours and
    no incident, gets none."""
    from simulators.cli import choose_start_s

    counters = ["trf-tomoni-01", "trf-malili-01", "trf-wotu-01"]
    scenario = scenario_of("rush-hour-accident", kinds=["traffic"], only=counters)
    engine = make_engine(settings.database.url)
    migrate(engine)
    register_simulated_devices(Registry(engine), simulated_devices(scenario))
    ingester = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
    hours = 14.0
    speed = hours * 3600 / 20
    truth_path = tmp_path / "truth.jsonl"
    Simulation(
        settings.mqtt,
        scenario,
        interval_s=INTERVAL_S,
        speed=speed,
        start_s=choose_start_s(None, speed, scenario),  # a weekday 05:00 WITA, in the past
        truth_path=truth_path,
        client_id="test-accident-sim",
    ).run()
    truth = [orjson.loads(line) for line in truth_path.read_text().splitlines()]
    crashes = {e["device"]: e for e in truth if e["kind"] == "incident"}
    assert set(crashes) == {"trf-tomoni-01", "trf-malili-01"}

    def settled() -> dict[str, list[dict[str, Any]]] | None:
        got = events_of(engine, "incident")
        done = all(got.get(d) and got[d][-1]["transition"] == "resolved" for d in crashes)
        return got if done else None

    events = eventually(settled, timeout_s=60, what="both incidents opened and resolved")
    assert isinstance(events, dict)
    assert set(events) == set(crashes)  # none at Wotu
    for device, crash in crashes.items():
        got = events[device]
        assert [e["transition"] for e in got] == ["firing", "resolved"], got
        opened = _ts(iso(got[0]["at"]) or "") - _ts(crash["start"])
        lasts = _ts(crash["end"]) - _ts(crash["start"])
        assert 0 <= opened <= min(20 * 60, lasts), (device, opened)
        assert _ts(iso(got[1]["at"]) or "") >= _ts(crash["end"]), device
    engine.dispose()
    assert ingester.running, ingester.log_tail()
