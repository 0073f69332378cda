"""The ingester uses the registry: unknown and retired devices are refused, calibration and
district/site tags are applied, and registry changes reach a running ingester in seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import orjson
import pytest

from devices.catalog import default_catalog
from devices.directory import DeviceDirectory, DirectoryEntry
from devices.models import DeviceStatus
from devices.registry import Registry
from devices.schemas import CalibrationCreate, DeviceCreate, DeviceUpdate
from ingest.calibrate import CalibrationStage, DeviceTagStage
from ingest.dead_letters import DeadLetterStore
from ingest.decode import decode_payload
from ingest.model import Reading, RejectedError, RejectReason
from ingest.points import reading_to_line
from ingest.registry_gate import RegistryKindResolver
from ingest.validate import Validator
from pantau.influxdb import InfluxClient
from pantau.settings import Settings
from pantau.sql import make_engine
from tests.conftest import PantauProcess, eventually, make_settings
from tests.delivery_helpers import device_points
from tests.mqtt_helpers import Publisher
from tests.registry_helpers import database_url


class FakeDirectory:
    def __init__(self, *entries: DirectoryEntry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, device_id: str) -> DirectoryEntry | None:
        return self.entries.get(device_id)


GAUGE = DirectoryEntry(
    "wl-1",
    "water_level",
    DeviceStatus.ACTIVE,
    tags={"district": "Malili Timur", "site": "Jembatan, hulu"},
    calibration={"level_cm": (1.0, -3.5), "battery_v": (1.0, 0.0)},
    calibration_version=2,
)
OLD = DirectoryEntry("wl-old", "water_level", DeviceStatus.RETIRED)
FIXING = DirectoryEntry("aq-1", "environment", DeviceStatus.MAINTENANCE)


def validator(require: bool) -> Validator:
    v = Validator(default_catalog(), future_tolerance_s=300, retention_days=400)
    v.kind_resolver = RegistryKindResolver(
        FakeDirectory(GAUGE, OLD, FIXING), require_registered=require, infer=v.kind_from_catalog
    )
    return v


def test_kind_comes_from_the_registry() -> None:
    now = int(time.time() * 1000)
    strict = validator(require=True)
    assert strict.validate("wl-1", decode_payload(b'{"level_cm": 1}'), now)[0].kind == "water_level"
    # A device in maintenance still reports; the registry's kind decides its fields.
    assert strict.validate("aq-1", decode_payload(b'{"pm25_ugm3": 3}'), now)[0].kind == (
        "environment"
    )
    with pytest.raises(RejectedError) as unknown_field:
        strict.validate("aq-1", decode_payload(b'{"level_cm": 3}'), now)
    assert unknown_field.value.reason is RejectReason.UNKNOWN_FIELD
    for device, reason in (
        ("wl-ghost", RejectReason.UNKNOWN_DEVICE),
        ("wl-old", RejectReason.RETIRED_DEVICE),
    ):
        with pytest.raises(RejectedError) as refused:
            strict.validate(device, decode_payload(b'{"level_cm": 1}'), now)
        assert refused.value.reason is reason
    # Registration not required: an unknown device's kind is inferred, as before the registry.
    lax = validator(require=False)
    assert lax.validate("wl-ghost", decode_payload(b'{"level_cm": 1}'), now)[0].kind == (
        "water_level"
    )
    with pytest.raises(RejectedError) as still_retired:
        lax.validate("wl-old", decode_payload(b'{"level_cm": 1}'), now)
    assert still_retired.value.reason is RejectReason.RETIRED_DEVICE


def test_senml_naming_another_device_is_an_id_mismatch() -> None:
    now = int(time.time() * 1000)
    v = validator(require=True)
    own = b'[{"bn": "urn:dev:wl-1:", "n": "level_cm", "v": 120}]'
    assert v.validate("wl-1", decode_payload(own), now)[0].fields == {"level_cm": 120.0}
    named = b'{"device_id": "wl-1", "level_cm": 120}'
    assert v.validate("wl-1", decode_payload(named), now)[0].fields == {"level_cm": 120.0}
    for pack in (
        b'[{"bn": "urn:dev:wl-2:", "n": "level_cm", "v": 120}]',
        b'[{"bn": "wl-2/", "n": "level_cm", "v": 120}]',
        b'[{"bn": "wl-1/", "n": "level_cm", "v": 1}, {"bn": "wl-2/", "n": "battery_v", "v": 2}]',
        b'{"device_id": "wl-2", "level_cm": 120}',
        b'[{"device_id": "wl-1", "level_cm": 1}, {"device_id": "wl-2", "level_cm": 2}]',
    ):
        with pytest.raises(RejectedError) as mismatch:
            v.validate("wl-1", decode_payload(pack), now)
        assert mismatch.value.reason is RejectReason.ID_MISMATCH, pack


def test_calibration_and_tags() -> None:
    directory = FakeDirectory(GAUGE)
    reading = Reading(
        "wl-1", "water_level", 1_700_000_000_000, {"level_cm": 150.0, "battery_v": 12}
    )
    other = Reading("wl-9", "water_level", 1_700_000_000_000, {"level_cm": 150.0})
    out = DeviceTagStage(directory).process(CalibrationStage(directory).process([reading, other]))
    assert out[0].fields == {"level_cm": 146.5, "battery_v": 12}
    assert out[0].raw == {"level_cm": 150.0}  # battery_v unchanged: no raw copy
    assert out[1].fields == {"level_cm": 150.0} and out[1].raw == {} and out[1].tags == ()
    line = reading_to_line(out[0])
    assert line.startswith(
        r"water_level,device_id=wl-1,district=Malili\ Timur,site=Jembatan\,\ hulu "
    )
    assert "level_cm=146.5" in line and "level_cm_raw=150" in line


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    for url in database_url(request.param, tmp_path):
        engine = make_engine(url)
        yield Registry(engine)
        engine.dispose()


def test_directory_follows_the_registry(registry: Registry) -> None:
    directory = DeviceDirectory(registry, refresh_interval_s=0.05)
    directory.start()
    try:
        assert len(directory) == 0 and not directory.refresh()
        registry.create_device(
            DeviceCreate(id="wl-1", kind="water_level", name="g", district="Malili")
        )
        registry.add_calibration(
            "wl-1",
            CalibrationCreate.model_validate({"fields": {"level_cm": {"offset": 2}}}),
            "rina",
        )
        entry = eventually(lambda: directory.get("wl-1"), timeout_s=5, what="new device seen")
        assert isinstance(entry, DirectoryEntry)
        eventually(
            lambda: (e := directory.get("wl-1")) and e.calibration == {"level_cm": (1.0, 2.0)},
            timeout_s=5,
            what="calibration seen",
        )
        assert directory.get("wl-1").tags == {"district": "Malili"}  # type: ignore[union-attr]
        registry.update_device("wl-1", DeviceUpdate(status=DeviceStatus.RETIRED))
        eventually(
            lambda: directory.get("wl-1").status is DeviceStatus.RETIRED,  # type: ignore[union-attr]
            timeout_s=5,
            what="retirement seen",
        )
    finally:
        directory.stop()


def test_running_ingester_follows_registry_changes(
    settings: Settings, run_pantau: Callable[..., PantauProcess], tmp_path: Path
) -> None:
    settings = make_settings(
        settings.mqtt.url,
        settings.influx.url,
        tmp_path,
        registry={"refresh_interval_s": 0.2},
    )
    engine = make_engine(settings.database.url)
    from pantau.sql import migrate

    migrate(engine)
    registry = Registry(engine)
    registry.create_device(
        DeviceCreate(
            id="wl-cal-01", kind="water_level", name="g", district="Malili", site="Jembatan"
        )
    )
    registry.add_calibration(
        "wl-cal-01",
        CalibrationCreate.model_validate({"fields": {"level_cm": {"offset": -3.5}}}),
        "rina",
    )
    ingester = run_pantau(["ingest"], settings)
    eventually(lambda: "session" in ingester.log_tail(), what="ingester connected")
    influx = InfluxClient(settings.influx)
    dead = DeadLetterStore(engine)
    publisher = Publisher(settings.mqtt, client_id=f"pub-{settings.mqtt.client_id}")

    def send(device_id: str, seq: int) -> None:
        payload = {"ts": int(time.time() * 1000), "seq": seq, "level_cm": 143.5}
        publisher.telemetry(device_id, orjson.dumps(payload))

    points = partial(device_points, influx)

    try:
        send("wl-cal-01", 1)
        send("wl-ghost-01", 1)
        rows = eventually(lambda: points("wl-cal-01"), what="calibrated point")
        assert isinstance(rows, list)
        assert rows[0]["level_cm"] == 140.0 and rows[0]["level_cm_raw"] == 143.5
        assert (rows[0]["district"], rows[0]["site"]) == ("Malili", "Jembatan")
        eventually(
            lambda: [d.reason for d in dead.list(device_id="wl-ghost-01")] == ["unknown_device"],
            what="unknown device dead-lettered",
        )
        # Registered while the ingester runs: accepted within a refresh, no restart.
        registry.create_device(DeviceCreate(id="wl-ghost-01", kind="water_level", name="g"))
        registry.retire_device("wl-cal-01")
        time.sleep(1.0)
        send("wl-ghost-01", 2)
        send("wl-cal-01", 2)
        eventually(lambda: points("wl-ghost-01"), what="newly registered device written")
        eventually(
            lambda: [d.reason for d in dead.list(device_id="wl-cal-01")] == ["retired_device"],
            what="retired device dead-lettered",
        )
        assert len(points("wl-cal-01")) == 1
    finally:
        publisher.close()
        influx.close()
        engine.dispose()
    assert ingester.running, ingester.log_tail()
