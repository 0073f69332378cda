"""Readings of one device, read back from InfluxDB with InfluxQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from api.deps import ServicesDep, require
from pantau.ids import DEVICE_ID_PATTERN
from pantau.influxdb import InfluxError, quote_ident, quote_string
from people.models import Role

router = APIRouter(tags=["readings"], dependencies=[require(Role.VIEWER)])

_META_COLUMNS = {
    "time",
    "device_id",
    "district",
    "site",
    "seq",
    "anomaly_score",
    "anomaly_reason",
    "ts_from_arrival",
}


class ReadingOut(BaseModel):
    ts: datetime = Field(description="Device timestamp, UTC")
    kind: str = Field(description="Device kind (the InfluxDB measurement)")
    fields: dict[str, float] = Field(description="Calibrated values in catalog units")
    raw: dict[str, float] = Field(
        default_factory=dict, description="Values before calibration, where it changed them"
    )
    seq: int | None = Field(default=None, description="Device sequence number")
    anomaly_score: float | None = Field(default=None, description="0 (normal) to 1")
    anomaly_reason: str | None = Field(
        default=None,
        description="When the score crossed the threshold: the field and the detector part "
        "that fired, e.g. level_cm:rate_of_change",
    )
    ts_from_arrival: bool = Field(
        default=False, description="The device sent no time; arrival time was used"
    )


class ReadingsPage(BaseModel):
    device_id: str
    since: datetime
    until: datetime
    count: int
    readings: list[ReadingOut]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "device_id": "wl-malili-01",
                    "since": "2026-11-28T00:00:00Z",
                    "until": "2026-11-28T01:00:00Z",
                    "count": 1,
                    "readings": [
                        {
                            "ts": "2026-11-28T00:00:05Z",
                            "kind": "water_level",
                            "fields": {"level_cm": 143.2, "battery_v": 12.6},
                            "raw": {},
                            "seq": 812,
                            "anomaly_score": 0.02,
                            "anomaly_reason": None,
                            "ts_from_arrival": False,
                        }
                    ],
                }
            ]
        }
    }


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise HTTPException(422, f"{name} needs a time zone offset, e.g. 2026-11-28T08:00:00+08:00")
    return value.astimezone(UTC)


@router.get(
    "/readings/{device_id}",
    response_model=ReadingsPage,
    summary="Readings of one device in a time range, oldest first",
)
def get_readings(
    services: ServicesDep,
    device_id: Annotated[
        str,
        Path(
            pattern=f"^{DEVICE_ID_PATTERN}$",
            max_length=64,
            description="Device id (lowercase slug)",
        ),
    ],
    since: Annotated[
        datetime | None,
        Query(description="Start (inclusive), RFC 3339 with offset; default 24 hours ago"),
    ] = None,
    until: Annotated[
        datetime | None, Query(description="End (exclusive), RFC 3339 with offset; default now")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Most rows returned")] = 1000,
) -> ReadingsPage:
    now = datetime.now(UTC)
    until_utc = _utc(until, "until") if until else now + timedelta(minutes=10)
    since_utc = _utc(since, "since") if since else now - timedelta(hours=24)
    if since_utc >= until_utc:
        raise HTTPException(422, "since must be before until")
    limit = min(limit, services.settings.api.readings_max_rows)
    measurements = ",".join(quote_ident(kind) for kind in sorted(services.catalog.kinds))
    since_ns = int(since_utc.timestamp() * 1e9)
    until_ns = int(until_utc.timestamp() * 1e9)
    q = (
        f'SELECT * FROM {measurements} WHERE "device_id" = {quote_string(device_id)} '
        f"AND time >= {since_ns} AND time < {until_ns} ORDER BY time ASC LIMIT {limit}"
    )
    try:
        results = services.influx.query(q)
    except InfluxError as exc:
        raise HTTPException(503, f"InfluxDB unavailable: {exc}") from exc
    readings: list[ReadingOut] = []
    for series in results[0] if results else []:
        for row in series.rows():
            fields = {}
            raw = {}
            for key, value in row.items():
                if key in _META_COLUMNS or value is None or isinstance(value, bool | str):
                    continue
                if key.endswith("_raw"):
                    raw[key[:-4]] = float(value)
                else:
                    fields[key] = float(value)
            readings.append(
                ReadingOut(
                    ts=datetime.fromtimestamp(row["time"] / 1000, UTC),
                    kind=series.name,
                    fields=fields,
                    raw=raw,
                    seq=int(row["seq"]) if row.get("seq") is not None else None,
                    anomaly_score=row.get("anomaly_score"),
                    anomaly_reason=row.get("anomaly_reason"),
                    ts_from_arrival=bool(row.get("ts_from_arrival")),
                )
            )
    readings.sort(key=lambda r: r.ts)
    readings = readings[:limit]
    return ReadingsPage(
        device_id=device_id,
        since=since_utc,
        until=until_utc,
        count=len(readings),
        readings=readings,
    )
