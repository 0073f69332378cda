"""Simulated time: local (Asia/Makassar) hour and weekday of UTC instants, and the run clock.

Asia/Makassar (WITA) is UTC+8 all year, without daylight saving, so local time is a fixed
shift and numpy can compute it for thousands of devices at once; the shift is checked
against the time zone database at import.

`SimClock` maps wall time to simulated time: it starts at `start_s` (UTC epoch seconds) and
advances `speed` times faster than the wall clock, but never past the real present — once an
accelerated replay of the past catches up with now it continues in real time, so no reading
is ever stamped in the future (the ingester rejects timestamps over 5 minutes ahead).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

LOCAL_TZ = ZoneInfo("Asia/Makassar")
LOCAL_OFFSET_S = 8 * 3600
assert datetime(2026, 1, 1, tzinfo=LOCAL_TZ).utcoffset() == timedelta(seconds=LOCAL_OFFSET_S)
assert datetime(2026, 7, 1, tzinfo=LOCAL_TZ).utcoffset() == timedelta(seconds=LOCAL_OFFSET_S)
DAY_S = 86400.0


def local_hour(t_s: float | np.ndarray) -> np.ndarray:
    """Hour of the local day, 0 ≤ h < 24, as a float (10.5 is 10:30 WITA)."""
    return np.asarray(((np.asarray(t_s, dtype=np.float64) + LOCAL_OFFSET_S) % DAY_S) / 3600.0)


def local_day(t_s: float) -> int:
    """Index of the local day of `t_s` (days since 1970-01-01 WITA)."""
    return int((t_s + LOCAL_OFFSET_S) // DAY_S)


def local_day_start_s(day: int) -> float:
    """UTC epoch seconds of local midnight starting day `day`."""
    return day * DAY_S - LOCAL_OFFSET_S


def local_weekday(t_s: float) -> int:
    """0 = Monday … 6 = Sunday, in local time (1970-01-01 was a Thursday)."""
    return (local_day(t_s) + 3) % 7


def rfc3339(t_s: float) -> str:
    """UTC RFC 3339 with milliseconds: `2026-11-28T01:02:03.456Z`."""
    return datetime.fromtimestamp(round(t_s, 3), UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class SimClock:
    """Simulated time for a run: `start_s` at wall time `wall0`, `speed`x faster, capped at now."""

    def __init__(
        self,
        start_s: float,
        speed: float = 1.0,
        wall0: float | None = None,
        *,
        capped: bool = True,
    ) -> None:
        """`capped`: an accelerated clock stops at the present (its readings carry simulated
        time, which must not be in the future). Uncapped for readings stamped with the
        present (`Simulation(present=True)`), whose simulated time may run ahead."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start_s = start_s
        self.speed = speed
        self.wall0 = time.time() if wall0 is None else wall0
        self.capped = capped

    def now_s(self, wall_s: float | None = None) -> float:
        wall = time.time() if wall_s is None else wall_s
        sim = self.start_s + (wall - self.wall0) * self.speed
        if self.capped and self.speed > 1.0 and sim > wall:
            # Caught up with the present: live from here on.
            return max(wall, self.start_s)
        return sim

    def wall_at(self, sim_s: float) -> float:
        """Wall time at which the simulated clock shows `sim_s` (earliest)."""
        accelerated = self.wall0 + (sim_s - self.start_s) / self.speed
        if self.capped and self.speed > 1.0 and sim_s > accelerated:
            return max(accelerated, sim_s)
        return accelerated
