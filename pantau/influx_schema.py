"""The InfluxDB schema of readings, defined once: the write side (ingest/points.py) spells
points with these names and the read side (api/routes/readings.py) reads rows back with them.

One measurement per device kind (`water_level`, `environment`, `traffic`, ...). Tags:
`device_id` and, when the registry knows them, `district` and `site` — all low-cardinality.
Fields: the catalog values as floats, `<field>_raw` for a value before calibration changed it,
`seq` (integer; never a tag, it is unique per message), `anomaly_score` (float, 0..1),
`anomaly_reason` (string, only when the score crossed the threshold) and
`ts_from_arrival=true` when the device sent no time. The timestamp is the device's, in
milliseconds, so a redelivered message overwrites itself instead of duplicating.

InfluxDB stores times as signed 64-bit nanoseconds since the epoch: `influx_time_ns` refuses
a time outside that range (a request's mistake, not an outage).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pantau.influxdb import quote_ident, quote_string

TAG_DEVICE_ID = "device_id"
TAG_DISTRICT = "district"
TAG_SITE = "site"
TAGS = (TAG_DEVICE_ID, TAG_DISTRICT, TAG_SITE)

FIELD_SEQ = "seq"
FIELD_ANOMALY_SCORE = "anomaly_score"
FIELD_ANOMALY_REASON = "anomaly_reason"
FIELD_TS_FROM_ARRIVAL = "ts_from_arrival"
RAW_SUFFIX = "_raw"

# Columns of a query row that are not catalog values (nor their raw twins).
META_COLUMNS = frozenset(
    {"time", *TAGS, FIELD_SEQ, FIELD_ANOMALY_SCORE, FIELD_ANOMALY_REASON, FIELD_TS_FROM_ARRIVAL}
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# InfluxDB's own bounds (models.MinNanoTime / MaxNanoTime): int64 nanoseconds, minus sentinels.
MIN_TIME_NS = -9_223_372_036_854_775_806
MAX_TIME_NS = 9_223_372_036_854_775_806
MIN_TIME = _EPOCH + timedelta(microseconds=MIN_TIME_NS // 1000 + 1)
MAX_TIME = _EPOCH + timedelta(microseconds=MAX_TIME_NS // 1000)


def measurement(kind: str) -> str:
    """The measurement that holds a device kind's readings."""
    return kind


def raw_field(name: str) -> str:
    """The field holding `name`'s value before calibration."""
    return name + RAW_SUFFIX


class TimeOutOfRangeError(ValueError):
    """A time InfluxDB cannot represent."""


def influx_time_ns(value: datetime) -> int:
    """An aware datetime as InfluxDB nanoseconds, exactly; TimeOutOfRangeError outside
    the range InfluxDB can store (about 1677-09-21 to 2262-04-11)."""
    delta = value - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if not MIN_TIME_NS <= ns <= MAX_TIME_NS:
        raise TimeOutOfRangeError(
            f"{value.isoformat()} is outside the times InfluxDB can store "
            f"({MIN_TIME.isoformat()} to {MAX_TIME.isoformat()})"
        )
    return ns


def device_readings_query(
    kinds: Iterable[str], device_id: str, since_ns: int, until_ns: int, limit: int
) -> str:
    """InfluxQL for one device's readings with since <= time < until, oldest first, at most
    `limit` rows per series. `device_id` is quoted as a literal, kinds as identifiers."""
    measurements = ",".join(quote_ident(measurement(kind)) for kind in sorted(kinds))
    return (
        f"SELECT * FROM {measurements} WHERE {quote_ident(TAG_DEVICE_ID)} = "
        f"{quote_string(device_id)} AND time >= {since_ns} AND time < {until_ns} "
        f"ORDER BY time ASC LIMIT {int(limit)}"
    )


@dataclass(frozen=True)
class StoredReading:
    """One reading as read back from InfluxDB (the inverse of a written point)."""

    ts_ms: int
    kind: str
    fields: dict[str, float]
    raw: dict[str, float] = field(default_factory=dict)
    seq: int | None = None
    anomaly_score: float | None = None
    anomaly_reason: str | None = None
    ts_from_arrival: bool = False


def stored_reading(kind: str, row: Mapping[str, Any]) -> StoredReading:
    """A query row (epoch=ms) of measurement `kind` → the reading it was written from."""
    fields: dict[str, float] = {}
    raw: dict[str, float] = {}
    for key, value in row.items():
        if key in META_COLUMNS or value is None or isinstance(value, bool | str):
            continue
        if key.endswith(RAW_SUFFIX):
            raw[key[: -len(RAW_SUFFIX)]] = float(value)
        else:
            fields[key] = float(value)
    seq = row.get(FIELD_SEQ)
    score = row.get(FIELD_ANOMALY_SCORE)
    return StoredReading(
        ts_ms=int(row["time"]),
        kind=kind,
        fields=fields,
        raw=raw,
        seq=int(seq) if seq is not None else None,
        anomaly_score=float(score) if score is not None else None,
        anomaly_reason=row.get(FIELD_ANOMALY_REASON),
        ts_from_arrival=bool(row.get(FIELD_TS_FROM_ARRIVAL)),
    )
