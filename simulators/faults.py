"""Fault injection: sensor faults on the values, link faults on the messages, all logged.

Value faults change what a sensor reports: `spike` (one reading jumps by `magnitude`),
`drift` (an offset growing by `rate_per_h`), `stuck` (the value, or every value when no
field is named, freezes). Message faults change what reaches the broker: `dropout` (the link
is down: readings are taken but lost, status goes `offline`, then `online`), `clock_skew`
(the device clock is `offset_s` off), `duplicate` (messages sent twice, with `probability`),
`malformed` (bad JSON, wrong types, NaN, oversized payloads; `variant`), `reconnect_storm`
(connections dropped again and again). Faults come from the scenario, and for large fleets
also at random (`random_faults`, drawn per simulated day). Each one, and each scenario event,
lands in the ground-truth log with the true times of the readings it touched.
"""

from __future__ import annotations

import bisect
import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from devices.catalog import default_catalog
from simulators.clock import DAY_S
from simulators.fleet import DeviceSpec, match_devices
from simulators.groundtruth import GroundTruthLog, TruthEntry
from simulators.scenario import (
    FAULT_KINDS,
    MALFORMED_VARIANTS,
    FaultSpec,
    Scenario,
    ScenarioError,
)
from simulators.world import KindSample

VALUE_FAULTS = ("spike", "drift", "stuck")
DEFAULT_FIELD = {"water_level": "level_cm", "environment": "pm25_ugm3", "traffic": "vehicle_count"}
RANDOM_FIELDS = {
    "water_level": ("level_cm",),
    "environment": ("temperature_c", "humidity_pct", "pm25_ugm3", "pressure_hpa"),
    "traffic": ("vehicle_count", "avg_speed_kmh", "occupancy_pct"),
}
SPIKE_SIZE = {
    "level_cm": 90.0,
    "flow_m3s": 150.0,
    "temperature_c": 14.0,
    "humidity_pct": -35.0,
    "rainfall_mm": 25.0,
    "pressure_hpa": -30.0,
    "pm25_ugm3": 350.0,
    "pm10_ugm3": 500.0,
    "vehicle_count": 120.0,
    "avg_speed_kmh": -35.0,
    "occupancy_pct": 45.0,
    "battery_v": -3.0,
    "rssi_dbm": -30.0,
}
DRIFT_PER_H = {k: v / 12.0 for k, v in SPIKE_SIZE.items()}
RANDOM_DURATION_S = {
    "spike": (0.0, 0.0),
    "drift": (2 * 3600.0, 8 * 3600.0),
    "stuck": (1800.0, 3 * 3600.0),
    "dropout": (300.0, 3600.0),
    "clock_skew": (600.0, 3600.0),
    "duplicate": (300.0, 1800.0),
    "malformed": (60.0, 600.0),
    "reconnect_storm": (60.0, 180.0),
}


@dataclass
class Fault:
    kind: str
    device_index: int
    device_id: str
    field: str | None
    start_s: float
    end_s: float  # exclusive; a spike lasts one reading
    params: dict[str, Any]
    category: str = "fault"
    first_ts: float | None = None
    last_ts: float | None = None
    frozen: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass
class TickActions:
    """What the link layer must do this tick, per fleet index."""

    silent: np.ndarray  # bool: dropout, send nothing
    duplicate: np.ndarray  # bool: send the message twice
    skew_s: np.ndarray  # float: device clock error
    malformed: dict[int, str] = dataclasses.field(default_factory=dict)  # fleet index → variant
    status: list[tuple[int, str]] = dataclasses.field(
        default_factory=list
    )  # (fleet index, online/offline)
    bounce: list[int] = dataclasses.field(default_factory=list)  # connections to drop now


class FaultInjector:
    def __init__(
        self,
        scenario: Scenario,
        fleet: list[DeviceSpec],
        start_s: float,
        seed: int,
        interval_s: float,
        log: GroundTruthLog,
    ) -> None:
        self.fleet = fleet
        self.start_s = start_s
        self.interval_s = interval_s
        self.log = log
        self.random = scenario.random_faults
        self.seed = seed
        self.rng = np.random.default_rng([seed, 505])
        self.catalog = default_catalog()
        self.pending: list[Fault] = []  # sorted by start
        self.active: list[Fault] = []
        self.injected: dict[str, int] = {k: 0 for k in FAULT_KINDS}
        self.days_drawn = 0
        self._where: dict[int, tuple[str, int]] = {}
        for spec in scenario.faults:
            self._add_spec(spec)
        self._add_events(scenario)
        self.pending.sort(key=lambda f: f.start_s)

    # -- schedule ---------------------------------------------------------------------------

    def _add_spec(self, spec: FaultSpec) -> None:
        matches = match_devices(self.fleet, spec.devices)
        if not matches:
            raise ScenarioError(f"faults: {spec.kind} matches no device of {spec.devices}")
        if spec.count is not None and spec.count < len(matches):
            rng = np.random.default_rng([self.seed, zlib.crc32(repr(spec).encode())])
            picked = sorted(rng.choice(len(matches), spec.count, replace=False))
            matches = [matches[i] for i in picked]
        for device in matches:
            name = spec.field
            if spec.kind in VALUE_FAULTS and name is None and spec.kind != "stuck":
                name = DEFAULT_FIELD[device.kind]
            if name is not None and self.catalog.field(device.kind, name) is None:
                raise ScenarioError(f"faults: {device.device_id} has no field {name!r}")
            start = self.start_s + spec.start_s
            duration = spec.duration_s if spec.duration_s > 0 else self.interval_s
            self._schedule(
                Fault(
                    spec.kind,
                    device.index,
                    device.device_id,
                    name,
                    start,
                    start + duration,
                    dict(spec.params),
                )
            )

    def _schedule(self, fault: Fault) -> None:
        bisect.insort(self.pending, fault, key=lambda f: f.start_s)

    def _add_events(self, scenario: Scenario) -> None:
        ids = {d.device_id: d for d in self.fleet}
        for incident in scenario.incidents:
            device = ids.get(incident.device)
            if device is None:
                continue
            start = self.start_s + incident.start_s
            self._schedule(
                Fault(
                    "incident",
                    device.index,
                    device.device_id,
                    "avg_speed_kmh",
                    start,
                    start + incident.duration_s,
                    {"name": incident.name, "capacity_factor": incident.capacity_factor},
                    category="event",
                )
            )
        for haze in scenario.haze:
            start = self.start_s + haze.start_s
            for device in self.fleet:
                town = getattr(device.base, "slug", "")
                if device.kind == "environment" and (not haze.towns or town in haze.towns):
                    self._schedule(
                        Fault(
                            "haze",
                            device.index,
                            device.device_id,
                            "pm25_ugm3",
                            start,
                            start + haze.duration_s,
                            {"pm25_ugm3": haze.pm25_ugm3},
                            category="event",
                        )
                    )
        for rain in scenario.rain:
            start = self.start_s + rain.start_s
            for device in self.fleet:
                zone = getattr(device.base, "rain_zone", None)
                if device.kind == "environment" and zone == rain.zone:
                    self._schedule(
                        Fault(
                            "rain",
                            device.index,
                            device.device_id,
                            "rainfall_mm",
                            start,
                            start + rain.duration_s,
                            {"name": rain.name, "intensity_mm_h": rain.intensity_mm_h},
                            category="event",
                        )
                    )

    def _draw_random(self, day: int) -> None:
        """Random faults of simulated day `day` of the run (for large fleets)."""
        assert self.random is not None
        rng = np.random.default_rng([self.seed, 606, day])
        day_start = self.start_s + day * DAY_S
        counts = rng.poisson(self.random.per_device_per_day, len(self.fleet))
        for index in np.repeat(np.arange(len(self.fleet)), counts):
            device = self.fleet[int(index)]
            kind = str(rng.choice(self.random.kinds))
            low, high = RANDOM_DURATION_S[kind]
            start = day_start + float(rng.uniform(0.0, DAY_S))
            duration = float(rng.uniform(low, high)) or self.interval_s
            name = (
                str(rng.choice(RANDOM_FIELDS[device.kind]))
                if kind in ("spike", "drift", "stuck")
                else None
            )
            params: dict[str, Any] = {}
            if kind == "clock_skew":
                params["offset_s"] = float(rng.choice([-3600.0, -120.0, 45.0, 900.0]))
            elif kind == "malformed":
                params["variant"] = str(rng.choice(MALFORMED_VARIANTS))
            elif kind == "spike" and name is not None:
                params["magnitude"] = SPIKE_SIZE[name] * float(rng.uniform(0.6, 1.4))
            self._schedule(
                Fault(kind, device.index, device.device_id, name, start, start + duration, params)
            )

    # -- per tick ---------------------------------------------------------------------------

    def apply(self, t_s: float, ts_s: np.ndarray, samples: list[KindSample]) -> TickActions:
        """Change `samples` in place for value faults; say what the link layer must do."""
        n = len(self.fleet)
        actions = TickActions(np.zeros(n, bool), np.zeros(n, bool), np.zeros(n))
        if self.random is not None:
            while self.days_drawn * DAY_S <= t_s - self.start_s + self.interval_s:
                self._draw_random(self.days_drawn)
                self.days_drawn += 1
        while self.pending and self.pending[0].start_s <= t_s:
            fault = self.pending.pop(0)
            if fault.end_s <= t_s:  # wholly between two ticks: touched no reading
                continue
            self.active.append(fault)
            if fault.category == "fault":
                self.injected[fault.kind] += 1
            if fault.kind == "dropout":
                actions.status.append((fault.device_index, "offline"))
        if not self._where:
            for sample in samples:
                for row, index in enumerate(sample.index.tolist()):
                    self._where[index] = (sample.kind, row)
        by_kind = {sample.kind: sample for sample in samples}
        still = []
        for fault in self.active:
            if fault.end_s <= t_s:
                self._close(fault)
                if fault.kind == "dropout":
                    actions.status.append((fault.device_index, "online"))
                continue
            still.append(fault)
            kind, row = self._where[fault.device_index]
            sample = by_kind[kind]
            values = sample.fields.get(fault.field) if fault.field else None
            if values is not None and np.isnan(values[row]) and fault.kind != "stuck":
                continue  # nothing reported this time (no speed without vehicles): untouched
            ts = float(ts_s[fault.device_index])
            fault.first_ts = ts if fault.first_ts is None else fault.first_ts
            fault.last_ts = ts
            self._apply_one(fault, t_s, sample, row, actions)
        self.active = still
        return actions

    def _apply_one(
        self, fault: Fault, t_s: float, sample: KindSample, row: int, actions: TickActions
    ) -> None:
        index = fault.device_index
        kind = fault.kind
        if kind == "spike" and fault.field in sample.fields:
            size = float(fault.params.get("magnitude", SPIKE_SIZE.get(fault.field, 50.0)))
            values = sample.fields[fault.field]
            values[row] = (
                max(0.0, values[row] + size) if fault.field != "level_cm" else (values[row] + size)
            )
        elif kind == "drift" and fault.field in sample.fields:
            rate = float(fault.params.get("rate_per_h", DRIFT_PER_H.get(fault.field, 1.0)))
            sample.fields[fault.field][row] += rate * (t_s - fault.start_s) / 3600.0
        elif kind == "stuck":
            names = (
                [fault.field]
                if fault.field
                else [n for n in sample.fields if n not in ("battery_v", "rssi_dbm")]
            )
            for name in names:
                if name not in fault.frozen:
                    fault.frozen[name] = float(sample.fields[name][row])
                sample.fields[name][row] = fault.frozen[name]
        elif kind == "dropout":
            actions.silent[index] = True
        elif kind == "clock_skew":
            actions.skew_s[index] = float(fault.params.get("offset_s", 900.0))
        elif kind == "duplicate":
            actions.duplicate[index] = self.rng.random() < float(
                fault.params.get("probability", 1.0)
            )
        elif kind == "malformed":
            variant = str(fault.params.get("variant", "mixed"))
            if variant == "mixed":
                variant = MALFORMED_VARIANTS[int(self.rng.integers(len(MALFORMED_VARIANTS)))]
            actions.malformed[index] = variant
        elif kind == "reconnect_storm":
            actions.bounce.append(index)

    def _close(self, fault: Fault) -> None:
        if fault.first_ts is None or fault.last_ts is None:
            return
        detail = {k: v for k, v in fault.params.items() if isinstance(v, str | int | float)}
        self.log.record(
            TruthEntry(
                fault.device_id,
                fault.field,
                fault.first_ts,
                fault.last_ts,
                fault.kind,
                fault.category,
                detail,
            )
        )

    def close(self) -> None:
        """The run stopped: log what was active, cut at the last reading it touched."""
        for fault in self.active:
            self._close(fault)
        self.active = []

    @property
    def injected_total(self) -> int:
        return sum(self.injected.values())
