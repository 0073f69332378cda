"""`DeviceDirectory`: the whole registry in memory for the ingest hot path.

A lookup is one dict access — no database round-trip per message. A `RevisionWatcher` thread
checks the registry's revision counter (one tiny query) when PostgreSQL notifies a change, or
every `local_interval_s` (0.1 s) on SQLite, and at the latest every `refresh_interval_s`; when
it moved, it reloads every device and its latest calibration in one read and swaps the
snapshot in atomically, so a registration, retirement or calibration reaches a running ingester
within milliseconds without a restart. `catch_up` has that thread check at once (the registry
gate asks, bounded, before it calls a device unknown). If the database is unreachable the last
snapshot keeps serving (and the failure is counted and logged): ingestion does not stop because
the registry is down.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from devices.models import DeviceStatus
from devices.registry import Registry
from devices.revision_watch import LOCAL_INTERVAL_S, RevisionWatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """What the ingester needs to know about one device."""

    id: str
    kind: str
    status: DeviceStatus
    tags: dict[str, str] = field(default_factory=dict)  # district, site (when set)
    # field → (scale, offset) of the latest calibration version
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    calibration_version: int | None = None
    # For the alert rules: where it is, how often it reports, its threshold overrides.
    name: str = ""
    site: str = ""
    district: str = ""
    latitude: float | None = None
    longitude: float | None = None
    interval_s: float = 60.0
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)

    # The tags as the sorted, hashable pairs a `Reading` carries (computed once, hot path).
    tag_items: tuple[tuple[str, str], ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "tag_items", tuple(sorted(self.tags.items())))


class DeviceDirectory:
    def __init__(
        self,
        registry: Registry,
        refresh_interval_s: float = 2.0,
        local_interval_s: float = LOCAL_INTERVAL_S,
    ) -> None:
        self.registry = registry
        self.refresh_interval_s = refresh_interval_s
        self.loaded_at = 0.0  # time.monotonic() of the last successful check
        self.refresh_failures = 0
        self._entries: dict[str, DirectoryEntry] = {}
        self._watch = RevisionWatcher(
            registry,
            self._reload,
            refresh_interval_s,
            name="device-directory",
            on_failure=self._refresh_failed,
            on_checked=self._checked,
            local_interval_s=local_interval_s,
        )

    @property
    def revision(self) -> int:
        """The registry revision of the snapshot served; -1 before the first load."""
        return self._watch.revision

    def get(self, device_id: str) -> DirectoryEntry | None:
        return self._entries.get(device_id)

    def __len__(self) -> int:
        return len(self._entries)

    def load(self) -> None:
        """Read every device and its latest calibration; replace the snapshot."""
        revision, devices, calibrations = self.registry.current_state()
        entries = {}
        for device in devices:
            calibration = calibrations.get(device.id)
            tags = {k: v for k, v in (("district", device.district), ("site", device.site)) if v}
            entries[device.id] = DirectoryEntry(
                id=device.id,
                kind=device.kind,
                status=DeviceStatus(device.status),
                tags=tags,
                calibration={
                    name: (float(c.get("scale", 1.0)), float(c.get("offset", 0.0)))
                    for name, c in (calibration.fields if calibration else {}).items()
                },
                calibration_version=calibration.version if calibration else None,
                name=device.name,
                site=device.site,
                district=device.district,
                latitude=device.latitude,
                longitude=device.longitude,
                interval_s=device.interval_s,
                thresholds=device.thresholds or {},
            )
        self._entries = entries  # one reference swap: readers see the old or the new, whole
        self._watch.revision = revision
        self.loaded_at = time.monotonic()
        log.info("device directory: %d devices at registry revision %d", len(entries), revision)

    def refresh(self) -> bool:
        """Reload when the registry revision moved; True when it did."""
        return self._watch.check()

    def catch_up(self, timeout_s: float) -> bool:
        """Check the registry now, on the watcher's thread; wait at most `timeout_s` (see
        `RevisionWatcher.catch_up`). True when a check that began after the call finished."""
        return self._watch.catch_up(timeout_s)

    def _reload(self, seen: int) -> int:
        self.load()
        return self._watch.revision

    def _checked(self) -> None:
        self.loaded_at = time.monotonic()

    def _refresh_failed(self, exc: Exception) -> None:  # keep serving the last snapshot
        self.refresh_failures += 1
        log.warning("device directory refresh failed (serving the last one): %s", exc)

    def start(self) -> None:
        """Load now (raises if the registry cannot be read), then refresh in the background."""
        self.load()
        self._watch.start()

    def stop(self) -> None:
        self._watch.stop()
