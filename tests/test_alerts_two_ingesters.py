"""Two ingesters sharing one MQTT v5 shared subscription, one PostgreSQL database: a gauge's
flood is still one alert episode, and every change of it is one notification.

Each member sees only part of the gauge's readings, so each keeps its own idea of the level;
what holds them to one episode is the database (a partial unique index on the open episode
of a (rule, device), and the store ignoring a verdict from a reading older than the
episode's last change). Real Mosquitto, two real `pantau ingest` processes, the real
dispatcher (`pantau notify run`) and a local webhook receiver."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from alerts import tables
from alerts.outbox_tables import outbox
from devices.registry import Registry
from devices.schemas import DeviceCreate
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.sql import make_engine
from tests.conftest import PantauProcess, eventually, make_settings
from tests.mqtt_helpers import Publisher
from tests.notify_helpers import WebhookReceiver
from tests.registry_helpers import database_url

pytestmark = pytest.mark.e2e
GAUGE = "wl-two"
# Up through Waspada (260), Siaga (320) and Awas (380), then down to normal: one reading a
# simulated minute, a slow flood wave.
LEVELS = [200.0 + 4.0 * i for i in range(50)] + [396.0 - 4.0 * i for i in range(60)]


def _connected(process: PantauProcess) -> bool:
    return "session" in process.log_tail()


def _written(process: PantauProcess) -> int:
    """The member's latest count of readings written (its status line), 0 before one."""
    counts = [int(n) for n in re.findall(r"written=(\d+)", process.log_tail(100_000))]
    return max(counts, default=0)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from database_url("postgresql", tmp_path)


def test_two_ingesters_keep_one_episode_and_notify_each_change_once(
    pg_url: str,
    mosquitto_factory: Callable[..., MosquittoServer],
    influx_server: InfluxServer,
    run_pantau: Callable[..., PantauProcess],
    tmp_path: Path,
) -> None:
    receiver = WebhookReceiver()
    base = make_settings(
        mosquitto_factory().url,
        influx_server.url,
        tmp_path,
        database={"url": pg_url},
        mqtt={"shared_group": "pantau-ingest"},
        notify={
            "groups": [{"name": "bpbd", "webhooks": [{"url": receiver.url, "secret": "s"}]}],
            "reminder_interval_min": 0,
        },
    )
    engine = make_engine(pg_url)
    Registry(engine).create_device(
        DeviceCreate.model_validate(
            {
                "id": GAUGE,
                "kind": "water_level",
                "name": "two",
                "site": "Jembatan Malili",
                "district": "Malili",
                "thresholds": {"level_cm": {"waspada": 260, "siaga": 320, "awas": 380}},
            }
        )
    )
    members: list[PantauProcess] = []
    for suffix in ("a", "b"):
        member = base.model_copy(deep=True)
        member.mqtt.client_id = f"{base.mqtt.client_id}-{suffix}"
        process = run_pantau(["ingest"], member)
        members.append(process)
    for process in members:
        eventually(partial(_connected, process), what="ingester connected")
    dispatcher = run_pantau(["notify", "run"], base)
    eventually(lambda: "dispatcher" in dispatcher.log_tail(), what="dispatcher started")

    publisher = Publisher(base.mqtt, client_id="test-two-pub")
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    for seq, level in enumerate(LEVELS):
        body = {"ts": t0 + seq * 60_000, "seq": seq, "level_cm": level}
        publisher.telemetry(GAUGE, orjson.dumps(body))
        time.sleep(0.02)  # a stream, so both members take part of it
    publisher.close()

    def events() -> list[dict[str, Any]]:
        ev = tables.events
        with engine.connect() as conn:
            rows = conn.execute(
                select(ev).where(ev.c.rule == "river_level", ev.c.device_id == GAUGE)
            ).all()
        return [dict(r._mapping) for r in sorted(rows, key=lambda r: r.id)]

    got = eventually(
        lambda: (e := events()) and e[-1]["transition"] == "resolved" and e,
        timeout_s=60,
        what="the flood's episode resolved",
    )
    assert isinstance(got, list)
    time.sleep(1.5)  # anything a slower member would still add has arrived by now
    got = events()
    # One episode for the whole flood, whichever member saw which reading.
    assert len({e["alert_id"] for e in got}) == 1, got
    transitions = [e["transition"] for e in got]
    assert transitions[0] == "firing" and transitions[-1] == "resolved"
    assert transitions.count("firing") == 1 and transitions.count("resolved") == 1
    assert "awas" in {e["level"] for e in got}
    # No change recorded twice (the two writers did not both record the same step).
    steps = [(e["transition"], e["level"], e["at"]) for e in got]
    assert len(steps) == len(set(steps)), steps
    # Both members took part (each wrote readings), so the test is what it says.
    for process in members:
        assert process.running, process.log_tail()
        written = eventually(partial(_written, process), what="a member's share written")
        assert isinstance(written, int) and 0 < written < len(LEVELS)

    # Every change is one notification: one outbox row per event and one POST per row.
    def delivered() -> list[dict[str, Any]] | None:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(outbox)).all()]
        return rows if rows and all(r["state"] == "delivered" for r in rows) else None

    rows = eventually(delivered, timeout_s=30, what="every notification delivered")
    assert isinstance(rows, list)
    episode = got[0]["alert_id"]
    mine = [r for r in rows if r["alert_id"] == episode]
    assert sorted(r["event_id"] for r in mine) == sorted(e["id"] for e in got)
    deliveries = receiver.deliveries()
    assert {str(r["id"]) for r in mine} <= set(deliveries)  # the delivery id is the row id
    assert len(deliveries) == len(rows)  # (the rate-of-rise alert's rows too)
    assert all(len(posts) == 1 for posts in deliveries.values())
    receiver.down()
    engine.dispose()
