"""Rain over the regency: afternoon convective showers plus the scenario's rain events.

Rain is a set of cells — blocks of constant intensity over a start and a duration, covering a
share of a catchment. Each rain key (a river's catchment, a town) gets its own showers, drawn
per local day from a generator seeded by (seed, key, day), so any instant can be asked about
in any order and the answer is always the same. Scenario events fall on every key of their
zone, so the flood on the Malili river and the rain gauge in Malili town tell the same story.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from simulators.clock import DAY_S, local_day, local_day_start_s
from simulators.scenario import RainEvent


@dataclass(frozen=True)
class Cells:
    """Rain cells as arrays: start (epoch s), duration (s), intensity (mm/h), coverage (0-1)."""

    start_s: np.ndarray
    duration_s: np.ndarray
    intensity_mm_h: np.ndarray
    coverage: np.ndarray

    def __len__(self) -> int:
        return int(self.start_s.size)


def _empty() -> Cells:
    z = np.zeros(0)
    return Cells(z, z, z, z)


class RainField:
    """Rain cells by key; `zone_of(key)` says which scenario zone a key belongs to."""

    def __init__(
        self,
        seed: int,
        start_s: float,
        events: tuple[RainEvent, ...] = (),
        shower_probability: float = 0.45,
    ) -> None:
        self.seed = seed
        self.shower_probability = shower_probability
        self.events = [
            (e.zone, start_s + e.start_s, e.duration_s, e.intensity_mm_h, e.coverage)
            for e in events
        ]
        self._showers: dict[tuple[str, int], Cells] = {}

    def day_showers(self, key: str, day: int) -> Cells:
        """The showers of `key` on local day `day` (not the scenario's events): seeded, cached."""
        cached = self._showers.get((key, day))
        if cached is not None:
            return cached
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode()), day])
        p = self.shower_probability
        midnight = local_day_start_s(day)
        starts, durations, intensities, coverages = [], [], [], []
        # Afternoon convection: 0-2 cells, mostly 14-18 WITA, short and intense.
        for _ in range(int(rng.binomial(2, p))):
            starts.append(midnight + 3600.0 * float(np.clip(rng.normal(15.5, 1.4), 12.5, 19.5)))
            durations.append(3600.0 * float(rng.uniform(0.3, 1.5)))
            intensities.append(float(min(70.0, rng.lognormal(np.log(11.0), 0.55))))
            coverages.append(float(rng.uniform(0.15, 0.45)))
        # Now and then steady night rain, light and wide.
        if rng.random() < p * 0.25:
            starts.append(midnight + 3600.0 * float(rng.uniform(0.0, 4.0)))
            durations.append(3600.0 * float(rng.uniform(1.5, 4.0)))
            intensities.append(float(rng.uniform(1.5, 5.0)))
            coverages.append(float(rng.uniform(0.5, 0.9)))
        cells = Cells(
            np.array(starts), np.array(durations), np.array(intensities), np.array(coverages)
        )
        self._showers[(key, day)] = cells
        if len(self._showers) > 4096:  # bounded memory for endless runs
            self._showers.pop(next(iter(self._showers)))
        return cells

    def cells(self, key: str, zone: str, t0_s: float, t1_s: float) -> Cells:
        """Every cell of `key` (and of its `zone`'s events) that rains during [t0, t1]."""
        parts = [self.day_showers(key, d) for d in range(local_day(t0_s), local_day(t1_s) + 1)]
        ev = [e for e in self.events if e[0] == zone]
        if ev:
            arr = np.array([e[1:] for e in ev], dtype=np.float64)
            parts.append(Cells(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]))
        if not parts:
            return _empty()
        start = np.concatenate([c.start_s for c in parts])
        duration = np.concatenate([c.duration_s for c in parts])
        keep = (start <= t1_s) & (start + duration >= t0_s)
        return Cells(
            start[keep],
            duration[keep],
            np.concatenate([c.intensity_mm_h for c in parts])[keep],
            np.concatenate([c.coverage for c in parts])[keep],
        )

    def amount_mm(self, key: str, zone: str, t0_s: float, t1_s: float) -> float:
        """Rain at a point of `key` during [t0, t1], mm (cells with full coverage at stations)."""
        cells = self.cells(key, zone, t0_s, t1_s)
        if not len(cells):
            return 0.0
        overlap = np.minimum(cells.start_s + cells.duration_s, t1_s) - np.maximum(
            cells.start_s, t0_s
        )
        return float(np.sum(np.clip(overlap, 0.0, None) * cells.intensity_mm_h) / 3600.0)

    def intensity_mm_h(self, key: str, zone: str, t_s: float) -> float:
        cells = self.cells(key, zone, t_s, t_s)
        return float(np.sum(cells.intensity_mm_h)) if len(cells) else 0.0


LOOKBACK_S = 3 * DAY_S  # how far back rain still feeds a river (slow flow component)
