"""Decode stage: MQTT payload bytes → `Record`s, or a `RejectedError` saying why not.

Accepted payloads, told apart by the MQTT v5 content type or, without one, by shape:
- a JSON object: `{"ts": ..., "seq": 12, "level_cm": 143.2}` — one reading (an optional
  `"device_id"` names its sender; the Validator checks it against the topic);
- a JSON array of such objects — a batch of readings;
- SenML JSON (RFC 8428, `application/senml+json`): records with `bn`, `bt`, `n`, `u`, `v`,
  `t`; records that resolve to the same time form one reading; a record named `seq` gives the
  sequence number; a name segment before the field (`urn:dev:wl-1:level_cm`) names the sender.

A regular SenML pack — base fields only in its first record, then records of `n`, `v`
(`u`, `t`) that repeat the same fields at distinct times — decodes straight into columns
(`RecordBlock`) by `decode_senml_block`; every other pack takes the general decoder. The fast
path never rejects: anything it does not recognise goes to the general decoder, which is the
reference (a property test holds the two to the same records).

Timestamps (`ts` / SenML time) may be epoch milliseconds, epoch seconds or an RFC 3339 string
with an offset. Numbers below 10^11 are seconds (10^11 ms is March 1973, 10^11 s is year 5138),
so seconds and milliseconds are told apart without asking the device. This stage knows nothing
about the catalog or the registry: it only turns bytes into records.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from ingest.model import Record, RecordBlock, RejectedError, RejectReason

SENML_CONTENT_TYPES = frozenset({"application/senml+json"})
JSON_CONTENT_TYPES = frozenset({"application/json", "text/json"})
SECONDS_BELOW = 1e11
_SENML_KEYS = frozenset({"bn", "bt", "bu", "bv", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t"})
_SENML_VALUE_KEYS = frozenset({"v", "vs", "vb", "vd", "s"})
_SENML_BASE_KEYS = frozenset({"bn", "bt", "bu", "bv", "bver"})
_SENML_PLAIN_KEYS = _SENML_KEYS - _SENML_BASE_KEYS
_SENML_RELATIVE_BELOW = 2**28  # RFC 8428 §4.5.3: smaller times are relative to "now"
MAX_RECORDS = 10_000
_FAST_RECORD_KEYS = frozenset({"n", "u", "v", "t"})
_FAST_HEAD_KEYS = _FAST_RECORD_KEYS | _SENML_BASE_KEYS
_NUMBER_TYPES = frozenset({int, float})
_MAX_TIME_S = 9.0e15  # |seconds| * 1000 stays inside int64
_MAX_TIME_MS = 9.0e18  # epoch ms inside int64 (the InfluxDB timestamp)


def parse_timestamp_ms(value: object) -> int:
    """Epoch ms from epoch ms, epoch s (int or float) or an RFC 3339 string with an offset."""
    if isinstance(value, bool):
        raise RejectedError(RejectReason.BAD_TIMESTAMP, "timestamp is a boolean")
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise RejectedError(RejectReason.BAD_TIMESTAMP, "timestamp is not finite")
        if abs(number) < SECONDS_BELOW:
            return round(number * 1000.0)
        if abs(number) >= _MAX_TIME_MS:
            raise RejectedError(RejectReason.BAD_TIMESTAMP, f"timestamp {number:g} out of range")
        return round(number)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise RejectedError(
                RejectReason.BAD_TIMESTAMP, f"not RFC 3339: {text[:40]!r}"
            ) from None
        if parsed.tzinfo is None:
            raise RejectedError(RejectReason.BAD_TIMESTAMP, "RFC 3339 timestamp without offset")
        return round(parsed.timestamp() * 1000.0)
    raise RejectedError(RejectReason.BAD_TIMESTAMP, f"timestamp of type {type(value).__name__}")


def _parse_seq(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RejectedError(RejectReason.BAD_TYPE, "seq must be a non-negative integer")
    if isinstance(value, float) and not value.is_integer():
        raise RejectedError(RejectReason.BAD_TYPE, "seq must be a non-negative integer")
    seq = int(value)
    if seq < 0 or seq >= 2**63:
        raise RejectedError(RejectReason.BAD_TYPE, "seq out of range")
    return seq


# orjson stops at the first NaN / Infinity / -Infinity literal (which `json` would accept and
# devices do send); the error's position says whether that is why it stopped.
_NON_FINITE_LITERAL = re.compile(r"-?(?:NaN|Infinity)(?![A-Za-z0-9_])")


def _load_json(payload: bytes) -> Any:
    """Parse with orjson alone, and tell a person why it failed from orjson's own error.

    Never a second parse with the stdlib `json`: it recurses per nesting level, so a payload
    nested a few thousand levels deep (which orjson refuses at 1,024) raised RecursionError.
    """
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        message = exc.msg or str(exc)
        lowered = message.lower()
        if "utf-8" in lowered:
            raise RejectedError(RejectReason.BAD_ENCODING, "payload is not UTF-8") from None
        if "depth limit" in lowered or "recursion" in lowered:
            raise RejectedError(
                RejectReason.BAD_JSON, "JSON nested deeper than 1024 levels"
            ) from None
        if "infinity" in lowered or _non_finite_at(exc.doc, exc.pos):
            raise RejectedError(RejectReason.NOT_FINITE, "NaN or Infinity in JSON") from None
        raise RejectedError(RejectReason.BAD_JSON, str(exc)[:200]) from None


def _non_finite_at(doc: str, pos: int) -> bool:
    """A NaN or ±Infinity literal where orjson stopped (it stops after the sign of -Infinity)."""
    if 0 < pos <= len(doc) and doc[pos - 1] == "-":
        pos -= 1
    return _NON_FINITE_LITERAL.match(doc, pos) is not None


def _object_record(obj: dict[str, Any]) -> Record:
    values = dict(obj)
    ts_raw = values.pop("ts", None)
    seq_raw = values.pop("seq", None)
    source = values.pop("device_id", None)
    if source is not None and not isinstance(source, str):
        raise RejectedError(RejectReason.BAD_TYPE, "device_id must be a string")
    return Record(
        ts_ms=None if ts_raw is None else parse_timestamp_ms(ts_raw),
        seq=None if seq_raw is None else _parse_seq(seq_raw),
        values=values,
        source_id=source,
    )


def _is_senml(data: Any) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(r, dict) for r in data)
        and all(r.keys() <= _SENML_KEYS for r in data)
        and any("n" in r or "bn" in r for r in data)
    )


def decode_senml(data: Any, now_s: float) -> list[Record]:
    """RFC 8428 resolution: base name/time/value carried forward; one Record per time."""
    if not isinstance(data, list) or not data:
        raise RejectedError(RejectReason.BAD_SENML, "SenML pack must be a non-empty array")
    base_name = ""
    base_time = 0.0
    base_value = 0.0
    by_time: dict[int, Record] = {}
    names: dict[str, tuple[str, str | None]] = {}  # resolved name → (field, device) of this pack
    senml_keys = _SENML_KEYS
    for index, rec in enumerate(data):
        if type(rec) is not dict:
            raise RejectedError(RejectReason.BAD_SENML, f"record {index} is not an object")
        keys = rec.keys()
        if not keys <= senml_keys:
            unknown = sorted(keys - senml_keys)[:5]
            raise RejectedError(
                RejectReason.BAD_SENML, f"record {index} has unknown keys {unknown}"
            )
        if not keys <= _SENML_PLAIN_KEYS:  # base fields to carry forward
            if "bn" in rec:
                if type(rec["bn"]) is not str:
                    raise RejectedError(RejectReason.BAD_SENML, "bn must be a string")
                base_name = rec["bn"]
            if "bt" in rec:
                base_time = _senml_number(rec["bt"], "bt")
            if "bv" in rec:
                base_value = _senml_number(rec["bv"], "bv")
            if "n" not in keys and not keys & _SENML_VALUE_KEYS and keys & _SENML_BASE_KEYS:
                continue  # a record carrying only base fields for the ones after it
        n = rec.get("n", "")
        if type(n) is not str:
            raise RejectedError(RejectReason.BAD_SENML, "SenML n must be a string")
        name = base_name + n
        resolved = names.get(name)
        if resolved is None:
            # The field is the last segment of the resolved name ("urn:dev:wl-1:level_cm"),
            # the segment before it names the device, which validation compares with the topic.
            resolved = names[name] = _resolve_senml_name(name)
        field, source_id = resolved
        if not field:
            raise RejectedError(RejectReason.BAD_SENML, f"record {index} has no name")
        v = rec.get("v")
        if v is None:
            if "vs" in rec or "vb" in rec or "vd" in rec:
                raise RejectedError(
                    RejectReason.BAD_TYPE, f"{field}: only numeric SenML values (v) are accepted"
                )
            raise RejectedError(RejectReason.BAD_SENML, f"record {index} has no value")
        type_v = type(v)
        if type_v is not float and type_v is not int:
            raise RejectedError(RejectReason.BAD_TYPE, "SenML v must be a number")
        value = base_value + v
        t = rec.get("t", 0)
        type_t = type(t)
        if type_t is not float and type_t is not int:
            raise RejectedError(RejectReason.BAD_TYPE, "SenML t must be a number")
        t = base_time + t
        if -_SENML_RELATIVE_BELOW < t < _SENML_RELATIVE_BELOW:
            t = now_s + t
        if not -_MAX_TIME_S < t < _MAX_TIME_S:  # also two finite halves adding up to infinity
            raise RejectedError(RejectReason.BAD_TIMESTAMP, f"SenML time {t:g} s out of range")
        ts_ms = round(t * 1000.0)
        record = by_time.get(ts_ms)
        if record is None:
            record = by_time[ts_ms] = Record(ts_ms=ts_ms, seq=None, values={}, source_id=source_id)
        elif source_id != record.source_id:
            raise RejectedError(RejectReason.ID_MISMATCH, "one pack names several devices")
        if field == "seq":
            record.seq = _parse_seq(value)
        elif field in record.values:
            raise RejectedError(RejectReason.BAD_SENML, f"{field} given twice for one time")
        else:
            record.values[field] = value
    if not by_time:
        raise RejectedError(RejectReason.EMPTY, "SenML pack without a record that has a value")
    return list(by_time.values())


def _resolve_senml_name(name: str) -> tuple[str, str | None]:
    """`urn:dev:wl-1:level_cm` → ("level_cm", "wl-1"): the field, and the device it names."""
    segments = name.replace("/", ":").rsplit(":", 2)
    return segments[-1], segments[-2] if len(segments) > 1 else None


def decode_senml_block(data: list[Any], now_s: float) -> RecordBlock | None:
    """A regular pack straight into columns, or None when it needs the general decoder.

    Regular: base fields (`bn`, `bt`, `bv`, ...) only in the first record; every record has
    a string `n` and a numeric `v` (and may have `u` and a numeric `t`); the k distinct
    fields repeat in the same order at k-record steps, all records of a step at one time,
    and the steps at distinct times. The result equals `decode_senml(data, now_s)`.
    """
    count = len(data)
    if count < 2 or count > MAX_RECORDS:
        return None
    head = data[0]
    if type(head) is not dict or not head.keys() <= _FAST_HEAD_KEYS:
        return None
    base_name = head.get("bn", "")
    base_time = head.get("bt", 0.0)
    base_value = head.get("bv", 0.0)
    if (
        type(base_name) is not str
        or type(base_time) not in _NUMBER_TYPES
        or type(base_value) not in _NUMBER_TYPES
    ):
        return None
    if "n" in head or "v" in head:
        body = data  # the first record is a reading too
    elif head.keys() & _SENML_BASE_KEYS:
        body = data[1:]  # a record of base fields only
    else:
        return None
    rest = data[1:]
    # every later record a dict of plain keys: one pass over all their keys in C
    if set(map(type, rest)) != {dict} or not set().union(*rest) <= _FAST_RECORD_KEYS:
        return None
    try:
        names = [rec["n"] for rec in body]
        raw_values = [rec["v"] for rec in body]
    except KeyError:
        return None
    raw_times = [rec.get("t", 0) for rec in body]
    number_types = _NUMBER_TYPES
    if (
        not set(map(type, raw_values)) <= number_types
        or not set(map(type, raw_times)) <= number_types
        or not set(map(type, names)) <= {str}
    ):
        return None
    # The fields: the first k names, repeated in that order at every step.
    order = list(dict.fromkeys(names))
    k = len(order)
    n = len(names)
    if n % k or (k > 1 and names != order * (n // k)):
        return None
    fields: list[str] = []
    source_id: str | None = None
    for i, name in enumerate(order):
        field, source = _resolve_senml_name(base_name + name)
        if not field or (i and source != source_id):
            return None
        source_id = source
        fields.append(field)
    if len(set(fields)) != k:
        return None
    times = np.array(raw_times, dtype=np.float64)
    times += float(base_time)
    magnitude = np.abs(times)
    relative = magnitude < _SENML_RELATIVE_BELOW
    if relative.any():
        times = np.where(relative, now_s + times, times)
        magnitude = np.abs(times)
    if not (magnitude < _MAX_TIME_S).all():
        return None
    times *= 1000.0
    ts_ms = np.rint(times).astype(np.int64)
    if k > 1:
        steps = ts_ms.reshape(-1, k)
        if not (steps == steps[:, :1]).all():
            return None
        ts_ms = steps[:, 0].copy()
    # distinct times: the usual pack is in time order, which proves it without sorting
    if not (ts_ms[1:] > ts_ms[:-1]).all() and np.unique(ts_ms).shape[0] != ts_ms.shape[0]:
        return None
    values = np.array(raw_values, dtype=np.float64) + float(base_value)
    columns = values.reshape(-1, k)
    out: dict[str, np.ndarray] = {}
    seq = None
    for j, field in enumerate(fields):
        column = np.ascontiguousarray(columns[:, j])
        if field == "seq":
            if not np.all((column >= 0) & (column < 2.0**63) & (column == np.floor(column))):
                return None
            seq = column.astype(np.int64)
        else:
            out[field] = column
    return RecordBlock(ts_ms=ts_ms, values=out, seq=seq, source_id=source_id)


def _senml_number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RejectedError(RejectReason.BAD_TYPE, f"SenML {key} must be a number")
    return float(value)


def decode_payload(
    payload: bytes,
    content_type: str | None = None,
    *,
    max_bytes: int = 64 * 1024,
    now_s: float | None = None,
) -> list[Record]:
    """Bytes → records. Raises RejectedError with the reason on anything malformed."""
    decoded = decode_message(payload, content_type, max_bytes=max_bytes, now_s=now_s, blocks=False)
    assert isinstance(decoded, list)
    return decoded


def decode_message(
    payload: bytes,
    content_type: str | None = None,
    *,
    max_bytes: int = 64 * 1024,
    now_s: float | None = None,
    blocks: bool = True,
) -> list[Record] | RecordBlock:
    """Bytes → records, or a `RecordBlock` for a regular SenML pack (when `blocks`)."""
    if len(payload) > max_bytes:
        raise RejectedError(
            RejectReason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes > limit {max_bytes}"
        )
    if not payload.strip():
        raise RejectedError(RejectReason.EMPTY, "empty payload")
    data = _load_json(payload)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if blocks and type(data) is list and media not in JSON_CONTENT_TYPES:
        # A regular pack is SenML by its shape too (the fast path accepts only SenML keys).
        block = decode_senml_block(data, time.time() if now_s is None else now_s)
        if block is not None:
            return block
    if media in SENML_CONTENT_TYPES or (media not in JSON_CONTENT_TYPES and _is_senml(data)):
        records = decode_senml(data, time.time() if now_s is None else now_s)
    elif isinstance(data, dict):
        records = [_object_record(data)]
    elif isinstance(data, list):
        if not data:
            raise RejectedError(RejectReason.EMPTY, "empty array")
        if not all(isinstance(item, dict) for item in data):
            raise RejectedError(RejectReason.BAD_SHAPE, "array items must be JSON objects")
        records = [_object_record(item) for item in data]
    else:
        raise RejectedError(
            RejectReason.BAD_SHAPE, f"expected a JSON object or array, got {type(data).__name__}"
        )
    if len(records) > MAX_RECORDS:
        raise RejectedError(RejectReason.BAD_SHAPE, f"more than {MAX_RECORDS} readings")
    return records
