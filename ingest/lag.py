"""Overload signals of the ingester: sequence gaps, ingest lag, and the warning that names them.

When devices publish faster than the ingester drains, the broker's queue for the ingester's
session fills and Mosquitto drops what does not fit (`max_queued_messages`): those readings
are acknowledged to the device and never delivered, so nothing downstream fails and nothing
is dead-lettered. They are only visible as holes in the devices' sequence numbers, as lag,
and in the broker's own counters (`ingest/broker_stats.py`). This module gives the first two:

- `SeqGapCounter` keeps the highest `seq` seen per device and, when a device's `seq` jumps
  forward by more than 1, counts the numbers skipped (`pantau_ingest_seq_gaps_total`). It runs
  in the hot path, on each decoded message in arrival order: a dict lookup and a comparison
  per row, a few array operations per columnar block. A `seq` at or below the highest seen —
  a redelivery, a duplicate, an out-of-order reading — never counts; a `seq` far below it is a
  device that restarted its numbering and becomes the new baseline. What it cannot see: a
  device's first reading in this process is its baseline (readings lost before it, e.g. while
  the ingester was down, show only in the broker's dropped counter), readings lost after a
  device's last one show when its next reading comes, and a late reading that fills a gap
  already counted is not subtracted (one broker session keeps each device's order, so that
  needs the device itself to publish out of order). Counting is per ingester: members of a
  shared subscription each see part of every device's stream, so there it is off.
- `newest_device_ts_ms` finds the newest device timestamp of a batch; the pipeline sets
  `pantau_ingest_lag_seconds` to the write time minus that timestamp after each write.
- `OverloadWatch` turns the counters into a WARNING log line when gaps or broker drops rose
  or the lag is high, at most once per interval, so an overload is loud but not a log flood.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from prometheus_client import Counter

from ingest.model import Reading, ReadingBlock, Record

log = logging.getLogger(__name__)


class SeqGapCounter:
    """Per-device highest `seq` seen; counts the sequence numbers skipped by forward jumps.

    `observe` (one reading) is the reference; `observe_block` (a column of a block's seqs)
    gives the same counts as observing its rows one by one. Not thread-safe: one thread (the
    pipeline's preparing thread) feeds it, in arrival order.
    """

    def __init__(
        self,
        counter: Counter | None = None,
        *,
        restart_below: int = 1000,
        max_gap: int = 10_000_000,
        max_devices: int = 1_000_000,
    ) -> None:
        self.counter = counter
        # A seq more than `restart_below` under a device's highest is a restarted device (its
        # new baseline), not a late reading; a forward jump beyond `max_gap` is a corrupt or
        # reset counter, also a new baseline rather than millions of "missing" readings.
        self.restart_below = restart_below
        self.max_gap = max_gap
        self.max_devices = max_devices  # the table is dropped past this (ids are unbounded)
        self._highest: dict[str, int] = {}
        self.missing = 0  # sequence numbers skipped, in total
        self.restarts = 0
        self._published = 0

    def observe(self, device_id: str, seq: int) -> None:
        highest = self._highest.get(device_id)
        if highest is not None and seq == highest + 1:  # the common case, first
            self._highest[device_id] = seq
            return
        if highest is None:
            if len(self._highest) >= self.max_devices:
                self._highest.clear()
            self._highest[device_id] = seq
        elif seq > highest:
            if seq - highest > self.max_gap:
                self.restarts += 1
            else:
                self.missing += seq - highest - 1
            self._highest[device_id] = seq
        elif highest - seq > self.restart_below:
            self.restarts += 1
            self._highest[device_id] = seq

    def observe_records(self, device_id: str, records: Sequence[Record | Reading]) -> None:
        for record in records:
            if record.seq is not None:
                self.observe(device_id, record.seq)

    def observe_block(self, device_id: str, seqs: np.ndarray) -> None:
        """The seqs of one block (int64, in the block's order), as a few array operations."""
        n = seqs.shape[0]
        if n == 0:
            return
        highest = self._highest.get(device_id)
        if highest is None:
            if len(self._highest) >= self.max_devices:
                self._highest.clear()
            highest = int(seqs[0]) - 1  # the first reading is the baseline: no gap before it
        # The highest seen before each row: the device's highest, then the running maximum.
        before = np.empty(n, dtype=np.int64)
        before[0] = highest
        if n > 1:
            np.maximum(np.maximum.accumulate(seqs[:-1]), highest, out=before[1:])
        skipped = (seqs - 1) - before  # written so that no step overflows int64
        if (before - seqs).max() > self.restart_below or skipped.max() > self.max_gap:
            # A restart inside the block: rare, so the rows take it one by one.
            for seq in seqs.tolist():
                self.observe(device_id, seq)
            return
        self.missing += int(skipped[skipped > 0].sum())
        self._highest[device_id] = max(int(before[-1]), int(seqs[-1]))

    def publish(self) -> None:
        """Add what was counted since the last call to the Prometheus counter (once a batch:
        a counter increment takes a lock, too much per reading)."""
        delta = self.missing - self._published
        if delta and self.counter is not None:
            self.counter.inc(delta)
        self._published = self.missing

    @property
    def devices(self) -> int:
        return len(self._highest)


def newest_device_ts_ms(readings: Sequence[Reading], blocks: Sequence[ReadingBlock]) -> int | None:
    """The newest device timestamp among a batch's readings; readings stamped with their
    arrival time (`ts_from_arrival`) do not count, they would hide the broker's queueing."""
    newest = -1
    for reading in readings:
        if reading.ts_ms > newest and not reading.ts_from_arrival:
            newest = reading.ts_ms
    for block in blocks:
        if len(block):
            newest = max(newest, int(block.ts_ms.max()))
    return newest if newest >= 0 else None


class OverloadWatch:
    """Decides when the overload signals are worth a WARNING, and logs it.

    `check` is called periodically with the running totals. It warns when sequence gaps or
    broker drops rose since the previous check, or the lag is at least `lag_warn_s` — at most
    once per `interval_s`; the warning reports what accumulated since the previous warning.
    """

    def __init__(
        self,
        *,
        lag_warn_s: float,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lag_warn_s = lag_warn_s
        self.interval_s = interval_s
        self.clock = clock
        self.warnings = 0
        self._last_warning = -math.inf
        self._gaps_checked = self._gaps_warned = 0
        self._dropped_checked: float | None = None
        self._dropped_warned: float | None = None

    def check(self, *, gaps: int, dropped: float | None, lag_s: float | None) -> str | None:
        """The warning logged now, or None. `dropped` is the broker's dropped-messages
        counter (None until known); its first value is a baseline, since it counts from the
        broker's start."""
        reasons = []
        if gaps > self._gaps_checked:
            reasons.append("sequence gaps")
        self._gaps_checked = gaps
        if dropped is not None:
            if self._dropped_checked is None or dropped < self._dropped_checked:
                # The first value, or the broker restarted and its counter began again.
                self._dropped_checked = self._dropped_warned = dropped
            elif dropped > self._dropped_checked:
                reasons.append("broker drops")
            self._dropped_checked = dropped
        if lag_s is not None and lag_s >= self.lag_warn_s:
            reasons.append("lag")
        now = self.clock()
        if not reasons or now - self._last_warning < self.interval_s:
            return None
        dropped_since = 0.0
        if dropped is not None and self._dropped_warned is not None:
            dropped_since = dropped - self._dropped_warned
            self._dropped_warned = dropped
        message = (
            f"overload ({', '.join(reasons)}): {gaps - self._gaps_warned} readings missing by "
            f"sequence number and {dropped_since:.0f} messages dropped by the broker since the "
            f"last warning; lag {'unknown' if lag_s is None else f'{lag_s:.1f}s'}"
        )
        self._gaps_warned = gaps
        self._last_warning = now
        self.warnings += 1
        log.warning("%s", message)
        return message
