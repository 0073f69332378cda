"""Battery and radio of every device: solar charging by day, drain by night, signal fading.

Each device runs on a 12 V lead-acid or LiFePO4 pack with a small solar panel. By day the panel
charges it (more at noon, far less under rain clouds) and the charge controller holds the
absorption voltage once full; at night the load drains it. Terminal voltage follows the state
of charge, plus the charging lift. Radio signal (RSSI) sits at a site level, wanders slowly
(vegetation, interference), fades a few dB in heavy rain, and is reported in whole dBm.
"""

from __future__ import annotations

import numpy as np

from simulators.clock import local_hour


def sunlight(hour: np.ndarray) -> np.ndarray:
    """Clear-sky irradiance share, 0 at night and 1 at solar noon (~12:10 WITA, sunrise ~06:00)."""
    return np.asarray(np.clip(np.sin(np.pi * (hour - 6.05) / 12.2), 0.0, None))


class PowerModel:
    """battery_v and rssi_dbm for `n` devices."""

    fields = ("battery_v", "rssi_dbm")

    def __init__(self, n: int, seed: int, start_s: float) -> None:
        self.rng = np.random.default_rng([seed, 404])
        self.capacity_wh = self.rng.uniform(250.0, 500.0, n)
        self.panel_w = self.rng.uniform(20.0, 40.0, n)
        self.load_w = self.rng.uniform(1.2, 2.5, n)
        # Start where a sunny yesterday would have left the pack at this hour.
        hour = float(local_hour(start_s))
        self.soc = np.clip(
            0.78 + 0.15 * np.sin(np.pi * (hour - 9.0) / 12.0) + self.rng.normal(0, 0.04, n),
            0.3,
            1.0,
        )
        self.site_rssi = self.rng.uniform(-98.0, -62.0, n)
        self.rssi_walk = np.zeros(n)

    def sample(self, t_s: float, dt_s: float, rain_mm_h: np.ndarray) -> dict[str, np.ndarray]:
        n = self.soc.size
        sun = sunlight(local_hour(t_s)) * np.where(rain_mm_h > 0.1, 0.2, 1.0)
        sun = sun * np.exp(self.rng.normal(0.0, 0.1, n))  # passing clouds
        net_w = self.panel_w * 0.75 * sun - self.load_w
        self.soc = np.clip(self.soc + net_w * dt_s / 3600.0 / self.capacity_wh, 0.05, 1.0)
        charging = np.clip(net_w / 10.0, 0.0, 1.0)
        volts = 11.9 + 1.0 * self.soc + 0.8 * charging * self.soc**4
        volts = volts + self.rng.normal(0.0, 0.01, n)
        keep = np.exp(-dt_s / 1800.0)
        self.rssi_walk = self.rssi_walk * keep + self.rng.normal(0.0, 2.0 * np.sqrt(1 - keep**2), n)
        rssi = self.site_rssi + self.rssi_walk - 0.15 * rain_mm_h + self.rng.normal(0.0, 1.0, n)
        return {
            "battery_v": np.round(np.clip(volts, 0.0, 30.0), 2),
            "rssi_dbm": np.round(np.clip(rssi, -140.0, -20.0)),
        }
