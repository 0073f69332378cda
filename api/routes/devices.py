"""Devices: the registry over HTTP — register, list, edit, retire, calibrate, rotate secrets,
import and export CSV. Reading needs the viewer role, changing needs technician."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from api.deps import ServicesDep, Technician, Viewer
from devices.models import DeviceStatus
from devices.schemas import (
    CalibrationCreate,
    CalibrationPublic,
    DeviceCreate,
    DevicePage,
    DevicePublic,
    DeviceRegistered,
    DeviceUpdate,
    ImportReport,
    Text100,
)
from pantau.ids import DEVICE_ID_PATTERN

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceIdPath = Annotated[
    str,
    Path(
        pattern=f"^{DEVICE_ID_PATTERN}$",
        max_length=64,
        description="Device id (lowercase slug)",
        examples=["wl-malili-01"],
    ),
]


@router.get("", response_model=DevicePage, summary="Devices, filtered and paged, by id")
def list_devices(
    services: ServicesDep,
    user: Viewer,
    kind: Annotated[str | None, Query(max_length=64, description="A catalog kind")] = None,
    district: Annotated[Text100 | None, Query(description="Exact district")] = None,
    status_: Annotated[DeviceStatus | None, Query(alias="status")] = None,
    q: Annotated[
        Text100 | None, Query(description="Text in id, name, site or district (any case)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> DevicePage:
    if kind is not None and kind not in services.catalog.kinds:
        raise HTTPException(
            422, f"kind: unknown kind; the catalog has {sorted(services.catalog.kinds)}"
        )
    return services.registry.list_devices(
        kind=kind, district=district, status=status_, q=q, limit=limit, offset=offset
    )


@router.post(
    "",
    response_model=DeviceRegistered,
    status_code=status.HTTP_201_CREATED,
    summary="Register a device; its MQTT password is in the answer, once",
    responses={409: {"description": "A device with this id exists"}},
)
def create_device(services: ServicesDep, user: Technician, body: DeviceCreate) -> DeviceRegistered:
    device, password = services.registry.create_device(body)
    return DeviceRegistered(device=device, mqtt_username=device.id, mqtt_password=password)


@router.get(
    "/export",
    summary="Every device as CSV (the import format)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_devices(services: ServicesDep, user: Viewer) -> Response:
    import io

    out = io.StringIO()
    services.registry.export_csv(out)
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="devices.csv"'},
    )


@router.post(
    "/import",
    response_model=ImportReport,
    summary="Register devices from a CSV body (Content-Type: text/csv); a report per row",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "id,kind,name,district\nwl-malili-02,water_level,Malili 2,Malili\n",
                }
            },
        }
    },
)
async def import_devices(
    request: Request,
    services: ServicesDep,
    user: Technician,
    update_existing: Annotated[
        bool, Query(description="Update devices that exist instead of reporting them")
    ] = False,
) -> ImportReport:
    body = await request.body()  # at most PANTAU_API__MAX_BODY_BYTES (api/guards.py)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(422, "body: the CSV must be UTF-8") from None
    if not text.strip():
        raise HTTPException(422, "body: empty CSV")
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(
        services.registry.import_csv, text, update_existing=update_existing
    )


@router.get("/{device_id}", response_model=DevicePublic, summary="One device")
def get_device(services: ServicesDep, user: Viewer, device_id: DeviceIdPath) -> DevicePublic:
    return services.registry.get_device(device_id)


@router.patch("/{device_id}", response_model=DevicePublic, summary="Change a device's details")
def update_device(
    services: ServicesDep, user: Technician, device_id: DeviceIdPath, body: DeviceUpdate
) -> DevicePublic:
    return services.registry.update_device(device_id, body)


@router.delete(
    "/{device_id}",
    response_model=DevicePublic,
    summary="Retire a device: refused by broker and ingester from now on; history kept",
)
def retire_device(services: ServicesDep, user: Technician, device_id: DeviceIdPath) -> DevicePublic:
    return services.registry.retire_device(device_id)


@router.get(
    "/{device_id}/calibrations",
    response_model=list[CalibrationPublic],
    summary="Calibration history, newest first",
)
def list_calibrations(
    services: ServicesDep, user: Viewer, device_id: DeviceIdPath
) -> list[CalibrationPublic]:
    return services.registry.calibrations(device_id)


@router.post(
    "/{device_id}/calibrations",
    response_model=CalibrationPublic,
    status_code=status.HTTP_201_CREATED,
    summary="A new calibration version (applies to readings from now on)",
)
def add_calibration(
    services: ServicesDep, user: Technician, device_id: DeviceIdPath, body: CalibrationCreate
) -> CalibrationPublic:
    return services.registry.add_calibration(device_id, body, created_by=user.name)


@router.post(
    "/{device_id}/credentials/rotate",
    response_model=DeviceRegistered,
    summary="A new MQTT password, shown once; the old one stops at the broker's next reload",
)
def rotate_credentials(
    services: ServicesDep, user: Technician, device_id: DeviceIdPath
) -> DeviceRegistered:
    device, password = services.registry.rotate_credentials(device_id)
    return DeviceRegistered(device=device, mqtt_username=device.id, mqtt_password=password)
