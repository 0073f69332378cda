"""The simulated city: Luwu Timur's rivers, gauges, towns and roads, with their parameters.

Coordinates are approximate (WGS 84) and good enough for a map; hydraulic and traffic
parameters are plausible values chosen so that a normal day looks like a normal day and the
scenario events cross the warning levels they are meant to cross. Flood warning levels follow
the Indonesian scheme: Waspada (alert), Siaga (standby), Awas (danger), in cm above gauge zero.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FloodThresholds:
    """Warning levels of one gauge, cm above the gauge zero."""

    waspada_cm: float
    siaga_cm: float
    awas_cm: float

    def level_of(self, level_cm: float) -> str:
        """The warning level reached by `level_cm`: normal, waspada, siaga or awas."""
        if level_cm >= self.awas_cm:
            return "awas"
        if level_cm >= self.siaga_cm:
            return "siaga"
        if level_cm >= self.waspada_cm:
            return "waspada"
        return "normal"

    def as_overrides(self) -> dict[str, dict[str, float]]:
        """Alert threshold overrides in the shape the registry will import: field → level → cm."""
        return {
            "level_cm": {"waspada": self.waspada_cm, "siaga": self.siaga_cm, "awas": self.awas_cm}
        }


@dataclass(frozen=True)
class Gauge:
    """A river gauge. Its sub-catchment drains to it from the previous gauge upstream.

    Discharge and level are tied by the rating curve Q = a·(h - h0)^b (h in m), fitted through
    two points of the site: the base flow at the base level and `awas_flow_m3s` at the Awas
    level. An estuary gauge (`tidal_amplitude_m` > 0) reports no discharge: the tide backs the
    water up, so level alone says nothing about flow there.
    """

    slug: str  # "malili-01"
    site: str
    district: str
    lat: float
    lon: float
    elevation_m: float
    chainage_km: float  # distance from the river's source
    local_area_km2: float  # area draining to this gauge from the previous one
    base_flow_m3s: float  # dry-weather flow of the sub-catchments down to here
    base_level_cm: float  # level at base flow (plus any dam release)
    awas_flow_m3s: float  # discharge at the Awas level
    thresholds: FloodThresholds
    tidal_amplitude_m: float = 0.0
    rating_b: float = 1.8

    @property
    def has_rating(self) -> bool:
        return self.tidal_amplitude_m == 0.0

    def rating(self, regulated_m3s: float = 0.0) -> tuple[float, float, float]:
        """(a, h0_m, b) of Q = a·(h - h0)^b through the base and Awas points."""
        q_base = self.base_flow_m3s + regulated_m3s
        h_base = self.base_level_cm / 100.0
        h_awas = self.thresholds.awas_cm / 100.0
        ratio = (self.awas_flow_m3s / q_base) ** (1.0 / self.rating_b)
        h0 = (ratio * h_base - h_awas) / (ratio - 1.0)
        return q_base / (h_base - h0) ** self.rating_b, h0, self.rating_b


@dataclass(frozen=True)
class River:
    """A river and its gauges from upstream to downstream.

    `regulated_release_m3s` > 0: dams upstream release that flow (more in the evening peak).
    """

    name: str  # rain zone and id part, e.g. "malili"
    gauges: tuple[Gauge, ...]
    runoff_coefficient: float = 0.45
    wave_celerity_kmh: float = 7.0  # how fast a flood peak travels downstream
    kernel_hours: float = 0.9  # Nash-cascade storage constant of a sub-catchment, hours
    spread_hours_per_km: float = 0.02  # extra storage per km of routing: the wave flattens
    regulated_release_m3s: float = 0.0


@dataclass(frozen=True)
class Town:
    """A town with an environment station. `rain_zone` is the catchment its rain falls on."""

    slug: str
    site: str
    district: str
    lat: float
    lon: float
    elevation_m: float
    rain_zone: str
    pm25_base_ugm3: float


@dataclass(frozen=True)
class TrafficSite:
    """A traffic counter: on the trans-Sulawesi road or a town junction."""

    slug: str  # "tomoni-01"
    site: str
    district: str
    lat: float
    lon: float
    elevation_m: float
    rain_zone: str
    road: str  # "trans-sulawesi" or "town"
    peak_flow_vph: float  # vehicles per hour at the weekday morning peak, both directions
    capacity_vph: float
    free_speed_kmh: float
    lanes: int
    market_weekday: int | None  # 0 = Monday; the town's weekly market (hari pasar)

    def as_overrides(self) -> dict[str, dict[str, float]]:
        """Alert threshold overrides for the registry: the `incident` rule's level, vehicles
        per 10 minutes — half the usual weekday peak flow. A queue that lets fewer through is
        a blockage, not rush-hour congestion (which flows near the road's capacity)."""
        return {"vehicle_count": {"incident": round(self.peak_flow_vph / 6 * 0.5)}}


def _t(waspada: float, siaga: float, awas: float) -> FloodThresholds:
    return FloodThresholds(waspada, siaga, awas)


# fmt: off
# Gauges, upstream to downstream. Columns: slug, site, district, lat, lon, elevation_m,
# chainage_km, local_area_km2, base_flow_m3s, base_level_cm, awas_flow_m3s, thresholds (cm).
RIVERS: tuple[River, ...] = (
    River("malili", (
        Gauge("malili-01", "Pongkeru", "Malili", -2.555, 121.165, 95, 18, 260, 14, 95, 560, _t(260, 320, 380)),  # noqa: E501
        Gauge("malili-02", "Baruga", "Malili", -2.598, 121.128, 30, 31, 210, 26, 110, 760, _t(240, 290, 340)),  # noqa: E501
        Gauge("malili-03", "Jembatan Malili", "Malili", -2.628, 121.098, 6, 40, 160, 34, 124, 900, _t(250, 300, 350)),  # noqa: E501
        Gauge("malili-04", "Muara Malili", "Malili", -2.645, 121.083, 1, 44, 30, 36, 150, 1000, _t(300, 350, 400), tidal_amplitude_m=0.55),  # noqa: E501
    ), runoff_coefficient=0.55, wave_celerity_kmh=6.0),
    # Below the Larona, Balambano and Karebbe dams: regulated release plus local runoff.
    River("larona", (
        Gauge("larona-01", "Karebbe", "Wasuponda", -2.595, 121.245, 140, 12, 120, 10, 180, 700, _t(380, 430, 480)),  # noqa: E501
        Gauge("larona-02", "Ledu-Ledu", "Wasuponda", -2.640, 121.180, 60, 28, 180, 25, 195, 900, _t(400, 450, 500)),  # noqa: E501
        Gauge("larona-03", "Laskap", "Malili", -2.690, 121.115, 10, 46, 220, 40, 210, 1100, _t(420, 470, 520)),  # noqa: E501
    ), runoff_coefficient=0.4, wave_celerity_kmh=8.0, regulated_release_m3s=105.0),
    River("kalaena", (
        Gauge("kalaena-01", "Mangkutana", "Mangkutana", -2.375, 120.690, 85, 20, 340, 18, 90, 650, _t(270, 330, 390)),  # noqa: E501
        Gauge("kalaena-02", "Kalaena Kiri", "Kalaena", -2.470, 120.760, 35, 38, 300, 30, 105, 950, _t(260, 310, 360)),  # noqa: E501
        Gauge("kalaena-03", "Lampenai", "Wotu", -2.575, 120.815, 5, 52, 220, 38, 115, 1150, _t(250, 300, 350)),  # noqa: E501
    ), runoff_coefficient=0.5, wave_celerity_kmh=6.5),
    River("angkona", (
        Gauge("angkona-01", "Taripa", "Angkona", -2.540, 120.975, 60, 10, 120, 7, 70, 300, _t(220, 270, 320)),  # noqa: E501
        Gauge("angkona-02", "Solo", "Angkona", -2.600, 120.955, 8, 22, 110, 12, 80, 420, _t(230, 280, 330)),  # noqa: E501
    ), runoff_coefficient=0.5, wave_celerity_kmh=6.0),
)

# Columns: slug, site, district, lat, lon, elevation_m, rain_zone, pm25_base_ugm3.
TOWNS: tuple[Town, ...] = (
    Town("malili", "Kantor Bupati", "Malili", -2.631, 121.095, 8, "malili", 11.0),
    Town("wotu", "Pasar Wotu", "Wotu", -2.573, 120.796, 10, "kalaena", 13.0),
    Town("tomoni", "Puskesmas Tomoni", "Tomoni", -2.510, 120.735, 25, "kalaena", 10.0),
    Town("burau", "Kantor Camat Burau", "Burau", -2.628, 120.618, 15, "burau", 12.0),
    Town("sorowako", "Bumi Batara Guru", "Nuha", -2.530, 121.360, 420, "larona", 9.0),
)

# Columns: slug, site, district, lat, lon, elevation_m, rain_zone, road, peak_flow_vph,
# capacity_vph, free_speed_kmh, lanes, market_weekday (0 = Monday, None: no market).
TRAFFIC_SITES: tuple[TrafficSite, ...] = (
    TrafficSite("burau-01", "Trans-Sulawesi Lauwo", "Burau", -2.630, 120.640, 15, "burau", "trans-sulawesi", 620, 2200, 70, 2, 3),  # noqa: E501
    TrafficSite("wotu-01", "Simpang Tiga Wotu", "Wotu", -2.574, 120.800, 10, "kalaena", "trans-sulawesi", 900, 2000, 55, 2, 0),  # noqa: E501
    TrafficSite("wotu-02", "Jalan Pasar Wotu", "Wotu", -2.571, 120.792, 10, "kalaena", "town", 520, 1100, 35, 2, 0),  # noqa: E501
    TrafficSite("tomoni-01", "Trans-Sulawesi Tomoni", "Tomoni", -2.512, 120.740, 25, "kalaena", "trans-sulawesi", 680, 2200, 70, 2, 4),  # noqa: E501
    TrafficSite("angkona-01", "Jalan Poros Angkona", "Angkona", -2.596, 120.950, 12, "angkona", "trans-sulawesi", 560, 2000, 65, 2, None),  # noqa: E501
    TrafficSite("malili-01", "Simpang Lima Malili", "Malili", -2.630, 121.092, 8, "malili", "town", 760, 1300, 35, 2, 2),  # noqa: E501
    TrafficSite("malili-02", "Jalan Poros Malili-Sorowako", "Malili", -2.615, 121.140, 20, "malili", "trans-sulawesi", 640, 2000, 60, 2, None),  # noqa: E501
    TrafficSite("sorowako-01", "Simpang Salonsa", "Nuha", -2.528, 121.352, 420, "larona", "town", 700, 1200, 40, 2, 5),  # noqa: E501
)
# fmt: on

RAIN_ZONES: tuple[str, ...] = ("malili", "larona", "kalaena", "angkona", "burau")
