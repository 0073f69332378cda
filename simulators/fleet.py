"""The simulated fleet: which devices exist, their ids, sites and parameters.

The base fleet is the city of `geography`: every river gauge, one environment station per
town, every traffic counter. A larger fleet (`pantau simulate --devices 10000`) adds devices
at the same sites, numbered on (`wl-malili-05`, `env-wotu-02`, ...), shared out over the kinds
in the base fleet's proportions; each added device copies the physics of a base site with its
own position, noise, battery and radio. `simulated_devices()` is what the registry imports.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from simulators.geography import RIVERS, TOWNS, TRAFFIC_SITES, Gauge, River, Town, TrafficSite
from simulators.scenario import Scenario, ScenarioError

KIND_PREFIX = {"water_level": "wl", "environment": "env", "traffic": "trf"}


@dataclass(frozen=True)
class DeviceSpec:
    """One simulated device: its id and kind, where it stands, the base site it copies."""

    index: int
    device_id: str
    kind: str
    site: str
    district: str
    lat: float
    lon: float
    elevation_m: float
    base: Gauge | Town | TrafficSite
    river: River | None = None
    chainage_offset_km: float = 0.0  # added devices stand a little up or down the river
    wire_format: str = "json"


@dataclass(frozen=True)
class SimulatedDeviceInfo:
    """What the registry needs to create a simulated device (`pantau simulate --register`)."""

    id: str
    kind: str
    name: str
    site: str
    district: str
    lat: float
    lon: float
    elevation: float  # metres above sea level
    thresholds: dict[str, dict[str, float]]  # field → level name → value (alert overrides)


def _base_sites(kinds: tuple[str, ...]) -> list[tuple[str, str, Gauge | Town | TrafficSite]]:
    sites: list[tuple[str, str, Gauge | Town | TrafficSite]] = []
    if "water_level" in kinds:
        sites += [("water_level", g.slug, g) for r in RIVERS for g in r.gauges]
    if "environment" in kinds:
        sites += [("environment", f"{t.slug}-01", t) for t in TOWNS]
    if "traffic" in kinds:
        sites += [("traffic", s.slug, s) for s in TRAFFIC_SITES]
    return sites


def _river_of(gauge: Gauge) -> River:
    return next(r for r in RIVERS if gauge in r.gauges)


def build_fleet(scenario: Scenario, devices: int | None = None, seed: int = 0) -> list[DeviceSpec]:
    """The devices of a run: the base city, grown to `devices` in total when that is more."""
    base = _base_sites(scenario.kinds)
    if scenario.only:
        base = [
            (kind, slug, site)
            for kind, slug, site in base
            if any(fnmatchcase(f"{KIND_PREFIX[kind]}-{slug}", p) for p in scenario.only)
        ]
        if not base:
            raise ScenarioError(f"only: no device matches {scenario.only}")
    planned = [(kind, slug, site, 0) for kind, slug, site in base]
    extra = max(0, (devices or 0) - len(base))
    if extra:
        by_kind: dict[str, list[tuple[str, Gauge | Town | TrafficSite]]] = {}
        for kind, slug, site in base:
            by_kind.setdefault(kind, []).append((slug, site))
        # Share the extra devices out in proportion, then round-robin over each kind's sites.
        shares = {k: extra * len(v) // len(base) for k, v in by_kind.items()}
        for k in list(by_kind)[: extra - sum(shares.values())]:
            shares[k] += 1
        next_number: dict[tuple[str, str], int] = {}
        for kind, slug, _site in base:
            group = (kind, slug.rsplit("-", 1)[0])
            next_number[group] = max(next_number.get(group, 1), int(slug.rsplit("-", 1)[1]) + 1)
        for kind, sites in by_kind.items():
            for i in range(shares[kind]):
                slug, site = sites[i % len(sites)]
                group = (kind, slug.rsplit("-", 1)[0])
                number = next_number[group]
                next_number[group] += 1
                planned.append((kind, f"{group[1]}-{number:02d}", site, i // len(sites) + 1))
    fleet = []
    for index, (kind, slug, site, copy) in enumerate(planned):
        device_id = f"{KIND_PREFIX[kind]}-{slug}"
        # Added devices stand near their base site: deterministic jitter from the id.
        jitter = np.random.default_rng([seed, zlib.crc32(device_id.encode())])
        dlat, dlon = jitter.uniform(-0.01, 0.01, 2) if copy else (0.0, 0.0)
        offset_km = float(jitter.uniform(-3.0, 3.0)) if copy and kind == "water_level" else 0.0
        fleet.append(
            DeviceSpec(
                index=index,
                device_id=device_id,
                kind=kind,
                site=site.site if not copy else f"{site.site} #{copy + 1}",
                district=site.district,
                lat=round(site.lat + float(dlat), 5),
                lon=round(site.lon + float(dlon), 5),
                elevation_m=float(site.elevation_m),
                base=site,
                river=_river_of(site) if isinstance(site, Gauge) else None,
                chainage_offset_km=offset_km,
                wire_format=wire_format_of(scenario, device_id),
            )
        )
    return fleet


def wire_format_of(scenario: Scenario, device_id: str) -> str:
    for pattern, fmt in scenario.formats.items():
        if fnmatchcase(device_id, pattern):
            return fmt
    return scenario.default_format


def device_name(spec: DeviceSpec) -> str:
    what = {"water_level": "Water level", "environment": "Weather & air", "traffic": "Traffic"}
    return f"{what[spec.kind]} {spec.site}"


def simulated_devices(
    scenario: Scenario, devices: int | None = None, seed: int = 0
) -> list[SimulatedDeviceInfo]:
    """The devices a run of `scenario` drives, as the registry should know them."""
    return [
        SimulatedDeviceInfo(
            id=spec.device_id,
            kind=spec.kind,
            name=device_name(spec),
            site=spec.site,
            district=spec.district,
            lat=spec.lat,
            lon=spec.lon,
            elevation=spec.elevation_m,
            thresholds=_overrides(spec),
        )
        for spec in build_fleet(scenario, devices, seed)
    ]


def _overrides(spec: DeviceSpec) -> dict[str, dict[str, float]]:
    """The alert levels a simulated device is registered with (gauges, traffic counters)."""
    if isinstance(spec.base, Gauge):
        return spec.base.thresholds.as_overrides()
    if isinstance(spec.base, TrafficSite):
        return spec.base.as_overrides()
    return {}


def match_devices(fleet: list[DeviceSpec], patterns: tuple[str, ...]) -> list[DeviceSpec]:
    """Devices whose id matches any of the glob `patterns`, in fleet order."""
    return [d for d in fleet if any(fnmatchcase(d.device_id, p) for p in patterns)]
