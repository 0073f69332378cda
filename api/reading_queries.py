"""Read-side queries for the console: each device's latest reading, and one field's recent
series (averaged into buckets) with its rate of rise. InfluxQL only; routes stay thin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pantau.influxdb import InfluxClient, quote_ident, quote_string

# Columns of a reading that are not sensor values.
META_COLUMNS = frozenset(
    {
        "time",
        "device_id",
        "district",
        "site",
        "seq",
        "anomaly_score",
        "anomaly_reason",
        "ts_from_arrival",
    }
)


@dataclass(frozen=True)
class LatestReading:
    device_id: str
    kind: str
    ts: datetime
    fields: dict[str, float]


@dataclass(frozen=True)
class Series:
    device_id: str
    field: str
    since: datetime
    until: datetime
    points: list[tuple[datetime, float]]
    rate_per_h: float | None


def _values(row: dict[str, object]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in row.items():
        if key in META_COLUMNS or key.endswith("_raw") or value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def latest_per_device(
    influx: InfluxClient, kinds: list[str], *, within: timedelta = timedelta(days=30)
) -> dict[str, LatestReading]:
    """The newest reading of every device that reported within `within`, by device id."""
    if not kinds:
        return {}
    measurements = ",".join(quote_ident(kind) for kind in sorted(kinds))
    since_ns = int((datetime.now(UTC) - within).timestamp() * 1e9)
    q = (
        f"SELECT * FROM {measurements} WHERE time >= {since_ns} "
        'GROUP BY "device_id" ORDER BY time DESC LIMIT 1'
    )
    results = influx.query(q)
    latest: dict[str, LatestReading] = {}
    for series in results[0] if results else []:
        device_id = series.tags.get("device_id", "")
        for row in series.rows():
            reading = LatestReading(
                device_id=device_id,
                kind=series.name,
                ts=datetime.fromtimestamp(row["time"] / 1000, UTC),
                fields=_values(row),
            )
            known = latest.get(device_id)
            if device_id and (known is None or reading.ts > known.ts):
                latest[device_id] = reading
    return latest


def rate_per_hour(points: list[tuple[datetime, float]], window: timedelta) -> float | None:
    """Change per hour between the first point inside the last `window` and the last point."""
    if len(points) < 2:
        return None
    end_ts, end_value = points[-1]
    start = next(((ts, v) for ts, v in points if ts >= end_ts - window), None)
    if start is None or start[0] >= end_ts:
        return None
    hours = (end_ts - start[0]).total_seconds() / 3600
    return (end_value - start[1]) / hours


def field_series(
    influx: InfluxClient,
    *,
    kind: str,
    device_id: str,
    field: str,
    hours: int = 24,
    bucket: timedelta = timedelta(minutes=5),
    rate_window: timedelta = timedelta(hours=1),
) -> Series:
    """`field` of one device over the last `hours`, averaged per `bucket`, oldest first."""
    until = datetime.now(UTC)
    since = until - timedelta(hours=hours)
    bucket_s = max(1, int(bucket.total_seconds()))
    q = (
        f"SELECT MEAN({quote_ident(field)}) AS value FROM {quote_ident(kind)} "
        f'WHERE "device_id" = {quote_string(device_id)} '
        f"AND time >= {int(since.timestamp() * 1e9)} AND time < {int(until.timestamp() * 1e9)} "
        f"GROUP BY time({bucket_s}s) fill(none)"
    )
    results = influx.query(q)
    points: list[tuple[datetime, float]] = []
    for series in results[0] if results else []:
        for row in series.rows():
            value = row.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                points.append((datetime.fromtimestamp(row["time"] / 1000, UTC), float(value)))
    points.sort(key=lambda p: p[0])
    return Series(
        device_id=device_id,
        field=field,
        since=since,
        until=until,
        points=points,
        rate_per_h=rate_per_hour(points, rate_window),
    )
