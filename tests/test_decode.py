"""Decode stage: JSON object, JSON batch and SenML; timestamps; every malformed shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.decode import decode_payload, parse_timestamp_ms
from ingest.model import Record, RejectedError, RejectReason

NOW_MS = 1_795_000_000_000


def reason_of(payload: bytes, content_type: str | None = None) -> RejectReason:
    with pytest.raises(RejectedError) as caught:
        decode_payload(payload, content_type, now_s=NOW_MS / 1000)
    return caught.value.reason


def test_json_object() -> None:
    [record] = decode_payload(b'{"ts": 1795000000123, "seq": 7, "level_cm": 12.5}')
    assert (record.ts_ms, record.seq, record.values) == (1795000000123, 7, {"level_cm": 12.5})


def test_json_array_is_a_batch() -> None:
    records = decode_payload(
        b'[{"ts": 1795000000, "level_cm": 1}, {"ts": 1795000060, "level_cm": 2}]'
    )
    assert [r.ts_ms for r in records] == [1795000000000, 1795000060000]


def test_senml_pack_groups_by_time() -> None:
    pack = [
        {
            "bn": "urn:dev:pantau:env-wotu-01:",
            "bt": 1795000000,
            "n": "temperature_c",
            "u": "Cel",
            "v": 27.5,
        },
        {"n": "humidity_pct", "u": "%RH", "v": 81},
        {"n": "seq", "v": 9},
        {"n": "temperature_c", "u": "Cel", "v": 27.7, "t": 60},
    ]
    records = decode_payload(orjson.dumps(pack), "application/senml+json")
    assert [(r.ts_ms, r.seq, r.values) for r in records] == [
        (1795000000000, 9, {"temperature_c": 27.5, "humidity_pct": 81.0}),
        (1795000060000, None, {"temperature_c": 27.7}),
    ]


def test_senml_detected_by_shape_and_relative_time() -> None:
    pack = [{"bn": "wl-1/", "n": "level_cm", "v": 3, "t": -10}]
    [record] = decode_payload(orjson.dumps(pack), None, now_s=NOW_MS / 1000)
    assert record.ts_ms == NOW_MS - 10_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1795000000, 1795000000000),  # epoch seconds
        (1795000000.5, 1795000000500),  # fractional seconds
        (1795000000123, 1795000000123),  # epoch milliseconds
        ("2026-11-18T19:06:40+08:00", 1795000000000),
        ("2026-11-18T11:06:40.250Z", 1795000000250),
    ],
)
def test_timestamps(value: object, expected: int) -> None:
    assert parse_timestamp_ms(value) == expected


@given(st.integers(min_value=946_684_800, max_value=4_102_444_800))
def test_seconds_and_milliseconds_are_told_apart(seconds: int) -> None:
    assert parse_timestamp_ms(seconds) == seconds * 1000
    assert parse_timestamp_ms(seconds * 1000) == seconds * 1000
    iso = datetime.fromtimestamp(seconds, UTC).isoformat()
    assert parse_timestamp_ms(iso) == seconds * 1000


@pytest.mark.parametrize(
    ("payload", "content_type", "reason"),
    [
        (b"", None, RejectReason.EMPTY),
        (b"{not json", None, RejectReason.BAD_JSON),
        (b'{"level_cm": NaN}', None, RejectReason.NOT_FINITE),
        (b'{"level_cm": Infinity}', None, RejectReason.NOT_FINITE),
        (b"\xff\xfe{}", None, RejectReason.BAD_ENCODING),
        (b"42", None, RejectReason.BAD_SHAPE),
        (b"[1, 2]", None, RejectReason.BAD_SHAPE),
        (b"[]", None, RejectReason.EMPTY),
        (b'{"ts": "yesterday", "level_cm": 1}', None, RejectReason.BAD_TIMESTAMP),
        (b'{"ts": "2026-11-18T09:46:40", "level_cm": 1}', None, RejectReason.BAD_TIMESTAMP),
        (b'{"ts": true, "level_cm": 1}', None, RejectReason.BAD_TIMESTAMP),
        (b'{"seq": -1, "level_cm": 1}', None, RejectReason.BAD_TYPE),
        (b'{"seq": "7", "level_cm": 1}', None, RejectReason.BAD_TYPE),
        (b'[{"n": "x", "vs": "text"}]', "application/senml+json", RejectReason.BAD_TYPE),
        (b'[{"n": "x"}]', "application/senml+json", RejectReason.BAD_SENML),
        (b'{"n": "x", "v": 1}', "application/senml+json", RejectReason.BAD_SENML),
        (b'[{"n": "x", "v": 1, "zz": 2}]', "application/senml+json", RejectReason.BAD_SENML),
        (b'{"ts": 1e300, "level_cm": 1}', None, RejectReason.BAD_TIMESTAMP),
        (b'{"ts": -18446744073709551615, "level_cm": 1}', None, RejectReason.BAD_TIMESTAMP),
        # two finite SenML times adding up to infinity (an OverflowError before)
        (
            b'[{"bt": 1.7e308, "n": "level_cm", "v": 1, "t": 1.7e308}]',
            "application/senml+json",
            RejectReason.BAD_TIMESTAMP,
        ),
        (
            b'[{"bt": 1.7e308, "n": "level_cm", "v": 1}, {"n": "level_cm", "v": 1, "t": 1.7e308}]',
            None,
            RejectReason.BAD_TIMESTAMP,
        ),
        # found by `make fuzz`: base fields only, so no record with a value
        (
            b'[{"bn": "wl-1:", "bt": 1794999000, "t": 2}]',
            "application/senml+json",
            RejectReason.EMPTY,
        ),
    ],
)
def test_malformed_payloads_are_rejected_with_a_reason(
    payload: bytes, content_type: str | None, reason: RejectReason
) -> None:
    assert reason_of(payload, content_type) == reason


def test_oversized_payload() -> None:
    payload = b'{"level_cm": 1, "pad": "' + b"x" * (1 << 20) + b'"}'
    assert reason_of(payload) == RejectReason.PAYLOAD_TOO_LARGE


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(payload: bytes) -> None:
    try:
        records = decode_payload(payload, now_s=NOW_MS / 1000)
    except RejectedError as exc:
        assert isinstance(exc.reason, RejectReason)
    else:
        assert records and all(isinstance(r.values, dict) for r in records)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values)
def test_arbitrary_json_never_crashes(value: object) -> None:
    """Any JSON value decodes to records (each with a dict of values) or is rejected with a
    reason and a detail; nothing else comes out."""
    payload = json.dumps(value).encode()
    try:
        records = decode_payload(payload, now_s=NOW_MS / 1000)
    except RejectedError as exc:
        assert isinstance(exc.reason, RejectReason) and exc.detail
    else:
        assert isinstance(records, list) and records
        for record in records:
            assert isinstance(record, Record) and isinstance(record.values, dict)
            assert record.ts_ms is None or isinstance(record.ts_ms, int)
            assert record.seq is None or (isinstance(record.seq, int) and record.seq >= 0)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a":' * 5000 + b"1" + b"}" * 5000,  # 30 KB, under the size limit: the poison
        b"[" * 5000 + b"]" * 5000,
        b"[" * 900 + b"NaN" + b"]" * 900,  # under orjson's depth limit, over Python's recursion
        b'{"a":' * 100_000,  # unterminated
    ],
    ids=["objects", "arrays", "nan-inside", "unterminated"],
)
@pytest.mark.parametrize("content_type", [None, "application/senml+json"])
def test_deep_nesting_is_a_rejection_not_a_crash(payload: bytes, content_type: str | None) -> None:
    with pytest.raises(RejectedError) as caught:
        decode_payload(payload, content_type, max_bytes=1 << 20, now_s=NOW_MS / 1000)
    assert caught.value.reason in (RejectReason.BAD_JSON, RejectReason.NOT_FINITE)
    assert caught.value.detail


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"level_cm": -Infinity}', RejectReason.NOT_FINITE),
        (b'[{"level_cm": 1}, {"level_cm": NaN}]', RejectReason.NOT_FINITE),
        (b'{"level_cm": 1e400}', RejectReason.NOT_FINITE),  # overflows a double
        (b'{"level_cm": nan}', RejectReason.BAD_JSON),  # not even Python's spelling
        (b'{"level_cm": NaNa}', RejectReason.BAD_JSON),
        (b'{"\xc3\xa9": NaN}'.decode("unicode_escape").encode("latin-1"), RejectReason.NOT_FINITE),
    ],
)
def test_non_finite_numbers_are_named_as_such(payload: bytes, reason: RejectReason) -> None:
    assert reason_of(payload) == reason


def test_senml_record_with_only_base_fields_sets_them_for_the_next() -> None:
    pack = [{"bn": "wl-1:", "bt": 1795000000}, {"n": "level_cm", "v": 5, "t": 1}]
    [record] = decode_payload(orjson.dumps(pack), "application/senml+json")
    assert (record.ts_ms, record.values) == (1795000001000, {"level_cm": 5.0})


@pytest.mark.parametrize(
    "first", [{"bn": "wl-9:", "n": "level_cm", "v": 1}, {"bn": "wl-9:", "v": 1, "n": "level_cm"}]
)
def test_senml_base_name_on_a_short_first_record_names_the_device(first: dict[str, object]) -> None:
    records = decode_payload(
        orjson.dumps([first, {"n": "level_cm", "v": 2, "t": 1}]), None, now_s=NOW_MS / 1000
    )
    assert [r.source_id for r in records] == ["wl-9", "wl-9"]
