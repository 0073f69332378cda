"""A river water-level gauge: base flow with slow variation and sensor noise.

The first simulator (foundation); richer physics, scenarios and faults build on it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class WaterLevelGauge:
    device_id: str
    base_level_cm: float = 120.0
    seed: int = 0
    seq: int = 0
    battery_v: float = 12.8
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}:{self.device_id}")

    def read(self, ts_s: float) -> dict[str, float | int]:
        """One reading at device time `ts_s` (epoch seconds): the JSON object it publishes."""
        self.seq += 1
        # Slow swell (tide-like backwater near the coast, ~12.4 h) plus gauge noise.
        swell = 6.0 * math.sin(2 * math.pi * ts_s / 44_640.0)
        level = self.base_level_cm + swell + self._rng.gauss(0.0, 0.6)
        self.battery_v = max(11.0, self.battery_v - self._rng.random() * 1e-4)
        return {
            "ts": int(ts_s * 1000),
            "seq": self.seq,
            "level_cm": round(level, 1),
            "battery_v": round(self.battery_v, 3),
            "rssi_dbm": round(-70 + self._rng.gauss(0.0, 3.0), 1),
        }
