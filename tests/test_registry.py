"""The registry against both SQL backends (SQLite file and PostgreSQL): schema by migration,
devices, versioned calibration, credentials, CSV import/export, people and tokens."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import Engine, func, select

from devices.credentials import verify_mosquitto_hash
from devices.models import Device, DeviceStatus
from devices.registry import Registry
from devices.schemas import CalibrationCreate, DeviceCreate, DeviceUpdate
from pantau.errors import ConflictError, DuplicateError, NotFoundError, RefusedError
from pantau.errors import RefusedError as RegistryError
from pantau.sql import make_engine, migrate
from people.accounts import People
from people.models import Role
from people.schemas import UserCreate
from stack.schema import all_tables
from tests.registry_helpers import database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from database_url(request.param, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(engine: Engine) -> Registry:
    return Registry(engine)


def gauge(device_id: str = "wl-malili-01", **extra: object) -> DeviceCreate:
    return DeviceCreate.model_validate(
        {"id": device_id, "kind": "water_level", "name": "Malili bridge", **extra}
    )


def test_migration_creates_every_table_of_the_metadata(engine: Engine) -> None:
    migrate(engine)  # a second run is a no-op
    metadata = all_tables()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert {"devices", "device_calibrations", "dead_letters", "users", "api_tokens"} <= set(
        metadata.tables
    )


def test_device_lifecycle(registry: Registry) -> None:
    before = registry.revision()
    device, password = registry.create_device(
        gauge(
            district="Malili",
            latitude=-2.64,
            longitude=121.1,
            thresholds={"level_cm": {"waspada": 250, "siaga": 300, "awas": 350}},
        )
    )
    assert registry.revision() == before + 1
    assert device.interval_s == 60  # the catalog's default for the kind
    assert device.has_credentials and len(password) >= 20
    with registry.engine.connect() as conn:
        stored = conn.execute(select(Device.mqtt_password_hash)).scalar_one()
    assert stored is not None
    assert password not in stored and verify_mosquitto_hash(password, stored)
    with pytest.raises(DuplicateError):
        registry.create_device(gauge())
    updated = registry.update_device("wl-malili-01", DeviceUpdate(status=DeviceStatus.MAINTENANCE))
    assert updated.status is DeviceStatus.MAINTENANCE and updated.district == "Malili"
    assert registry.retire_device("wl-malili-01").status is DeviceStatus.RETIRED
    with pytest.raises(NotFoundError):
        registry.get_device("wl-nope")
    with pytest.raises(RegistryError, match="thresholds"):
        registry.update_device("wl-malili-01", DeviceUpdate(thresholds={"pm25_ugm3": {"high": 50}}))


def test_listing_filters_and_pages(registry: Registry) -> None:
    for i in range(5):
        registry.create_device(gauge(f"wl-a-{i}", district="Malili" if i % 2 else "Nuha"))
    registry.create_device(
        DeviceCreate(id="aq-1", kind="environment", name="Sorowako 100% station", district="Nuha")
    )
    assert registry.list_devices().total == 6
    assert registry.list_devices(kind="environment").total == 1
    assert registry.list_devices(district="Malili").total == 2
    assert registry.list_devices(q="SOROWAKO").total == 1
    assert registry.list_devices(q="100%").total == 1
    assert registry.list_devices(q="%").total == 1  # a literal, not a wildcard
    assert registry.list_devices(q="' OR 1=1 --").total == 0
    page = registry.list_devices(limit=2, offset=2)
    assert [d.id for d in page.items] == ["wl-a-1", "wl-a-2"] and page.total == 6


def test_calibration_is_versioned(registry: Registry) -> None:
    registry.create_device(gauge())
    first = registry.add_calibration(
        "wl-malili-01",
        CalibrationCreate.model_validate({"fields": {"level_cm": {"offset": -3.5}}}),
        "rina",
    )
    second = registry.add_calibration(
        "wl-malili-01",
        CalibrationCreate.model_validate({"fields": {"level_cm": {"scale": 1.02, "offset": 1}}}),
        "budi",
    )
    assert (first.version, second.version) == (1, 2)
    history = registry.calibrations("wl-malili-01")
    assert [(c.version, c.created_by) for c in history] == [(2, "budi"), (1, "rina")]
    assert history[1].fields["level_cm"].offset == -3.5
    assert registry.get_device("wl-malili-01").calibration_version == 2
    with pytest.raises(RegistryError, match="not a water_level field"):
        registry.add_calibration(
            "wl-malili-01",
            CalibrationCreate.model_validate({"fields": {"pm25_ugm3": {"scale": 2}}}),
            "x",
        )
    _, devices, latest = registry.current_state()
    assert latest["wl-malili-01"].version == 2 and len(devices) == 1


def test_csv_import_reports_each_bad_row_and_round_trips(registry: Registry) -> None:
    text = (
        "id,kind,name,district,latitude,longitude,thresholds\n"
        'wl-1,water_level,Gauge 1,Malili,-2.6,121.1,"{""level_cm"": {""siaga"": 300}}"\n'
        "WL 2,water_level,Bad id,Malili,,,\n"
        "wl-3,rocket,Bad kind,Malili,,,\n"
        "wl-4,water_level,Bad lat,Malili,123,0,\n"
        "wl-5,water_level,Bad json,Malili,,,{nope\n"
        "aq-6,environment,Air 6,Nuha,,,\n"
    )
    ticks: list[int] = []
    report = registry.import_csv(text, progress=ticks.append)
    assert report.created == ["wl-1", "aq-6"]
    assert {e.line: e.device_id for e in report.errors} == {
        3: "WL 2",
        4: "wl-3",
        5: "wl-4",
        6: "wl-5",
    }
    messages = {e.line: " ".join(e.errors) for e in report.errors}
    assert "id" in messages[3] and "kind" in messages[4] and "latitude" in messages[5]
    assert "thresholds" in messages[6]
    assert len(ticks) == 6 and set(report.credentials) == {"wl-1", "aq-6"}
    out = io.StringIO()
    assert registry.export_csv(out) == 2
    again = registry.import_csv(out.getvalue())
    assert again.created == [] and [e.device_id for e in again.errors] == ["aq-6", "wl-1"]
    updated = registry.import_csv(
        out.getvalue().replace("Gauge 1", "Gauge one"), update_existing=True
    )
    assert sorted(updated.updated) == ["aq-6", "wl-1"]
    assert registry.get_device("wl-1").name == "Gauge one"
    assert registry.get_device("wl-1").thresholds == {"level_cm": {"siaga": 300.0}}
    with pytest.raises(RefusedError) as bad_header:  # refused whole, before any row
        registry.import_csv("id,kind,colour\nx,y,z\n")
    assert bad_header.value.field == "header" and "missing columns: name" in str(bad_header.value)


def test_users_and_tokens(engine: Engine) -> None:
    registry = People(engine)
    user, token = registry.create_user(UserCreate(name="admin", role=Role.ADMIN))
    assert registry.authenticate(token) == user
    assert registry.authenticate(token + "x") is None
    with pytest.raises(DuplicateError):
        registry.create_user(UserCreate(name="admin", role=Role.VIEWER))
    info, second = registry.issue_token(user.id, "laptop")
    assert registry.authenticate(second) == user
    registry.revoke_token(info.id)
    assert registry.authenticate(second) is None
    assert registry.authenticate(token) == user
    with registry.engine.connect() as conn:
        from people.models import ApiToken

        hashes = conn.execute(select(ApiToken.token_hash)).scalars().all()
        assert token not in hashes and len(hashes) == 2
    from people.schemas import UserUpdate

    with pytest.raises(ConflictError):  # the last admin stays
        registry.update_user(user.id, UserUpdate(role=Role.VIEWER))
    assert registry.authenticate(token) == user
    registry.create_user(UserCreate(name="second", role=Role.ADMIN))
    registry.update_user(user.id, UserUpdate(disabled=True))
    assert registry.authenticate(token) is None


@pytest.mark.parametrize(
    "bad_id",
    ["a,b", "a=b", "a b", 'a"b', "a'b", "a+b", "a#b", "a/b", "a\nb", "A-1", "x" * 65, "", "-a"],
)
def test_hostile_ids_never_validate(bad_id: str) -> None:
    with pytest.raises(ValidationError, match="id"):
        gauge(bad_id)


def test_hostile_text_is_refused_and_nothing_stored(registry: Registry) -> None:
    for extra in (
        {"district": "Malili\nsiaga=1"},
        {"site": "x\x00"},
        {"name": "y" * 201},
        {"latitude": 91},
        {"longitude": float("nan")},
        {"interval_s": 0},
        {"thresholds": {"level_cm": {"bad level": 1}}},
    ):
        with pytest.raises(ValidationError):
            gauge(**extra)
    with registry.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Device)).scalar_one() == 0


def test_a_foundation_database_is_adopted(tmp_path: Path) -> None:
    """A database made by the foundation's create_all (dead letters, no Alembic version) is
    upgraded in place: its dead letters stay, the registry tables appear."""
    from sqlalchemy import insert, inspect

    from ingest.dead_letters import dead_letters_table

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    dead_letters_table.create(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(dead_letters_table).values(
                received_at=func.now(),
                topic="t",
                reason="empty",
                detail="d",
                payload=b"",
                payload_size=0,
                replay_count=0,
            )
        )
    migrate(engine)
    assert {"devices", "dead_letters", "alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(dead_letters_table)).scalar() == 1
    engine.dispose()
