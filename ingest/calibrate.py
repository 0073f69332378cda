"""Registry stages of the pipeline: who may send (a kind resolver for the Validator), the
calibration of each reading, and the district/site tags of its point.

- `RegistryKindResolver`: the kind of a registered device comes from the registry, not from
  its fields. An unregistered device is rejected (`unknown_device`) when registration is
  required; otherwise its kind is inferred from the catalog as before the registry existed.
  A retired device is rejected (`retired_device`); one in maintenance is still ingested.
- `CalibrationStage`: `value = raw * scale + offset` with the device's latest calibration
  version; the uncalibrated value is kept in `Reading.raw` (written as `<field>_raw`) when
  calibration changed it. Ranges were checked on the raw value by the Validator.
- `DeviceTagStage`: adds the registry's `district` and `site` as InfluxDB tags.

All three read the in-memory `DeviceDirectory` snapshot: no database access per message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from devices.directory import DirectoryEntry
from devices.models import DeviceStatus
from ingest.model import Reading, ReadingBlock, ReadingSet, RejectedError, RejectReason


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


class CalibrationStage:
    """Applies each device's current calibration (scale, offset) per field."""

    name = "calibrate"

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def process_set(self, batch: ReadingSet) -> None:
        self.process(batch.readings)
        for block in batch.blocks:
            self.process_block(block)

    def process_block(self, block: ReadingBlock) -> None:
        """The same arithmetic as `process`, a column at a time; raw kept where it changed."""
        entry = self.directory.get(block.device_id)
        if entry is None or not entry.calibration:
            return
        for field, (scale, offset) in entry.calibration.items():
            raw = block.fields.get(field)
            if raw is None:
                continue
            value = raw * scale + offset
            changed = value != raw
            if changed.any():
                block.raw[field] = np.where(changed, raw, np.nan)
                block.fields[field] = value

    def process(self, readings: list[Reading]) -> list[Reading]:
        for reading in readings:
            entry = self.directory.get(reading.device_id)
            if entry is None or not entry.calibration:
                continue
            for field, (scale, offset) in entry.calibration.items():
                raw = reading.fields.get(field)
                if raw is None:
                    continue
                value = raw * scale + offset
                if value != raw:
                    reading.raw[field] = raw
                    reading.fields[field] = value
        return readings


class DeviceTagStage:
    """Adds the device's registry tags (district, site) to each reading's point."""

    name = "device_tags"

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def process_set(self, batch: ReadingSet) -> None:
        self.process(batch.readings)
        for block in batch.blocks:
            entry = self.directory.get(block.device_id)
            if entry is not None and entry.tags:
                block.tags = entry.tag_items

    def process(self, readings: list[Reading]) -> list[Reading]:
        for reading in readings:
            entry = self.directory.get(reading.device_id)
            if entry is not None and entry.tags:
                reading.tags = entry.tag_items
        return readings
