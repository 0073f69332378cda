"""The ingest pipeline: decode → validate → (reading stages) → write → dead-letter → acknowledge.

A message becomes readings in one of two shapes (see `ingest.model`): rows (`Reading`) or, for
a regular SenML pack, one columnar `ReadingBlock`; every stage handles both, and the rows are
the reference the block paths are tested against.

Two threads, so decoding the next batch overlaps writing the last one:
- the *preparing* thread takes messages from the source, decodes and validates them, runs the
  reading stages (calibration, detection, alerts, ... — each a `ReadingStage`) and formats
  points. A batch closes when it holds `batch_max_points` points or `flush_interval_s` after
  its first message; it then waits in a small bounded queue (`batches_in_flight`). The stages
  run on the messages that joined the batch at most `stage_interval_s` (5 ms) after they
  came, not once when the batch closes: the write batch's window is for InfluxDB's sake, and
  an alert must not wait for it (the alert stage commits its transitions to SQL as soon as
  it has seen the reading). Gathering a few milliseconds keeps the per-call cost of the
  vectorised stages small under load;
- the *committing* thread writes a batch to the sink, stores its rejected messages as dead
  letters, and only then acknowledges every message of the batch. Batches are committed one
  at a time in the order they were prepared, so acknowledgements leave in arrival order.

A bug must not stop the city: an unexpected exception while preparing one message (decoding,
validating, a reading stage, formatting its points) dead-letters that message with the reason
`internal_error` and the exception's last line, and the rest of the batch goes on. When a
reading stage raises on a hand-over, those messages are prepared again one at a time from the
payloads (the stage may have changed readings in place before it raised), so only the
messages it fails on are set aside. Without this, the message would never be acknowledged, the
broker would redeliver it after the restart, and it would crash the ingester again.

Delivery guarantee: at-least-once. If the process dies before a batch's acknowledgement, the
broker redelivers it and the idempotent write absorbs the repeat. While the sink cannot write,
the committing thread waits, the queue fills, the preparing thread stops taking messages, and
the broker's Receive Maximum stops sending: memory stays bounded.

Health signals (`ingest.lag`): every decoded message's sequence numbers pass a per-device
gap counter in arrival order (a device's gaps and jumps), and after each commit the lag gauge
is set to the commit time minus the arrival time of the batch's oldest message.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import traceback
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from ingest.decode import decode_message
from ingest.lag import SeqGapCounter
from ingest.lineprotocol import LineProtocolError, format_point
from ingest.metrics import IngestMetrics
from ingest.model import (
    DeviceStatus,
    Inbound,
    Reading,
    ReadingBlock,
    ReadingSet,
    RejectedError,
    Rejection,
    RejectReason,
)
from ingest.points import PointFormatter
from ingest.sink import LineRejection, SinkStoppedError
from ingest.validate import TopicParser, Validator
from pantau.retry import RetryStoppedError, retry_policy

log = logging.getLogger(__name__)


class Source(Protocol):
    def take(self, max_messages: int, timeout_s: float) -> list[Inbound]: ...
    def ack(self, messages: Sequence[Inbound]) -> int: ...


class Sink(Protocol):
    def write_batch(self, lines: Sequence[str]) -> list[LineRejection]: ...


class DeadLetterSink(Protocol):
    def store(self, rejections: Sequence[Rejection]) -> None: ...


class ReadingStage(Protocol):
    """A batch transform: the batch's readings (rows and blocks), changed in place. It sees a
    batch in parts, as its messages arrive; a stage that gathers work per batch may also have
    `batch_closed()`, called once the whole batch has been seen, before it is written."""

    name: str

    def process_set(self, batch: ReadingSet) -> None: ...


@dataclass
class Batch:
    messages: list[Inbound] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # message index of each reading
    blocks: list[ReadingBlock] = field(default_factory=list)
    block_rows: int = 0
    status_lines: list[tuple[str, int]] = field(default_factory=list)  # (line, message index)
    statuses: list[DeviceStatus] = field(default_factory=list)  # one per status line
    rejections: list[Rejection] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    line_owners: list[int] = field(default_factory=list)
    opened_at: float = 0.0
    # How much of the batch the reading stages have seen: (messages, rows, blocks, statuses).
    staged: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def points(self) -> int:
        return len(self.readings) + self.block_rows + len(self.status_lines)


STATUS_VALUES = frozenset({"online", "offline"})
_STOP = object()


class _StageError(Exception):
    """A reading stage raised (the cause); carries the stage's name."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


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
        batches_in_flight: int = 2,
        stage_interval_s: float = 0.005,
        stages: Sequence[ReadingStage] = (),
        formatter: PointFormatter | None = None,
        metrics: IngestMetrics | None = None,
        stop: threading.Event | None = None,
        columnar: bool = True,
        seq_gaps: bool = True,
    ) -> None:
        self.source = source
        self.validator = validator
        self.sink = sink
        self.dead_letters = dead_letters
        self.topics = TopicParser(topic_prefix)
        self.batch_max_points = batch_max_points
        self.flush_interval_s = flush_interval_s
        self.stage_interval_s = stage_interval_s
        self.max_payload_bytes = max_payload_bytes
        self.stages = list(stages)
        self.columnar = columnar  # regular SenML packs as blocks (False: rows, the reference)
        self.formatter = formatter or PointFormatter()
        self.metrics = metrics or IngestMetrics()
        self.stop = stop or threading.Event()
        self._dead_letter_retry = retry_policy(
            Exception,
            initial_s=0.2,
            max_s=10.0,
            stop=self.stop,
            before_retry=lambda exc, wait_s: log.error(
                "dead-letter store failed (%s); retrying in %.1fs", exc, wait_s
            ),
        )
        # Off for members of a shared subscription: each sees only part of a device's stream.
        self.gaps = (
            SeqGapCounter(self.metrics.seq_gaps, self.metrics.seq_jumps) if seq_gaps else None
        )
        self.lag_s: float | None = None  # of the last batch committed, from arrival
        self._ready: queue.Queue[Batch | object] = queue.Queue(maxsize=batches_in_flight)
        self.min_take = 128  # hand-overs smaller than this are a trickle
        self._carry: deque[Inbound] = deque()  # taken, but past a full batch: the next one
        self.trickle_wait_s = min(0.003, flush_interval_s / 10)
        self.received = 0
        self.written = 0
        self.rejected = 0
        self.acked = 0
        self.committed = 0  # messages whose batch was committed (acked, or void after reconnect)
        self._last_traceback_at = -math.inf

    # -- running ----------------------------------------------------------------------------
    def run(self) -> None:
        """Prepare and commit batches until `stop` is set (or the sink gives up on stop)."""
        committer = threading.Thread(target=self._commit_loop, name="commit", daemon=True)
        committer.start()
        try:
            while not self.stop.is_set():
                batch = self.collect()
                if batch is None:
                    continue
                self.prepare(batch)
                while not self._offer(batch):
                    if self.stop.is_set() or not committer.is_alive():
                        return
        finally:
            self._offer_stop(committer)
            committer.join()

    def _offer(self, item: Batch | object) -> bool:
        try:
            self._ready.put(item, timeout=0.2)
            return True
        except queue.Full:
            return False

    def _offer_stop(self, committer: threading.Thread) -> None:
        while committer.is_alive() and not self._offer(_STOP):
            pass

    def _commit_loop(self) -> None:
        while True:
            item = self._ready.get()
            if item is _STOP:
                return
            assert isinstance(item, Batch)
            try:
                self.commit(item)
            except SinkStoppedError:
                log.info("stopping with a batch unwritten: it stays unacknowledged")
                self.stop.set()
                return
            except Exception:
                # Never ack what may not be stored: stop, and let the broker redeliver.
                log.exception("commit failed; stopping without acknowledging the batch")
                self.stop.set()
                return

    def run_once(self, idle_wait_s: float = 0.5) -> int:
        """Collect, prepare and commit one batch in this thread (for tests and tools)."""
        batch = self.collect(idle_wait_s)
        if batch is None:
            return 0
        self.prepare(batch)
        self.commit(batch)
        return len(batch.messages)

    # -- preparing thread -------------------------------------------------------------------
    def collect(self, idle_wait_s: float = 0.5) -> Batch | None:
        """Take messages until the batch is full or its flush interval has passed."""
        batch = Batch()
        unstaged_at: float | None = None  # when the oldest message the stages missed came
        while True:
            now = time.monotonic()
            if batch.messages:
                remaining = batch.opened_at + self.flush_interval_s - now
                if remaining <= 0 or batch.points >= self.batch_max_points:
                    break
            else:
                remaining = idle_wait_s
            if unstaged_at is not None:
                due = unstaged_at + self.stage_interval_s - now
                if due <= 0:
                    # The stages see arriving messages within stage_interval_s, not when the
                    # batch closes: an alert must not wait for the write batch's window.
                    self._stage_tail(batch)
                    unstaged_at = None
                else:
                    remaining = min(remaining, due)
            room = max(1, self.batch_max_points - batch.points)
            carry = self._carry
            if carry:
                messages = [carry.popleft() for _ in range(min(room, len(carry)))]
            else:
                messages = self.source.take(room, remaining)
            if not messages:
                if not batch.messages:
                    return None
                continue
            if not batch.messages:
                batch.opened_at = time.monotonic()
            if unstaged_at is None:
                unstaged_at = time.monotonic()
            limit = self.batch_max_points
            for index, message in enumerate(messages):
                self._accept(batch, message)
                if batch.points >= limit and index + 1 < len(messages):
                    # A full batch: messages of many readings (SenML packs) must not make
                    # one batch of hundreds of thousands of points. The rest open the next.
                    carry.extendleft(reversed(messages[index + 1 :]))
                    break
            if self.stop.is_set():
                break
            if len(messages) < self.min_take and not carry:
                # A trickle: let the network thread gather more before waking again. Fewer,
                # larger hand-overs mean fewer GIL hand-offs with paho's thread.
                time.sleep(self.trickle_wait_s)
        self.received += len(batch.messages)
        self.metrics.received.inc(len(batch.messages))
        if self.gaps is not None:
            self.gaps.publish()
        return batch

    def _accept(self, batch: Batch, message: Inbound, *, first_pass: bool = True) -> None:
        """Decode and validate one message into the batch (`first_pass`: counted and seen by
        the gap counter; a batch prepared again one by one is neither)."""
        index = len(batch.messages)
        batch.messages.append(message)
        if message.dup and first_pass:
            self.metrics.redelivered.inc()
        try:
            device_id, channel = self.topics.parse(message.topic)
            if channel == "status":
                line, state = self._status_line(device_id, message)
                batch.status_lines.append((line, index))
                batch.statuses.append(DeviceStatus(device_id, state, message.received_ms))
                return
            decoded = decode_message(
                message.payload,
                message.content_type,
                max_bytes=self.max_payload_bytes,
                now_s=message.received_ms / 1000.0,  # SenML relative times count from arrival
                blocks=self.columnar,
            )
            if self.gaps is not None and first_pass:  # before validation: a dead letter is no gap
                if isinstance(decoded, list):
                    self.gaps.observe_records(device_id, decoded, message.received_ms)
                elif decoded.seq is not None:
                    self.gaps.observe_block(device_id, decoded.seq, decoded.ts_ms)
            if isinstance(decoded, list):
                readings = self.validator.validate(device_id, decoded, message.received_ms)
            else:
                valid = self.validator.validate_block(device_id, decoded, message.received_ms)
                if isinstance(valid, ReadingBlock):
                    valid.owner = index
                    batch.blocks.append(valid)
                    batch.block_rows += len(valid)
                    return
                readings = valid
        except RejectedError as exc:
            batch.rejections.append(Rejection(message, exc.reason, exc.detail))
            return
        except Exception as exc:  # a bug of ours: this message is set aside, the batch goes on
            batch.rejections.append(self._internal_error(message, "decoding and validating", exc))
            return
        batch.readings.extend(readings)
        if len(readings) == 1:
            batch.owners.append(index)
        else:
            batch.owners.extend([index] * len(readings))

    def _status_line(self, device_id: str, message: Inbound) -> tuple[str, str]:
        """The point and the state of a status message: `online` / `offline`, bare, as a
        JSON string, or as `{"status": "..."}`."""
        payload = message.payload
        text = payload[:64].decode("utf-8", "replace").strip().strip('"').lower()
        if text.startswith("{") and len(payload) <= 1024:
            try:
                document = orjson.loads(payload)
            except orjson.JSONDecodeError:
                document = None
            state = document.get("status") if isinstance(document, dict) else None
            text = state.strip().lower() if isinstance(state, str) else ""
        if text not in STATUS_VALUES:
            raise RejectedError(RejectReason.BAD_SHAPE, "status must be online or offline")
        try:
            line = format_point(
                "device_status", [("device_id", device_id)], {"state": text}, message.received_ms
            )
            return line, text
        except LineProtocolError as exc:
            raise RejectedError(RejectReason.BAD_SHAPE, str(exc)) from None

    def _internal_error(self, message: Inbound, where: str, exc: BaseException) -> Rejection:
        """The dead letter of a message an unexpected exception met: its last line, and where.
        The full traceback is logged at most once a minute (a flood of one poison message must
        not flood the log); the metric counts every one."""
        last_line = traceback.format_exception_only(exc)[-1].strip()
        detail = f"{last_line} (while {where})"
        now = time.monotonic()
        if now - self._last_traceback_at >= 60.0:
            self._last_traceback_at = now
            log.error(
                "internal error on %s, dead-lettered: %s", message.topic[:200], detail, exc_info=exc
            )
        return Rejection(message, RejectReason.INTERNAL_ERROR, detail)

    def _run_stages(self, reading_set: ReadingSet) -> None:
        for stage in self.stages:
            try:
                stage.process_set(reading_set)
            except Exception as exc:
                raise _StageError(stage.name) from exc

    def _stage_tail(self, batch: Batch) -> None:
        """Run the reading stages on the part of the batch they have not seen yet."""
        m0, r0, b0, s0 = batch.staged
        if m0 == len(batch.messages):
            return
        if self.stages:
            tail = ReadingSet(
                batch.readings[r0:], batch.owners[r0:], batch.blocks[b0:], batch.statuses[s0:]
            )
            try:
                self._run_stages(tail)
            except _StageError as exc:
                self._prepare_one_by_one(batch, exc.stage)
        batch.staged = (
            len(batch.messages),
            len(batch.readings),
            len(batch.blocks),
            len(batch.statuses),
        )

    def _prepare_one_by_one(self, batch: Batch, failed_stage: str) -> None:
        """Prepare the batch's unstaged tail again, one message at a time from its payloads
        (a stage may have changed readings in place before it raised); a message the stages
        raise on becomes an `internal_error` dead letter, the others go on as usual."""
        m0, r0, b0, s0 = batch.staged
        tail = batch.messages[m0:]
        log.warning(
            "reading stage %s raised on %d messages: preparing them one by one",
            failed_stage,
            len(tail),
        )
        in_tail = {id(message) for message in tail}
        del batch.messages[m0:], batch.readings[r0:], batch.owners[r0:]
        batch.block_rows -= sum(len(block) for block in batch.blocks[b0:])
        del batch.blocks[b0:]
        batch.status_lines = [(line, i) for line, i in batch.status_lines if i < m0]
        del batch.statuses[s0:]
        batch.rejections = [r for r in batch.rejections if id(r.message) not in in_tail]
        for message in tail:
            index = len(batch.messages)
            one = Batch()
            self._accept(one, message, first_pass=False)
            if not one.rejections:
                try:
                    self._run_stages(ReadingSet(one.readings, one.owners, one.blocks, one.statuses))
                except _StageError as exc:
                    cause = exc.__cause__ or exc
                    one.rejections.append(
                        self._internal_error(message, f"in reading stage {exc.stage}", cause)
                    )
            batch.messages.append(message)
            batch.rejections.extend(one.rejections)
            if one.rejections:
                continue
            batch.readings.extend(one.readings)
            batch.owners.extend([index] * len(one.readings))
            for block in one.blocks:
                block.owner = index
                batch.blocks.append(block)
                batch.block_rows += len(block)
            batch.status_lines.extend((line, index) for line, _ in one.status_lines)
            batch.statuses.extend(one.statuses)

    def prepare(self, batch: Batch) -> None:
        """Format the points of a collected batch (after the stages saw what they had not)."""
        self._stage_tail(batch)
        for stage in self.stages:
            closed = getattr(stage, "batch_closed", None)
            if closed is not None:
                try:
                    closed()
                except Exception:  # a stage's bookkeeping must not cost the batch
                    log.exception("reading stage %s failed closing a batch", stage.name)
        failed: set[int] = set()
        lines = batch.lines
        line_owners = batch.line_owners
        # Points leave in message order (rows and blocks interleaved as their messages came),
        # so of two points for one series and time in a batch, the later message wins.
        readings, owners = batch.readings, batch.owners
        done = 0
        for block in batch.blocks:
            upto = bisect_left(owners, block.owner, lo=done)
            if upto > done:
                self._format_rows(batch, readings[done:upto], owners[done:upto], failed)
                done = upto
            try:
                block_lines = self.formatter.block_lines(block)
            except Exception:  # LineProtocolError, or a bug the row path will name
                # Let the row path find the failing row, so the dead letter says what it would.
                rows = block.to_readings()
                self._format_rows(batch, rows, [block.owner] * len(rows), failed)
                continue
            lines.extend(block_lines)
            line_owners.extend([block.owner] * len(block_lines))
        if done < len(readings):
            self._format_rows(batch, readings[done:], owners[done:], failed)
        for line, owner in batch.status_lines:
            lines.append(line)
            line_owners.append(owner)

    def _format_rows(
        self, batch: Batch, readings: list[Reading], owners: list[int], failed: set[int]
    ) -> None:
        to_line = self.formatter.line
        lines = batch.lines
        line_owners = batch.line_owners
        for reading, owner in zip(readings, owners, strict=True):
            try:
                lines.append(to_line(reading))
            except LineProtocolError as exc:
                if owner not in failed:
                    failed.add(owner)
                    batch.rejections.append(
                        Rejection(batch.messages[owner], RejectReason.STORAGE_REJECTED, str(exc))
                    )
                continue
            except Exception as exc:  # a bug of ours: this message is set aside
                if owner not in failed:
                    failed.add(owner)
                    batch.rejections.append(
                        self._internal_error(batch.messages[owner], "formatting points", exc)
                    )
                continue
            line_owners.append(owner)

    # -- committing thread ------------------------------------------------------------------
    def commit(self, batch: Batch) -> None:
        """Write, dead-letter, then acknowledge: the order the delivery guarantee rests on."""
        started = time.monotonic()
        refused = self.sink.write_batch(batch.lines)
        self.metrics.write_latency.observe(time.monotonic() - started)
        self.metrics.batch_size.observe(len(batch.lines))
        failed = {
            id(r.message) for r in batch.rejections if r.reason is RejectReason.STORAGE_REJECTED
        }
        for rejection in refused:
            message = batch.messages[batch.line_owners[rejection.index]]
            if id(message) not in failed:
                failed.add(id(message))
                batch.rejections.append(
                    Rejection(message, RejectReason.STORAGE_REJECTED, rejection.error)
                )
        self._store_dead_letters(batch.rejections)
        acked = self.source.ack(batch.messages)
        written = len(batch.lines) - len(refused)
        self.written += written
        self.rejected += len(batch.rejections)
        self.acked += acked
        self.committed += len(batch.messages)
        self.metrics.written.inc(written)
        self.metrics.acked.inc(acked)
        if batch.messages:
            # From arrival at the ingester, never from the device's time: back-dated data
            # (a replay) or a late device clock is no lag. The first message waited longest.
            self.lag_s = max(0.0, time.time() - batch.messages[0].received_ms / 1000)
            self.metrics.lag.set(self.lag_s)
        for dead in batch.rejections:
            self.metrics.rejected.labels(dead.reason.value).inc()

    def _store_dead_letters(self, rejections: list[Rejection]) -> None:
        # Any failure is retried: a database outage must not lose or ack anything.
        try:
            self._dead_letter_retry(self.dead_letters.store, rejections)
        except RetryStoppedError as exc:
            raise SinkStoppedError("stopped while the dead-letter store failed") from exc.__cause__
