"""Weather and air-quality stations in the towns: tropical lowland weather, all stations at once.

- Temperature: diurnal cycle, coolest near 06:00 WITA and warmest near 14:00 (23-33 °C on the
  coast, cooler by the lapse rate at Sorowako's 420 m), knocked down 2-5 °C by a shower and
  recovering over hours.
- Humidity from a slowly varying dew point through the Magnus formula, so it is high at night,
  lowest in the early afternoon (anti-correlated with temperature) and near saturation in rain.
- Rain: the stations' rain cells (see `rain.py`), reported as a tipping-bucket gauge does —
  whole 0.2 mm tips since the previous reading.
- Pressure: ~1010 hPa at sea level minus altitude, with the semi-diurnal atmospheric tide
  (±1.3 hPa, maxima near 10:00 and 22:00 local), a weaker diurnal wave and slow synoptic drift.
- PM2.5 / PM10: a town background with morning (traffic) and evening (traffic, cooking, waste
  burning) peaks, haze episodes ramping in and out (worse at night under the inversion),
  washed out by rain; PM10 is PM2.5 times a site ratio plus coarse road dust. Optical counters
  report whole µg/m³.
"""

from __future__ import annotations

import numpy as np

from simulators.clock import local_hour
from simulators.fleet import DeviceSpec
from simulators.geography import Town
from simulators.rain import RainField
from simulators.scenario import HazeEpisode

LAPSE_C_PER_M = 0.0065
BUCKET_MM = 0.2


def diurnal_shape(hour: np.ndarray) -> np.ndarray:
    """-1 at 06:00, +1 at 14:00, a cosine rising over 8 h and falling over 16 h."""
    since_min = (hour - 6.0) % 24.0
    rising = since_min < 8.0
    return np.where(
        rising,
        -np.cos(np.pi * since_min / 8.0),
        np.cos(np.pi * (since_min - 8.0) / 16.0),
    )


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return np.asarray(np.exp(-0.5 * (d / width) ** 2))


def saturation_hpa(temp_c: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure over water (Magnus), hPa."""
    return np.asarray(6.112 * np.exp(17.62 * temp_c / (243.12 + temp_c)))


class EnvironmentModel:
    """Every environment station of the fleet; `sample(t, dt)` gives their readings."""

    kind = "environment"
    fields = (
        "temperature_c",
        "humidity_pct",
        "rainfall_mm",
        "pressure_hpa",
        "pm25_ugm3",
        "pm10_ugm3",
    )

    def __init__(
        self,
        devices: list[DeviceSpec],
        rain: RainField,
        seed: int,
        start_s: float,
        haze: tuple[HazeEpisode, ...] = (),
    ) -> None:
        self.devices = devices
        self.rain = rain
        self.rng = np.random.default_rng([seed, 202])
        n = len(devices)
        towns = [d.base for d in devices]
        assert all(isinstance(t, Town) for t in towns)
        # Stations at the same town share its rain: compute it once per town.
        pairs = [(f"town:{t.slug}", t.rain_zone) for t in towns if isinstance(t, Town)]
        self.rain_keys = sorted(set(pairs))
        self.rain_index = np.array([self.rain_keys.index(p) for p in pairs], dtype=np.int64)
        elevation = np.array([d.elevation_m for d in devices])
        site = self.rng.normal(0.0, 0.3, n)  # microclimate of each site
        self.mean_c = 28.0 - LAPSE_C_PER_M * elevation + site
        self.amplitude_c = 4.6 + self.rng.normal(0.0, 0.3, n)
        self.dewpoint_mean_c = 23.3 - LAPSE_C_PER_M * elevation + self.rng.normal(0.0, 0.4, n)
        self.pressure_base = 1010.2 - elevation / 8.3 + self.rng.normal(0.0, 0.4, n)
        self.pm25_base = np.array([t.pm25_base_ugm3 for t in towns if isinstance(t, Town)])
        self.pm_ratio = self.rng.uniform(1.45, 1.85, n)
        self.haze = [
            (
                start_s + h.start_s,
                h.duration_s,
                h.pm25_ugm3,
                h.ramp_s,
                np.array(
                    [(not h.towns) or t.slug in h.towns for t in towns if isinstance(t, Town)]
                ),
            )
            for h in haze
        ]
        self.cooling_c = np.zeros(n)
        self.wet = np.zeros(n)  # recent rain, mm, decaying: wets the air, washes out dust
        self.temp_noise = np.zeros(n)
        self.dew_noise = np.zeros(n)
        self.synoptic_hpa = np.zeros(n)
        self.pm_noise = np.zeros(n)
        self.bucket_mm = self.rng.uniform(0.0, BUCKET_MM, n)
        self.rain_mm_h = np.zeros(n)

    def haze_ugm3(self, t_s: float) -> np.ndarray:
        """Extra PM2.5 from haze episodes at time t, per station (before the night boost)."""
        extra = np.zeros(len(self.devices))
        for start, duration, peak, ramp, where in self.haze:
            rise = np.clip((t_s - start) / ramp, 0.0, 1.0)
            fall = np.clip((start + duration - t_s) / ramp, 0.0, 1.0)
            extra += where * peak * np.sin(0.5 * np.pi * min(rise, fall)) ** 2
        return extra

    def _ar(self, state: np.ndarray, dt_s: float, tau_s: float, sigma: float) -> np.ndarray:
        keep = np.exp(-dt_s / tau_s)
        return np.asarray(
            state * keep + self.rng.normal(0.0, sigma * np.sqrt(1 - keep**2), state.size)
        )

    def sample(self, t_s: float, dt_s: float) -> dict[str, np.ndarray]:
        n = len(self.devices)
        hour = local_hour(t_s)
        rain_mm = np.array([self.rain.amount_mm(k, z, t_s - dt_s, t_s) for k, z in self.rain_keys])[
            self.rain_index
        ]
        self.rain_mm_h = rain_mm * 3600.0 / dt_s
        # Rain cools within ~20 min; the air warms back over ~2 h.
        target = np.minimum(5.0, 1.4 * np.sqrt(self.rain_mm_h))
        tau = np.where(target > self.cooling_c, 1200.0, 7200.0)
        self.cooling_c += (target - self.cooling_c) * (1.0 - np.exp(-dt_s / tau))
        self.wet = self.wet * np.exp(-dt_s / 10800.0) + rain_mm
        self.temp_noise = self._ar(self.temp_noise, dt_s, 1800.0, 0.35)
        self.dew_noise = self._ar(self.dew_noise, dt_s, 5400.0, 0.6)
        self.synoptic_hpa = self._ar(self.synoptic_hpa, dt_s, 3 * 86400.0, 1.2)
        self.pm_noise = self._ar(self.pm_noise, dt_s, 2400.0, 0.22)

        temperature = (
            self.mean_c
            + self.amplitude_c * diurnal_shape(hour)
            - self.cooling_c
            + self.temp_noise
            + self.rng.normal(0.0, 0.05, n)
        )
        # The afternoon mixes drier air down; rain saturates the air.
        dewpoint = self.dewpoint_mean_c - 0.8 * _bump(hour, 14.0, 2.5) + self.dew_noise
        wetness = 1.0 - np.exp(-self.wet / 2.0)
        dewpoint = np.minimum(dewpoint + wetness * (temperature - dewpoint) * 0.85, temperature)
        humidity = 100.0 * saturation_hpa(dewpoint) / saturation_hpa(temperature)
        # Capacitive sensors read a little under saturation even in fog.
        humidity = np.clip(humidity + self.rng.normal(0.0, 0.4, n), 0.0, 99.0)

        phase = 2 * np.pi * hour / 24.0
        pressure = (
            self.pressure_base
            + 1.3 * np.cos(2 * phase - 2 * np.pi * 10.0 / 12.0)
            + 0.3 * np.cos(phase - 2 * np.pi * 6.0 / 24.0)
            + self.synoptic_hpa
            + self.rng.normal(0.0, 0.05, n)
        )

        # Tipping bucket: report whole tips; the remainder waits in the bucket.
        self.bucket_mm += rain_mm
        tips = np.floor(self.bucket_mm / BUCKET_MM + 1e-9)
        self.bucket_mm -= tips * BUCKET_MM

        night = 0.6 + 0.6 * _bump(hour, 3.0, 4.0)  # haze thickens under the night inversion
        activity = 1.0 + 0.9 * _bump(hour, 7.2, 1.1) + 1.1 * _bump(hour, 19.0, 1.6)
        washout = 1.0 / (1.0 + 0.25 * self.wet)
        pm25 = (self.pm25_base * activity + self.haze_ugm3(t_s) * night) * washout
        pm25 = pm25 * np.exp(self.pm_noise)
        dust = 6.0 * activity * np.exp(-self.wet / 1.5)
        pm10 = pm25 * self.pm_ratio + dust * np.exp(self.rng.normal(0.0, 0.2, n))
        return {
            "temperature_c": np.round(temperature, 2),
            "humidity_pct": np.round(humidity, 1),
            "rainfall_mm": np.round(tips * BUCKET_MM, 1),
            "pressure_hpa": np.round(pressure, 1),
            "pm25_ugm3": np.round(np.clip(pm25, 0.0, 999.0)),
            "pm10_ugm3": np.round(np.clip(np.maximum(pm10, pm25), 0.0, 1999.0)),
        }
