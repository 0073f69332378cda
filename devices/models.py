"""The registry's tables as SQLAlchemy 2 models: devices, calibration history, broker accounts.

Storage shapes only; what crosses the API is in `devices/schemas.py`. Every table is on the
shared `pantau.sql.metadata`, so `pantau/migrations/` covers it. A device's MQTT password is
never stored, only its Mosquitto `$7$` PBKDF2-SHA512 hash.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pantau.ids import ID_MAX_CHARS
from pantau.sql import BIGINT_ID, Base, utcnow


class DeviceStatus(enum.StrEnum):
    ACTIVE = "active"
    MAINTENANCE = "maintenance"  # still ingested, flagged for people
    RETIRED = "retired"  # refused by the broker and the ingester; history kept


class ServiceRole(enum.StrEnum):
    """What a service account may do on the broker."""

    INGESTER = "ingester"  # read every device topic, shared subscriptions included
    PUBLISHER = "publisher"  # write every device topic: the API's replay, the simulators


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'maintenance', 'retired')", name="status"),
        CheckConstraint("latitude IS NULL OR (latitude >= -90 AND latitude <= 90)", name="lat"),
        CheckConstraint(
            "longitude IS NULL OR (longitude >= -180 AND longitude <= 180)", name="lon"
        ),
        CheckConstraint("interval_s > 0", name="interval"),
    )

    id: Mapped[str] = mapped_column(String(ID_MAX_CHARS), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    site: Mapped[str] = mapped_column(String(200), default="")
    district: Mapped[str] = mapped_column(String(100), default="", index=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    elevation_m: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default=DeviceStatus.ACTIVE.value, index=True)
    interval_s: Mapped[float] = mapped_column(Float)
    # {"level_cm": {"waspada": 250, "siaga": 300, "awas": 350}}: overrides of the alert rules
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notes: Mapped[str] = mapped_column(Text, default="")
    # Mosquitto's own salted hash ($7$ PBKDF2-SHA512): rendered into its password_file as is.
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(255))
    credential_rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Calibration(Base):
    """One version of a device's calibration; old versions stay so old readings explain."""

    __tablename__ = "device_calibrations"
    __table_args__ = (UniqueConstraint("device_id", "version", name="device_version"),)

    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(
        String(ID_MAX_CHARS), ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    # {"level_cm": {"scale": 1.0, "offset": -3.5}}: calibrated = raw * scale + offset
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")


class MqttServiceAccount(Base):
    """A broker account of Pantau's own (ingester, API, simulators), never a device."""

    __tablename__ = "mqtt_service_accounts"
    __table_args__ = (CheckConstraint("role IN ('ingester', 'publisher')", name="role"),)

    # Always contains "_", which a device id cannot: the two never collide on the broker.
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    mqtt_password_hash: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class RegistryRevision(Base):
    """One row whose counter every registry change increments in the same transaction.

    Readers (the ingester's directory, the broker sync) poll this one integer instead of the
    devices: a change of any kind, deletes included, is seen within one poll.
    """

    __tablename__ = "registry_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
