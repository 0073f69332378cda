"""Line-protocol escaping: property tests against a reference parser and a real InfluxDB."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.lineprotocol import (
    LineProtocolError,
    escape_key,
    escape_measurement,
    format_field_value,
    format_point,
)
from ingest.model import Reading
from ingest.points import PointFormatter, reading_to_line
from pantau.influxdb import InfluxClient, quote_ident, quote_string
from pantau.servers.influxdb import InfluxServer
from pantau.settings import InfluxSettings

# Printable text without newlines or backslashes, not starting with "_" (reserved).
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"),
    min_size=1,
    max_size=30,
).filter(lambda s: not s.startswith("_") and s.strip() == s and s.strip() != "")
strings = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on `sep` where it is not escaped by a backslash (reference parser)."""
    parts, current, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return parts


def unescape(text: str) -> str:
    out, i = "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ",= ":
            out += text[i + 1]
            i += 2
        else:
            out += text[i]
            i += 1
    return out


@given(
    measurement=names,
    tag_key=names,
    tag_value=names,
    field_key=names,
    value=st.floats(allow_nan=False, allow_infinity=False),
)
def test_identifiers_survive_a_reference_parse(
    measurement: str, tag_key: str, tag_value: str, field_key: str, value: float
) -> None:
    line = format_point(measurement, [(tag_key, tag_value)], {field_key: value}, 1)
    sections = split_unescaped(line, " ")
    assert len(sections) == 3
    series = split_unescaped(sections[0], ",")
    assert unescape(series[0]) == measurement
    key, val = split_unescaped(series[1], "=")
    assert (unescape(key), unescape(val)) == (tag_key, tag_value)
    fkey, fval = split_unescaped(sections[1], "=")
    assert unescape(fkey) == field_key
    assert float(fval) == value
    assert sections[2] == "1"


@given(st.text(max_size=40))
def test_newlines_and_backslashes_are_refused(text: str) -> None:
    bad = "\n" in text or "\r" in text or "\\" in text or text == ""
    for fn in (escape_key, escape_measurement):
        if bad:
            with pytest.raises(LineProtocolError):
                fn(text)
        else:
            fn(text)


@given(st.floats())
def test_non_finite_floats_are_refused(value: float) -> None:
    if math.isfinite(value):
        assert float(format_field_value(value)) == value
    else:
        with pytest.raises(LineProtocolError):
            format_field_value(value)


def test_field_types() -> None:
    assert format_field_value(True) == "true"
    assert format_field_value(12) == "12i"
    assert format_field_value(1.5) == "1.5"
    assert format_field_value('say "hi" \\ ok') == '"say \\"hi\\" \\\\ ok"'


@settings(max_examples=40, deadline=None)
@given(tag_value=names, text=strings.filter(lambda s: "\n" not in s and "\r" not in s))
def test_hostile_values_round_trip_through_influxdb(
    influx_server: InfluxServer, tag_value: str, text: str
) -> None:
    client = InfluxClient(
        InfluxSettings(url=influx_server.url, database="lp_props", retention_policy="autogen")
    )
    try:
        client.execute('CREATE DATABASE "lp_props"', database="")
        client.execute('DROP SERIES FROM "hostile"', database="lp_props")
        line = format_point("hostile", [("tag", tag_value)], {"text": text, "n": 1.0}, 1000)
        client.write((line + "\n").encode(), precision="ms")
        result = client.query(
            f'SELECT "text", "tag" FROM "hostile" WHERE "tag" = {quote_string(tag_value)}',
            database="lp_props",
        )
        rows = result[0][0].rows()
        assert [(r["tag"], r["text"]) for r in rows] == [(tag_value, text)]
        assert quote_ident('a"b') == '"a\\"b"'
    finally:
        client.close()


readings = st.builds(
    Reading,
    device_id=st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?\Z"),
    kind=st.sampled_from(["water_level", "environment", "traffic"]),
    ts_ms=st.integers(min_value=0, max_value=2**53),
    fields=st.dictionaries(
        names, st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4
    ),
    seq=st.none() | st.integers(min_value=0, max_value=2**62),
    ts_from_arrival=st.booleans(),
    raw=st.dictionaries(
        st.sampled_from(["level_cm", "pm25_ugm3"]),
        st.floats(allow_nan=False, allow_infinity=False),
        max_size=2,
    ),
    anomaly_score=st.none() | st.floats(min_value=0, max_value=1),
    tags=st.lists(
        st.tuples(st.sampled_from(["district", "site"]), names),
        max_size=2,
        unique_by=lambda t: t[0],
    ).map(tuple),
)


@given(readings)
def test_the_fast_formatter_writes_exactly_the_reference_line(reading: Reading) -> None:
    formatter = PointFormatter()
    assert formatter.line(reading) == reading_to_line(reading)
    assert formatter.line(reading) == reading_to_line(reading)  # cached path too
