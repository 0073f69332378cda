"""The ground-truth log: every injected fault and every real-world event of a run, JSON lines.

One line per fault or event window: `device`, `field` (null when the whole device or message
is affected), `start` and `end` (RFC 3339 UTC: the true times of the first and last affected
reading), `kind`, `category` (`fault`: the sensor or its link misbehaved — an alert would be
a false alarm; `event`: the world did something — floods, rain, haze, accidents — and
detection should see it) and `detail`. A line is written when its window closes (or when the
run stops), so the log only ever describes what really happened. Tests and detectors compare
their findings against it to measure recall and precision.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from simulators.clock import rfc3339
from simulators.geography import FloodThresholds

WARNING_LEVELS = ("waspada", "siaga", "awas")
HYSTERESIS_CM = 5.0  # a level counts as left only this far below it: no flapping on ripples


@dataclass
class TruthEntry:
    device: str
    field: str | None
    start_s: float
    end_s: float
    kind: str
    category: str
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "field": self.field,
            "start": rfc3339(self.start_s),
            "end": rfc3339(self.end_s),
            "kind": self.kind,
            "category": self.category,
            "detail": self.detail,
        }


class GroundTruthLog:
    """Collects entries in memory and appends them to `path` (if any) as JSON lines."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.entries: list[TruthEntry] = []
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")

    def record(self, entry: TruthEntry) -> None:
        with self._lock:
            self.entries.append(entry)
            if self._file is not None:
                self._file.write(orjson.dumps(entry.as_json()) + b"\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class FloodWatch:
    """Logs when each gauge's level stays at or above Waspada, Siaga and Awas.

    It watches the level the gauge measures (noise included, sensor faults not), and a window
    closes only once the level is `HYSTERESIS_CM` below the threshold again.
    """

    def __init__(
        self, device_ids: list[str], thresholds: list[FloodThresholds], log: GroundTruthLog
    ) -> None:
        self.device_ids = device_ids
        self.limits = np.array(
            [[t.waspada_cm, t.siaga_cm, t.awas_cm] for t in thresholds], dtype=np.float64
        ).reshape(-1, 3)
        self.log = log
        self.since = np.full(self.limits.shape, np.nan)  # first ts at or above each level
        self.last = np.full(self.limits.shape, np.nan)
        self.peak = np.zeros(len(device_ids))

    def observe(self, ts_s: np.ndarray, level_cm: np.ndarray) -> None:
        above = level_cm[:, None] >= self.limits
        ts = np.broadcast_to(ts_s[:, None], above.shape)
        opening = above & np.isnan(self.since)
        self.since[opening] = ts[opening]
        below = level_cm[:, None] < self.limits - HYSTERESIS_CM
        closing = below & ~np.isnan(self.since)
        for row, col in zip(*np.nonzero(closing), strict=True):
            self._emit(row, col)
        self.last[above] = ts[above]
        self.peak = np.where(np.isnan(self.since[:, 0]), 0.0, np.fmax(self.peak, level_cm))

    def _emit(self, row: int, col: int) -> None:
        self.log.record(
            TruthEntry(
                device=self.device_ids[row],
                field="level_cm",
                start_s=float(self.since[row, col]),
                end_s=float(self.last[row, col]),
                kind=f"flood_{WARNING_LEVELS[col]}",
                category="event",
                detail={
                    "threshold_cm": float(self.limits[row, col]),
                    "peak_cm": float(self.peak[row]),
                },
            )
        )
        self.since[row, col] = np.nan

    def close(self) -> None:
        for row, col in zip(*np.nonzero(~np.isnan(self.since)), strict=True):
            self._emit(row, col)
