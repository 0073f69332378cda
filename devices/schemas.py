"""Wire shapes of the registry (Base / Create / Update / Public per resource), with validation.

The API, the CSV import and the CLI all validate through these models, so a bad id, kind,
coordinate or threshold is refused the same way everywhere with a message naming the field.
Text that becomes an InfluxDB tag (site, district) or a broker username (the id) is checked
for what would break line protocol or a topic: control characters are refused, the id is a
lowercase slug.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from devices.catalog import default_catalog
from devices.models import DeviceStatus
from pantau.ids import DEVICE_ID_PATTERN
from pantau.text import Text100, Text200

LEVEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
RESERVED_IDS = frozenset({"export", "import"})  # /devices/export, /devices/import


DeviceId = Annotated[
    str,
    StringConstraints(pattern=f"^{DEVICE_ID_PATTERN}$", max_length=64),
    Field(
        description="Lowercase slug: a-z, 0-9 and '-', 1-64 characters", examples=["wl-malili-01"]
    ),
]
Latitude = Annotated[float, Field(ge=-90, le=90, description="WGS 84 degrees")]
Longitude = Annotated[float, Field(ge=-180, le=180, description="WGS 84 degrees")]
Elevation = Annotated[
    float, Field(ge=-500, le=9000, description="Metres above sea level", allow_inf_nan=False)
]
IntervalS = Annotated[
    float, Field(gt=0, le=86400, description="Expected seconds between two readings")
]
Thresholds = dict[str, dict[str, float]]
Notes = Annotated[str, StringConstraints(max_length=4000)]


def check_kind(kind: str) -> str:
    kinds = default_catalog().kinds
    if kind not in kinds:
        raise ValueError(f"unknown kind {kind[:40]!r}; the catalog has {sorted(kinds)}")
    return kind


def check_thresholds(kind: str, thresholds: Thresholds) -> Thresholds:
    """Fields of the kind, level names as slugs, finite numbers."""
    catalog = default_catalog()
    fields = catalog.all_fields(kind)
    for field, levels in thresholds.items():
        if field not in fields:
            raise ValueError(f"thresholds: {field[:40]!r} is not a {kind} field")
        if not levels:
            raise ValueError(f"thresholds.{field}: give at least one level")
        for level, value in levels.items():
            if not LEVEL_NAME.fullmatch(level):
                raise ValueError(f"thresholds.{field}: level {level[:40]!r} is not a slug")
            if not math.isfinite(value):
                raise ValueError(f"thresholds.{field}.{level} must be finite")
    return thresholds


class DeviceBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text200 = Field(min_length=1, description="Human name", examples=["Malili bridge gauge"])
    site: Text200 = Field(default="", description="Where it is installed (an InfluxDB tag)")
    district: Text100 = Field(
        default="", description="Kecamatan (an InfluxDB tag)", examples=["Malili"]
    )
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    elevation_m: Elevation | None = None
    status: DeviceStatus = DeviceStatus.ACTIVE
    interval_s: IntervalS | None = Field(
        default=None,
        description="Expected seconds between readings; default: the kind's, from the catalog",
    )
    thresholds: Thresholds = Field(
        default_factory=dict,
        description="Alert threshold overrides per field and level",
        examples=[{"level_cm": {"waspada": 250, "siaga": 300, "awas": 350}}],
    )
    notes: Notes = ""


class DeviceCreate(DeviceBase):
    id: DeviceId
    kind: str = Field(description="A kind of the sensor catalog", examples=["water_level"])

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "wl-malili-01",
                    "kind": "water_level",
                    "name": "Malili bridge gauge",
                    "site": "Jembatan Malili",
                    "district": "Malili",
                    "latitude": -2.6414,
                    "longitude": 121.0986,
                    "elevation_m": 12.0,
                    "thresholds": {"level_cm": {"waspada": 250, "siaga": 300, "awas": 350}},
                }
            ]
        },
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        return check_kind(value)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_IDS:
            raise ValueError(f"{value!r} is reserved (it names an API path)")
        return value

    @model_validator(mode="after")
    def _check(self) -> DeviceCreate:
        check_thresholds(self.kind, self.thresholds)
        if self.status == DeviceStatus.RETIRED:
            raise ValueError("status: a new device cannot be retired")
        return self


class DeviceUpdate(BaseModel):
    """Only the fields given change; id and kind are fixed once registered."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "maintenance", "notes": "sensor cleaned"}]},
    )

    name: Text200 | None = Field(default=None, min_length=1)
    site: Text200 | None = None
    district: Text100 | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    elevation_m: Elevation | None = None
    status: DeviceStatus | None = None
    interval_s: IntervalS | None = None
    thresholds: Thresholds | None = None
    notes: Notes | None = None


class DevicePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    name: str
    site: str
    district: str
    latitude: float | None
    longitude: float | None
    elevation_m: float | None
    status: DeviceStatus
    interval_s: float
    thresholds: Thresholds
    notes: str
    has_credentials: bool = Field(description="A broker password is set")
    credential_rotated_at: datetime | None
    calibration_version: int | None = Field(description="Current calibration version, if any")
    created_at: datetime
    updated_at: datetime


class DeviceRegistered(BaseModel):
    """The answer to a registration or a rotation: the only time the password is shown."""

    device: DevicePublic
    mqtt_username: str
    mqtt_password: str = Field(description="Shown once; only a hash is stored")


class DevicePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DevicePublic]


class FieldCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: float = Field(
        default=1.0, allow_inf_nan=False, description="calibrated = raw * scale + offset"
    )
    offset: float = Field(
        default=0.0, allow_inf_nan=False, description="In the field's catalog unit"
    )

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be 0")
        return value


class CalibrationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"fields": {"level_cm": {"scale": 1.0, "offset": -3.5}}, "note": "survey"}]
        },
    )

    fields: dict[str, FieldCalibration] = Field(
        description="Per field; fields left out are not calibrated in this version"
    )
    note: Notes = ""


class CalibrationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: str
    version: int
    fields: dict[str, FieldCalibration]
    valid_from: datetime
    created_by: str
    note: str


class ImportRowError(BaseModel):
    line: int = Field(description="Line of the CSV file (the header is line 1)")
    device_id: str | None
    errors: list[str]


class ImportReport(BaseModel):
    created: list[str]
    updated: list[str]
    errors: list[ImportRowError]
    credentials: dict[str, str] = Field(
        default_factory=dict, description="New devices' MQTT passwords; shown once"
    )
