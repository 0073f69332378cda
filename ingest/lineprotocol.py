"""InfluxDB line protocol: escaping of every identifier and value, and point formatting.

Rules (InfluxDB 1.x/2.x docs): measurement — escape comma and space; tag keys, tag values and
field keys — escape comma, equals sign and space; string field values — in double quotes,
escape double quote and backslash. Newlines cannot be escaped anywhere, backslashes in names
are read differently by different InfluxDB versions, and NaN/±Inf cannot be written, so all
three are refused here rather than producing a line InfluxDB would misparse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})


class LineProtocolError(ValueError):
    """A value that cannot be represented in line protocol."""


def _check_text(text: str, what: str) -> None:
    if not text:
        raise LineProtocolError(f"empty {what}")
    if "\n" in text or "\r" in text:
        raise LineProtocolError(f"newline in {what}")
    if "\\" in text:
        # InfluxDB versions disagree on whether two backslashes are one or two, and a trailing
        # one would escape the delimiter after it: Pantau's names never need one.
        raise LineProtocolError(f"backslash in {what}")


def escape_measurement(name: str) -> str:
    _check_text(name, "measurement")
    return name.translate(_MEASUREMENT)


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    _check_text(name, "tag or field name")
    return name.translate(_KEY)


def format_string_value(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise LineProtocolError("newline in string field value")
    return '"' + value.translate(_STRING) + '"'


def format_field_value(value: float | int | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError("NaN and infinity cannot be written")
        return repr(value)
    if isinstance(value, str):
        return format_string_value(value)
    raise LineProtocolError(f"unsupported field type {type(value).__name__}")


def format_point(
    measurement: str,
    tags: Iterable[tuple[str, str]],
    fields: Mapping[str, float | int | bool | str],
    timestamp: int,
) -> str:
    """One line. Tags are sorted by key (InfluxDB's preferred order); empty tags are skipped."""
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    parts = [escape_measurement(measurement)]
    for key, value in sorted(tags):
        if value:
            parts.append(f"{escape_key(key)}={escape_key(value)}")
    field_text = ",".join(f"{escape_key(k)}={format_field_value(v)}" for k, v in fields.items())
    return f"{','.join(parts)} {field_text} {int(timestamp)}"
