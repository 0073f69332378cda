"""Registry stages of the pipeline: the calibration of each reading, and the district/site
tags of its point (who may send at all is `ingest/registry_gate.py`).

- `CalibrationStage`: `value = raw * scale + offset` with the device's latest calibration
  version; the uncalibrated value is kept in `Reading.raw` (written as `<field>_raw`) when
  calibration changed it. Ranges were checked on the raw value by the Validator.
- `DeviceTagStage`: adds the registry's `district` and `site` as InfluxDB tags.

Both read the in-memory `DeviceDirectory` snapshot: no database access per message.
"""

from __future__ import annotations

import numpy as np

from ingest.model import Reading, ReadingBlock, ReadingSet
from ingest.registry_gate import Directory


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
