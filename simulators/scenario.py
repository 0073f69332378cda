"""Scenarios: YAML files in `simulators/scenarios/` describing what happens in a simulated run.

A scenario names the weather events (rain on a catchment, haze), the traffic incidents and
the sensor faults to inject, each at an offset from the start of the run (`90s`, `30m`,
`2h`, `1d`), plus the run's length and the wire format of each device. Everything random in
a run derives from the seed, so a scenario and a seed give the same readings every time.
See `simulators/scenarios/README.md` for the format.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

WIRE_FORMATS = ("json", "batch", "senml")
FAULT_KINDS = (
    "spike",
    "drift",
    "stuck",
    "dropout",
    "clock_skew",
    "duplicate",
    "malformed",
    "reconnect_storm",
)
MALFORMED_VARIANTS = ("bad_json", "wrong_type", "nan", "oversized")
_DURATION_RE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|min|s|m|h|d)\s*)+$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class ScenarioError(ValueError):
    """A scenario file that cannot be used, with the reason."""


def parse_duration_s(value: object, what: str = "duration") -> float:
    """`90`, `"90s"`, `"30m"`, `"2h"`, `"1.5d"`, `"2h40m"` → seconds."""
    if isinstance(value, bool):
        raise ScenarioError(f"{what}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    if not _DURATION_RE.match(text):
        raise ScenarioError(f"{what}: {value!r} is not a duration like 90s, 30m, 2h40m, 1d")
    return sum(float(n) * _UNIT_S[unit] for n, unit in _PART_RE.findall(text))


@dataclass(frozen=True)
class RainEvent:
    """Rain over a zone (a river's catchment and the towns on it) for a while."""

    zone: str
    start_s: float
    duration_s: float
    intensity_mm_h: float
    coverage: float = 1.0  # share of the catchment under the rain
    name: str = "rain"


@dataclass(frozen=True)
class HazeEpisode:
    """Smoke haze (land and peat fires upwind): extra PM2.5 ramping in and out."""

    start_s: float
    duration_s: float
    pm25_ugm3: float
    towns: tuple[str, ...] = ()  # empty: every town
    ramp_s: float = 6 * 3600.0


@dataclass(frozen=True)
class Incident:
    """A crash or breakdown at a traffic counter: capacity falls to `capacity_factor`."""

    device: str
    start_s: float
    duration_s: float
    capacity_factor: float = 0.15
    name: str = "accident"


@dataclass(frozen=True)
class FaultSpec:
    """A fault to inject into the devices matching `devices` (glob patterns)."""

    kind: str
    devices: tuple[str, ...]
    start_s: float
    duration_s: float
    field: str | None = None
    count: int | None = None  # pick this many of the matches (seeded); None: all of them
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class RandomFaults:
    """Faults scattered over a large fleet: each device gets some per simulated day."""

    per_device_per_day: float
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    duration_s: float | None = None  # None: runs until stopped
    interval_s: float | None = None  # None: the settings' interval
    shower_probability: float = 0.45  # chance of afternoon convective showers per zone and day
    rain: tuple[RainEvent, ...] = ()
    haze: tuple[HazeEpisode, ...] = ()
    incidents: tuple[Incident, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    random_faults: RandomFaults | None = None
    default_format: str = "json"
    formats: dict[str, str] = dataclasses.field(default_factory=dict)  # device glob → wire format
    batch_size: int = 5  # readings per message for the `batch` format
    kinds: tuple[str, ...] = ("water_level", "environment", "traffic")
    only: tuple[str, ...] = ()  # device id globs: the base fleet is cut down to these
    start_local_h: float | None = None  # accelerated replays start at this local hour...
    start_weekdays: tuple[int, ...] = ()  # ...on one of these days (0 = Monday); () any day


def _list(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ScenarioError(f"{key}: expected a list of mappings")
    return value


def _devices(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ScenarioError(f"{what}: devices must be a glob or a list of globs")


def _local_hour(value: object) -> float | None:
    """`"05:00"` → 5.0 (a local time of day, WITA)."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ScenarioError(f"start_local: {value!r} is not a time of day like 05:00")
    return int(match.group(1)) + int(match.group(2)) / 60.0


def parse_scenario(raw: object, name: str = "scenario") -> Scenario:
    """A scenario from its YAML mapping; raises ScenarioError naming the bad key."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{name}: expected a mapping at the top level")
    try:
        rain = tuple(
            RainEvent(
                zone=str(r["zone"]),
                start_s=parse_duration_s(r["start"], "rain.start"),
                duration_s=parse_duration_s(r["duration"], "rain.duration"),
                intensity_mm_h=float(r["intensity_mm_h"]),
                coverage=float(r.get("coverage", 1.0)),
                name=str(r.get("name", "rain")),
            )
            for r in _list(raw, "rain")
        )
        haze = tuple(
            HazeEpisode(
                start_s=parse_duration_s(h["start"], "haze.start"),
                duration_s=parse_duration_s(h["duration"], "haze.duration"),
                pm25_ugm3=float(h["pm25_ugm3"]),
                towns=tuple(h.get("towns") or ()),
                ramp_s=parse_duration_s(h.get("ramp", "6h"), "haze.ramp"),
            )
            for h in _list(raw, "haze")
        )
        incidents = tuple(
            Incident(
                device=str(i["device"]),
                start_s=parse_duration_s(i["start"], "incidents.start"),
                duration_s=parse_duration_s(i["duration"], "incidents.duration"),
                capacity_factor=float(i.get("capacity_factor", 0.15)),
                name=str(i.get("name", "accident")),
            )
            for i in _list(raw, "incidents")
        )
        faults = []
        for f in _list(raw, "faults"):
            kind = str(f["kind"])
            if kind not in FAULT_KINDS:
                raise ScenarioError(f"faults: unknown kind {kind!r} (one of {FAULT_KINDS})")
            params = {
                k: v
                for k, v in f.items()
                if k not in ("kind", "devices", "start", "duration", "field", "count")
            }
            if kind == "malformed" and params.get("variant", "mixed") not in (
                *MALFORMED_VARIANTS,
                "mixed",
            ):
                raise ScenarioError(
                    f"faults: malformed variant must be one of {MALFORMED_VARIANTS}"
                )
            faults.append(
                FaultSpec(
                    kind=kind,
                    devices=_devices(f["devices"], "faults"),
                    start_s=parse_duration_s(f["start"], "faults.start"),
                    duration_s=parse_duration_s(f.get("duration", 0), "faults.duration"),
                    field=f.get("field"),
                    count=f.get("count"),
                    params=params,
                )
            )
        random_faults = None
        if raw.get("random_faults"):
            rf = raw["random_faults"]
            kinds = tuple(rf.get("kinds") or FAULT_KINDS)
            bad = set(kinds) - set(FAULT_KINDS)
            if bad:
                raise ScenarioError(f"random_faults: unknown kinds {sorted(bad)}")
            random_faults = RandomFaults(float(rf["per_device_per_day"]), kinds)
        formats = {str(k): str(v) for k, v in (raw.get("formats") or {}).items()}
        default_format = str(raw.get("default_format", "json"))
        for fmt in [default_format, *formats.values()]:
            if fmt not in WIRE_FORMATS:
                raise ScenarioError(f"formats: {fmt!r} is not one of {WIRE_FORMATS}")
        duration = raw.get("duration")
        interval = raw.get("interval")
        return Scenario(
            name=str(raw.get("name", name)),
            description=str(raw.get("description", "")).strip(),
            duration_s=None if duration is None else parse_duration_s(duration, "duration"),
            interval_s=None if interval is None else parse_duration_s(interval, "interval"),
            shower_probability=float(raw.get("shower_probability", 0.45)),
            rain=rain,
            haze=haze,
            incidents=incidents,
            faults=tuple(faults),
            random_faults=random_faults,
            default_format=default_format,
            formats=formats,
            batch_size=int(raw.get("batch_size", 5)),
            kinds=tuple(raw.get("kinds") or ("water_level", "environment", "traffic")),
            only=_devices(raw["only"], "only") if raw.get("only") else (),
            start_local_h=_local_hour(raw.get("start_local")),
            start_weekdays=tuple(int(d) for d in raw.get("start_weekdays") or ()),
        )
    except KeyError as exc:
        raise ScenarioError(f"{name}: missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError(f"{name}: {exc}") from None


def scenario_names() -> list[str]:
    """Names of the scenarios shipped with Pantau."""
    folder = resources.files("simulators") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name (`flood-malili`) or any scenario file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text(encoding="utf-8")
        name = path.stem
    else:
        resource = resources.files("simulators") / "scenarios" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ScenarioError(
                f"no scenario {name_or_path!r}; shipped: {', '.join(scenario_names())}"
            )
        text = resource.read_text(encoding="utf-8")
        name = name_or_path
    return parse_scenario(yaml.safe_load(text), name)
