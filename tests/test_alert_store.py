"""The alert episode store on both SQL backends: one episode per (rule, device), escalation and
de-escalation in it, idempotence under redelivery and racing writers, ack, resolve, silences."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from alerts import tables
from alerts.model import DeviceInfo, Severity, Signal, State, Transition, Trend
from alerts.store import AlertStore
from pantau.errors import ConflictError
from pantau.sql import make_engine
from tests.registry_helpers import database_url

T0 = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
GAUGE = DeviceInfo("wl-malili-01", "water_level", "Jembatan Malili", "Malili", -2.64, 121.1)
LADDER = {"waspada": (1, 250.0), "siaga": (2, 300.0), "awas": (3, 380.0)}
NEXT = {"waspada": "siaga", "siaga": "awas", "awas": None}


def river(level: str, minutes: float, value: float = 0.0, firing: bool = True) -> Signal:
    rank, threshold = LADDER.get(level, (0, None))
    return Signal(
        rule="river_level",
        device=GAUGE,
        level=level,
        level_rank=rank,
        severity=Severity.CRITICAL if rank == 3 else Severity.WARNING,
        at=T0 + timedelta(minutes=minutes),
        field="level_cm",
        value=value,
        threshold=threshold,
        unit="cm",
        trend=Trend.RISING,
        next_level=NEXT.get(level),
        firing=firing,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    for url in database_url(request.param, tmp_path):
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def store(engine: Engine) -> AlertStore:
    return AlertStore(engine)


def count_episodes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.episodes)).scalar_one())


def test_one_episode_escalates_and_deescalates(store: AlertStore, engine: Engine) -> None:
    ladder = [("waspada", 1, 260), ("siaga", 2, 310), ("awas", 3, 400), ("siaga", 4, 350)]
    events = [e for level, m, v in ladder for e in store.apply([river(level, m, v)])]
    events += store.apply([river("normal", 5, 200)])
    assert [e.transition for e in events] == [
        Transition.FIRING,
        Transition.ESCALATED,
        Transition.ESCALATED,
        Transition.DEESCALATED,
        Transition.RESOLVED,
    ]
    assert [e.level for e in events] == ["waspada", "siaga", "awas", "siaga", "siaga"]
    assert len({e.alert_id for e in events}) == 1 and count_episodes(engine) == 1
    ids = [e.id for e in events]
    assert ids == sorted(ids)
    alert = store.get(events[0].alert_id)
    assert alert.state is State.RESOLVED and alert.resolved_at == T0 + timedelta(minutes=5)
    assert events[2].alert["level"] == "awas" and events[2].alert["next_level"] is None
    assert "AWAS" in events[2].alert["text"]["id"] and "WITA" in events[2].alert["text"]["en"]
    assert [h.transition for h in store.history(alert.id)] == [e.transition for e in events]
    # After the resolution a new rise opens a new episode.
    again = store.apply([river("waspada", 9, 255)])
    assert again[0].alert_id != alert.id and count_episodes(engine) == 2


def test_redelivery_and_stale_readings_change_nothing(store: AlertStore) -> None:
    first = store.apply([river("siaga", 1, 310)])
    assert store.apply([river("siaga", 1, 310)]) == []  # the same reading again
    assert store.apply([river("siaga", 2, 312)]) == []  # same level: no event
    assert store.apply([river("waspada", 0.5, 260)]) == []  # older than the last change
    assert store.apply([river("normal", 0.5, 200)]) == []
    assert store.get(first[0].alert_id).level == "siaga"


def test_pending_then_firing(store: AlertStore) -> None:
    pending = store.apply([river("waspada", 1, 260, firing=False)])
    assert pending[0].state is State.PENDING and pending[0].transition is Transition.PENDING
    fired = store.apply([river("waspada", 3, 262)])
    assert fired[0].transition is Transition.FIRING and fired[0].state is State.FIRING
    assert fired[0].alert_id == pending[0].alert_id


def test_database_refuses_a_second_open_episode(engine: Engine) -> None:
    row = {
        "rule": "river_level",
        "device_id": "wl-x",
        "kind": "water_level",
        "site": "",
        "district": "",
        "severity": "warning",
        "level": "waspada",
        "level_rank": 1,
        "state": "firing",
        "started_at": T0,
        "updated_at": T0,
        "observed_at": T0,
    }
    with engine.begin() as conn:
        conn.execute(insert(tables.episodes).values(**row))
        conn.execute(insert(tables.episodes).values(**row, resolved_at=T0))  # closed: fine
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(tables.episodes).values(**row))


def test_racing_writers_open_one_episode(engine: Engine) -> None:
    """Two ingesters (two engines, many threads) deliver the same crossing at once."""
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(2)]
    stores = [AlertStore(e) for e in engines]
    barrier = threading.Barrier(6)
    results: list[int] = []
    errors: list[BaseException] = []

    def deliver(store: AlertStore) -> None:
        barrier.wait()
        try:
            results.extend(e.id for e in store.apply([river("awas", 1, 400)]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(stores[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert errors == []
    assert len(results) == 1 and count_episodes(engine) == 1


def test_ack_and_resolve(store: AlertStore) -> None:
    opened = store.apply([river("siaga", 1, 310)])[0]
    alert, event = store.acknowledge(opened.alert_id, "rina", "tim menuju lokasi")
    assert alert.state is State.ACKNOWLEDGED and alert.acknowledged_by == "rina"
    assert event is not None and event.note == "tim menuju lokasi"
    assert store.acknowledge(opened.alert_id, "rina")[1] is None  # twice: one event
    # A worse level needs a responder again.
    escalated = store.apply([river("awas", 2, 390)])[0]
    assert escalated.state is State.FIRING and escalated.alert["acknowledged_by"] is None
    alert, event = store.resolve(opened.alert_id, "budi", "surut")
    assert alert.state is State.RESOLVED and event is not None
    with pytest.raises(ConflictError):
        store.acknowledge(opened.alert_id, "rina")
    assert store.resolve(opened.alert_id, "budi")[1] is None
    assert store.list_alerts(state="active") == []
    assert [a.id for a in store.list_alerts(state="resolved")] == [opened.alert_id]


def test_silence_mutes_new_episodes_until_it_ends(store: AlertStore) -> None:
    now = datetime.now(UTC)
    silence = store.add_silence(
        device_id="wl-malili-01",
        ends_at=now + timedelta(hours=1),
        reason="perbaikan",
        created_by="t",
    )
    assert store.apply([river("awas", 1, 400)]) == []
    assert store.silenced("river_level", "wl-malili-01")
    assert [s.id for s in store.silences()] == [silence.id]
    store.delete_silence(silence.id)
    assert store.apply([river("awas", 2, 400)])[0].transition is Transition.FIRING


def test_events_after_follows_in_order(store: AlertStore) -> None:
    store.apply([river("waspada", 1, 260)])
    store.apply([river("siaga", 2, 310)])
    events = store.events_after(0)
    assert [e.level for e in events] == ["waspada", "siaga"]
    assert store.events_after(events[0].id)[0].id == events[1].id
    assert store.last_event_id() == events[1].id


def test_simulated_gauges_are_registered_with_their_levels(engine: Engine) -> None:
    from devices.registry import Registry
    from devices.schemas import DeviceCreate
    from simulators.fleet import simulated_devices
    from simulators.registration import register_simulated_devices
    from simulators.scenario import load_scenario

    registry = Registry(engine)
    fleet = simulated_devices(load_scenario("flood-malili"))
    # One gauge registered by an earlier version, without levels.
    registry.create_device(DeviceCreate(id="wl-malili-01", kind="water_level", name="old"))
    register_simulated_devices(registry, fleet)
    for device_id in ("wl-malili-01", "wl-malili-03"):
        levels = registry.get_device(device_id).thresholds["level_cm"]
        assert set(levels) == {"waspada", "siaga", "awas"}
        assert levels["waspada"] < levels["siaga"] < levels["awas"]


def test_cli_list_ack_resolve_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from stack.cli import app

    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("PANTAU_DATABASE__URL", url)
    runner = CliRunner()
    assert "no alerts" in runner.invoke(app, ["alerts", "list"]).output
    engine = make_engine(url)
    opened = AlertStore(engine).apply([river("awas", 1, 400)])[0]
    listed = runner.invoke(app, ["alerts", "list"])
    assert f"#{opened.alert_id}" in listed.output and "PERINGATAN AWAS" in listed.output
    acked = runner.invoke(
        app, ["alerts", "ack", str(opened.alert_id), "--note", "otw", "--by", "rina"]
    )
    assert acked.exit_code == 0 and "DITANGANI" in acked.output
    tail = runner.invoke(app, ["alerts", "tail", "--en", "--duration-s", "0.2"])
    assert "ACKNOWLEDGED AWAS" in tail.output
    assert runner.invoke(app, ["alerts", "resolve", str(opened.alert_id)]).exit_code == 0
    again = runner.invoke(app, ["alerts", "ack", str(opened.alert_id)])
    assert again.exit_code == 1 and "already resolved" in again.output
    engine.dispose()
