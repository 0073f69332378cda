"""`RevisionWatcher`: the one "poll the registry revision and reload" loop.

Every registry change bumps one revision counter (`Registry.revision()`, a one-row read). A
watcher checks it every `interval_s` on a daemon thread and, when it moved, calls
`reload(seen)`, which loads whatever its owner keeps in step and returns the revision it
loaded. A failed check or reload is handed to `on_failure` and tried again at the next
interval: what was loaded last stays in force. Users: `devices/directory.py` (the ingester's
in-memory registry) and `devices/broker.py` (Mosquitto's password and ACL files).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from devices.registry import Registry


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
    ) -> None:
        """`on_checked` runs after every successful check, changed or not."""
        self.registry = registry
        self.reload = reload
        self.interval_s = interval_s
        self.name = name
        self.on_failure = on_failure
        self.on_checked = on_checked
        self.revision = -1  # the revision loaded last; -1: nothing yet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """One check; True when the revision moved and `reload` ran. Raises what they raise."""
        seen = self.registry.revision()
        changed = seen != self.revision
        if changed:
            self.revision = self.reload(seen)
        if self.on_checked is not None:
            self.on_checked()
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception as exc:  # a database hiccup must not end the watch for good
                self.on_failure(exc)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
