"""Readings → InfluxDB points (line protocol), in the schema `pantau/influx_schema.py` defines
(measurement per kind, `device_id`/`district`/`site` tags, `<field>_raw`, `seq`,
`anomaly_score`, `anomaly_reason`, `ts_from_arrival`; the device's time in milliseconds, so a
redelivered message overwrites itself instead of duplicating). The API reads rows back with the
same module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import repeat

import numpy as np

from ingest.lineprotocol import (
    LineProtocolError,
    escape_key,
    escape_measurement,
    format_point,
    format_string_value,
)
from ingest.model import Reading, ReadingBlock
from pantau.influx_schema import (
    FIELD_ANOMALY_REASON,
    FIELD_ANOMALY_SCORE,
    FIELD_SEQ,
    FIELD_TS_FROM_ARRIVAL,
    TAG_DEVICE_ID,
    measurement,
    raw_field,
)

# The schema's field keys as line-protocol text, once (they need no escaping).
_SEQ = escape_key(FIELD_SEQ)
_SCORE = escape_key(FIELD_ANOMALY_SCORE)
_REASON = escape_key(FIELD_ANOMALY_REASON)
_FROM_ARRIVAL = escape_key(FIELD_TS_FROM_ARRIVAL) + "=true"


def reading_to_line(reading: Reading, extra_tags: Mapping[str, str] | None = None) -> str:
    """The reference formatting of one reading (PointFormatter must produce the same line)."""
    fields: dict[str, float | int | bool | str] = dict(reading.fields)
    for name, raw in reading.raw.items():
        fields[raw_field(name)] = raw
    if reading.seq is not None:
        fields[FIELD_SEQ] = reading.seq
    if reading.anomaly_score is not None:
        fields[FIELD_ANOMALY_SCORE] = reading.anomaly_score
    if reading.anomaly_reason is not None:
        fields[FIELD_ANOMALY_REASON] = reading.anomaly_reason
    if reading.ts_from_arrival:
        fields[FIELD_TS_FROM_ARRIVAL] = True
    tags = [(TAG_DEVICE_ID, reading.device_id), *reading.tags]
    if extra_tags:
        tags.extend(extra_tags.items())
    return format_point(measurement(reading.kind), tags, fields, reading.ts_ms)


class PointFormatter:
    """Formats readings as lines on the hot path, caching escaped series keys and field names.

    Produces exactly `reading_to_line`'s output (a property test holds them together); the
    caches are bounded because series and field names are few (devices times kinds).
    """

    def __init__(self, max_cached: int = 200_000) -> None:
        self.max_cached = max_cached
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
        self._keys: dict[str, str] = {}
        self._reasons: dict[str, str] = {}  # anomaly reason → its escaped field text

    def _series_key(self, reading: Reading | ReadingBlock) -> str:
        key = (reading.kind, reading.device_id, reading.tags)
        prefix = self._series.get(key)
        if prefix is None:
            parts = [escape_measurement(measurement(reading.kind))]
            for tag, value in sorted([(TAG_DEVICE_ID, reading.device_id), *reading.tags]):
                if value:
                    parts.append(f"{escape_key(tag)}={escape_key(value)}")
            prefix = ",".join(parts)
            if len(self._series) >= self.max_cached:
                self._series.clear()
            self._series[key] = prefix
        return prefix

    def _field_key(self, name: str) -> str:
        escaped = self._keys.get(name)
        if escaped is None:
            escaped = escape_key(name)
            if len(self._keys) >= self.max_cached:
                self._keys.clear()
            self._keys[name] = escaped
        return escaped

    def line(self, reading: Reading) -> str:
        fk = self._field_key
        parts = []
        for name, value in reading.fields.items():
            if value - value != 0.0:  # NaN or ±Inf (value - value is NaN for both)
                raise LineProtocolError(f"{name} is not finite")
            parts.append(f"{fk(name)}={value!r}")
        for name, value in reading.raw.items():
            if value - value != 0.0:
                raise LineProtocolError(f"{raw_field(name)} is not finite")
            parts.append(f"{fk(raw_field(name))}={value!r}")
        if reading.seq is not None:
            parts.append(f"{_SEQ}={reading.seq}i")
        if reading.anomaly_score is not None:
            score = reading.anomaly_score
            if score - score != 0.0:
                raise LineProtocolError(f"{FIELD_ANOMALY_SCORE} is not finite")
            parts.append(f"{_SCORE}={score!r}")
        if reading.anomaly_reason is not None:
            parts.append(f"{_REASON}={format_string_value(reading.anomaly_reason)}")
        if reading.ts_from_arrival:
            parts.append(_FROM_ARRIVAL)
        if not parts:
            raise LineProtocolError("a point needs at least one field")
        return f"{self._series_key(reading)} {','.join(parts)} {reading.ts_ms}"

    def block_lines(self, block: ReadingBlock) -> list[str]:
        """The lines of a block's rows, column by column: `[line(r) for r in
        block.to_readings()]`, without a `Reading` per row. Raises LineProtocolError as
        `line` would for the first row that cannot be written.

        Each line is joined from per-column pieces in one C-level pass (`map("".join,
        zip(...))`); a piece after the first carries its own leading comma, so a field
        absent from a row (a raw value calibration left alone, an anomaly reason) is "".
        """
        fk = self._field_key
        n = len(block)
        parts: list[Iterable[str]] = []
        first = True
        for name, column in block.fields.items():
            if not np.isfinite(column).all():
                raise LineProtocolError(f"{name} is not finite")
            parts.append(repeat(("" if first else ",") + fk(name) + "="))
            parts.append(map(repr, column.tolist()))
            first = False
        if first:
            raise LineProtocolError("a point needs at least one field")
        for name, column in block.raw.items():
            present = column == column  # not NaN: calibration changed this row
            if not np.isfinite(column[present]).all():
                raise LineProtocolError(f"{raw_field(name)} is not finite")
            key = "," + fk(raw_field(name)) + "="
            if present.all():
                parts.append(repeat(key))
                parts.append(map(repr, column.tolist()))
            else:
                parts.append(["" if v != v else key + repr(v) for v in column.tolist()])
        if block.seq is not None:
            parts.append(repeat(f",{_SEQ}="))
            parts.append(map(str, block.seq.tolist()))
            parts.append(repeat("i"))
        if block.anomaly_score is not None:
            if not np.isfinite(block.anomaly_score).all():
                raise LineProtocolError(f"{FIELD_ANOMALY_SCORE} is not finite")
            parts.append(repeat(f",{_SCORE}="))
            parts.append(map(repr, block.anomaly_score.tolist()))
        if block.anomaly_reason:
            reasons = [""] * n
            texts = self._reasons
            for row, text in block.anomaly_reason.items():
                piece = texts.get(text)
                if piece is None:
                    piece = f",{_REASON}={format_string_value(text)}"
                    if len(texts) < 10_000:  # fields times detector parts: a few dozen
                        texts[text] = piece
                reasons[row] = piece
            parts.append(reasons)
        parts.append(repeat(" "))
        parts.append(map(str, block.ts_ms.tolist()))
        prefix = self._series_key(block) + " "
        # zip ends with the columns: the repeated constants are endless
        return [prefix + line for line in map("".join, zip(*parts, strict=False))]
