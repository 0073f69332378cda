"""The alert stage of the pipeline: readings → rule evaluation → episodes in SQL → notifiers.

It runs after detection (so anomaly reasons are known) in the preparing thread, on the
messages of a batch as they arrive (the pipeline runs its stages every `stage_interval_s`,
not when the write batch closes). A step up to a warning or critical level is committed to
SQL at once (`AlertStore.apply`, one transaction, with every signal waiting before it), so
its notification does not wait for the write batch; at most one such transaction per
`urgent_commit_gap_s` (50 ms), so an alert storm cannot become a transaction per hand-over.
The rest (resolutions, de-escalations, info-level anomalies) wait for `batch_closed`: one
transaction per batch. Either way every transition of a batch is committed before the batch
is written and acknowledged: a crash after the ack can never lose a transition, and a
redelivery after a crash before it repeats verdicts the store absorbs (idempotent).

It never raises into the pipeline: an evaluation bug is logged (traceback at most once a
minute) and counted, the batch goes on; signals the database refused wait (bounded) and go
with the next batch. A timer thread checks for silent devices (no-data) every
`tick_interval_s`. After each commit the events go to the notifiers (MQTT retained state,
InfluxDB points, the API's SSE reads the table); a notifier's failure is logged, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from alerts.evaluate import AlertEvaluator, DeviceContext, Rows
from alerts.model import AlertEvent, DeviceInfo, Severity, Signal
from alerts.rules import Rule
from alerts.store import AlertStore
from devices.directory import DirectoryEntry
from ingest.model import ReadingSet
from ingest.registry_gate import Directory

log = logging.getLogger(__name__)

Notifier = Callable[[Sequence[AlertEvent]], None]
MAX_WAITING_SIGNALS = 100_000


def directory_lookup(directory: Directory) -> Callable[[str], DeviceContext | None]:
    """DeviceContext per device from the ingester's registry snapshot (cached per entry)."""
    cache: dict[str, tuple[DirectoryEntry, DeviceContext]] = {}

    def lookup(device_id: str) -> DeviceContext | None:
        entry = directory.get(device_id)
        if entry is None:
            return None
        hit = cache.get(device_id)
        if hit is not None and hit[0] is entry:
            return hit[1]
        context = DeviceContext(
            info=DeviceInfo(
                device_id=entry.id,
                kind=entry.kind,
                site=entry.site,
                district=entry.district,
                latitude=entry.latitude,
                longitude=entry.longitude,
                name=entry.name,
            ),
            status=str(entry.status.value),
            interval_s=float(entry.interval_s),
            thresholds=entry.thresholds,
        )
        cache[device_id] = (entry, context)
        return context

    return lookup


def reading_columns(batch: ReadingSet) -> list[Rows]:
    """The batch as one `Rows` for the evaluator: every block's rows (an entry per block),
    then the single readings (an entry per device), in that order; each device's readings
    keep theirs. One `Rows` rather than a `Columns` per block: a pack of 50 from each of 200
    gauges is then array work over 10,000 rows, not 200 rounds of per-device work."""
    blocks, readings = batch.blocks, batch.readings
    if not blocks and not readings:
        return []
    names: set[str] = set()
    for block in blocks:
        names.update(block.fields)
    for reading in readings:
        names.update(reading.fields)
    devices = [(block.device_id, block.kind) for block in blocks]
    lengths = [len(block) for block in blocks]
    entry_parts = [np.repeat(np.arange(len(blocks), dtype=np.int64), lengths)]
    ts_parts = [block.ts_ms for block in blocks]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    anomaly: dict[int, str] = {}
    offset = 0
    for block, n in zip(blocks, lengths, strict=True):
        for name, column in parts.items():
            column.append(block.fields.get(name, np.full(n, np.nan)))
        for row, reason in block.anomaly_reason.items():
            anomaly[offset + row] = reason
        offset += n
    if readings:
        nan = np.nan
        single = Rows.of_readings(
            [r.device_id for r in readings],
            [r.kind for r in readings],
            np.array([r.ts_ms for r in readings], np.int64),
            {
                name: np.array([r.fields.get(name, nan) for r in readings], np.float64)
                for name in names
            },
        )
        entry_parts.append(single.entry + len(devices))
        devices += single.devices
        ts_parts.append(single.ts_ms)
        for name, column in parts.items():
            column.append(single.fields[name])
        for i, r in enumerate(readings):
            if r.anomaly_reason is not None:
                anomaly[offset + i] = r.anomaly_reason
    return [
        Rows(
            devices,
            np.concatenate(entry_parts),
            np.concatenate(ts_parts).astype(np.int64, copy=False),
            {name: np.concatenate(c).astype(np.float64, copy=False) for name, c in parts.items()},
            anomaly,
        )
    ]


def _urgent(signal: Signal) -> bool:
    """A step up to a warning or critical level: committed (and so notified) at once."""
    return signal.level_rank > 0 and signal.severity is not Severity.INFO


class AlertStage:
    """A `ReadingStage`: evaluates the alert rules on every batch (see the module docstring)."""

    name = "alerts"

    def __init__(
        self,
        rules: dict[str, Rule],
        directory: Directory,
        store: AlertStore,
        *,
        notifiers: Sequence[Notifier] = (),
        tick_interval_s: float = 1.0,
        urgent_commit_gap_s: float = 0.05,
    ) -> None:
        self.store = store
        self.evaluator = AlertEvaluator(rules, directory_lookup(directory))
        self.notifiers = list(notifiers)
        self.tick_interval_s = tick_interval_s
        # An alert storm (every gauge stepping at once) must not turn into a transaction per
        # hand-over: urgent commits are at least this far apart; the rest go with the next.
        self.urgent_commit_gap_s = urgent_commit_gap_s
        self._urgent_waiting = False
        self._committed_at = -1e9
        self.errors = 0
        self.transitions = 0
        self._waiting: list[Signal] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._last_traceback_at = -1e9

    def start(self, device_ids: Sequence[str] = ()) -> None:
        """Rebuild the state from the open episodes, start the no-data clock and timer."""
        self.evaluator.rebuild(self.store.active())
        self.evaluator.watch(device_ids)
        self._timer = threading.Thread(target=self._tick_loop, name="alert-timer", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=5)

    def process_set(self, batch: ReadingSet) -> None:
        try:
            with self._lock:
                self.evaluator.observe(reading_columns(batch))
                for status in batch.statuses:
                    self.evaluator.observe_status(status.device_id, status.state, status.at_ms)
                fresh = self.evaluator.take()
                self._waiting.extend(fresh)
                if any(_urgent(signal) for signal in fresh):
                    self._urgent_waiting = True
                if self._urgent_waiting and (
                    time.monotonic() - self._committed_at >= self.urgent_commit_gap_s
                ):
                    self._commit()  # people are waiting for this one: now, with what waits
        except Exception as exc:  # alerting must never stop ingestion
            self._failed("evaluating a batch", exc)

    def batch_closed(self) -> None:
        """The pipeline's batch is about to be written and acknowledged: commit what waits."""
        try:
            with self._lock:
                self._commit()
        except Exception as exc:
            self._failed("committing a batch's alerts", exc)

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_interval_s):
            try:
                with self._lock:
                    self.evaluator.tick()
                    self._commit()
            except Exception as exc:
                self._failed("the no-data timer", exc)

    def _commit(self) -> None:
        signals = self._waiting + self.evaluator.take()
        self._waiting = []
        self._urgent_waiting = False
        if not signals:
            return
        self._committed_at = time.monotonic()
        try:
            events = self.store.apply(signals)
        except Exception:
            self._waiting = signals[-MAX_WAITING_SIGNALS:]  # retried with the next batch
            self._urgent_waiting = any(_urgent(signal) for signal in self._waiting)
            raise
        self.transitions += len(events)
        for notify in self.notifiers:
            try:
                notify(events)
            except Exception as exc:
                self._failed(f"notifier {getattr(notify, '__qualname__', notify)}", exc)

    def _failed(self, where: str, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_traceback_at >= 60.0:
            self._last_traceback_at = now
            log.error("alert stage error in %s: %s", where, exc, exc_info=exc)
        else:
            log.warning("alert stage error in %s: %s", where, exc)
