"""Coverage-guided fuzz targets (atheris, i.e. libFuzzer) for the decoders and the validator.

`python -m fuzz.targets NAME [libFuzzer flags] [corpus dirs]` runs one target; `python -m fuzz`
runs them all and reports the counts. Each target takes the fuzzer's bytes, reads a selector
from the first byte(s) (content type, columnar or not, device, topic, ...) and hands the rest
to the code under test as a payload. The rule (`fuzz/rules.py`): it returns what it promises —
records, a block, readings, points — or raises `RejectedError` with a reason and a detail;
any other exception, or a result breaking the promise, is a crash the fuzzer reports with the
input that caused it (in `var/fuzz/crashes/`).

Targets:
- `decode`: `decode_message` on any bytes, as JSON / SenML / no / another content type, rows or
  columnar; when the columnar fast path takes a pack, the reference decoder must agree.
- `timestamp`: `parse_timestamp_ms` on any int, float, string, boolean or null.
- `topic`: `parse_topic` on any string; an accepted device id is a valid slug.
- `validate`: decode, then `Validator.validate` / `validate_block` (kind from the catalog or
  from a registry), at any arrival time: readings of catalog fields, finite, in range.
- `pack`: structure-aware — JSON objects and SenML packs built from the fuzzer's bytes, with
  edge numbers (±1.7e308, 2**63, the seconds/milliseconds border, ...) and wrong types, decoded
  (columnar and rows) and validated.
- `pipeline`: one MQTT message (any topic, content type, payload) through the whole prepare
  path — decode, gap counter, validate, calibration, tags, detection, points — with the
  pipeline's safety net watched: an `internal_error` dead letter is an escape.
"""

from __future__ import annotations

import struct
import sys
import threading
from collections.abc import Callable, Sequence

import atheris
import orjson

with atheris.instrument_imports(include=["ingest", "devices", "pantau"]):
    from devices.catalog import default_catalog
    from devices.directory import DirectoryEntry
    from devices.models import DeviceStatus
    from ingest.calibrate import CalibrationStage, DeviceTagStage
    from ingest.decode import decode_message, parse_timestamp_ms
    from ingest.detect import DetectionStage
    from ingest.model import Inbound, RecordBlock, RejectedError, Rejection
    from ingest.pipeline import Pipeline
    from ingest.registry_gate import RegistryKindResolver
    from ingest.sink import LineRejection
    from ingest.validate import Validator, parse_topic
    from pantau.ids import is_valid_device_id

from fuzz.rules import (
    RuleBrokenError,
    check,
    check_dead_letter,
    check_readings,
    check_records,
    check_rejection,
)

NOW_MS = 1_795_000_000_000
NOW_S = NOW_MS / 1000
MAX_PAYLOAD_BYTES = 64 * 1024
PREFIX = "pantau/devices"
CONTENT_TYPES: list[str | None] = [
    None,
    "application/json",
    "application/senml+json",
    "text/plain",
    "APPLICATION/SENML+JSON; charset=utf-8",
    "",
]
DEVICES = ["wl-1", "env-1", "trf-1", "wl-old", "wl-unknown", "env-2"]
CATALOG = default_catalog()
RANGES = {
    kind: {name: (spec.min, spec.max) for name, spec in CATALOG.all_fields(kind).items()}
    for kind in CATALOG.kinds
}


class Directory:
    """A registry snapshot of a few devices: active, calibrated, in maintenance, retired."""

    def __init__(self) -> None:
        self.entries = {
            "wl-1": DirectoryEntry(
                "wl-1",
                "water_level",
                DeviceStatus.ACTIVE,
                {"district": "Malili", "site": "Jembatan"},
                {"level_cm": (1.5, -3.0)},
                1,
            ),
            "env-1": DirectoryEntry("env-1", "environment", DeviceStatus.ACTIVE),
            "trf-1": DirectoryEntry("trf-1", "traffic", DeviceStatus.MAINTENANCE),
            "wl-old": DirectoryEntry("wl-old", "water_level", DeviceStatus.RETIRED),
        }

    def get(self, device_id: str) -> DirectoryEntry | None:
        return self.entries.get(device_id)


def _split(data: bytes) -> tuple[int, bytes]:
    return (data[0], data[1:]) if data else (0, b"")


def fuzz_decode(data: bytes) -> None:
    selector, payload = _split(data)
    content_type = CONTENT_TYPES[selector % len(CONTENT_TYPES)]
    blocks = bool(selector & 0x80)
    try:
        decoded = decode_message(
            payload, content_type, max_bytes=MAX_PAYLOAD_BYTES, now_s=NOW_S, blocks=blocks
        )
    except RejectedError as exc:
        check_rejection(exc)
        return
    check_records(decoded)
    if isinstance(decoded, RecordBlock):
        # The columnar fast path never decides alone: the reference must give the same rows.
        rows = decode_message(
            payload, content_type, max_bytes=MAX_PAYLOAD_BYTES, now_s=NOW_S, blocks=False
        )
        check(decoded.to_records() == rows, "the columnar decoder disagrees with the rows")


# Values a structure-aware pack is built from: the edges of numbers, and the wrong types.
_EDGE_VALUES: list[object] = [
    0,
    -0.0,
    1,
    -1,
    0.5,
    1e-320,
    1.7e308,
    -1.7e308,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    268_435_455,
    268_435_456,
    99_999_999_999,
    100_000_000_000,
    1_795_000_000,
    1_795_000_000_123,
    -1_795_000_000,
    "",
    "x",
    "2026-11-18T19:06:40+08:00",
    True,
    False,
    None,
    [],
    {},
]
_SENML_NAMES = [
    "bn",
    "bt",
    "bv",
    "bu",
    "bver",
    "n",
    "u",
    "v",
    "vs",
    "vb",
    "vd",
    "s",
    "t",
    "ts",
    "seq",
    "level_cm",
    "x",
]
_FIELD_NAMES = [
    "level_cm",
    "flow_m3s",
    "seq",
    "battery_v",
    "pm25_ugm3",
    "temperature_c",
    "vehicle_count",
    "",
    "level_cm_raw",
    "urn:dev:wl-1:level_cm",
    "wl-2/level_cm",
]
_BASE_NAMES = ["", "urn:dev:wl-1:", "wl-1/", "wl-2:", "urn:dev:wl-1", "a:b:c:"]


def _value(fdp: atheris.FuzzedDataProvider, key: str) -> object:
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        return fdp.PickValueInList(_EDGE_VALUES)
    if choice == 1:
        return fdp.ConsumeRegularFloat()
    if choice == 2:
        return fdp.ConsumeIntInRange(-(2**63), 2**64 - 1)
    if key == "n":
        return fdp.PickValueInList(_FIELD_NAMES)
    if key == "bn":
        return fdp.PickValueInList(_BASE_NAMES)
    return fdp.ConsumeUnicodeNoSurrogates(12)


def fuzz_pack(data: bytes) -> None:
    """Structure-aware: JSON objects and SenML packs built from the fuzzer's bytes with edge
    numbers and wrong types where bytes alone rarely reach, decoded both ways and validated."""
    fdp = atheris.FuzzedDataProvider(data)
    content_type = fdp.PickValueInList(CONTENT_TYPES)
    device_id = fdp.PickValueInList(DEVICES)
    senml = fdp.ConsumeBool()
    records: list[dict[str, object]] = []
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        record: dict[str, object] = {}
        for _ in range(fdp.ConsumeIntInRange(0, 6)):
            key = fdp.PickValueInList(_SENML_NAMES if senml else [*_FIELD_NAMES, "ts", "seq"])
            record[key] = _value(fdp, key)
        records.append(record)
    document: object = records if senml or len(records) != 1 else records[0]
    try:
        payload = orjson.dumps(document)
    except (TypeError, orjson.JSONEncodeError):  # an int beyond 64 bits: not JSON orjson writes
        return
    received_ms = NOW_MS + fdp.ConsumeIntInRange(-400, 400) * 86_400_000
    for blocks in (True, False):
        try:
            decoded = decode_message(
                payload,
                content_type,
                max_bytes=MAX_PAYLOAD_BYTES,
                now_s=received_ms / 1000,
                blocks=blocks,
            )
            check_records(decoded)
            if isinstance(decoded, RecordBlock):
                valid: object = _registry_validator.validate_block(device_id, decoded, received_ms)
            else:
                valid = _registry_validator.validate(device_id, decoded, received_ms)
        except RejectedError as exc:
            check_rejection(exc)
            continue
        check_readings(valid, RANGES)


def fuzz_timestamp(data: bytes) -> None:
    selector, rest = _split(data)
    value: object
    choice = selector % 6
    if choice == 0:
        value = int.from_bytes(rest[:9], "little", signed=True)
    elif choice == 1:
        value = struct.unpack("<d", rest[:8].ljust(8, b"\0"))[0]
    elif choice == 2:
        value = rest.decode("utf-8", "replace")
    elif choice == 3:
        value = bool(rest[:1] and rest[0] & 1)
    elif choice == 4:
        value = None
    else:
        value = int.from_bytes(rest[:64], "little", signed=True)  # beyond any int64
    try:
        ts_ms = parse_timestamp_ms(value)
    except RejectedError as exc:
        check_rejection(exc)
        return
    check(type(ts_ms) is int, f"timestamp {ts_ms!r} is not an int")


def fuzz_topic(data: bytes) -> None:
    topic = data.decode("utf-8", "replace")
    try:
        info = parse_topic(topic, PREFIX)
    except RejectedError as exc:
        check_rejection(exc)
        return
    check(is_valid_device_id(info.device_id), f"accepted device id {info.device_id!r}")
    check(not set(info.device_id) & set("/+#,= \"'\n"), "a device id that breaks a topic/line")
    check(info.channel in ("telemetry", "status"), f"channel {info.channel!r}")


_catalog_validator = Validator(CATALOG, future_tolerance_s=300, retention_days=400)
_registry_validator = Validator(CATALOG, future_tolerance_s=300, retention_days=400)
_registry_validator.kind_resolver = RegistryKindResolver(
    Directory(), require_registered=False, infer=_registry_validator.kind_from_catalog
)


def fuzz_validate(data: bytes) -> None:
    if len(data) < 3:
        return
    selector, device_pick, arrival = data[0], data[1], data[2]
    payload = data[3:]
    content_type = CONTENT_TYPES[selector % len(CONTENT_TYPES)]
    validator = _registry_validator if selector & 0x40 else _catalog_validator
    device_id = DEVICES[device_pick % len(DEVICES)]
    # arrival anywhere from a year before the device time to a year after
    received_ms = NOW_MS + (arrival - 128) * 3 * 86_400_000
    try:
        decoded = decode_message(
            payload,
            content_type,
            max_bytes=MAX_PAYLOAD_BYTES,
            now_s=received_ms / 1000,
            blocks=bool(selector & 0x80),
        )
        if isinstance(decoded, RecordBlock):
            valid: object = validator.validate_block(device_id, decoded, received_ms)
        else:
            valid = validator.validate(device_id, decoded, received_ms)
    except RejectedError as exc:
        check_rejection(exc)
        return
    check_readings(valid, RANGES)


class _OneMessage:
    """A pipeline source that hands over the message it was given, once."""

    def __init__(self) -> None:
        self.pending: list[Inbound] = []

    def take(self, max_messages: int, timeout_s: float) -> list[Inbound]:
        out, self.pending = self.pending, []
        return out

    def ack(self, messages: Sequence[Inbound]) -> int:
        return len(messages)


class _NoSink:
    def write_batch(self, lines: Sequence[str]) -> list[LineRejection]:
        return []


class _NoDeadLetters:
    def store(self, rejections: Sequence[Rejection]) -> None:
        pass


_source = _OneMessage()
_directory = Directory()
_pipeline = Pipeline(
    _source,
    _registry_validator,
    _NoSink(),
    _NoDeadLetters(),
    topic_prefix=PREFIX,
    batch_max_points=10_000,
    flush_interval_s=0.0,
    max_payload_bytes=MAX_PAYLOAD_BYTES,
    stages=[
        CalibrationStage(_directory),
        DeviceTagStage(_directory),
        DetectionStage(CATALOG, threshold=0.9),
    ],
    stop=threading.Event(),
)
_pipeline.min_take = 0  # never wait for a trickle to grow


def fuzz_pipeline(data: bytes) -> None:
    if len(data) < 3:
        return
    selector, device_pick, payload = data[0], data[1], data[2:]
    device_id = DEVICES[device_pick % len(DEVICES)]
    channel = "status" if selector & 0x40 else "telemetry"
    if selector & 0x20:  # a topic of the fuzzer's own
        cut = payload.find(b"\0")
        topic_bytes, payload = (payload[:cut], payload[cut + 1 :]) if cut >= 0 else (b"", payload)
        topic = topic_bytes.decode("utf-8", "replace")
    else:
        topic = f"{PREFIX}/{device_id}/{channel}"
    _source.pending = [
        Inbound(
            topic=topic,
            payload=payload,
            mid=1,
            qos=1,
            received_ms=NOW_MS,
            content_type=CONTENT_TYPES[selector % len(CONTENT_TYPES)],
            dup=bool(selector & 0x80),
        )
    ]
    batch = _pipeline.collect(idle_wait_s=0)
    check(batch is not None and len(batch.messages) == 1, "the message was not collected")
    assert batch is not None
    _pipeline.prepare(batch)
    for rejection in batch.rejections:
        check_dead_letter(rejection)
    check(len(batch.rejections) <= 1, "one message, several dead letters")
    check(not batch.rejections or not batch.lines, "a message both dead-lettered and written")
    for line in batch.lines:
        check(isinstance(line, str) and "\n" not in line, f"a bad point line {line[:80]!r}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "decode": fuzz_decode,
    "timestamp": fuzz_timestamp,
    "topic": fuzz_topic,
    "validate": fuzz_validate,
    "pipeline": fuzz_pipeline,
    "pack": fuzz_pack,
}


def seed_inputs(name: str) -> list[bytes]:
    """A starting corpus: well-formed and nearly well-formed inputs of each target."""
    payloads = [
        b'{"ts": 1795000000123, "seq": 812, "level_cm": 143.2, "battery_v": 12.6}',
        b'[{"ts": 1795000000, "level_cm": 1}, {"ts": "2026-11-18T19:06:40+08:00", "level_cm": 2}]',
        b'[{"bn": "urn:dev:wl-1:", "bt": 1795000000, "n": "level_cm", "u": "cm", "v": 143.2},'
        b' {"n": "level_cm", "t": 60, "v": 144.0}, {"n": "seq", "v": 812}]',
        b'[{"bn": "wl-1:", "bt": 1794999000}, {"n": "level_cm", "v": 1, "t": 1},'
        b' {"n": "seq", "v": 1, "t": 1}, {"n": "level_cm", "v": 2, "t": 2},'
        b' {"n": "seq", "v": 2, "t": 2}]',
        b'{"ts": 1795000000, "pm25_ugm3": 12.5, "temperature_c": 28, "humidity_pct": 80}',
        b'{"vehicle_count": 12, "avg_speed_kmh": 43.5, "seq": 3}',
        b'{"level_cm": NaN}',
        b"online",
        b'{"status": "offline"}',
        b'{"a":' * 1100 + b"1" + b"}" * 1100,
    ]
    if name == "timestamp":
        return [
            b"\x00" + (1795000000123).to_bytes(9, "little", signed=True),
            b"\x01" + struct.pack("<d", 1795000000.5),
            b"\x022026-11-18T19:06:40+08:00",
            b"\x020001-01-01T00:00:00+14:00",
            b"\x029999-12-31T23:59:59-12:00",
            b"\x03\x01",
            b"\x05" + b"\xff" * 40,
        ]
    if name == "pack":
        return [bytes(range(i, i + 64)) for i in range(0, 192, 16)]
    if name == "topic":
        return [b"pantau/devices/wl-1/telemetry", b"pantau/devices/wl-1/status", b"pantau/x"]
    if name == "decode":
        return [bytes([s]) + p for p in payloads for s in (0, 2, 0x80, 0x82)]
    if name == "validate":
        return [bytes([s, d, 128]) + p for p in payloads for s in (0, 0xC0) for d in (0, 1, 2)]
    return [bytes([s, d]) + p for p in payloads for s in (0, 0x40, 0x80) for d in (0, 1, 3, 4)]


DICTIONARY = [
    '"{"',
    '"}"',
    '"["',
    '"]"',
    '":"',
    '","',
    '"\\""',
    '"true"',
    '"false"',
    '"null"',
    '"NaN"',
    '"-Infinity"',
    '"Infinity"',
    '"1e400"',
    '"1.7e308"',
    '"-1e308"',
    '"-0"',
    '"1.5e-320"',
    '"9223372036854775807"',
    '"18446744073709551616"',
    '"\\\\u0000"',
    '"\\\\ud800"',
    '"\\"ts\\""',
    '"\\"seq\\""',
    '"\\"device_id\\""',
    '"\\"bn\\""',
    '"\\"bt\\""',
    '"\\"bv\\""',
    '"\\"bu\\""',
    '"\\"bver\\""',
    '"\\"n\\""',
    '"\\"u\\""',
    '"\\"v\\""',
    '"\\"vs\\""',
    '"\\"vb\\""',
    '"\\"vd\\""',
    '"\\"s\\""',
    '"\\"t\\""',
    '"\\"level_cm\\""',
    '"\\"flow_m3s\\""',
    '"\\"pm25_ugm3\\""',
    '"\\"battery_v\\""',
    '"\\"vehicle_count\\""',
    '"urn:dev:"',
    '"wl-1"',
    '"env-1:"',
    '"2026-11-18T19:06:40+08:00"',
    '"Z"',
    '"+14:00"',
    '"pantau/devices/"',
    '"/telemetry"',
    '"/status"',
    '"online"',
    '"offline"',
    '"\\"status\\""',
    '"1795000000"',
    '"1795000000123"',
    '"268435456"',
    '"99999999999"',
]


def write_dictionary(path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(DICTIONARY) + "\n")


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz.targets {{{','.join(TARGETS)}}} [libFuzzer flags]")
    target = TARGETS[argv[1]]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


__all__ = ["RuleBrokenError", "main"]

if __name__ == "__main__":
    main(sys.argv)
