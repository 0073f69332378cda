"""The notification outbox and dispatcher on SQLite and PostgreSQL, with a real local webhook
receiver: one notification per event and recipient, retry with back-off while the receiver is
down (then exactly one delivery), failed after the last attempt, reminders and escalation until
acknowledged, two dispatchers at once, and a dispatcher process killed mid-send and restarted."""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from alerts.dispatcher import Dispatcher
from alerts.model import DeviceInfo, Severity, Signal, Trend
from alerts.outbox import counts, list_rows, retry_delay_s
from alerts.outbox_tables import outbox
from alerts.store import AlertStore
from alerts.webhook import verify
from pantau.settings import NotifySettings, Settings
from pantau.sql import make_engine
from tests.conftest import PantauProcess, eventually
from tests.notify_helpers import SmtpServer, WebhookReceiver
from tests.registry_helpers import database_url

LADDER = {"waspada": (1, 250.0), "siaga": (2, 300.0), "awas": (3, 380.0)}
NEXT = {"waspada": "siaga", "siaga": "awas", "awas": None}


class Clock:
    """The dispatcher's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def gauge(n: int = 1) -> DeviceInfo:
    return DeviceInfo(f"wl-malili-{n:02d}", "water_level", "Jembatan Malili", "Malili", -2.6, 121.1)


def river(level: str, at: datetime, device: int = 1, firing: bool = True) -> Signal:
    rank, threshold = LADDER.get(level, (0, None))
    return Signal(
        rule="river_level",
        device=gauge(device),
        level=level,
        level_rank=rank,
        severity=Severity.CRITICAL if rank == 3 else Severity.WARNING,
        at=at,
        field="level_cm",
        value=(threshold or 200.0) + 5,
        threshold=threshold,
        unit="cm",
        trend=Trend.RISING,
        next_level=NEXT.get(level),
        firing=firing,
    )


def notify_settings(*receivers: WebhookReceiver, **overrides: Any) -> NotifySettings:
    groups: list[dict[str, Any]] = [
        {
            "name": "bpbd",
            "webhooks": [{"url": r.url, "secret": f"secret-{i}"} for i, r in enumerate(receivers)],
        }
    ]
    groups += overrides.pop("extra_groups", [])
    return NotifySettings.model_validate({"groups": groups, **overrides})


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    for url in database_url(request.param, tmp_path):
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.down()


def drain(dispatcher: Dispatcher, rounds: int = 5) -> None:
    for _ in range(rounds):
        dispatcher.run_once()


def outbox_states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return counts(conn)


def test_every_event_goes_once_to_every_recipient(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    second = WebhookReceiver()
    clock = Clock()
    store = AlertStore(engine)
    dispatcher = Dispatcher(engine, notify_settings(receiver, second), clock=clock)
    try:
        store.apply([river("waspada", clock.now, firing=False)])  # pending: not news yet
        drain(dispatcher)
        assert receiver.posts == []
        store.apply([river("waspada", clock.now + timedelta(minutes=1))])
        store.apply([river("awas", clock.now + timedelta(minutes=2))])
        store.apply([river("awas", clock.now + timedelta(minutes=2))])  # redelivered: no event
        store.apply([river("normal", clock.now + timedelta(minutes=3))])
        drain(dispatcher)
        dispatcher.run_once()
    finally:
        dispatcher.close()
        second.down()
    for i, r in enumerate([receiver, second]):
        bodies = [p.json for p in r.posts]
        assert [b["notification"]["transition"] for b in bodies] == [
            "firing",
            "escalated",
            "resolved",
        ]
        assert [b["level"] for b in bodies] == ["waspada", "awas", "awas"]
        assert all(verify(p.body, f"secret-{i}", p.signature) for p in r.posts)
        assert len(r.deliveries()) == 3
        assert "Tinggi muka air" in bodies[0]["text"]["id"]
        assert "Water level" in bodies[0]["text"]["en"]
    assert outbox_states(engine) == {"delivered": 6}


def test_email_through_the_outbox_in_both_languages(engine: Engine) -> None:
    smtp = SmtpServer()
    clock = Clock()
    settings = NotifySettings.model_validate(
        {
            "groups": [{"name": "bpbd", "emails": ["petugas@bpbd.example"]}],
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_from": "pantau@bpbd.example",
        }
    )
    dispatcher = Dispatcher(engine, settings, clock=clock)
    try:
        AlertStore(engine).apply([river("awas", clock.now)])
        drain(dispatcher)
        drain(dispatcher)
    finally:
        dispatcher.close()
        smtp.stop()
    [message] = smtp.sink.messages
    body = message.get_content()
    assert message["To"] == "petugas@bpbd.example"
    assert message["Subject"] == "[Pantau] PERINGATAN AWAS — wl-malili-01"
    assert "Tinggi muka air 385 cm" in body and "Water level 385 cm" in body
    assert "WITA" in body
    assert outbox_states(engine) == {"delivered": 1}


def test_webhook_retried_while_down_then_delivered_exactly_once(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    settings = notify_settings(receiver, retry_base_s=30, retry_max_s=600)
    dispatcher = Dispatcher(engine, settings, clock=clock, rng=random.Random(1))
    receiver.down()
    AlertStore(engine).apply([river("siaga", clock.now)])
    dispatcher.run_once()
    with engine.connect() as conn:
        [row] = list_rows(conn)
    assert row["state"] == "pending" and row["attempts"] == 1
    assert "Connect" in row["last_error"]
    assert row["next_attempt_at"] >= clock.now + timedelta(seconds=15)  # 30 s, jitter ≥ 0.5
    dispatcher.run_once()  # not due yet: nothing is tried
    with engine.connect() as conn:
        assert list_rows(conn)[0]["attempts"] == 1
    clock.advance(seconds=60)
    dispatcher.run_once()  # second attempt, still down
    with engine.connect() as conn:
        row = list_rows(conn)[0]
    assert row["attempts"] == 2
    assert row["next_attempt_at"] >= clock.now + timedelta(seconds=30)  # 60 s after attempt 2
    receiver.up()
    clock.advance(seconds=600)
    drain(dispatcher)
    clock.advance(seconds=3600)
    drain(dispatcher)
    dispatcher.close()
    assert len(receiver.posts) == 1
    assert receiver.posts[0].json["level"] == "siaga"
    assert outbox_states(engine) == {"delivered": 1}


def test_failed_after_the_last_attempt_and_listed(
    engine: Engine, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    settings = notify_settings(receiver, max_attempts=3, retry_base_s=1, retry_max_s=5)
    dispatcher = Dispatcher(engine, settings, clock=clock)
    receiver.down()
    AlertStore(engine).apply([river("awas", clock.now)])
    for _ in range(6):
        dispatcher.run_once()
        clock.advance(seconds=10)
    dispatcher.close()
    with engine.connect() as conn:
        [row] = list_rows(conn, state="failed")
    assert row["attempts"] == 3 and row["channel"] == "webhook" and row["recipient"] == receiver.url
    assert any("failed after 3 attempts" in r.getMessage() for r in caplog.records)


def test_back_off_doubles_with_jitter_and_a_cap() -> None:
    settings = NotifySettings(retry_base_s=2, retry_max_s=60)
    rng = random.Random(3)
    for attempt, full in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (20, 60)]:
        delay = retry_delay_s(attempt, settings, rng)
        assert full / 2 <= delay <= full


def test_reminders_until_acknowledged_and_escalation(engine: Engine) -> None:
    team, chief = WebhookReceiver(), WebhookReceiver()
    clock = Clock()
    settings = notify_settings(
        team,
        reminder_interval_min=10,
        extra_groups=[
            {
                "name": "kepala",
                "severities": ["critical"],
                "escalate_after_min": 25,
                "webhooks": [{"url": chief.url, "secret": "chief"}],
            }
        ],
    )
    store = AlertStore(engine)
    dispatcher = Dispatcher(engine, settings, clock=clock, reminder_scan_s=0)

    def kinds(r: WebhookReceiver) -> list[str]:
        return [p.json["notification"]["kind"] for p in r.posts]

    try:
        [event] = store.apply([river("awas", clock.now)])
        drain(dispatcher)
        assert kinds(team) == ["event"] and kinds(chief) == []
        clock.advance(minutes=9)
        drain(dispatcher)
        assert kinds(team) == ["event"]
        clock.advance(minutes=1)
        drain(dispatcher)
        assert kinds(team) == ["event", "reminder"]
        clock.advance(minutes=10)
        drain(dispatcher)
        assert [p.json["notification"].get("number") for p in team.posts] == [None, 1, 2]
        assert kinds(chief) == []
        clock.advance(minutes=5)  # 25 min unacknowledged: the chief is told, once
        drain(dispatcher)
        clock.advance(minutes=1)
        drain(dispatcher)
        assert kinds(chief) == ["escalation"]
        assert chief.posts[0].json["level"] == "awas"
        assert verify(chief.posts[0].body, "chief", chief.posts[0].signature)
        # A reminder due while the receiver is down, then an acknowledgement: it is cancelled.
        team.down()
        clock.advance(minutes=4)  # 30 min: reminder 3 enqueued, its send fails
        drain(dispatcher)
        store.acknowledge(event.alert_id, "petugas-1", "menuju lokasi")
        team.up()
        clock.advance(hours=2)
        drain(dispatcher)
        assert kinds(team) == ["event", "reminder", "reminder", "event"]
        assert team.posts[-1].json["state"] == "acknowledged"
        assert kinds(chief) == ["escalation", "event"]  # told it is attended now
        assert chief.posts[-1].json["acknowledged_by"] == "petugas-1"
        assert outbox_states(engine) == {"delivered": 6, "cancelled": 1}
    finally:
        dispatcher.close()
        team.down()
        chief.down()


def test_two_dispatchers_at_once_send_each_notification_once(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    settings = notify_settings(receiver, poll_interval_s=0.005, batch_max_rows=3)
    store = AlertStore(engine)
    stop = threading.Event()
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(2)]
    workers = [threading.Thread(target=Dispatcher(e, settings).run, args=(stop,)) for e in engines]
    for w in workers:
        w.start()
    try:
        start = datetime.now(UTC)
        for minute, level in enumerate(["waspada", "siaga", "awas"]):
            store.apply([river(level, start + timedelta(minutes=minute), d) for d in range(1, 11)])
        eventually(lambda: len(receiver.posts) >= 30, 30, "30 webhooks")
        eventually(lambda: outbox_states(engine) == {"delivered": 30}, 10, "all delivered")
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        for e in engines:
            e.dispose()
    assert len(receiver.posts) == 30
    assert len(receiver.deliveries()) == 30
    pairs = {(p.json["device_id"], p.json["level"]) for p in receiver.posts}
    assert len(pairs) == 30


def test_dispatcher_killed_mid_send_and_restarted_loses_nothing(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """A real `pantau notify run` process, killed -9 while its sends are in flight (the
    receiver answers slowly), then started again: every notification arrives; a repeat can
    only be a send that was in flight at the kill, and it carries the same delivery id."""
    url = next(database_url("sqlite", tmp_path))
    receiver.delay_s = 0.3
    settings = Settings.model_validate({"database": {"url": url}})
    settings.notify = notify_settings(receiver, lease_s=1.5, batch_max_rows=4)
    engine = make_engine(url)
    store = AlertStore(engine)
    start = datetime.now(UTC)
    for minute, level in enumerate(["waspada", "siaga"]):
        store.apply([river(level, start + timedelta(minutes=minute), d) for d in range(1, 9)])
    first = PantauProcess(["notify", "run"], settings, tmp_path / "notify-1.log")
    first.start()
    try:
        eventually(
            lambda: len(receiver.posts) >= 2 and receiver.in_progress > 0,
            30,
            "webhooks delivered and one in flight",
            0.01,
        )
        first.signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.stop()

    def in_flight() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(outbox).where(outbox.c.state == "sending")
                ).scalar_one()
            )

    stranded = in_flight()
    second = PantauProcess(["notify", "run"], settings, tmp_path / "notify-2.log")
    second.start()
    try:
        eventually(lambda: outbox_states(engine) == {"delivered": 16}, 60, "all delivered")
    finally:
        second.stop()
        engine.dispose()
    deliveries = receiver.deliveries()
    assert len(deliveries) == 16  # what a receiver keeping delivery ids sees: each once
    repeats = len(receiver.posts) - len(deliveries)
    assert repeats <= stranded  # only sends in flight at the kill can repeat
    assert stranded >= 1, "the kill did not catch a send in flight: the test proved nothing"
    for posts in deliveries.values():
        assert len({p.body for p in posts}) == 1  # a repeat is the same notification


def test_failed_notifications_are_listed_by_the_api(
    settings: Settings, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.registry_helpers import bearer, role_tokens

    url = next(database_url("sqlite", tmp_path))
    app_settings = settings.model_copy(update={"database": settings.database.model_copy()})
    app_settings.database.url = url
    tokens = role_tokens(url)
    engine = make_engine(url)
    clock = Clock()
    receiver.down()
    dispatcher = Dispatcher(engine, notify_settings(receiver, max_attempts=1), clock=clock)
    [event] = AlertStore(engine).apply([river("awas", clock.now)])
    drain(dispatcher)
    dispatcher.close()
    engine.dispose()
    with TestClient(create_app(app_settings)) as client:
        answer = client.get(
            "/notifications", params={"state": "failed"}, headers=bearer(tokens["responder"])
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["counts"] == {"failed": 1}
        [row] = body["notifications"]
        assert row["alert_id"] == event.alert_id and row["recipient"] == receiver.url
        assert row["state"] == "failed" and row["attempts"] == 1 and row["last_error"]
        viewer = client.get("/notifications", headers=bearer(tokens["viewer"]))
        assert viewer.status_code == 403
        bad = client.get(
            "/notifications", params={"state": "lost"}, headers=bearer(tokens["admin"])
        )
        assert bad.status_code == 422
