"""The registry gate: who may send. A kind resolver for the Validator, from the registry.

The kind of a registered device comes from the registry, not from its fields. An unregistered
device is rejected (`unknown_device`) when registration is required; otherwise its kind is
inferred from the catalog as before the registry existed. A retired device is rejected
(`retired_device`); one in maintenance is still ingested (its alerts are silenced elsewhere).
Reads the in-memory `DeviceDirectory` snapshot: no database access per message.

A device registered a moment ago may not be in the snapshot yet (its first reading can reach
the ingester before the directory's watcher has reloaded). So before calling a device unknown,
the gate asks the directory to `catch_up`: its watcher thread checks the registry at once and
the gate waits for that check, at most `CATCH_UP_WAIT_S` (0.25 s), then looks again. Bounded
so it can never stall the pipeline: at most once per `CATCH_UP_EVERY_S` (0.5 s), not at all
while an earlier catch-up is unanswered (a hung database costs one wait, not one per message),
and the SQL runs on the watcher's thread, never on this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from devices.directory import DirectoryEntry
from devices.models import DeviceStatus
from ingest.model import RejectedError, RejectReason

CATCH_UP_WAIT_S = 0.25
CATCH_UP_EVERY_S = 0.5


class Directory(Protocol):
    def get(self, device_id: str) -> DirectoryEntry | None: ...


class RegistryKindResolver:
    """A `KindResolver` for `Validator`, answering from the registry."""

    def __init__(
        self,
        directory: Directory,
        *,
        require_registered: bool,
        infer: Callable[[str, set[str]], str] | None = None,
        catch_up: Callable[[float], bool] | None = None,
        catch_up_wait_s: float = CATCH_UP_WAIT_S,
        catch_up_every_s: float = CATCH_UP_EVERY_S,
    ) -> None:
        """`catch_up(timeout_s)`: the directory's (`DeviceDirectory.catch_up`); None: the
        snapshot is taken as it is."""
        self.directory = directory
        self.require_registered = require_registered
        self.infer = infer
        self.catch_up = catch_up
        self.catch_up_wait_s = catch_up_wait_s
        self.catch_up_every_s = catch_up_every_s
        self.catch_ups = 0  # how many times an unknown device made the gate ask
        self._caught_up_at: float | None = None  # time.monotonic() of the last ask

    def _lookup(self, device_id: str) -> DirectoryEntry | None:
        entry = self.directory.get(device_id)
        if entry is not None or self.catch_up is None:
            return entry
        now = time.monotonic()
        if self._caught_up_at is not None and now - self._caught_up_at < self.catch_up_every_s:
            return None
        self._caught_up_at = now
        self.catch_ups += 1
        self.catch_up(self.catch_up_wait_s)
        return self.directory.get(device_id)

    def __call__(self, device_id: str, names: set[str]) -> str:
        entry = self._lookup(device_id)
        if entry is None:
            if self.require_registered or self.infer is None:
                raise RejectedError(
                    RejectReason.UNKNOWN_DEVICE, f"device {device_id} is not registered"
                )
            return self.infer(device_id, names)
        if entry.status is DeviceStatus.RETIRED:
            raise RejectedError(RejectReason.RETIRED_DEVICE, f"device {device_id} is retired")
        return entry.kind
