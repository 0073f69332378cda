"""The columnar path for regular SenML packs is an optimisation, never a second meaning: for any
pack it must produce exactly what the row path (the reference) produces — the same records,
the same points byte for byte, the same rejections with the same reasons and details, the same
anomaly scores and events. Property tests generate regular and irregular packs and compare."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.catalog import default_catalog
from devices.directory import DirectoryEntry
from devices.models import DeviceStatus
from ingest.calibrate import CalibrationStage, DeviceTagStage
from ingest.decode import decode_message, decode_senml, decode_senml_block
from ingest.detect import DetectionStage
from ingest.model import Inbound, ReadingBlock, RecordBlock, RejectedError
from ingest.pipeline import Batch, Pipeline, ReadingStage
from ingest.points import PointFormatter
from ingest.registry_gate import RegistryKindResolver
from ingest.validate import Validator

NOW_MS = 1_795_000_000_000
NOW_S = NOW_MS / 1000


def records_as_data(records: list[Any]) -> list[tuple[Any, ...]]:
    """Records with their value types and field order, which == on dataclasses ignores."""
    return [
        (
            r.ts_ms,
            type(r.ts_ms),
            r.seq,
            type(r.seq),
            list(r.values.items()),
            [type(v) for v in r.values.values()],
            r.source_id,
        )
        for r in records
    ]


# --- packs: mostly regular, sometimes bent out of shape ------------------------------------
FIELD_NAMES = ["level_cm", "flow_m3s", "battery_v", "seq", "pm25_ugm3", "bogus"]
numbers = st.one_of(
    st.integers(min_value=-300, max_value=3500),
    st.floats(min_value=-300, max_value=3500, allow_nan=False),
    st.sampled_from([0, 0.0, -0.0, 1e-300, 2**53 + 1, 12.5]),
)


@st.composite
def senml_packs(draw: st.DrawFn) -> list[dict[str, Any]]:
    fields = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=3, unique=True))
    steps = draw(st.integers(min_value=1, max_value=12))
    head: dict[str, Any] = {}
    if draw(st.booleans()):
        head["bn"] = draw(
            st.sampled_from(["wl-1:", "urn:dev:wl-1:", "wl-2:", "", "wl-1/", "a:b:c:"])
        )
    if draw(st.booleans()):
        head["bt"] = draw(
            st.sampled_from([NOW_S - 600, NOW_S - 600.0005, 1000, -5.0, NOW_S + 3600, 2.0**40])
        )
    if draw(st.integers(0, 5)) == 0:
        head["bv"] = draw(numbers)
    step_s = draw(st.sampled_from([1, 0.5, 60, 0.0004, 0]))
    seqs = draw(st.sampled_from(["none", "int", "float"]))
    records: list[dict[str, Any]] = []
    for i in range(steps):
        for name in fields:
            rec: dict[str, Any] = {"n": name}
            if name == "seq":
                rec["v"] = i + 100 if seqs != "float" else i + 100.5 * (i % 2)
            else:
                rec["v"] = draw(numbers)
            if step_s or draw(st.booleans()):
                rec["t"] = i * step_s
            if draw(st.integers(0, 3)) == 0:
                rec["u"] = "cm"
            records.append(rec)
    # bend it: each of these sends the pack to the general decoder (or a rejection)
    bend = draw(st.integers(0, 12))
    if bend == 1:
        records[draw(st.integers(0, len(records) - 1))]["v"] = draw(
            st.sampled_from([True, "12", None, [1]])
        )
    elif bend == 2:
        records[-1]["bt"] = NOW_S
    elif bend == 3:
        records[0].pop("n")
    elif bend == 4:
        records[-1]["vs"] = "x"
    elif bend == 5 and len(records) > 1:
        records[0], records[-1] = records[-1], records[0]
    elif bend == 6:
        records.append(dict(records[-1]))
    elif bend == 7:
        records[-1]["n"] = "other:level_cm"
    elif bend == 8:
        records[-1]["t"] = draw(st.sampled_from(["soon", True, 1e20]))
    elif bend == 9:
        records.pop(draw(st.integers(0, len(records) - 1)))
    if head:
        if draw(st.booleans()) and records:
            records[0] = {**head, **records[0]}  # base fields on the first reading
        else:
            records.insert(0, head)
    return records


def row_decode(pack: list[dict[str, Any]]) -> list[Any] | str:
    try:
        return records_as_data(decode_senml(pack, NOW_S))
    except RejectedError as exc:
        return f"{exc.reason}: {exc.detail}"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(senml_packs())
def test_block_decoding_gives_the_rows_of_the_general_decoder(pack: list[dict[str, Any]]) -> None:
    block = decode_senml_block(pack, NOW_S)
    expected = row_decode(pack)
    if block is None:
        return  # the general decoder handles it; nothing to compare
    assert not isinstance(expected, str), f"fast path accepted what rows reject: {expected}"
    assert records_as_data(block.to_records()) == expected


def test_a_regular_pack_takes_the_fast_path_and_an_irregular_one_does_not() -> None:
    regular = [{"bn": "wl-1:", "bt": NOW_S - 60}] + [
        {"n": "level_cm", "u": "cm", "v": 100.0 + i, "t": i} for i in range(50)
    ]
    decoded = decode_message(orjson.dumps(regular), now_s=NOW_S)
    assert isinstance(decoded, RecordBlock) and len(decoded) == 50
    assert decoded.ts_ms[0] == NOW_MS - 60_000 and decoded.source_id == "wl-1"
    two_fields = [{"bn": "wl-1:", "bt": NOW_S}] + [
        {"n": name, "v": float(i), "t": i} for i in range(5) for name in ("seq", "level_cm")
    ]
    block = decode_senml_block(two_fields, NOW_S)
    assert block is not None and block.seq is not None
    assert block.seq.tolist() == [0, 1, 2, 3, 4] and list(block.values) == ["level_cm"]
    irregular = [*regular, {"n": "flow_m3s", "v": 1.0, "t": 0}]
    assert decode_senml_block(irregular, NOW_S) is None
    assert isinstance(decode_message(orjson.dumps(irregular), now_s=NOW_S), list)
    # a JSON content type means JSON objects, never SenML
    assert isinstance(decode_message(orjson.dumps(regular), "application/json"), list)


# --- the whole prepare path: blocks versus rows ----------------------------------------------
class Directory:
    def __init__(self) -> None:
        self.entries = {
            "wl-1": DirectoryEntry(
                id="wl-1",
                kind="water_level",
                status=DeviceStatus.ACTIVE,
                tags={"district": "malili", "site": "Jembatan Malili"},
                # scale 2 leaves 0 unchanged: raw is written for some rows and not others
                calibration={"level_cm": (2.0, 0.0), "battery_v": (1.0, 0.0)},
            ),
            "wl-2": DirectoryEntry(id="wl-2", kind="water_level", status=DeviceStatus.ACTIVE),
            "wl-old": DirectoryEntry(id="wl-old", kind="water_level", status=DeviceStatus.RETIRED),
            "aq-1": DirectoryEntry(
                id="aq-1",
                kind="environment",
                status=DeviceStatus.ACTIVE,
                calibration={"pm25_ugm3": (1.1, -0.5)},
            ),
        }

    def get(self, device_id: str) -> DirectoryEntry | None:
        return self.entries.get(device_id)


def make_pipeline(columnar: bool, threshold: float = 0.5) -> Pipeline:
    directory = Directory()
    catalog = default_catalog()
    validator = Validator(catalog, future_tolerance_s=300, retention_days=400)
    validator.kind_resolver = RegistryKindResolver(
        directory, require_registered=True, infer=validator.kind_from_catalog
    )
    stages: list[ReadingStage] = [
        CalibrationStage(directory),
        DeviceTagStage(directory),
        DetectionStage(catalog, threshold=threshold),
    ]
    return Pipeline(
        None,  # type: ignore[arg-type]  # prepare() never touches the source or sinks
        validator,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        topic_prefix="pantau/devices",
        batch_max_points=100_000,
        flush_interval_s=1.0,
        max_payload_bytes=65536,
        stages=stages,
        formatter=PointFormatter(),
        columnar=columnar,
    )


def prepare(pipeline: Pipeline, messages: list[Inbound]) -> Batch:
    batch = Batch()
    for message in messages:
        pipeline._accept(batch, message)
    pipeline.prepare(batch)
    return batch


def outcome(pipeline: Pipeline, batch: Batch) -> tuple[Any, ...]:
    detector = pipeline.stages[-1]
    assert isinstance(detector, DetectionStage)
    return (
        batch.lines,
        batch.line_owners,
        [(r.message.mid, r.reason, r.detail) for r in batch.rejections],
        list(detector.events),
    )


def message(mid: int, device: str, pack: list[dict[str, Any]]) -> Inbound:
    return Inbound(f"pantau/devices/{device}/telemetry", orjson.dumps(pack), mid, 1, NOW_MS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["wl-1", "wl-2", "wl-old", "aq-1", "ghost"]), senml_packs()),
        min_size=1,
        max_size=8,
    )
)
def test_prepared_points_and_rejections_are_the_same_on_both_paths(
    packs: list[tuple[str, list[dict[str, Any]]]],
) -> None:
    messages = [message(i + 1, device, pack) for i, (device, pack) in enumerate(packs)]
    rows, columns = make_pipeline(columnar=False), make_pipeline(columnar=True)
    assert outcome(rows, prepare(rows, messages)) == outcome(columns, prepare(columns, messages))


def gauge_pack(device: str, start_s: float, values: list[float], seq0: int) -> list[Any]:
    pack: list[dict[str, Any]] = [{"bn": f"{device}:", "bt": start_s}]
    for i, value in enumerate(values):
        pack.append({"n": "seq", "v": seq0 + i, "t": i * 60})
        pack.append({"n": "level_cm", "u": "cm", "v": value, "t": i * 60})
    return pack


def test_scores_reasons_and_events_match_over_a_long_mixed_stream() -> None:
    """Packs and single JSON readings of the same gauges, interleaved within batches; a flood
    at the end fires: both paths score, explain and raise events identically."""
    rng = np.random.default_rng(3)
    rows, columns = make_pipeline(False, threshold=0.6), make_pipeline(True, threshold=0.6)
    start = NOW_S - 86_400
    mid = 0
    t = {"wl-1": start, "wl-2": start}
    seq = {"wl-1": 0, "wl-2": 0}
    reasons = 0
    for batch_no in range(30):
        messages = []
        for device in ("wl-1", "wl-2", "wl-1", "wl-2"):
            flood = 80.0 * (batch_no >= 27)
            levels = (140 + flood + rng.normal(0, 0.4, 12)).round(2).tolist()
            if rng.random() < 0.3:  # a single JSON reading between packs
                payload = {"ts": int(t[device] * 1000), "seq": seq[device], "level_cm": levels[0]}
                mid += 1
                messages.append(
                    Inbound(
                        f"pantau/devices/{device}/telemetry",
                        orjson.dumps(payload),
                        mid,
                        1,
                        NOW_MS,
                    )
                )
                t[device] += 60
                seq[device] += 1
                continue
            mid += 1
            messages.append(
                message(mid, device, gauge_pack(device, t[device], levels, seq[device]))
            )
            t[device] += 60 * len(levels)
            seq[device] += len(levels)
        row_batch, column_batch = prepare(rows, messages), prepare(columns, messages)
        assert column_batch.blocks, "packs should have taken the columnar path"
        assert outcome(rows, row_batch) == outcome(columns, column_batch)
        reasons += sum("anomaly_reason=" in line for line in column_batch.lines)
    detector = columns.stages[-1]
    assert isinstance(detector, DetectionStage)
    assert detector.events_total > 0, "the flood should have fired"
    assert reasons > 0, "a point should carry the reason"


def test_block_rows_convert_back_to_the_readings_they_stand_for() -> None:
    block = ReadingBlock(
        device_id="wl-1",
        kind="water_level",
        ts_ms=np.array([NOW_MS, NOW_MS + 1000]),
        fields={"level_cm": np.array([0.0, 12.5])},
        seq=np.array([7, 8]),
        raw={"level_cm": np.array([math.nan, 6.25])},
        anomaly_score=np.array([0.0, 0.75]),
        anomaly_reason={1: "level_cm:spike"},
        tags=(("district", "malili"),),
    )
    first, second = block.to_readings()
    assert first.raw == {} and first.anomaly_reason is None and first.seq == 7
    assert second.raw == {"level_cm": 6.25} and second.anomaly_reason == "level_cm:spike"
    formatter = PointFormatter()
    assert formatter.block_lines(block) == [formatter.line(r) for r in (first, second)]
    assert formatter.block_lines(block)[1] == (
        "water_level,device_id=wl-1,district=malili level_cm=12.5,level_cm_raw=6.25,seq=8i,"
        f'anomaly_score=0.75,anomaly_reason="level_cm:spike" {NOW_MS + 1000}'
    )
