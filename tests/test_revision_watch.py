"""`RevisionWatcher` on real databases: PostgreSQL's NOTIFY wakes it (no poll needed), a
dropped LISTEN connection is survived (the poll carries on, the listener reconnects), SQLite is
polled at a short interval, and `catch_up` (what the ingester's registry gate asks before it
calls a device unknown) is answered by a check that began after it, bounded when the database
hangs.

The watchers here poll every hour unless a test says otherwise: a change seen within the
test's patience was seen through a notice or a catch-up, not by the poll.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from devices.directory import DeviceDirectory
from devices.registry import Registry
from devices.revision_watch import RevisionWatcher
from devices.schemas import DeviceCreate
from ingest.model import RejectedError, RejectReason
from ingest.registry_gate import RegistryKindResolver
from pantau.sql import make_engine
from tests.conftest import eventually
from tests.registry_helpers import POSTGRES_ADMIN_URL, database_url

HOUR = 3600.0


class Reloads:
    """A watcher's `reload`: records the revisions it was asked to load."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, revision: int) -> int:
        self.seen.append(revision)
        return revision


def _registry(backend: str, tmp_path: Path) -> Iterator[Registry]:
    for url in database_url(backend, tmp_path):
        engine = make_engine(url)
        yield Registry(engine)
        engine.dispose()


@pytest.fixture
def pg_registry(tmp_path: Path) -> Iterator[Registry]:
    yield from _registry("postgresql", tmp_path)


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    yield from _registry("sqlite", tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    yield from _registry(request.param, tmp_path)


def _device(device_id: str) -> DeviceCreate:
    return DeviceCreate(id=device_id, kind="water_level", name=device_id)


def _watcher(registry: Registry, reloads: Reloads, **kwargs: float) -> RevisionWatcher:
    failures: list[Exception] = []
    options = {"interval_s": HOUR, "local_interval_s": HOUR, **kwargs}
    return RevisionWatcher(
        registry,
        reloads,
        options["interval_s"],
        name="test-watch",
        on_failure=failures.append,
        local_interval_s=options["local_interval_s"],
    )


def _admin_execute(sql: str, **params: object) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql), params)
    finally:
        admin.dispose()


def test_notify_wakes_the_watcher_and_a_dropped_listen_connection_is_survived(
    pg_registry: Registry,
) -> None:
    registry = pg_registry
    reloads = Reloads()
    watch = _watcher(registry, reloads)
    watch.start()
    try:
        first_pid = eventually(lambda: watch.listen_backend_pid, what="LISTENing")
        eventually(lambda: reloads.seen, what="the first load")  # on (re)connecting
        registry.create_device(_device("wl-n1"))
        eventually(lambda: registry.revision() in reloads.seen, what="reload woken by the notice")
        assert watch.notices >= 1
        # The server ends the LISTEN connection: the watcher reconnects and listens again.
        _admin_execute("SELECT pg_terminate_backend(:pid)", pid=first_pid)
        eventually(
            lambda: watch.listen_backend_pid not in (None, first_pid),
            what="LISTENing again on a new connection",
        )
        assert watch.listen_failures >= 1
        notices = watch.notices
        registry.create_device(_device("wl-n2"))
        eventually(lambda: registry.revision() in reloads.seen, what="reload woken after reconnect")
        assert watch.notices > notices
    finally:
        watch.stop()


def test_the_poll_carries_on_while_nobody_can_listen(pg_registry: Registry) -> None:
    """No new connection is possible (`ALLOW_CONNECTIONS false`) and the LISTEN connection is
    ended: changes are still seen, by the fallback poll on the pool's open connection; once
    connections are allowed again the listener is back."""
    registry = pg_registry
    name = registry.engine.url.database
    reloads = Reloads()
    watch = _watcher(registry, reloads, interval_s=0.2)
    watch.start()
    try:
        pid = eventually(lambda: watch.listen_backend_pid, what="LISTENing")
        held = [registry.engine.connect() for _ in range(3)]
        for conn in held:  # back to the pool, which keeps them open
            conn.close()
        _admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            _admin_execute("SELECT pg_terminate_backend(:pid)", pid=pid)
            eventually(lambda: watch.listen_failures >= 2, what="reconnects refused")
            registry.create_device(_device("wl-p1"))
            revision = registry.revision()
            eventually(lambda: revision in reloads.seen, what="change seen by the poll")
            assert watch.listen_backend_pid is None
        finally:
            _admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        eventually(lambda: watch.listen_backend_pid, timeout_s=60, what="LISTENing again")
        notices = watch.notices
        registry.create_device(_device("wl-p2"))
        eventually(lambda: watch.notices > notices, what="notices again")
    finally:
        watch.stop()


def test_sqlite_is_polled_at_the_short_interval(sqlite_registry: Registry) -> None:
    registry = sqlite_registry
    reloads = Reloads()
    watch = _watcher(registry, reloads, local_interval_s=0.1)
    assert not watch.listens and watch.poll_s == 0.1
    watch.start()
    try:
        registry.create_device(_device("wl-s1"))
        eventually(lambda: registry.revision() in reloads.seen, what="change polled")
    finally:
        watch.stop()


def test_catch_up_is_answered_by_a_check_that_began_after_it(any_registry: Registry) -> None:
    registry = any_registry
    reloads = Reloads()
    watch = _watcher(registry, reloads)
    assert not watch.catch_up(5)  # not running: nothing to ask
    watch.start()
    try:
        assert watch.catch_up(30)
        registry.create_device(_device("wl-c1"))
        assert watch.catch_up(30)
        assert reloads.seen[-1] == registry.revision()
    finally:
        watch.stop()


def test_catch_up_is_bounded_while_the_database_hangs(pg_registry: Registry) -> None:
    """Another transaction holds the revision table locked: the check hangs. A catch-up waits
    its timeout and no more; the next returns at once (the first is still unanswered), and so
    does the gate's, which calls the device unknown. Released, the check completes."""
    registry = pg_registry
    directory = DeviceDirectory(registry, refresh_interval_s=HOUR, local_interval_s=HOUR)
    directory.start()
    gate = RegistryKindResolver(
        directory, require_registered=True, catch_up=directory.catch_up, catch_up_every_s=0
    )
    locker = registry.engine.connect()
    try:
        locker.begin()
        locker.execute(text("LOCK TABLE registry_revision IN ACCESS EXCLUSIVE MODE"))
        assert not directory.catch_up(0.2)
        outcome: list[bool] = []
        second = threading.Thread(target=lambda: outcome.append(directory.catch_up(HOUR)))
        second.start()
        second.join(30)
        assert outcome == [False]  # returned at once, though it may wait an hour
        with pytest.raises(RejectedError) as refused:
            gate("wl-ghost", {"level_cm"})  # asks, is told at once: unknown
        assert refused.value.reason is RejectReason.UNKNOWN_DEVICE
        assert gate.catch_ups == 1
        locker.rollback()
        eventually(lambda: directory.catch_up(30), what="the hung check completed")
    finally:
        locker.close()
        directory.stop()


def test_the_gate_catches_up_once_before_calling_a_device_unknown(
    sqlite_registry: Registry,
) -> None:
    registry = sqlite_registry
    directory = DeviceDirectory(registry, refresh_interval_s=HOUR, local_interval_s=HOUR)
    directory.start()
    gate = RegistryKindResolver(
        directory, require_registered=True, catch_up=directory.catch_up, catch_up_every_s=HOUR
    )
    try:
        registry.create_device(_device("wl-g1"))
        assert directory.get("wl-g1") is None  # the snapshot does not know it yet
        assert gate("wl-g1", {"level_cm"}) == "water_level"
        assert gate.catch_ups == 1
        registry.create_device(_device("wl-g2"))
        with pytest.raises(RejectedError) as refused:  # once an hour, here
            gate("wl-g2", {"level_cm"})
        assert refused.value.reason is RejectReason.UNKNOWN_DEVICE
        assert gate.catch_ups == 1
        assert gate("wl-g1", {"level_cm"}) == "water_level"  # known: no ask
        assert gate.catch_ups == 1
    finally:
        directory.stop()
