"""Detection stage: scores every reading with the vectorised `AnomalyEngine` as it passes.

One engine series per (device, catalog field) — the kind's own fields, not the health fields
(battery, signal), which would drown the signal in slow drifts. A batch of readings becomes
four arrays (series ids, times, values, physical ranges) and one `update` call. Each reading
gets the highest score of its fields as `anomaly_score` and, when that crosses the threshold,
`anomaly_reason` naming the field and the detector part that fired (`level_cm:rate_of_change`).
Those readings also become `AnomalyEvent`s for alerting.

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
from ingest.model import Reading

log = logging.getLogger(__name__)


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
        self.engine = engine or self._restore_or_new()
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
        ids: list[int] = []
        ts: list[float] = []
        values: list[float] = []
        lows: list[float] = []
        highs: list[float] = []
        owners: list[int] = []
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
                owners.append(index)
                names.append(field)
        if ids:
            result = self.engine.update(
                np.array(ids, dtype=np.int64),
                np.array(ts),
                np.array(values),
                np.array(lows),
                np.array(highs),
            )
            self._apply(readings, owners, names, values, result.score, result.reason)
        if self.snapshot_path is not None:
            now = time.monotonic()
            if now - self._last_snapshot >= self.snapshot_interval_s:
                self.snapshot()
        return readings

    def _apply(
        self,
        readings: list[Reading],
        owners: list[int],
        names: list[str],
        values: list[float],
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
