"""Wire formats: readings → MQTT payloads as `ingest.decode` accepts them, and broken ones.

- `json`: one object per reading, `{"ts": <epoch ms>, "seq": n, "level_cm": 143.2, ...}`;
- `batch`: a JSON array of such objects, sent once `batch_size` readings have accumulated;
- `senml`: RFC 8428 SenML JSON (content type `application/senml+json`): a base name
  `<device_id>:`, the base time in epoch seconds, one record per field and one named `seq`.

A field the device did not measure this time (NaN in the model) is left out. `malformed()`
turns a good payload into one the ingester must refuse: `bad_json` (truncated), `wrong_type`
(a number sent as a string), `nan` (a NaN literal), `oversized` (over 64 KiB).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import orjson

SENML_CONTENT_TYPE = "application/senml+json"
JSON_CONTENT_TYPE = "application/json"
OVERSIZED_BYTES = 65 * 1024 + 512
INTEGER_FIELDS = frozenset({"vehicle_count", "rssi_dbm", "pm25_ugm3", "pm10_ugm3"})
SENML_UNITS = {
    "temperature_c": "Cel",
    "humidity_pct": "%RH",
    "battery_v": "V",
    "flow_m3s": "m3/s",
    "avg_speed_kmh": "km/h",
    "rssi_dbm": "dBm",
}


@dataclass(slots=True)
class Message:
    """One MQTT message to publish for a device."""

    device_index: int
    topic: str
    payload: bytes
    content_type: str = JSON_CONTENT_TYPE
    retain: bool = False


def reading_object(ts_ms: int, seq: int, values: dict[str, float]) -> dict[str, Any]:
    """The JSON object of one reading; NaN values (not measured) are left out."""
    obj: dict[str, Any] = {"ts": ts_ms, "seq": seq}
    for name, value in values.items():
        if math.isnan(value):
            continue
        obj[name] = int(value) if name in INTEGER_FIELDS else value
    return obj


def senml_pack(device_id: str, ts_ms: int, seq: int, values: dict[str, float]) -> list[Any]:
    pack: list[dict[str, Any]] = [
        {"bn": f"{device_id}:", "bt": ts_ms / 1000.0, "n": "seq", "v": seq}
    ]
    for name, value in values.items():
        if math.isnan(value):
            continue
        record: dict[str, Any] = {"n": name, "v": int(value) if name in INTEGER_FIELDS else value}
        unit = SENML_UNITS.get(name)
        if unit:
            record["u"] = unit
        pack.append(record)
    return pack


def encode(fmt: str, device_id: str, readings: list[tuple[int, int, dict[str, float]]]) -> bytes:
    """Payload of one message in format `fmt` holding `readings` ((ts_ms, seq, values)…)."""
    if fmt == "senml":
        records = []
        for ts_ms, seq, values in readings:
            records.extend(senml_pack(device_id, ts_ms, seq, values))
        return orjson.dumps(records)
    objects = [reading_object(ts_ms, seq, values) for ts_ms, seq, values in readings]
    if fmt == "batch":
        return orjson.dumps(objects)
    assert len(objects) == 1
    return orjson.dumps(objects[0])


def content_type_of(fmt: str) -> str:
    return SENML_CONTENT_TYPE if fmt == "senml" else JSON_CONTENT_TYPE


def malformed(payload: bytes, variant: str) -> bytes:
    """A broken copy of a good payload (see the module docstring for the variants)."""
    if variant == "bad_json":
        return payload[: max(1, len(payload) - 1 - len(payload) // 3)]
    if variant == "oversized":
        return payload + b" " * OVERSIZED_BYTES
    data = orjson.loads(payload)
    target = data[0] if isinstance(data, list) else data
    if isinstance(target, dict) and target.get("bn") is not None and isinstance(data, list):
        # SenML: break the first measurement record (index 1; 0 is seq).
        target = data[1] if len(data) > 1 else data[0]
        if variant == "wrong_type":
            target["vs"] = str(target.pop("v"))
        else:
            target["v"] = float("nan")
        return json.dumps(data, separators=(",", ":")).encode()
    name = next((k for k in target if k not in ("ts", "seq")), "seq")
    if variant == "wrong_type":
        target[name] = str(target[name])
    elif variant == "nan":
        target[name] = float("nan")
    else:
        raise ValueError(f"unknown malformed variant {variant!r}")
    return json.dumps(data, separators=(",", ":")).encode()
