"""The pipeline's contract, with small in-memory fakes of its own interfaces: acks only after
the write, in arrival order; bad messages dead-lettered before their ack; nothing acked when
the write never succeeds."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import orjson
import pytest

from devices.catalog import default_catalog
from ingest.model import Inbound, ReadingSet, Rejection, RejectReason
from ingest.pipeline import Pipeline
from ingest.sink import LineRejection, SinkStoppedError
from ingest.validate import Validator

NOW = 1_795_000_000_000


class FakeSource:
    def __init__(self, messages: list[Inbound], log: list[str]) -> None:
        self.messages = list(messages)
        self.log = log
        self.acked: list[int] = []

    def take(self, max_messages: int, timeout_s: float) -> list[Inbound]:
        out, self.messages = self.messages[:max_messages], self.messages[max_messages:]
        return out

    def ack(self, messages: Sequence[Inbound]) -> int:
        self.log.append("ack")
        self.acked.extend(m.mid for m in messages)
        return len(messages)


class FakeSink:
    def __init__(
        self, log: list[str], refuse_containing: str | None = None, fail: bool = False
    ) -> None:
        self.log = log
        self.lines: list[str] = []
        self.refuse_containing = refuse_containing
        self.fail = fail

    def write_batch(self, lines: Sequence[str]) -> list[LineRejection]:
        if self.fail:
            raise SinkStoppedError("influx down and stop requested")
        self.log.append("write")
        refused = [
            LineRejection(i, "type conflict")
            for i, line in enumerate(lines)
            if self.refuse_containing and self.refuse_containing in line
        ]
        self.lines.extend(
            line for i, line in enumerate(lines) if i not in {r.index for r in refused}
        )
        return refused


class FakeDeadLetters:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.stored: list[Rejection] = []

    def store(self, rejections: Sequence[Rejection]) -> None:
        self.log.append("dead-letter")
        self.stored.extend(rejections)


def message(mid: int, payload: object, device: str = "wl-1") -> Inbound:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Inbound(
        topic=f"pantau/devices/{device}/telemetry", payload=body, mid=mid, qos=1, received_ms=NOW
    )


def make(
    messages: list[Inbound],
    sink_kwargs: dict[str, object] | None = None,
    batch_max_points: int = 100,
) -> tuple[Pipeline, FakeSource, FakeSink, FakeDeadLetters, list[str]]:
    log: list[str] = []
    source = FakeSource(messages, log)
    sink = FakeSink(log, **(sink_kwargs or {}))  # type: ignore[arg-type]
    dead = FakeDeadLetters(log)
    pipeline = Pipeline(
        source,
        Validator(default_catalog(), future_tolerance_s=300, retention_days=400),
        sink,
        dead,
        topic_prefix="pantau/devices",
        batch_max_points=batch_max_points,
        flush_interval_s=0.01,
        max_payload_bytes=1024,
        stop=threading.Event(),
    )
    return pipeline, source, sink, dead, log


def test_acks_follow_the_write_in_arrival_order() -> None:
    messages = [message(i, {"ts": NOW - i, "seq": i, "level_cm": i}) for i in range(1, 8)]
    pipeline, source, sink, dead, log = make(messages, batch_max_points=3)
    while pipeline.run_once(idle_wait_s=0):
        pass
    assert source.acked == list(range(1, 8))
    assert len(sink.lines) == 7
    assert log == ["write", "dead-letter", "ack"] * 3
    assert not dead.stored


def test_bad_messages_are_dead_lettered_before_their_ack() -> None:
    messages = [
        message(1, {"ts": NOW, "level_cm": 1}),
        message(2, b"{oops"),
        message(3, {"ts": NOW, "level_cm": float("1e9")}),
        message(4, {"ts": NOW, "level_cm": 2}, device="BAD ID"),
        message(5, {"ts": NOW, "level_cm": 3}),
    ]
    pipeline, source, sink, dead, log = make(messages)
    pipeline.run_once(idle_wait_s=0)
    assert source.acked == [1, 2, 3, 4, 5]
    assert [(r.message.mid, r.reason) for r in dead.stored] == [
        (2, RejectReason.BAD_JSON),
        (3, RejectReason.OUT_OF_RANGE),
        (4, RejectReason.BAD_DEVICE_ID),
    ]
    assert len(sink.lines) == 2
    assert log.index("dead-letter") < log.index("ack")


def test_lines_refused_by_storage_are_dead_lettered_and_the_rest_written() -> None:
    messages = [
        message(1, {"ts": NOW, "level_cm": 1}),
        message(2, {"ts": NOW, "level_cm": 2}, device="wl-conflict"),
        message(3, {"ts": NOW, "level_cm": 3}),
    ]
    pipeline, source, sink, dead, _ = make(messages, {"refuse_containing": "wl-conflict"})
    pipeline.run_once(idle_wait_s=0)
    assert [(r.message.mid, r.reason) for r in dead.stored] == [(2, RejectReason.STORAGE_REJECTED)]
    assert source.acked == [1, 2, 3]
    assert len(sink.lines) == 2


def test_nothing_is_acked_when_the_write_never_succeeds() -> None:
    messages = [message(i, {"ts": NOW, "level_cm": i}) for i in range(1, 4)]
    pipeline, source, _, _, _ = make(messages, {"fail": True})
    pipeline.run()
    assert source.acked == []


def test_status_messages_are_stored_and_bad_ones_rejected() -> None:
    ok = Inbound(
        topic="pantau/devices/wl-1/status", payload=b"offline", mid=1, qos=1, received_ms=NOW
    )
    bad = Inbound(
        topic="pantau/devices/wl-1/status", payload=b"sleepy", mid=2, qos=1, received_ms=NOW
    )
    pipeline, source, sink, dead, _ = make([ok, bad])
    pipeline.run_once(idle_wait_s=0)
    assert sink.lines == [f'device_status,device_id=wl-1 state="offline" {NOW}']
    assert [r.message.mid for r in dead.stored] == [2]
    assert source.acked == [1, 2]


@pytest.mark.parametrize(
    ("payload", "state"),
    [
        (b"online", "online"),
        (b'"OFFLINE"', "offline"),
        (b'{"status": "offline", "reason": "battery"}', "offline"),
        (b'{"status"}', None),  # found by `make fuzz`: an IndexError in the status parser
        (b'{"status": 1}', None),
        (b'{"status": "', None),
        (b'{"other": "online"}', None),
        (b"[]", None),
    ],
)
def test_status_payloads(payload: bytes, state: str | None) -> None:
    status = Inbound(
        topic="pantau/devices/wl-1/status", payload=payload, mid=1, qos=1, received_ms=NOW
    )
    pipeline, source, sink, dead, _ = make([status])
    pipeline.run_once(idle_wait_s=0)
    if state is None:
        assert [(r.message.mid, r.reason) for r in dead.stored] == [(1, RejectReason.BAD_SHAPE)]
        assert sink.lines == []
    else:
        assert sink.lines == [f'device_status,device_id=wl-1 state="{state}" {NOW}']
        assert dead.stored == []
    assert source.acked == [1]


def test_packs_of_many_readings_fill_batches_without_overflowing_them() -> None:
    """A take of many SenML packs stops at a full batch; the rest open the next batches, in
    order. Batches stay near `batch_max_points` however large the broker's backlog is."""
    packs = [
        message(
            i,
            [{"bn": "urn:dev:wl-1:", "bt": NOW / 1000 - 3600 + i * 10, "n": "level_cm", "v": 1.0}]
            + [{"n": "level_cm", "t": t, "v": float(t)} for t in range(1, 10)],
        )
        for i in range(1, 21)
    ]
    pipeline, source, sink, dead, _ = make(packs, batch_max_points=25)
    sizes: list[int] = []
    while pipeline.run_once(idle_wait_s=0):
        sizes.append(len(sink.lines) - sum(sizes))
    assert source.acked == list(range(1, 21))
    assert len(sink.lines) == 200 and not dead.stored
    assert sizes == [30] * 6 + [20]  # three packs fill a batch of 25; never more than one over


class RaisesOnLevel:
    """A reading stage with a bug: it raises on any batch holding a reading of `level_cm`
    equal to `poison` — the way a real bug would take a whole batch down."""

    name = "buggy-stage"

    def __init__(self, poison: float) -> None:
        self.poison = poison
        self.seen = 0

    def process_set(self, batch: ReadingSet) -> None:
        self.seen += 1
        rows = [r.fields.get("level_cm") for r in batch.readings]
        cols = [v for b in batch.blocks for v in b.fields.get("level_cm", np.empty(0)).tolist()]
        if self.poison in rows + cols:
            raise ZeroDivisionError(f"cannot handle level_cm={self.poison}")


def test_a_stage_that_raises_on_one_message_dead_letters_only_that_message() -> None:
    pack = [{"bn": "wl-2:", "bt": NOW / 1000 - 60, "n": "level_cm", "v": 13.0}] + [
        {"n": "level_cm", "t": t, "v": 20.0 + t} for t in range(1, 5)
    ]
    messages = [
        message(1, {"ts": NOW, "seq": 1, "level_cm": 1}),
        message(2, {"ts": NOW, "seq": 2, "level_cm": 13}),  # the poison, as a row
        message(3, {"ts": NOW, "seq": 3, "level_cm": 3}, device="wl-3"),
        message(4, pack, device="wl-2"),  # the poison in a columnar block
        message(5, b"offline"),
        message(6, b"{oops"),
    ]
    messages[4].topic = "pantau/devices/wl-1/status"
    pipeline, source, sink, dead, _ = make(messages)
    pipeline.stages = [RaisesOnLevel(13.0)]
    pipeline.run_once(idle_wait_s=0)
    assert sorted((r.message.mid, r.reason) for r in dead.stored) == [
        (2, RejectReason.INTERNAL_ERROR),
        (4, RejectReason.INTERNAL_ERROR),
        (6, RejectReason.BAD_JSON),
    ]
    [internal, _] = [r for r in dead.stored if r.reason is RejectReason.INTERNAL_ERROR]
    assert internal.detail.startswith("ZeroDivisionError: cannot handle level_cm=13.0")
    assert "reading stage buggy-stage" in internal.detail  # which stage
    # the rest of the batch goes on: two readings and the status written, all acked in order
    assert len(sink.lines) == 3
    assert sorted(line.split(",")[0] for line in sink.lines) == [
        "device_status",
        "water_level",
        "water_level",
    ]
    assert source.acked == [1, 2, 3, 4, 5, 6]
    assert (
        pipeline.metrics.registry.get_sample_value(
            "pantau_ingest_messages_rejected_total", {"reason": "internal_error"}
        )
        == 2
    )


def test_an_unexpected_error_in_decoding_or_validating_dead_letters_that_message() -> None:
    messages = [message(i, {"ts": NOW, "level_cm": i}, device=f"wl-{i}") for i in range(1, 5)]
    pipeline, source, sink, dead, _ = make(messages)
    infer = pipeline.validator.kind_resolver

    def resolver_with_a_bug(device_id: str, names: set[str]) -> str:
        if device_id == "wl-3":
            raise KeyError("wl-3")
        return infer(device_id, names)

    pipeline.validator.kind_resolver = resolver_with_a_bug
    pipeline.run_once(idle_wait_s=0)
    assert [(r.message.mid, r.reason) for r in dead.stored] == [(3, RejectReason.INTERNAL_ERROR)]
    assert dead.stored[0].detail.startswith("KeyError: 'wl-3'")
    assert len(sink.lines) == 3 and source.acked == [1, 2, 3, 4]


def test_a_deeply_nested_payload_in_a_batch_costs_only_itself() -> None:
    """The issue's poison message: 5,000 nested objects, under the size limit."""
    poison = b'{"a":' * 5000 + b"1" + b"}" * 5000
    messages = [
        message(1, {"ts": NOW, "level_cm": 1}),
        message(2, poison),
        message(3, {"ts": NOW, "level_cm": 3}, device="wl-3"),
    ]
    pipeline, source, sink, dead, _ = make(messages)
    pipeline.max_payload_bytes = 64 * 1024
    pipeline.run_once(idle_wait_s=0)
    assert [(r.message.mid, r.reason) for r in dead.stored] == [(2, RejectReason.BAD_JSON)]
    assert len(sink.lines) == 2 and source.acked == [1, 2, 3]


class HandOverSource(FakeSource):
    """Hands messages over in the given groups, one group per `take`, and records what the
    stages had seen at each `take` (the batch is still open then)."""

    def __init__(self, groups: list[list[Inbound]], log: list[str], stage: SeenLevels) -> None:
        super().__init__([], log)
        self.groups = list(groups)
        self.stage = stage
        self.seen_at_take: list[list[float]] = []

    def take(self, max_messages: int, timeout_s: float) -> list[Inbound]:
        self.seen_at_take.append(list(self.stage.levels))
        return self.groups.pop(0) if self.groups else []


class SeenLevels:
    name = "seen"

    def __init__(self) -> None:
        self.levels: list[float] = []
        self.calls = 0

    def process_set(self, batch: ReadingSet) -> None:
        self.calls += 1
        self.levels.extend(r.fields["level_cm"] for r in batch.readings)


def test_the_stages_see_each_hand_over_before_the_batch_closes() -> None:
    """The alert path must not wait for the write batch's window: a reading reaches the
    stages when it is handed over, while the batch is still open for more."""
    log: list[str] = []
    stage = SeenLevels()
    groups = [
        [message(1, {"ts": NOW, "seq": 1, "level_cm": 1})],
        [message(2, {"ts": NOW, "seq": 2, "level_cm": 2})],
        [message(i, {"ts": NOW, "seq": i, "level_cm": i}) for i in (3, 4)],
    ]
    pipeline, _, sink, dead, _ = make([], batch_max_points=4)
    pipeline.source = source = HandOverSource(groups, log, stage)
    pipeline.flush_interval_s = 60.0  # the batch closes by size here, never by time
    pipeline.stage_interval_s = 0.0  # each hand-over is staged before the next take
    pipeline.stages = [stage]
    pipeline.run_once(idle_wait_s=0)
    assert source.seen_at_take == [[], [1.0], [1.0, 2.0]]  # seen before the next take
    assert stage.levels == [1.0, 2.0, 3.0, 4.0] and stage.calls == 3  # each once
    assert len(sink.lines) == 4 and source.acked == [1, 2, 3, 4] and not dead.stored


def test_a_stage_raising_on_a_later_hand_over_costs_only_its_message() -> None:
    log: list[str] = []
    stage = SeenLevels()
    buggy = RaisesOnLevel(13.0)
    groups = [
        [message(1, {"ts": NOW, "seq": 1, "level_cm": 1})],
        [
            message(2, {"ts": NOW, "seq": 2, "level_cm": 13}),  # the poison
            message(3, {"ts": NOW, "seq": 3, "level_cm": 3}, device="wl-3"),
            message(4, b"{oops"),
        ],
    ]
    pipeline, _, sink, dead, _ = make([], batch_max_points=4)
    pipeline.source = source = HandOverSource(groups, log, stage)
    pipeline.flush_interval_s = 0.05
    pipeline.stage_interval_s = 0.0
    pipeline.stages = [stage, buggy]
    pipeline.run_once(idle_wait_s=0)
    assert sorted((r.message.mid, r.reason) for r in dead.stored) == [
        (2, RejectReason.INTERNAL_ERROR),
        (4, RejectReason.BAD_JSON),
    ]
    # the first hand-over was not prepared again: its reading reached the stages once
    assert stage.levels.count(1.0) == 1
    assert sorted(line.split(" ")[1] for line in sink.lines) == [
        "level_cm=1.0,seq=1i",
        "level_cm=3.0,seq=3i",
    ]
    assert source.acked == [1, 2, 3, 4]
