"""`RevisionWatcher`: the one "watch the registry revision and reload" loop.

Every registry change bumps one revision counter (`Registry.revision()`, a one-row read). A
watcher checks it on a daemon thread and, when it moved, calls `reload(seen)`, which loads
whatever its owner keeps in step and returns the revision it loaded. A failed check or reload
is handed to `on_failure` and tried again at the next check: what was loaded last stays in
force. Users: `devices/directory.py` (the ingester's in-memory registry) and
`devices/broker.py` (Mosquitto's password and ACL files).

When it checks, so that a device registered a moment ago is known at once:

- PostgreSQL: every registry write transaction sends `NOTIFY pantau_registry` on commit
  (`devices/registry.py`); a second thread holds a dedicated connection that LISTENs on that
  channel and wakes the check at each notice — milliseconds after the commit. `interval_s`
  is then only the fallback poll: notices can be lost (the listening connection dropped, a
  pooler that does not pass LISTEN through), so the check also runs every `interval_s`. A
  dropped LISTEN connection is reconnected with the project's retry policy
  (`pantau/retry.py`); after it is back, one check catches up with what was missed.
- SQLite (one host, no notices): the check polls the revision row every `local_interval_s`
  (0.1 s), or `interval_s` if that is shorter. One primary-key read of a one-row table on a
  pooled connection, tens of microseconds; `PRAGMA data_version` would be no cheaper and would
  tie the check to one connection, so the revision row it is — the same read as PostgreSQL's
  fallback, one code path.

`catch_up(timeout_s)` lets a caller (the ingester's registry gate, on a message from a device it
does not know) have the thread check now and wait, bounded, for a check that *began after the
call* to finish; the caller itself never touches the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from devices.registry import REVISION_CHANNEL, Registry
from pantau.retry import RetryStoppedError, retry_policy

log = logging.getLogger(__name__)

LOCAL_INTERVAL_S = 0.1  # SQLite: how often the revision row is read
LISTEN_WAIT_S = 0.25  # how long the listener blocks for notices before looking at `stop`
LISTEN_RETRY_MAX_S = 30.0  # the LISTEN connection's reconnect back-off, at most


class RevisionWatcher:
    def __init__(
        self,
        registry: Registry,
        reload: Callable[[int], int],
        interval_s: float,
        *,
        name: str,
        on_failure: Callable[[Exception], None],
        on_checked: Callable[[], None] | None = None,
        local_interval_s: float = LOCAL_INTERVAL_S,
    ) -> None:
        """`on_checked` runs after every successful check, changed or not. `interval_s`: the
        poll when change notices arrive (PostgreSQL); `local_interval_s`: when none can
        (SQLite)."""
        self.registry = registry
        self.reload = reload
        self.interval_s = interval_s
        self.name = name
        self.on_failure = on_failure
        self.on_checked = on_checked
        self.listens = registry.engine.dialect.name == "postgresql"
        self.poll_s = interval_s if self.listens else min(interval_s, local_interval_s)
        self.revision = -1  # the revision loaded last; -1: nothing yet
        self.notices = 0  # change notices received (PostgreSQL)
        self.listen_failures = 0  # LISTEN connections lost or not made
        self.listen_backend_pid: int | None = None  # the LISTEN connection's server process
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._served = threading.Condition()
        self._asked = 0  # catch-up requests made
        self._answered = 0  # of those, how many a finished check began after
        self._threads: list[threading.Thread] = []

    def check(self) -> bool:
        """One check; True when the revision moved and `reload` ran. Raises what they raise."""
        seen = self.registry.revision()
        changed = seen != self.revision
        if changed:
            self.revision = self.reload(seen)
        if self.on_checked is not None:
            self.on_checked()
        return changed

    def wake(self) -> None:
        """Check now rather than at the next poll."""
        self._wake.set()

    def catch_up(self, timeout_s: float) -> bool:
        """Have the thread check now; wait at most `timeout_s` for a check that began after
        this call to finish (failed or not). True when one did. Returns False at once when the
        watcher is not running or an earlier catch-up is still unanswered (a hung database
        then costs one wait, not one per caller)."""
        with self._served:
            if not self._threads or self._answered < self._asked:
                return False
            self._asked += 1
            asked = self._asked
            self._wake.set()
            return self._served.wait_for(lambda: self._answered >= asked, timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.poll_s)
            if self._stop.is_set():
                return
            self._wake.clear()
            with self._served:
                asked = self._asked  # every request so far is answered by this check
            try:
                self.check()
            except Exception as exc:  # a database hiccup must not end the watch for good
                self.on_failure(exc)
            with self._served:
                self._answered = max(self._answered, asked)
                self._served.notify_all()

    # --- PostgreSQL: LISTEN ---------------------------------------------------------------

    def _listen_connection(self) -> psycopg.Connection[Any]:
        """A connection of its own (not the pool's), LISTENing; TCP keepalives so that a
        silently dead link is noticed within half a minute."""
        url = self.registry.engine.url
        params: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
        params.update({k: v for k, v in url.query.items() if isinstance(v, str)})
        params.setdefault("connect_timeout", 5)
        params.update(keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
        conn = psycopg.connect(autocommit=True, **params)
        try:
            conn.execute(f"LISTEN {REVISION_CHANNEL}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _listen(self) -> None:
        def lost(exc: BaseException, wait_s: float) -> None:
            self.listen_failures += 1
            log.warning(
                "%s: no LISTEN connection (%s); polling every %gs, retrying in %.1fs",
                self.name,
                exc,
                self.interval_s,
                wait_s,
            )

        connect = retry_policy(
            psycopg.Error,
            initial_s=0.5,
            max_s=LISTEN_RETRY_MAX_S,
            stop=self._stop,
            before_retry=lost,
        )
        while not self._stop.is_set():
            try:
                conn = connect(self._listen_connection)
            except RetryStoppedError:
                return
            except Exception:  # not an outage (a URL libpq cannot use): the poll carries on
                self.listen_failures += 1
                log.exception("%s: cannot LISTEN; polling every %gs", self.name, self.interval_s)
                return
            self.listen_backend_pid = conn.info.backend_pid
            self.wake()  # whatever changed while nobody listened
            try:
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=LISTEN_WAIT_S):
                        self.notices += 1
                        self.wake()
            except psycopg.Error as exc:
                self.listen_failures += 1
                log.warning("%s: LISTEN connection lost (%s); reconnecting", self.name, exc)
            finally:
                self.listen_backend_pid = None
                conn.close()

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        targets = [(self._run, self.name)]
        if self.listens:
            targets.append((self._listen, f"{self.name}-listen"))
        self._threads = [
            threading.Thread(target=target, name=name, daemon=True) for target, name in targets
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._served:
            self._threads = []
            self._served.notify_all()
