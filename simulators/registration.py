"""Put the simulated city into the device registry (`pantau simulate --register`, `pantau up`)."""

from __future__ import annotations

import contextlib

from devices.registry import Registry
from devices.schemas import DeviceCreate, DeviceUpdate
from pantau.errors import DuplicateError, NotFoundError
from simulators.fleet import SimulatedDeviceInfo


def register_simulated_devices(registry: Registry, devices: list[SimulatedDeviceInfo]) -> int:
    """Create every device not yet registered. Ids already there are left alone, except that
    a gauge registered without warning levels gets its Waspada/Siaga/Awas (the alert rules
    need them; an earlier version registered none)."""
    created = 0
    for info in devices:
        if info.thresholds:
            with contextlib.suppress(NotFoundError):
                existing = registry.get_device(info.id)
                if not existing.thresholds:
                    registry.update_device(info.id, DeviceUpdate(thresholds=info.thresholds))
                continue
        with contextlib.suppress(DuplicateError):
            registry.create_device(
                DeviceCreate(
                    id=info.id,
                    kind=info.kind,
                    name=info.name,
                    site=info.site,
                    district=info.district,
                    latitude=info.lat,
                    longitude=info.lon,
                    elevation_m=info.elevation,
                    thresholds=info.thresholds,
                    notes="simulated device, registered by the simulator",
                )
            )
            created += 1
    return created
