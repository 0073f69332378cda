"""Put the simulated city into the device registry (`pantau simulate --register`, `pantau up`)."""

from __future__ import annotations

import contextlib

from devices.registry import Registry
from devices.schemas import DeviceCreate
from pantau.errors import DuplicateError
from simulators.fleet import SimulatedDeviceInfo


def register_simulated_devices(registry: Registry, devices: list[SimulatedDeviceInfo]) -> int:
    """Create every device not yet registered (ids already there are left alone)."""
    created = 0
    for info in devices:
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
