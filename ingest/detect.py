"""Detection stage: scores every reading with the vectorised `AnomalyEngine` as it passes.

One engine series per (device, catalog field) — the kind's own fields, not the health fields
(battery, signal), which would drown the signal in slow drifts. A batch of readings — rows and
columnar blocks, put back in message order — becomes four arrays (series ids, times, values,
physical ranges) and one `update` call. Each reading gets the highest score of its fields as
`anomaly_score` (rounded to 4 decimals) and, when that crosses the threshold,
`anomaly_reason` naming the field and the detector part that fired (`level_cm:rate_of_change`).
Those readings also become `AnomalyEvent`s for alerting — except a `level` shift or a
`new_range` scoring under 0.8 (`FIRST_DAY_SCORE`) on a series watched for less than a day
(`LEVEL_AFTER_S`, `FIRST_DAY_QUIET`): until every hour of the day has been seen once, a level
away from the hours before, or a value outside the night's range, is mostly the daily shape
not yet learned (the first morning rush, the first afternoon), not a shift; the reading keeps
its score but gets no reason, so the alert stage (which reads `anomaly_reason`) is not told
either.  Spikes, flatlines, trends (a flood on a new gauge) and the rest raise events from
the first warm reading.

State survives restarts: the engine is snapshotted every `snapshot_interval_s` and when the
ingester stops, and restored at start. A redelivered reading (same or older device time than
the series has seen) is scored but does not update state, so at-least-once delivery does not
teach the detector twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.catalog import SensorCatalog
from ingest.anomaly.engine import REASONS, AnomalyEngine
from ingest.model import Reading, ReadingBlock, ReadingSet

log = logging.getLogger(__name__)
SCORE_DECIMALS = 4  # anomaly_score is stored rounded to this many decimals
LEVEL_AFTER_S = 86400.0  # a level shift is an event only once a series has seen a whole day
# reasons that need a whole day of history to mean anything: before a series has seen its
# daily cycle, its morning rush is a "level shift" and a "range never seen before"
FIRST_DAY_QUIET = frozenset({"level", "new_range"})
# ... unless the score is this high: a first-day shift of 0.8 is beyond the morning rush
# (a new range scores a fixed 0.75: never before its first day is over)
FIRST_DAY_SCORE = 0.8


@dataclass(frozen=True)
class AnomalyEvent:
    """A reading whose score crossed the threshold: what alerting receives."""

    device_id: str
    kind: str
    field: str
    ts_ms: int
    value: float
    score: float
    reason: str


class DetectionStage:
    name = "detect"

    def __init__(
        self,
        catalog: SensorCatalog,
        *,
        threshold: float,
        engine: AnomalyEngine | None = None,
        snapshot_path: Path | None = None,
        snapshot_interval_s: float = 60.0,
        max_events: int = 10_000,
    ) -> None:
        self.catalog = catalog
        self.threshold = threshold
        self.snapshot_path = snapshot_path
        self.snapshot_interval_s = snapshot_interval_s
        # `is None`, not `or`: an engine with no series yet is falsy (len 0) but is still
        # the engine the caller chose
        self.engine = engine if engine is not None else self._restore_or_new()
        # (device_id, field) → (series id, low, high); kind fields only
        self._series: dict[tuple[str, str], tuple[int, float, float]] = {}
        self._scored = {
            kind: {name: (spec.min, spec.max) for name, spec in k.fields.items()}
            for kind, k in catalog.kinds.items()
        }
        self.events: deque[AnomalyEvent] = deque(maxlen=max_events)
        self.events_total = 0
        self._last_snapshot = time.monotonic()

    def _restore_or_new(self) -> AnomalyEngine:
        if self.snapshot_path is not None and self.snapshot_path.exists():
            try:
                engine = AnomalyEngine.restore(self.snapshot_path)
                log.info(
                    "detector state restored: %d series from %s", len(engine), self.snapshot_path
                )
                return engine
            except Exception as exc:  # a damaged snapshot must not stop ingestion
                log.error(
                    "cannot restore detector state from %s (%s); starting fresh",
                    self.snapshot_path,
                    exc,
                )
        return AnomalyEngine()

    def _lookup(self, device_id: str, field: str, kind: str) -> tuple[int, float, float] | None:
        key = (device_id, field)
        hit = self._series.get(key)
        if hit is None:
            limits = self._scored.get(kind, {}).get(field)
            if limits is None:
                return None
            hit = (self.engine.series_id(f"{device_id}/{field}"), limits[0], limits[1])
            self._series[key] = hit
        return hit

    def process(self, readings: list[Reading]) -> list[Reading]:
        self.process_set(ReadingSet(readings, list(range(len(readings)))))
        return readings

    def process_set(self, batch: ReadingSet) -> None:
        """Score every row and block of a batch in one engine update, in message order."""
        readings = batch.readings
        ids: list[int] = []
        ts: list[float] = []
        values: list[float] = []
        lows: list[float] = []
        highs: list[float] = []
        entry_owners: list[int] = []  # the reading of each engine row
        names: list[str] = []
        lookup = self._lookup
        for index, reading in enumerate(readings):
            seconds = reading.ts_ms / 1000.0
            for field, value in reading.fields.items():
                hit = lookup(reading.device_id, field, reading.kind)
                if hit is None:
                    continue
                ids.append(hit[0])
                lows.append(hit[1])
                highs.append(hit[2])
                ts.append(seconds)
                # Detect on what the sensor measured: calibration is a registry fact that may
                # change, and the raw stream is what a fault shows up in.
                values.append(reading.raw.get(field, value))
                entry_owners.append(index)
                names.append(field)
        # Blocks: one segment per (block, scored field); the engine rows are built with a
        # few whole-batch array operations rather than a handful per block.
        seg_ids: list[int] = []
        seg_lows: list[float] = []
        seg_highs: list[float] = []
        seg_lengths: list[int] = []
        ts_parts: list[np.ndarray] = [np.array(ts)]
        value_parts: list[np.ndarray] = [np.array(values)]
        owner_parts: list[int] = []
        scored_blocks: list[tuple[ReadingBlock, list[str], int]] = []  # block, fields, offset
        offset = len(ids)
        series = self._series
        for block in batch.blocks:
            fields = [f for f in block.fields if lookup(block.device_id, f, block.kind)]
            if not fields:
                continue
            n = len(block)
            seconds_col = block.ts_ms / 1000.0
            for field in fields:
                sid, low, high = series[(block.device_id, field)]
                seg_ids.append(sid)
                seg_lows.append(low)
                seg_highs.append(high)
                seg_lengths.append(n)
                owner_parts.append(block.owner)
                ts_parts.append(seconds_col)
                raw = block.raw.get(field)
                column = block.fields[field]
                value_parts.append(column if raw is None else np.where(raw == raw, raw, column))
            scored_blocks.append((block, fields, offset))
            offset += n * len(fields)
        if not offset:
            self._maybe_snapshot()
            return
        lengths = np.array(seg_lengths, dtype=np.int64)
        all_ids = np.concatenate(
            (np.array(ids, dtype=np.int64), np.repeat(np.array(seg_ids, dtype=np.int64), lengths))
        )
        all_lows = np.concatenate((np.array(lows), np.repeat(np.array(seg_lows), lengths)))
        all_highs = np.concatenate((np.array(highs), np.repeat(np.array(seg_highs), lengths)))
        all_ts = np.concatenate(ts_parts)
        all_values = np.concatenate(value_parts)
        order = None
        if ids and scored_blocks:
            # Rows and blocks were gathered apart: put them back in message order, so every
            # series sees its readings in the order they arrived.
            owner_of_row = np.concatenate(
                (
                    np.array([batch.owners[i] for i in entry_owners], dtype=np.int64),
                    np.repeat(np.array(owner_parts, dtype=np.int64), lengths),
                )
            )
            if (owner_of_row[1:] < owner_of_row[:-1]).any():
                order = np.argsort(owner_of_row, kind="stable")
                all_ids, all_ts, all_values = all_ids[order], all_ts[order], all_values[order]
                all_lows, all_highs = all_lows[order], all_highs[order]
        result = self.engine.update(all_ids, all_ts, all_values, all_lows, all_highs)
        # Four decimals are all a score in [0, 1] needs: shorter points, cheaper formatting.
        score = np.round(result.score, SCORE_DECIMALS)
        reason = result.reason
        if order is not None:
            score = np.empty_like(score)
            score[order] = np.round(result.score, SCORE_DECIMALS)
            reason = np.empty_like(result.reason)
            reason[order] = result.reason
        if ids:
            self._apply(readings, entry_owners, names, values, ids, score, reason)
        if scored_blocks:
            over = score[len(ids) :] >= self.threshold
            alerting = set()
            if over.any():
                # the blocks holding a row over the threshold (by each segment's start)
                starts = np.array([start for _, _, start in scored_blocks]) - len(ids)
                hits = np.searchsorted(starts, np.flatnonzero(over), side="right") - 1
                alerting = set(np.unique(hits).tolist())
            for index, (block, fields, start) in enumerate(scored_blocks):
                n = len(block)
                if len(fields) == 1 and index not in alerting:
                    block.anomaly_score = score[start : start + n]
                else:
                    self._apply_block(block, fields, score, reason, start)
        self._maybe_snapshot()

    def _maybe_snapshot(self) -> None:
        if self.snapshot_path is not None:
            now = time.monotonic()
            if now - self._last_snapshot >= self.snapshot_interval_s:
                self.snapshot()

    def _apply_block(
        self,
        block: ReadingBlock,
        fields: list[str],
        scores: np.ndarray,
        reasons: np.ndarray,
        start: int,
    ) -> None:
        n = len(block)
        k = len(fields)
        field_scores = scores[start : start + n * k].reshape(k, n)
        best_field = np.argmax(field_scores, axis=0)  # the first of equal scores, as in rows
        best = field_scores[best_field, np.arange(n)]
        block.anomaly_score = best
        over = np.flatnonzero(best >= self.threshold)
        if not over.shape[0]:
            return
        rows = over.tolist()
        chosen = best_field[over]
        codes = reasons[start : start + n * k].reshape(k, n)[chosen, over].tolist()
        # what the sensor measured: the raw value where calibration changed it
        measured = np.stack([block.fields[f] for f in fields])[chosen, over]
        if block.raw:
            raws = np.stack([block.raw.get(f, np.full(n, np.nan)) for f in fields])[chosen, over]
            measured = np.where(raws == raws, raws, measured)
        for row, j, code, value, score, ts_ms in zip(
            rows,
            chosen.tolist(),
            codes,
            measured.tolist(),
            best[over].tolist(),
            block.ts_ms[over].tolist(),
            strict=True,
        ):
            field = fields[j]
            reason = REASONS.get(code, "unknown")
            if not self._raises(self._series[(block.device_id, field)][0], reason, score):
                continue
            block.anomaly_reason[row] = f"{field}:{reason}"
            self.events_total += 1
            self.events.append(
                AnomalyEvent(block.device_id, block.kind, field, ts_ms, value, score, reason)
            )

    def _raises(self, series: int, reason: str, score: float) -> bool:
        """Whether a reading over the threshold becomes an event (see the module docstring)."""
        return (
            reason not in FIRST_DAY_QUIET
            or score >= FIRST_DAY_SCORE
            or self.engine.covered_s(series) >= LEVEL_AFTER_S
        )

    def _apply(
        self,
        readings: list[Reading],
        owners: list[int],
        names: list[str],
        values: list[float],
        series: list[int],
        scores: np.ndarray,
        reasons: np.ndarray,
    ) -> None:
        best: dict[int, int] = {}
        score_list = scores.tolist()
        for row, owner in enumerate(owners):
            current = best.get(owner)
            if current is None or score_list[row] > score_list[current]:
                best[owner] = row
        threshold = self.threshold
        for owner, row in best.items():
            reading = readings[owner]
            score = score_list[row]
            reading.anomaly_score = score
            if score >= threshold:
                reason = REASONS.get(int(reasons[row]), "unknown")
                if not self._raises(series[row], reason, score):
                    continue
                reading.anomaly_reason = f"{names[row]}:{reason}"
                self.events.append(
                    AnomalyEvent(
                        device_id=reading.device_id,
                        kind=reading.kind,
                        field=names[row],
                        ts_ms=reading.ts_ms,
                        value=values[row],
                        score=score,
                        reason=reason,
                    )
                )
                self.events_total += 1

    def snapshot(self) -> None:
        """Write the engine's state (atomically) so a restart resumes what it learned."""
        if self.snapshot_path is None:
            return
        self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        self.engine.snapshot(self.snapshot_path)
        self._last_snapshot = time.monotonic()
