"""Readings of one device, read back from InfluxDB a page at a time.

The query and the row shape come from the one schema module (`pantau/influx_schema.py`);
this route checks the request (times InfluxDB can represent, a registered device), pages
and answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from api.deps import ServicesDep, require
from pantau.ids import DEVICE_ID_PATTERN
from pantau.influx_schema import (
    TimeOutOfRangeError,
    device_readings_query,
    influx_time_ns,
    stored_reading,
)
from pantau.influxdb import InfluxError
from people.models import Role

router = APIRouter(tags=["readings"], dependencies=[require(Role.VIEWER)])


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
    count: int = Field(description="Readings in this page")
    limit: int = Field(description="Most readings a page holds (the request's, capped)")
    next: str | None = Field(
        default=None,
        description="This page is full and the range holds more: GET this link for the next "
        "page (same range and limit, starting after this page's last reading); null when this "
        "page is the last",
    )
    readings: list[ReadingOut]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "device_id": "wl-malili-01",
                    "since": "2026-11-28T00:00:00Z",
                    "until": "2026-11-28T01:00:00Z",
                    "count": 1,
                    "limit": 1000,
                    "next": None,
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
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise HTTPException(422, f"{name} is outside the times InfluxDB can store") from exc


def _influx_ns(value: datetime, name: str) -> int:
    try:
        return influx_time_ns(value)
    except TimeOutOfRangeError as exc:
        raise HTTPException(422, f"{name}: {exc}") from exc


def _rfc3339(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


@router.get(
    "/readings/{device_id}",
    response_model=ReadingsPage,
    summary="Readings of one device in a time range, oldest first, a page at a time",
    responses={404: {"description": "No such device in the registry"}},
)
def get_readings(
    request: Request,
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
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=100_000,
            description="Most rows in this page (at most PANTAU_API__READINGS_MAX_ROWS); "
            "`next` links the rest",
        ),
    ] = 1000,
) -> ReadingsPage:
    now = datetime.now(UTC)
    until_utc = _utc(until, "until") if until else now + timedelta(minutes=10)
    since_utc = _utc(since, "since") if since else now - timedelta(hours=24)
    if since_utc >= until_utc:
        raise HTTPException(422, "since must be before until")
    since_ns = _influx_ns(since_utc, "since")
    until_ns = _influx_ns(until_utc, "until")
    services.registry.get_device(device_id)  # NotFoundError → 404
    limit = min(limit, services.settings.api.readings_max_rows)
    # One row more than the page: its presence says there is a next page.
    q = device_readings_query(services.catalog.kinds, device_id, since_ns, until_ns, limit + 1)
    try:
        results = services.influx.query(q)
    except InfluxError as exc:
        raise HTTPException(503, f"InfluxDB unavailable: {exc}") from exc
    stored = [
        stored_reading(series.name, row)
        for series in (results[0] if results else [])
        for row in series.rows()
    ]
    stored.sort(key=lambda r: r.ts_ms)
    next_link = None
    if len(stored) > limit:
        stored = stored[:limit]
        # Points are stored at millisecond precision: the next page starts 1 ms after the
        # last reading of this one.
        resume = datetime.fromtimestamp(stored[-1].ts_ms / 1000, UTC) + timedelta(milliseconds=1)
        query = urlencode({"since": _rfc3339(resume), "until": _rfc3339(until_utc), "limit": limit})
        next_link = f"{request.url.path}?{query}"
    readings = [
        ReadingOut(
            ts=datetime.fromtimestamp(r.ts_ms / 1000, UTC),
            kind=r.kind,
            fields=r.fields,
            raw=r.raw,
            seq=r.seq,
            anomaly_score=r.anomaly_score,
            anomaly_reason=r.anomaly_reason,
            ts_from_arrival=r.ts_from_arrival,
        )
        for r in stored
    ]
    return ReadingsPage(
        device_id=device_id,
        since=since_utc,
        until=until_utc,
        count=len(readings),
        limit=limit,
        next=next_link,
        readings=readings,
    )
