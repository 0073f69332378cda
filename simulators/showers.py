"""Ground truth for the everyday showers: each shower the rain field draws is logged as an event.

The ground-truth log promises every real-world event of a run, rain included, but until now
only a scenario's named rain events were in it — the afternoon showers `RainField` draws on
about half the zone-days were not, though they really rain on the stations and really raise
the rivers. This watch logs each of them, once its window has closed:

- `shower` on every environment station of the shower's town, field `rainfall_mm`, from the
  cell's start to its end (humidity and temperature move with the same rain);
- `shower` on every traffic counter of the shower's zone, field `avg_speed_kmh`, for the
  cell's duration (rain trims demand and speed there: traffic.py);
- `shower_rise` on every gauge of the river whose catchment it fell on, field `level_cm`,
  from the cell's start plus the shortest travel time to the gauge until its end plus the
  longest travel time and six storage times (the quick flow's Erlang-3 response is 94 %
  through by then) — the window in which that rain passes the gauge.

Only cells the field really drew are logged (the same seeded draw the models use); the
scenario's named rain events stay logged by the fault injector, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.clock import local_day
from simulators.groundtruth import GroundTruthLog, TruthEntry
from simulators.rain import RainField


@dataclass(frozen=True)
class ShowerTarget:
    """Who a rain key's showers are logged on, and how long the response lasts there."""

    device: str
    field: str
    kind: str
    delay_s: float  # from the cell's start to the start of the window
    tail_s: float  # from the cell's end to the end of the window


class ShowerWatch:
    """Logs the showers of `keys` ((rain key, zone) → targets) as their windows close."""

    def __init__(
        self,
        rain: RainField,
        keys: dict[tuple[str, str], list[ShowerTarget]],
        start_s: float,
        log: GroundTruthLog,
    ) -> None:
        self.rain = rain
        self.keys = keys
        self.start_s = start_s
        self.log = log
        self.next_day = local_day(start_s)
        self.pending: list[tuple[float, TruthEntry]] = []  # (end of window, entry)
        self.last_s = start_s

    def _draw_day(self, day: int) -> None:
        for (key, zone), targets in self.keys.items():
            cells = self.rain.day_showers(key, day)
            for start, duration, intensity in zip(
                cells.start_s.tolist(),
                cells.duration_s.tolist(),
                cells.intensity_mm_h.tolist(),
                strict=True,
            ):
                if start + duration < self.start_s:
                    continue  # rained before the run began
                for t in targets:
                    entry = TruthEntry(
                        t.device,
                        t.field,
                        start + t.delay_s,
                        start + duration + t.tail_s,
                        t.kind,
                        "event",
                        {"rain_key": key, "zone": zone, "intensity_mm_h": round(intensity, 2)},
                    )
                    self.pending.append((entry.end_s, entry))

    def observe(self, t_s: float) -> None:
        """Log every shower window that has closed by `t_s`."""
        self.last_s = t_s
        while self.next_day <= local_day(t_s):
            self._draw_day(self.next_day)
            self.next_day += 1
        if not self.pending:
            return
        self.pending.sort(key=lambda p: p[0])
        done = 0
        for end, entry in self.pending:
            if end > t_s:
                break
            if entry.start_s <= t_s:
                self.log.record(entry)
            done += 1
        del self.pending[:done]

    def close(self) -> None:
        """At the end of a run: log the windows already open, cut at the last instant seen."""
        for _, entry in sorted(self.pending, key=lambda p: p[0]):
            if entry.start_s <= self.last_s:
                entry.end_s = min(entry.end_s, self.last_s)
                self.log.record(entry)
        self.pending = []


def response_window_s(
    lag_h: np.ndarray, storage_h: np.ndarray, area: np.ndarray
) -> tuple[float, float]:
    """(delay, tail) of a gauge's window over its contributing sub-catchments (area > 0)."""
    on = area > 0
    if not np.any(on):
        return 0.0, 0.0
    delay = float(np.min(lag_h[on])) * 3600.0
    tail = float(np.max(lag_h[on] + 6.0 * storage_h[on])) * 3600.0
    return delay, tail
