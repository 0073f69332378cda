"""Readings → InfluxDB points (line protocol). The InfluxDB schema is decided here.

Schema (see ARCHITECTURE.md): one measurement per device kind (`water_level`, `environment`,
`traffic`, ...); tags `device_id` and, when the registry knows them, `district` and `site` —
all low-cardinality; fields are the catalog values as floats, `seq` as an integer (never a tag:
it is unique per message), `anomaly_score` as a float, `<field>_raw` for pre-calibration
values, and `ts_from_arrival=true` when the device sent no time. The timestamp is the
device's, in milliseconds, so a redelivered message overwrites itself instead of duplicating.
"""

from __future__ import annotations

from collections.abc import Mapping

from ingest.lineprotocol import format_point
from ingest.model import Reading


def reading_to_line(reading: Reading, extra_tags: Mapping[str, str] | None = None) -> str:
    fields: dict[str, float | int | bool | str] = dict(reading.fields)
    for name, raw in reading.raw.items():
        fields[f"{name}_raw"] = raw
    if reading.seq is not None:
        fields["seq"] = reading.seq
    if reading.anomaly_score is not None:
        fields["anomaly_score"] = reading.anomaly_score
    if reading.ts_from_arrival:
        fields["ts_from_arrival"] = True
    tags = [("device_id", reading.device_id)]
    if reading.tags:
        tags.extend(sorted(reading.tags.items()))
    if extra_tags:
        tags.extend(extra_tags.items())
    return format_point(reading.kind, tags, fields, reading.ts_ms)
