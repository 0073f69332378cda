"""What the console shows at a glance: the sensor catalog, every device's latest reading, and
one field's recent series with its rate of rise. Viewer role; queries in api/reading_queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from api.deps import ServicesDep, require
from api.reading_queries import field_series, latest_per_device
from pantau.ids import DEVICE_ID_PATTERN
from pantau.influxdb import InfluxError
from people.models import Role

router = APIRouter(tags=["console"], dependencies=[require(Role.VIEWER)])


class FieldOut(BaseModel):
    unit: str
    min: float
    max: float
    description: str


class KindOut(BaseModel):
    description: str
    interval_s: float
    fields: dict[str, FieldOut] = Field(description="The kind's own fields, then common ones")


class BrokerOut(BaseModel):
    host: str
    port: int
    topic_prefix: str = Field(description="Devices publish on <prefix>/<device_id>/telemetry")


class CatalogOut(BaseModel):
    kinds: dict[str, KindOut]
    broker: BrokerOut = Field(description="Where devices publish (for a test line)")


class LatestOut(BaseModel):
    kind: str
    ts: datetime = Field(description="Time of the newest reading (last seen), UTC")
    fields: dict[str, float]


class LatestPage(BaseModel):
    devices: dict[str, LatestOut] = Field(description="By device id; devices silent 30 days absent")


class SeriesOut(BaseModel):
    device_id: str
    field: str
    unit: str
    since: datetime
    until: datetime
    points: list[tuple[datetime, float]] = Field(description="[time, mean] per bucket")
    rate_per_h: float | None = Field(description="Change per hour over the last hour")
    thresholds: dict[str, float] = Field(description="The device's levels for this field")


@router.get(
    "/catalog",
    response_model=CatalogOut,
    summary="The sensor catalog (kinds, fields, units) and the broker devices publish to",
)
def get_catalog(services: ServicesDep) -> CatalogOut:
    catalog = services.catalog
    return CatalogOut(
        kinds={
            name: KindOut(
                description=kind.description,
                interval_s=kind.interval_s,
                fields={
                    f.name: FieldOut(unit=f.unit, min=f.min, max=f.max, description=f.description)
                    for f in catalog.all_fields(name).values()
                },
            )
            for name, kind in sorted(catalog.kinds.items())
        },
        broker=BrokerOut(
            host=services.settings.mqtt.host,
            port=services.settings.mqtt.port,
            topic_prefix=services.settings.mqtt.topic_prefix.rstrip("/"),
        ),
    )


@router.get("/latest", response_model=LatestPage, summary="Every device's newest reading")
def get_latest(services: ServicesDep) -> LatestPage:
    try:
        latest = latest_per_device(services.influx, list(services.catalog.kinds))
    except InfluxError as exc:
        raise HTTPException(503, f"InfluxDB unavailable: {exc}") from exc
    return LatestPage(
        devices={
            device_id: LatestOut(kind=r.kind, ts=r.ts, fields=r.fields)
            for device_id, r in latest.items()
        }
    )


@router.get(
    "/series/{device_id}",
    response_model=SeriesOut,
    summary="One field of a device over the last hours, 5-minute means, with its rate of rise",
)
def get_series(
    services: ServicesDep,
    device_id: Annotated[str, Path(pattern=f"^{DEVICE_ID_PATTERN}$", max_length=64)],
    field: Annotated[str, Query(max_length=64, description="Default: the kind's first")] = "",
    hours: Annotated[int, Query(ge=1, le=168)] = 24,
) -> SeriesOut:
    device = services.registry.get_device(device_id)  # 404 when unknown
    fields = services.catalog.all_fields(device.kind)
    name = field or next(iter(services.catalog.kinds[device.kind].fields))
    spec = fields.get(name)
    if spec is None:
        raise HTTPException(422, f"field: {name[:64]!r} is not a {device.kind} field")
    try:
        series = field_series(
            services.influx, kind=device.kind, device_id=device_id, field=name, hours=hours
        )
    except InfluxError as exc:
        raise HTTPException(503, f"InfluxDB unavailable: {exc}") from exc
    return SeriesOut(
        device_id=device_id,
        field=name,
        unit=spec.unit,
        since=series.since,
        until=series.until,
        points=series.points,
        rate_per_h=series.rate_per_h,
        thresholds=device.thresholds.get(name, {}),
    )
