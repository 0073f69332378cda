"""The ingest pipeline: decode → validate → (reading stages) → write → dead-letter → acknowledge.

One thread runs it, so acknowledgements leave in arrival order. A batch closes when it holds
`batch_max_points` points or `flush_interval_s` after its first message; then its readings
pass the reading stages (calibration, detection, ... — each a `ReadingStage`), go to the sink,
rejected messages go to the dead-letter store, and only then is every message of the batch
acknowledged. If the process dies before that, the broker redelivers the batch and the
idempotent write absorbs the repeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ingest.decode import decode_payload
from ingest.lineprotocol import LineProtocolError, format_point
from ingest.metrics import IngestMetrics
from ingest.model import Inbound, Reading, RejectedError, Rejection, RejectReason
from ingest.points import reading_to_line
from ingest.sink import LineRejection, SinkStoppedError
from ingest.validate import Validator, parse_topic

log = logging.getLogger(__name__)


class Source(Protocol):
    def take(self, max_messages: int, timeout_s: float) -> list[Inbound]: ...
    def ack(self, messages: Sequence[Inbound]) -> int: ...


class Sink(Protocol):
    def write_batch(self, lines: Sequence[str]) -> list[LineRejection]: ...


class DeadLetterSink(Protocol):
    def store(self, rejections: Sequence[Rejection]) -> None: ...


class ReadingStage(Protocol):
    """A batch transform: readings in, readings out (same objects, possibly changed)."""

    name: str

    def process(self, readings: list[Reading]) -> list[Reading]: ...


@dataclass
class Batch:
    messages: list[Inbound] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # message index of each reading
    status_lines: list[tuple[str, int]] = field(default_factory=list)  # (line, message index)
    rejections: list[Rejection] = field(default_factory=list)
    opened_at: float = 0.0

    @property
    def points(self) -> int:
        return len(self.readings) + len(self.status_lines)


STATUS_VALUES = frozenset({"online", "offline"})


class Pipeline:
    def __init__(
        self,
        source: Source,
        validator: Validator,
        sink: Sink,
        dead_letters: DeadLetterSink,
        *,
        topic_prefix: str,
        batch_max_points: int,
        flush_interval_s: float,
        max_payload_bytes: int,
        stages: Sequence[ReadingStage] = (),
        metrics: IngestMetrics | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.validator = validator
        self.sink = sink
        self.dead_letters = dead_letters
        self.topic_prefix = topic_prefix
        self.batch_max_points = batch_max_points
        self.flush_interval_s = flush_interval_s
        self.max_payload_bytes = max_payload_bytes
        self.stages = list(stages)
        self.metrics = metrics or IngestMetrics()
        self.stop = stop or threading.Event()
        self.written = 0
        self.rejected = 0
        self.acked = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.run_once()
            except SinkStoppedError:
                log.info("stopping with a batch unwritten: it stays unacknowledged")
                return

    def run_once(self, idle_wait_s: float = 0.5) -> int:
        """Collect, process and flush one batch. Returns the number of messages handled."""
        batch = Batch()
        while True:
            if batch.messages:
                remaining = batch.opened_at + self.flush_interval_s - time.monotonic()
                if remaining <= 0 or batch.points >= self.batch_max_points:
                    break
            else:
                remaining = idle_wait_s
            room = max(1, self.batch_max_points - batch.points)
            messages = self.source.take(room, remaining)
            if not messages:
                if not batch.messages:
                    return 0
                continue
            if not batch.messages:
                batch.opened_at = time.monotonic()
            for message in messages:
                self._accept(batch, message)
            if self.stop.is_set():
                break
        self._flush(batch)
        return len(batch.messages)

    def _accept(self, batch: Batch, message: Inbound) -> None:
        index = len(batch.messages)
        batch.messages.append(message)
        try:
            topic = parse_topic(message.topic, self.topic_prefix)
            if topic.channel == "status":
                batch.status_lines.append((self._status_line(topic.device_id, message), index))
                return
            records = decode_payload(
                message.payload, message.content_type, max_bytes=self.max_payload_bytes
            )
            readings = self.validator.validate(topic.device_id, records, message.received_ms)
        except RejectedError as exc:
            batch.rejections.append(Rejection(message, exc.reason, exc.detail))
            return
        batch.readings.extend(readings)
        batch.owners.extend([index] * len(readings))

    def _status_line(self, device_id: str, message: Inbound) -> str:
        text = message.payload[:64].decode("utf-8", "replace").strip().strip('"').lower()
        if text.startswith("{"):
            text = text.split('"status"', 1)[-1].split('"')[1] if '"status"' in text else ""
        if text not in STATUS_VALUES:
            raise RejectedError(RejectReason.BAD_SHAPE, "status must be online or offline")
        try:
            return format_point(
                "device_status",
                [("device_id", device_id)],
                {"state": text},
                message.received_ms,
            )
        except LineProtocolError as exc:
            raise RejectedError(RejectReason.BAD_SHAPE, str(exc)) from None

    def _flush(self, batch: Batch) -> None:
        readings = batch.readings
        for stage in self.stages:
            readings = stage.process(readings)
        lines: list[str] = []
        owners: list[int] = []
        failed: set[int] = set()
        for reading, owner in zip(readings, batch.owners, strict=True):
            try:
                lines.append(reading_to_line(reading))
                owners.append(owner)
            except LineProtocolError as exc:
                if owner not in failed:
                    failed.add(owner)
                    batch.rejections.append(
                        Rejection(batch.messages[owner], RejectReason.STORAGE_REJECTED, str(exc))
                    )
        for line, owner in batch.status_lines:
            lines.append(line)
            owners.append(owner)
        started = time.monotonic()
        refused = self.sink.write_batch(lines)
        self.metrics.write_latency.observe(time.monotonic() - started)
        self.metrics.batch_size.observe(len(lines))
        for rejection in refused:
            owner = owners[rejection.index]
            if owner not in failed:
                failed.add(owner)
                batch.rejections.append(
                    Rejection(batch.messages[owner], RejectReason.STORAGE_REJECTED, rejection.error)
                )
        self._store_dead_letters(batch.rejections)
        acked = self.source.ack(batch.messages)
        written = len(lines) - len(refused)
        self.written += written
        self.rejected += len(batch.rejections)
        self.acked += acked
        self.metrics.written.inc(written)
        self.metrics.acked.inc(acked)
        for dead in batch.rejections:
            self.metrics.rejected.labels(dead.reason.value).inc()

    def _store_dead_letters(self, rejections: list[Rejection]) -> None:
        delay = 0.2
        while True:
            try:
                self.dead_letters.store(rejections)
                return
            except Exception as exc:  # a database outage must not lose or ack anything
                log.error("dead-letter store failed (%s); retrying in %.1fs", exc, delay)
                if self.stop.wait(delay):
                    raise SinkStoppedError("stopped while the dead-letter store failed") from exc
                delay = min(delay * 2, 10.0)
