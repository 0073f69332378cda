"""Traffic counters: demand by hour and weekday, congestion, incidents; all counters at once.

Demand (vehicles/hour) follows the local clock: weekday morning (07-08) and afternoon (16-18)
rush hours with a school/lunch bump at noon and the Friday-prayer dip (12-13 on Fridays);
Saturdays a lower, later morning; Sundays a broad low day; trucks and buses keep the
trans-Sulawesi road busier at night than town streets; on a town's weekly market day (hari
pasar) a morning surge at the market junctions. Rain trims demand and speed.

Speed follows a BPR volume-delay curve v = v_free / (1 + 0.15·(q/c)^4); occupancy is density
x effective vehicle length per lane. An incident cuts capacity: the queue makes speed
collapse to walking pace, occupancy climb towards 70-90 % and the count fall. Counts are
Poisson draws of the demand over the reading interval; with no vehicles there is no speed.
"""

from __future__ import annotations

import numpy as np

from simulators.clock import local_hour, local_weekday
from simulators.fleet import DeviceSpec
from simulators.geography import TrafficSite
from simulators.rain import RainField
from simulators.scenario import Incident

EFFECTIVE_LENGTH_KM = 0.0065  # vehicle plus gap seen by a loop detector


def _bump(hour: float, centre: float, width: float) -> float:
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return float(np.exp(-0.5 * (d / width) ** 2))


def demand_profile(hour: float, weekday: int, trunk: bool) -> float:
    """Demand as a share of the weekday morning peak, at local `hour` on `weekday`."""
    day = 1.0 / (1.0 + np.exp(-(hour - 5.8) / 0.4)) / (1.0 + np.exp(-(21.5 - hour) / 0.7))
    night = 0.12 if trunk else 0.04
    if weekday < 5:
        level = (
            night
            + 0.45 * day
            + 0.55 * _bump(hour, 7.3, 0.6)
            + 0.25 * _bump(hour, 12.5, 1.0)
            + 0.45 * _bump(hour, 16.9, 1.0)
        )
        if weekday == 4:  # Friday prayer: streets empty 12-13
            level *= 1.0 - 0.55 * _bump(hour, 12.4, 0.45)
    elif weekday == 5:
        level = night + 0.45 * day + 0.2 * _bump(hour, 9.5, 1.5) + 0.25 * _bump(hour, 17.5, 1.5)
    else:
        level = night + 0.35 * day + 0.15 * _bump(hour, 10.5, 2.0) + 0.15 * _bump(hour, 16.5, 1.5)
    return float(level)


class TrafficModel:
    """Every traffic counter of the fleet; `sample(t, dt)` gives their readings."""

    kind = "traffic"
    fields = ("vehicle_count", "avg_speed_kmh", "occupancy_pct")

    def __init__(
        self,
        devices: list[DeviceSpec],
        rain: RainField,
        seed: int,
        start_s: float,
        incidents: tuple[Incident, ...] = (),
    ) -> None:
        self.devices = devices
        self.rain = rain
        self.rng = np.random.default_rng([seed, 303])
        n = len(devices)
        sites = [d.base for d in devices if isinstance(d.base, TrafficSite)]
        assert len(sites) == n
        self.trunk = np.array([s.road == "trans-sulawesi" for s in sites])
        self.peak = np.array([s.peak_flow_vph for s in sites]) * self.rng.uniform(0.9, 1.1, n)
        self.capacity = np.array([s.capacity_vph for s in sites])
        self.free_speed = np.array([s.free_speed_kmh for s in sites]) + self.rng.normal(0, 2, n)
        self.lanes = np.array([s.lanes for s in sites], dtype=np.float64)
        self.market_day = np.array(
            [-1 if s.market_weekday is None else s.market_weekday for s in sites]
        )
        pairs = [(f"zone:{s.rain_zone}", s.rain_zone) for s in sites]
        self.rain_keys = sorted(set(pairs))
        self.rain_index = np.array([self.rain_keys.index(p) for p in pairs], dtype=np.int64)
        ids = [d.device_id for d in devices]
        self.incidents = [
            (ids.index(i.device), start_s + i.start_s, i.duration_s, i.capacity_factor)
            for i in incidents
            if i.device in ids
        ]
        self.noise = np.zeros(n)
        self.queue = np.zeros(n)  # 0-1: how jammed the site is; builds and clears over minutes
        self.rain_mm_h = np.zeros(n)

    def capacity_factor(self, t_s: float) -> np.ndarray:
        factor = np.ones(len(self.devices))
        for index, start, duration, cut in self.incidents:
            if start <= t_s < start + duration:
                factor[index] = min(factor[index], cut)
        return factor

    def demand_vph(self, t_s: float) -> np.ndarray:
        """Vehicles per hour wanting to pass each counter at t (no noise, no incident)."""
        hour = float(local_hour(t_s))
        weekday = local_weekday(t_s)
        base = np.where(
            self.trunk, demand_profile(hour, weekday, True), demand_profile(hour, weekday, False)
        )
        market = np.where(self.market_day == weekday, 0.6 * _bump(hour, 8.5, 1.4), 0.0)
        rain_cut = 1.0 - 0.15 * np.minimum(1.0, self.rain_mm_h / 10.0)
        return np.asarray(self.peak * (base + market) * rain_cut)

    def sample(self, t_s: float, dt_s: float) -> dict[str, np.ndarray]:
        n = len(self.devices)
        self.rain_mm_h = np.array([self.rain.intensity_mm_h(k, z, t_s) for k, z in self.rain_keys])[
            self.rain_index
        ]
        keep = np.exp(-dt_s / 900.0)
        self.noise = self.noise * keep + self.rng.normal(0.0, 0.08 * np.sqrt(1 - keep**2), n)
        demand = self.demand_vph(t_s) * np.exp(self.noise)
        capacity = self.capacity * self.capacity_factor(t_s)
        ratio = demand / capacity
        # Past capacity a queue forms (in ~3 min) and dissolves (in ~10 min) once it is back.
        jammed = np.clip((ratio - 0.95) * 4.0, 0.0, 1.0)
        tau = np.where(jammed > self.queue, 180.0, 600.0)
        self.queue += (jammed - self.queue) * (1.0 - np.exp(-dt_s / tau))
        throughput = np.minimum(demand, capacity * (1.0 - 0.25 * self.queue))
        count = self.rng.poisson(throughput * dt_s / 3600.0).astype(np.float64)
        rain_slow = 1.0 - 0.12 * np.minimum(1.0, self.rain_mm_h / 10.0)
        flowing = self.free_speed * rain_slow / (1.0 + 0.15 * np.minimum(ratio, 1.0) ** 4)
        speed = flowing * (1.0 - self.queue) + 7.0 * self.queue
        speed = np.clip(speed * np.exp(self.rng.normal(0.0, 0.05, n)), 2.0, None)
        per_lane_density = throughput / np.maximum(speed, 2.0) / self.lanes
        occupancy = 100.0 * per_lane_density * EFFECTIVE_LENGTH_KM
        occupancy = np.maximum(occupancy, 85.0 * self.queue) + self.rng.normal(0.0, 0.3, n)
        return {
            "vehicle_count": count,
            "avg_speed_kmh": np.where(count > 0, np.round(speed, 1), np.nan),
            "occupancy_pct": np.round(np.clip(occupancy, 0.0, 100.0), 1),
        }
