"""The registry's operations: devices, calibrations, credentials and broker accounts, in SQL.

One class, `Registry`, used by the API, the CLI and the stack. Every change runs in one
transaction that also increments `registry_revision`, so the ingester's `DeviceDirectory` and
the broker sync see any change by reading a single integer; on PostgreSQL the same transaction
sends `NOTIFY pantau_registry` (payload: the new revision), delivered on commit, which their
`RevisionWatcher` LISTENs for. Secrets are returned to the caller
once and stored only hashed (see `devices/credentials.py`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy import Engine, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from devices.catalog import SensorCatalog, default_catalog
from devices.credentials import generate_password, mosquitto_hash
from devices.models import (
    Calibration,
    Device,
    DeviceStatus,
    MqttServiceAccount,
    RegistryRevision,
    ServiceRole,
)
from devices.schemas import (
    CalibrationCreate,
    CalibrationPublic,
    DeviceCreate,
    DevicePage,
    DevicePublic,
    DeviceUpdate,
    ImportReport,
    ImportRowError,
    check_thresholds,
)
from pantau.errors import DuplicateError, NotFoundError, RefusedError, error_messages
from pantau.sql import as_utc, utcnow

# A broker account of Pantau's own: an '_' somewhere, which no device id has (pantau/ids.py).
SERVICE_ACCOUNT_NAME = re.compile(r"(?=[^_]*_)[A-Za-z0-9_-]{2,64}")

# PostgreSQL: every registry change NOTIFYs this channel on commit (devices/revision_watch.py).
REVISION_CHANNEL = "pantau_registry"
_NOTIFY = text(
    "SELECT pg_notify(:channel, (SELECT revision FROM registry_revision WHERE id = 1)::text)"
).bindparams(channel=REVISION_CHANNEL)

CSV_COLUMNS = [
    "id",
    "kind",
    "name",
    "site",
    "district",
    "latitude",
    "longitude",
    "elevation_m",
    "status",
    "interval_s",
    "thresholds",
    "notes",
]


@dataclass(frozen=True)
class BrokerAccount:
    """One line of Mosquitto's password_file, and what the ACL grants it."""

    username: str
    password_hash: str
    service_role: ServiceRole | None  # None: a device, limited to its own topics


def check_import_header(header: Sequence[str]) -> None:
    """Refuse a CSV whose first line is not a header of `CSV_COLUMNS` with id, kind and name:
    a garbage first line would otherwise make every row an error, or a repeated column
    would silently keep only its last value."""
    missing = [c for c in ("id", "kind", "name") if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    repeated = sorted({c for c in header if list(header).count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        shown = ", ".join(repr(c[:40]) if not c.isprintable() else c[:40] for c in unknown[:10])
        problems.append(f"unknown columns: {shown}")
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        raise RefusedError(
            f"header: {'; '.join(problems)}; the first line must name the columns, of "
            f"{', '.join(CSV_COLUMNS)} (id, kind and name required)",
            "header",
        )


class Registry:
    def __init__(self, engine: Engine, catalog: SensorCatalog | None = None) -> None:
        self.engine = engine
        self.catalog = catalog or default_catalog()

    @contextmanager
    def _change(self) -> Iterator[Session]:
        """A write transaction that bumps the registry revision.

        The bump comes first: its row lock makes registry writers take turns (PostgreSQL;
        SQLite has one writer anyway), so a check-then-change such as "not the last admin"
        cannot interleave with another one. On PostgreSQL it also queues the change notice,
        which the server delivers on commit (and drops on rollback).
        """
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.execute(
                update(RegistryRevision)
                .where(RegistryRevision.id == 1)
                .values(revision=RegistryRevision.revision + 1)
            )
            if self.engine.dialect.name == "postgresql":
                session.execute(_NOTIFY)
            yield session

    def revision(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(RegistryRevision.revision).where(RegistryRevision.id == 1)
            ).scalar()
        return int(value or 0)

    # --- devices -------------------------------------------------------------------------

    def _public(self, device: Device, calibration_version: int | None) -> DevicePublic:
        return DevicePublic(
            id=device.id,
            kind=device.kind,
            name=device.name,
            site=device.site,
            district=device.district,
            latitude=device.latitude,
            longitude=device.longitude,
            elevation_m=device.elevation_m,
            status=DeviceStatus(device.status),
            interval_s=device.interval_s,
            thresholds=device.thresholds or {},
            notes=device.notes,
            has_credentials=device.mqtt_password_hash is not None,
            credential_rotated_at=as_utc(device.credential_rotated_at),
            calibration_version=calibration_version,
            created_at=as_utc(device.created_at) or utcnow(),
            updated_at=as_utc(device.updated_at) or utcnow(),
        )

    @staticmethod
    def _versions(session: Session, device_ids: list[str]) -> dict[str, int]:
        if not device_ids:
            return {}
        rows = session.execute(
            select(Calibration.device_id, func.max(Calibration.version))
            .where(Calibration.device_id.in_(device_ids))
            .group_by(Calibration.device_id)
        )
        return {device_id: int(version) for device_id, version in rows}

    def create_device(self, data: DeviceCreate) -> tuple[DevicePublic, str]:
        """Register a device; returns it and its new MQTT password (shown once)."""
        password = generate_password()
        interval = data.interval_s or self.catalog.kinds[data.kind].interval_s
        device = Device(
            **data.model_dump(exclude={"interval_s", "status"}),
            status=data.status.value,
            interval_s=interval,
            mqtt_password_hash=mosquitto_hash(password),
            credential_rotated_at=utcnow(),
        )
        try:
            with self._change() as session:
                if session.get(Device, data.id) is not None:
                    raise DuplicateError(f"device {data.id} already exists", "id")
                session.add(device)
        except IntegrityError as exc:  # a concurrent registration of the same id
            raise DuplicateError(f"device {data.id} already exists", "id") from exc
        return self._public(device, None), password

    def get_device(self, device_id: str) -> DevicePublic:
        with Session(self.engine) as session:
            device = session.get(Device, device_id)
            if device is None:
                raise NotFoundError(f"no device {device_id}", "device_id")
            return self._public(device, self._versions(session, [device_id]).get(device_id))

    def list_devices(
        self,
        *,
        kind: str | None = None,
        district: str | None = None,
        status: DeviceStatus | None = None,
        q: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> DevicePage:
        query = select(Device)
        if kind is not None:
            query = query.where(Device.kind == kind)
        if district is not None:
            query = query.where(Device.district == district)
        if status is not None:
            query = query.where(Device.status == status.value)
        if q:
            needle = q.lower()
            query = query.where(
                or_(
                    *(
                        func.lower(column).contains(needle, autoescape=True)
                        for column in (Device.id, Device.name, Device.site, Device.district)
                    )
                )
            )
        with Session(self.engine) as session:
            total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            devices = list(session.scalars(query.order_by(Device.id).limit(limit).offset(offset)))
            versions = self._versions(session, [d.id for d in devices])
            items = [self._public(d, versions.get(d.id)) for d in devices]
        return DevicePage(total=total, limit=limit, offset=offset, items=items)

    def update_device(self, device_id: str, data: DeviceUpdate) -> DevicePublic:
        changes = data.model_dump(exclude_unset=True)
        for key in ("name", "status", "interval_s", "thresholds", "notes", "site", "district"):
            if key in changes and changes[key] is None:
                raise RefusedError(f"{key} cannot be null", key)
        with self._change() as session:
            device = session.get(Device, device_id)
            if device is None:
                raise NotFoundError(f"no device {device_id}", "device_id")
            if "thresholds" in changes:
                try:
                    check_thresholds(device.kind, changes["thresholds"])
                except ValueError as exc:
                    raise RefusedError(str(exc), "thresholds") from None
            if "status" in changes:
                changes["status"] = DeviceStatus(changes["status"]).value
            for key, value in changes.items():
                setattr(device, key, value)
            device.updated_at = utcnow()
            session.flush()
            version = self._versions(session, [device_id]).get(device_id)
            return self._public(device, version)

    def retire_device(self, device_id: str) -> DevicePublic:
        """Retired: refused by the broker (after its reload) and the ingester; history kept."""
        return self.update_device(device_id, DeviceUpdate(status=DeviceStatus.RETIRED))

    def rotate_credentials(self, device_id: str) -> tuple[DevicePublic, str]:
        """A new MQTT password for a device; the old one stops working at the broker's reload."""
        password = generate_password()
        with self._change() as session:
            device = session.get(Device, device_id)
            if device is None:
                raise NotFoundError(f"no device {device_id}", "device_id")
            device.mqtt_password_hash = mosquitto_hash(password)
            device.credential_rotated_at = utcnow()
            device.updated_at = utcnow()
            session.flush()
            version = self._versions(session, [device_id]).get(device_id)
            return self._public(device, version), password

    # --- calibration -----------------------------------------------------------------------

    def add_calibration(
        self, device_id: str, data: CalibrationCreate, created_by: str
    ) -> CalibrationPublic:
        """A new calibration version for the device; earlier versions are kept."""
        with self._change() as session:
            device = session.get(Device, device_id)
            if device is None:
                raise NotFoundError(f"no device {device_id}", "device_id")
            fields = self.catalog.all_fields(device.kind)
            for name in data.fields:
                if name not in fields:
                    raise RefusedError(f"fields: {name[:40]!r} is not a {device.kind} field")
            latest = self._versions(session, [device_id]).get(device_id, 0)
            row = Calibration(
                device_id=device_id,
                version=latest + 1,
                fields={k: v.model_dump() for k, v in data.fields.items()},
                valid_from=utcnow(),
                created_by=created_by,
                note=data.note,
            )
            session.add(row)
            device.updated_at = utcnow()
            session.flush()
            return _calibration_public(row)

    def calibrations(self, device_id: str) -> list[CalibrationPublic]:
        """Every version, newest first."""
        with Session(self.engine) as session:
            if session.get(Device, device_id) is None:
                raise NotFoundError(f"no device {device_id}", "device_id")
            rows = session.scalars(
                select(Calibration)
                .where(Calibration.device_id == device_id)
                .order_by(Calibration.version.desc())
            )
            return [_calibration_public(row) for row in rows]

    def current_state(self) -> tuple[int, list[Device], dict[str, Calibration]]:
        """Revision, every device and each one's latest calibration, in one read transaction."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            revision = session.execute(
                select(RegistryRevision.revision).where(RegistryRevision.id == 1)
            ).scalar()
            devices = list(session.scalars(select(Device)))
            latest = (
                select(Calibration.device_id, func.max(Calibration.version).label("v"))
                .group_by(Calibration.device_id)
                .subquery()
            )
            calibrations = list(
                session.scalars(
                    select(Calibration).join(
                        latest,
                        (Calibration.device_id == latest.c.device_id)
                        & (Calibration.version == latest.c.v),
                    )
                )
            )
            session.expunge_all()
            return int(revision or 0), devices, {c.device_id: c for c in calibrations}

    # --- CSV -------------------------------------------------------------------------------

    def import_csv(
        self,
        text: str,
        *,
        update_existing: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Create (or update) one device per CSV row; each bad row is reported, none stop it.

        Columns as `CSV_COLUMNS` (`id`, `kind`, `name` required); `thresholds` is JSON. New
        devices' passwords are returned in the report, once. A header that is not one raises
        `RefusedError` (field `header`) before any row is touched.
        """
        report = ImportReport(created=[], updated=[], errors=[])
        reader = csv.DictReader(io.StringIO(text))
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise RefusedError(f"header: unreadable CSV ({exc})", "header") from None
        check_import_header(header)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a field over the csv module's limit
                report.errors.append(
                    ImportRowError(
                        line=reader.line_num,
                        device_id=None,
                        errors=[f"unreadable CSV, import stopped here: {exc}"],
                    )
                )
                break
            line = reader.line_num
            device_id = (row.get("id") or "").strip()[:64] or None
            try:
                self._import_row(row, update_existing, report)
            except RefusedError as exc:
                report.errors.append(
                    ImportRowError(line=line, device_id=device_id, errors=[str(exc)])
                )
            except ValidationError as exc:
                report.errors.append(
                    ImportRowError(line=line, device_id=device_id, errors=error_messages(exc))
                )
            if progress is not None:
                progress(1)
        return report

    def _import_row(self, row: dict[str, Any], update_existing: bool, report: ImportReport) -> None:
        if None in row:
            raise RefusedError("more values than columns")
        values: dict[str, Any] = {}
        for key, raw in row.items():
            if raw is None:
                continue
            text = raw.strip()
            if key in ("latitude", "longitude", "elevation_m", "interval_s"):
                if text:
                    values[key] = text
            elif key == "thresholds":
                if text:
                    try:
                        values[key] = json.loads(text)
                    except ValueError:
                        raise RefusedError("thresholds: not valid JSON") from None
            elif key == "status":
                if text:
                    values[key] = text
            else:
                values[key] = text
        data = DeviceCreate.model_validate(values)
        try:
            _, password = self.create_device(data)
        except DuplicateError:
            if not update_existing:
                raise
            existing = self.get_device(data.id)
            if existing.kind != data.kind:
                raise RefusedError(
                    f"kind: {data.id} is registered as {existing.kind}", "kind"
                ) from None
            update = DeviceUpdate.model_validate(
                data.model_dump(exclude={"id", "kind"}, include=set(values))
            )
            self.update_device(data.id, update)
            report.updated.append(data.id)
            return
        report.created.append(data.id)
        report.credentials[data.id] = password

    def export_csv(self, out: TextIO) -> int:
        """Every device as CSV (the import format); returns the number of rows."""
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        count = 0
        with Session(self.engine) as session:
            for device in session.scalars(select(Device).order_by(Device.id)):
                writer.writerow(
                    {
                        "id": device.id,
                        "kind": device.kind,
                        "name": device.name,
                        "site": device.site,
                        "district": device.district,
                        "latitude": _num(device.latitude),
                        "longitude": _num(device.longitude),
                        "elevation_m": _num(device.elevation_m),
                        "status": device.status,
                        "interval_s": _num(device.interval_s),
                        "thresholds": json.dumps(device.thresholds, sort_keys=True)
                        if device.thresholds
                        else "",
                        "notes": device.notes,
                    }
                )
                count += 1
        return count

    # --- broker accounts -------------------------------------------------------------------

    def set_service_account(self, username: str, role: ServiceRole) -> str:
        """Create or re-key a broker account of Pantau's own; returns its new password."""
        if not SERVICE_ACCOUNT_NAME.fullmatch(username):
            raise RefusedError(
                f"service account name {username[:40]!r}: use 2-64 ASCII letters, digits, '-' "
                "and '_', with at least one '_' (device ids have none, so a service can never "
                "take a device's name), e.g. pantau_ingest",
                "username",
            )
        password = generate_password()
        with self._change() as session:
            account = session.get(MqttServiceAccount, username)
            if account is None:
                account = MqttServiceAccount(username=username)
                session.add(account)
            account.role = role.value
            account.mqtt_password_hash = mosquitto_hash(password)
            account.updated_at = utcnow()
        return password

    def broker_accounts(self) -> list[BrokerAccount]:
        """Who may connect: every non-retired device with a password, and the services."""
        with Session(self.engine) as session:
            devices = session.execute(
                select(Device.id, Device.mqtt_password_hash)
                .where(Device.status != DeviceStatus.RETIRED.value)
                .where(Device.mqtt_password_hash.is_not(None))
                .order_by(Device.id)
            ).all()
            services = session.scalars(
                select(MqttServiceAccount).order_by(MqttServiceAccount.username)
            ).all()
            accounts = [BrokerAccount(d, str(h), None) for d, h in devices]
            accounts += [
                BrokerAccount(s.username, s.mqtt_password_hash, ServiceRole(s.role))
                for s in services
            ]
        return accounts


def _calibration_public(row: Calibration) -> CalibrationPublic:
    return CalibrationPublic(
        device_id=row.device_id,
        version=row.version,
        fields=row.fields,
        valid_from=as_utc(row.valid_from) or utcnow(),
        created_by=row.created_by,
        note=row.note,
    )


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}" if value == int(value) else repr(value)
