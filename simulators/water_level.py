"""River gauges: base flow, flood waves from rain, rating curves, tides; all gauges at once.

Discharge at a gauge is base flow (plus dam releases on the Larona) plus the runoff of every
rain cell on every sub-catchment upstream of it. A sub-catchment turns a block of rain into a
hydrograph through a Nash cascade (quick flow: 3 linear reservoirs; slow flow: 1 reservoir
with a long storage constant). The block response is a difference of Erlang distribution
functions, so the flow at any instant is closed form — no state, no time stepping — and a
flood wave reaches a gauge further down later (travel time = distance / wave celerity) and
flatter (the storage constant grows with the routing distance). Level comes from the
gauge's rating curve h = h0 + (Q/a)^(1/b); the estuary gauge adds the tide (M2 + S2).
"""

from __future__ import annotations

import numpy as np

from simulators.clock import local_hour
from simulators.fleet import DeviceSpec
from simulators.geography import Gauge, River
from simulators.rain import LOOKBACK_S, RainField

QUICK_SHARE = 0.8  # share of runoff that leaves as quick flow; the rest drains slowly
SLOW_STORAGE_H = 16.0
M2_PERIOD_S = 12.4206 * 3600.0
S2_PERIOD_S = 12.0 * 3600.0


def erlang_cdf(x: np.ndarray, n: int) -> np.ndarray:
    """P(X ≤ x) for an Erlang(n, 1) variable; 0 for x ≤ 0. n is 1 or 3."""
    x = np.clip(x, 0.0, None)
    if n == 1:
        return np.asarray(-np.expm1(-x))
    return np.asarray(1.0 - np.exp(-x) * (1.0 + x + 0.5 * x * x))


class WaterLevelModel:
    """Every water-level gauge of the fleet; `sample(t)` gives their readings at time t."""

    kind = "water_level"
    fields = ("level_cm", "flow_m3s")

    def __init__(self, devices: list[DeviceSpec], rain: RainField, seed: int) -> None:
        self.devices = devices
        self.rain = rain
        self.rng = np.random.default_rng([seed, 101])
        n = len(devices)
        self.rivers: list[River] = []
        self.river_of = np.zeros(n, dtype=np.int64)
        rating = np.zeros((n, 3))
        self.base_flow = np.zeros(n)
        self.tide_m = np.zeros(n)
        self.has_rating = np.zeros(n, dtype=bool)
        self.regulated = np.zeros(n)
        # Per device x sub-catchment of its river: contributing area, travel time, storage.
        width = max((len(r.gauges) for r in {d.river for d in devices if d.river}), default=1)
        self.area = np.zeros((n, width))
        self.lag_h = np.zeros((n, width))
        self.storage_h = np.ones((n, width))
        for i, d in enumerate(devices):
            river, gauge = d.river, d.base
            assert river is not None and isinstance(gauge, Gauge)
            if river not in self.rivers:
                self.rivers.append(river)
            self.river_of[i] = self.rivers.index(river)
            rating[i] = gauge.rating(river.regulated_release_m3s)
            self.base_flow[i] = gauge.base_flow_m3s
            self.tide_m[i] = gauge.tidal_amplitude_m
            self.has_rating[i] = gauge.has_rating
            self.regulated[i] = river.regulated_release_m3s
            x = gauge.chainage_km + d.chainage_offset_km
            for j, upstream in enumerate(river.gauges):
                if upstream.chainage_km > gauge.chainage_km:
                    break
                distance = max(0.0, x - upstream.chainage_km)
                self.area[i, j] = upstream.local_area_km2 * river.runoff_coefficient
                self.lag_h[i, j] = distance / river.wave_celerity_kmh
                self.storage_h[i, j] = river.kernel_hours + river.spread_hours_per_km * distance
        self.rating_a, self.rating_h0, self.rating_b = rating.T
        self.ripple_cm = np.zeros(n)
        self.base_wobble = np.zeros(n)
        self.rain_mm_h = np.zeros(n)  # rain falling on the catchment now (clouds over the panel)

    def release_m3s(self, t_s: float) -> np.ndarray:
        """Dam release on regulated rivers: more water through the turbines 17-23 WITA."""
        h = float(local_hour(t_s))
        evening = 1.0 / (1.0 + np.exp(-(h - 17.0) / 0.25)) / (1.0 + np.exp(-(23.0 - h) / 0.25))
        return np.asarray(self.regulated * (1.0 + 0.3 * evening))

    def flow_m3s(self, t_s: float) -> np.ndarray:
        """Discharge at every gauge at time t (no noise)."""
        q = self.base_flow + self.release_m3s(t_s)
        for r, river in enumerate(self.rivers):
            rows = np.flatnonzero(self.river_of == r)
            cells = self.rain.cells(river.name, river.name, t_s - LOOKBACK_S, t_s)
            if not len(cells):
                continue
            # (device, sub-catchment, cell) in hours since each cell's start at the gauge.
            since_h = (t_s - cells.start_s[None, None, :]) / 3600.0 - self.lag_h[rows, :, None]
            dur_h = cells.duration_s[None, None, :] / 3600.0
            k = self.storage_h[rows, :, None]
            quick = erlang_cdf(since_h / k, 3) - erlang_cdf((since_h - dur_h) / k, 3)
            slow = erlang_cdf(since_h / SLOW_STORAGE_H, 1) - erlang_cdf(
                (since_h - dur_h) / SLOW_STORAGE_H, 1
            )
            response = QUICK_SHARE * quick + (1.0 - QUICK_SHARE) * slow
            # mm/h over km² → m³/s: 1 mm/h on 1 km² is 1/3.6 m³/s.
            runoff = cells.intensity_mm_h * cells.coverage / 3.6
            q[rows] += np.einsum("gs,gsc,c->g", self.area[rows], response, runoff)
        return np.asarray(q)

    def level_cm(self, flow: np.ndarray, t_s: float) -> np.ndarray:
        """Level above gauge zero for `flow` (rating curve), plus the tide at estuary gauges."""
        h = self.rating_h0 + (flow / self.rating_a) ** (1.0 / self.rating_b)
        tide = self.tide_m * (
            0.75 * np.cos(2 * np.pi * t_s / M2_PERIOD_S)
            + 0.25 * np.cos(2 * np.pi * t_s / S2_PERIOD_S + 1.1)
        )
        return np.asarray(100.0 * (h + tide))

    def sample(self, t_s: float, dt_s: float) -> dict[str, np.ndarray]:
        n = len(self.devices)
        rain_now = [self.rain.intensity_mm_h(r.name, r.name, t_s) for r in self.rivers]
        self.rain_mm_h = np.asarray(rain_now)[self.river_of] if rain_now else np.zeros(n)
        # Slow wandering of base flow (±3 %, hours) and surface ripple (±0.5 cm, minutes).
        keep = np.exp(-dt_s / 21600.0)
        self.base_wobble = self.base_wobble * keep + self.rng.normal(
            0.0, 0.03 * np.sqrt(1 - keep**2), n
        )
        keep = np.exp(-dt_s / 120.0)
        self.ripple_cm = self.ripple_cm * keep + self.rng.normal(0.0, 0.5 * np.sqrt(1 - keep**2), n)
        flow = self.flow_m3s(t_s) * (1.0 + self.base_wobble)
        level = self.level_cm(flow, t_s) + self.ripple_cm + self.rng.normal(0.0, 0.2, n)
        level = np.round(level, 1)
        # A station reports the discharge its logger computes from the measured level.
        measured_flow = self.rating_a * np.clip(level / 100.0 - self.rating_h0, 0, None) ** (
            self.rating_b
        )
        flow_out = np.where(self.has_rating, np.round(measured_flow, 2), np.nan)
        return {"level_cm": level, "flow_m3s": flow_out}
