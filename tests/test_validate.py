"""Validate stage: topics, device ids, catalog fields, ranges and the timestamp policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.catalog import default_catalog
from ingest.model import Record, RejectedError, RejectReason
from ingest.validate import Validator, parse_topic
from pantau.ids import is_valid_device_id

NOW = 1_795_000_000_000
PREFIX = "pantau/devices"
validator = Validator(default_catalog(), future_tolerance_s=300, retention_days=400)


def reject(records: list[Record], device_id: str = "wl-1") -> RejectReason:
    with pytest.raises(RejectedError) as caught:
        validator.validate(device_id, records, NOW)
    return caught.value.reason


def test_a_good_reading() -> None:
    [reading] = validator.validate(
        "wl-malili-01", [Record(NOW - 1000, 5, {"level_cm": 120, "battery_v": 12.5})], NOW
    )
    assert reading.kind == "water_level"
    assert reading.fields == {"level_cm": 120.0, "battery_v": 12.5}
    assert (reading.ts_ms, reading.seq, reading.ts_from_arrival) == (NOW - 1000, 5, False)


def test_missing_timestamp_takes_arrival_time_and_is_flagged() -> None:
    [reading] = validator.validate("wl-1", [Record(None, None, {"level_cm": 1})], NOW)
    assert (reading.ts_ms, reading.ts_from_arrival) == (NOW, True)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (Record(NOW, None, {"level_cm": "12"}), RejectReason.BAD_TYPE),
        (Record(NOW, None, {"level_cm": True}), RejectReason.BAD_TYPE),
        (Record(NOW, None, {"level_cm": None}), RejectReason.BAD_TYPE),
        (Record(NOW, None, {"level_cm": [1]}), RejectReason.BAD_TYPE),
        (Record(NOW, None, {"level_cm": float("nan")}), RejectReason.NOT_FINITE),
        (Record(NOW, None, {"level_cm": 1e9}), RejectReason.OUT_OF_RANGE),
        (Record(NOW, None, {"level_cm": 1, "pm25_ugm3": 3}), RejectReason.UNKNOWN_KIND),
        (Record(NOW, None, {"level_cm": 1, "colour": 3}), RejectReason.UNKNOWN_KIND),
        (Record(NOW, None, {"battery_v": 12}), RejectReason.UNKNOWN_KIND),
        (Record(NOW, None, {}), RejectReason.EMPTY),
        (Record(NOW + 301_000, None, {"level_cm": 1}), RejectReason.TS_FUTURE),
        (Record(0, None, {"level_cm": 1}), RejectReason.TS_TOO_OLD),
        (Record(NOW - 401 * 86_400_000, None, {"level_cm": 1}), RejectReason.TS_TOO_OLD),
    ],
)
def test_rejections(record: Record, reason: RejectReason) -> None:
    assert reject([record]) == reason


def test_unknown_field_of_a_known_kind() -> None:
    v = Validator(
        default_catalog(),
        future_tolerance_s=300,
        retention_days=400,
        kind_resolver=lambda device_id, names: "water_level",
    )
    with pytest.raises(RejectedError) as caught:
        v.validate("wl-1", [Record(NOW, None, {"level_cm": 1, "colour": 3})], NOW)
    assert caught.value.reason == RejectReason.UNKNOWN_FIELD


def test_one_bad_record_rejects_the_whole_message() -> None:
    good = Record(NOW, 1, {"level_cm": 1})
    bad = Record(NOW, 2, {"level_cm": float("inf")})
    assert reject([good, bad]) == RejectReason.NOT_FINITE


@pytest.mark.parametrize(
    "topic",
    [
        "pantau/devices/wl,1/telemetry",
        "pantau/devices/wl=1/telemetry",
        "pantau/devices/wl 1/telemetry",
        'pantau/devices/wl"1/telemetry',
        "pantau/devices/wl\n1/telemetry",
        "pantau/devices/WL-1/telemetry",
        "pantau/devices/-wl/telemetry",
        "pantau/devices/" + "a" * 65 + "/telemetry",
        "pantau/devices/wl'1/telemetry",
        "pantau/devices/wl#/telemetry",
        "pantau/devices/wl+/telemetry",
    ],
)
def test_hostile_device_ids_are_refused(topic: str) -> None:
    with pytest.raises(RejectedError) as caught:
        parse_topic(topic, PREFIX)
    assert caught.value.reason == RejectReason.BAD_DEVICE_ID


@pytest.mark.parametrize(
    "topic",
    [
        "other/wl-1/telemetry",
        "pantau/devices/wl-1",
        "pantau/devices/wl-1/telemetry/x",
        "pantau/devices/wl-1/config",
    ],
)
def test_bad_topics(topic: str) -> None:
    with pytest.raises(RejectedError) as caught:
        parse_topic(topic, PREFIX)
    assert caught.value.reason == RejectReason.BAD_TOPIC


@given(st.text(max_size=70))
def test_valid_ids_are_safe_everywhere(device_id: str) -> None:
    if is_valid_device_id(device_id):
        assert not set(device_id) & set(",= \"'\n\r\t#+/\\")
        assert parse_topic(f"{PREFIX}/{device_id}/telemetry", PREFIX).device_id == device_id


def test_a_payload_naming_another_device_is_refused() -> None:
    mine = Record(NOW, None, {"level_cm": 1}, source_id="wl-1")
    assert validator.validate("wl-1", [mine], NOW)[0].fields == {"level_cm": 1.0}
    theirs = Record(NOW, None, {"level_cm": 1}, source_id="wl-2")
    assert reject([theirs], device_id="wl-1") == RejectReason.ID_MISMATCH
