"""The registry gate: who may send. A kind resolver for the Validator, from the registry.

The kind of a registered device comes from the registry, not from its fields. An unregistered
device is rejected (`unknown_device`) when registration is required; otherwise its kind is
inferred from the catalog as before the registry existed. A retired device is rejected
(`retired_device`); one in maintenance is still ingested (its alerts are silenced elsewhere).
Reads the in-memory `DeviceDirectory` snapshot: no database access per message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from devices.directory import DirectoryEntry
from devices.models import DeviceStatus
from ingest.model import RejectedError, RejectReason


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
    ) -> None:
        self.directory = directory
        self.require_registered = require_registered
        self.infer = infer

    def __call__(self, device_id: str, names: set[str]) -> str:
        entry = self.directory.get(device_id)
        if entry is None:
            if self.require_registered or self.infer is None:
                raise RejectedError(
                    RejectReason.UNKNOWN_DEVICE, f"device {device_id} is not registered"
                )
            return self.infer(device_id, names)
        if entry.status is DeviceStatus.RETIRED:
            raise RejectedError(RejectReason.RETIRED_DEVICE, f"device {device_id} is retired")
        return entry.kind
