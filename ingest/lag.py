"""Health signals of the ingester, kept apart: a device's own sequence gaps are not overload.

**Device-side**: readings missing from a device's `seq` numbering were lost somewhere before
the ingester — a device's dropout or radio loss, or (under overload) the broker dropping. A
device whose counter leaps or restarts lost nothing.
- `SeqGapCounter` keeps, per device, the highest `seq` seen and the device time of that
  reading. A forward step of more than 1 counts the numbers skipped
  (`pantau_ingest_seq_gaps_total`) — but only when the device's clock moved on far enough to
  have taken them: a series holds at most one point per millisecond (InfluxDB identifies a
  point by series and millisecond), so k missing readings need more than k ms of device time.
  A leap the clock cannot explain (a counter that jumped by a million within a minute, or a
  second stream of the same device id replaying back-dated data), or a `seq` far below the
  highest (a restarted device), is a *sequence jump*: the new value becomes the baseline and
  nothing counts as missing (`pantau_ingest_seq_jumps_total`). A `seq` at or just below the
  highest — a redelivery, a duplicate, a late reading — counts nothing.
  It runs in the hot path on each decoded message in arrival order: two dict look-ups and a
  comparison per row, a few array operations per columnar block without a gap. A device's
  first reading in this process is its baseline; readings lost after a device's last one
  show when its next reading comes. Members of a shared subscription each see part of every
  device's stream, so there it is off.
- `GapReport` logs them (INFO, at most once per interval) as the devices' matter, with the
  devices that lost most.

**Overload** (the ingester's matter): the broker dropping what it cannot queue, the backlog
growing, or messages waiting long inside the ingester.
- The lag is measured from *arrival* at the ingester, never from the device's timestamp: the
  pipeline sets `pantau_ingest_lag_seconds` after each commit to the commit time minus the
  arrival time of the batch's oldest message. A replay of back-dated data (an accelerated
  scenario) or a device clock that runs late is no lag.
- The backlog is what waits: the broker's stored messages (`$SYS`, `ingest/broker_stats.py`)
  plus the messages the ingester received and has not committed. Its time in the broker's
  queue is not known per message (MQTT carries no broker time), so it shows as a count.
- `OverloadWatch` logs `overload (...)` as a WARNING when the broker's dropped counter rose,
  the backlog is at least `backlog_warn_messages` and rose since the last check, or the lag
  reached `lag_warn_s` — at most once per interval.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from prometheus_client import Counter

from ingest.model import Reading, Record

log = logging.getLogger(__name__)

# A series holds at most one point per millisecond, so k readings take k ms of device time.
MIN_READING_SPACING_MS = 1


class SeqGapCounter:
    """Per-device highest `seq` (and its device time); counts the numbers a device skipped.

    `observe` (one reading) is the reference; `observe_block` (a block's seqs and times) gives
    the same counts as observing its rows one by one. Not thread-safe: one thread (the
    pipeline's preparing thread) feeds it, in arrival order.
    """

    def __init__(
        self,
        counter: Counter | None = None,
        jumps_counter: Counter | None = None,
        *,
        restart_below: int = 1000,
        max_gap: int = 10_000_000,
        max_devices: int = 1_000_000,
    ) -> None:
        self.counter = counter
        self.jumps_counter = jumps_counter
        # A seq more than `restart_below` under a device's highest is a restarted device (its
        # new baseline), not a late reading; a forward step beyond `max_gap`, or one the
        # device's clock cannot explain, is a leaping counter: also a new baseline.
        self.restart_below = restart_below
        self.max_gap = max_gap
        self.max_devices = max_devices  # the tables are dropped past this (ids are unbounded)
        self._highest: dict[str, int] = {}
        self._time: dict[str, int] = {}  # device time (ms) of the reading with the highest seq
        self.missing = 0  # sequence numbers skipped, in total
        self.jumps = 0  # restarts and leaps: new baselines
        self.recent: dict[str, int] = {}  # device → missing since `take_recent`
        self._published = 0
        self._jumps_published = 0

    def observe(self, device_id: str, seq: int, ts_ms: int) -> None:
        highest = self._highest.get(device_id)
        if highest is not None and seq == highest + 1:  # the common case, first
            self._highest[device_id] = seq
            self._time[device_id] = ts_ms
            return
        if highest is None:
            if len(self._highest) >= self.max_devices:
                self._highest.clear()
                self._time.clear()
                self.recent.clear()
        elif seq > highest:
            skipped = seq - highest - 1
            if skipped <= self.max_gap and ts_ms - self._time[device_id] > (
                skipped * MIN_READING_SPACING_MS
            ):
                self.missing += skipped
                self.recent[device_id] = self.recent.get(device_id, 0) + skipped
            else:
                self.jumps += 1
        elif highest - seq > self.restart_below:
            self.jumps += 1
        else:
            return  # a redelivery, a duplicate or a late reading
        self._highest[device_id] = seq
        self._time[device_id] = ts_ms

    def observe_records(
        self, device_id: str, records: Sequence[Record | Reading], arrival_ms: int
    ) -> None:
        """Rows of one message; a reading without a device time counts at its arrival."""
        for record in records:
            if record.seq is not None:
                ts = record.ts_ms
                self.observe(device_id, record.seq, arrival_ms if ts is None else ts)

    def observe_block(self, device_id: str, seqs: np.ndarray, ts_ms: np.ndarray) -> None:
        """The seqs (int64) and device times of one block, in the block's order: a few array
        operations when the block continues the device's numbering without a gap or a jump
        (the usual pack), row by row otherwise."""
        n = seqs.shape[0]
        if n == 0:
            return
        highest = self._highest.get(device_id)
        if highest is None:
            self.observe(device_id, int(seqs[0]), int(ts_ms[0]))  # the baseline
            if n == 1:
                return
            highest = int(seqs[0])
            seqs, ts_ms = seqs[1:], ts_ms[1:]
            n -= 1
        # The highest seen before each row: the device's highest, then the running maximum.
        before = np.empty(n, dtype=np.int64)
        before[0] = highest
        if n > 1:
            np.maximum(np.maximum.accumulate(seqs[:-1]), highest, out=before[1:])
        skipped = (seqs - 1) - before  # written so that no step overflows int64
        if skipped.max() > 0 or (before - seqs).max() > self.restart_below:
            for seq, ts in zip(seqs.tolist(), ts_ms.tolist(), strict=True):
                self.observe(device_id, seq, ts)
            return
        top = int(seqs.max())
        if top > highest:
            self._highest[device_id] = top
            self._time[device_id] = int(ts_ms[int(np.argmax(seqs == top))])

    def publish(self) -> None:
        """Add what was counted since the last call to the Prometheus counters (once a batch:
        a counter increment takes a lock, too much per reading)."""
        delta = self.missing - self._published
        if delta and self.counter is not None:
            self.counter.inc(delta)
        self._published = self.missing
        jumps = self.jumps - self._jumps_published
        if jumps and self.jumps_counter is not None:
            self.jumps_counter.inc(jumps)
        self._jumps_published = self.jumps

    def take_recent(self) -> dict[str, int]:
        """Missing readings per device since the last call (for `GapReport`)."""
        recent, self.recent = self.recent, {}
        return recent

    @property
    def devices(self) -> int:
        return len(self._highest)


class GapReport:
    """Logs the devices' sequence gaps and jumps (INFO): a device matter, not overload.

    `check` is called periodically with the running totals and the per-device counts since
    the last call; it logs when gaps or jumps rose, at most once per `interval_s`, with what
    accumulated since the previous line and the devices that lost most.
    """

    def __init__(self, *, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.reports = 0
        self._last = -math.inf
        self._gaps = self._jumps = 0
        self._devices: dict[str, int] = {}

    def check(self, *, gaps: int, jumps: int, devices: dict[str, int]) -> str | None:
        for device, count in devices.items():
            self._devices[device] = self._devices.get(device, 0) + count
        if len(self._devices) > 100_000:  # hostile ids must not grow it between reports
            self._devices = dict(sorted(self._devices.items(), key=lambda x: -x[1])[:1000])
        now = self.clock()
        if (gaps == self._gaps and jumps == self._jumps) or now - self._last < self.interval_s:
            return None
        worst = sorted(self._devices.items(), key=lambda item: (-item[1], item[0]))[:5]
        shown = ", ".join(f"{device} {count}" for device, count in worst)
        message = (
            f"sequence gaps: {gaps - self._gaps} readings missing by the devices' sequence "
            f"numbers in {len(self._devices)} devices{f' ({shown})' if shown else ''}, and "
            f"{jumps - self._jumps} sequence jumps (a device restarted or leapt its counter) "
            "since the last report; lost before the ingester, by a device or by a broker "
            "dropping (which pantau_broker_messages_dropped_total counts)"
        )
        self._gaps, self._jumps, self._devices = gaps, jumps, {}
        self._last = now
        self.reports += 1
        log.info("%s", message)
        return message


class OverloadWatch:
    """Decides when the ingester is overloaded, and says so (WARNING).

    `check` is called periodically. It warns when the broker's dropped counter rose since the
    previous check, the backlog is at least `backlog_warn_messages` and rose since the
    previous check, or the lag (from arrival) is at least `lag_warn_s` — at most once per
    `interval_s`; the warning reports what accumulated since the previous warning.
    """

    def __init__(
        self,
        *,
        lag_warn_s: float,
        interval_s: float,
        backlog_warn_messages: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lag_warn_s = lag_warn_s
        self.backlog_warn_messages = backlog_warn_messages
        self.interval_s = interval_s
        self.clock = clock
        self.warnings = 0
        self._last_warning = -math.inf
        self._backlog_checked: float | None = None
        self._dropped_checked: float | None = None
        self._dropped_warned: float | None = None

    def check(
        self, *, dropped: float | None, backlog: float | None, lag_s: float | None
    ) -> str | None:
        """The warning logged now, or None. `dropped` is the broker's dropped-messages
        counter (None until known; its first value is a baseline, since it counts from the
        broker's start); `backlog` the messages waiting in the broker and the ingester."""
        reasons = []
        if dropped is not None:
            if self._dropped_checked is None or dropped < self._dropped_checked:
                # The first value, or the broker restarted and its counter began again.
                self._dropped_checked = self._dropped_warned = dropped
            elif dropped > self._dropped_checked:
                reasons.append("broker drops")
            self._dropped_checked = dropped
        if backlog is not None:
            if (
                backlog >= self.backlog_warn_messages
                and self._backlog_checked is not None
                and backlog > self._backlog_checked
            ):
                reasons.append("backlog growing")
            self._backlog_checked = backlog
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
            f"overload ({', '.join(reasons)}): {dropped_since:.0f} messages dropped by the "
            f"broker since the last warning; backlog "
            f"{'unknown' if backlog is None else f'{backlog:.0f} messages'}; lag since arrival "
            f"{'unknown' if lag_s is None else f'{lag_s:.1f}s'}"
        )
        self._last_warning = now
        self.warnings += 1
        log.warning("%s", message)
        return message
