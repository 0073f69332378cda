"""The simulated world of a run: the fleet, one vectorised model per kind, battery and radio.

`World.sample(t, dt)` returns what every device measures at simulated time t (dt since the
previous reading): per kind, the fleet indices of its devices and one numpy array per catalog
field. NaN means "not reported this time" (no discharge at an estuary gauge, no speed when no
vehicle passed). The world knows nothing of faults, wire formats or MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.environment import EnvironmentModel
from simulators.fleet import DeviceSpec, build_fleet
from simulators.power import PowerModel
from simulators.rain import RainField
from simulators.scenario import Scenario
from simulators.traffic import TrafficModel
from simulators.water_level import WaterLevelModel


@dataclass
class KindSample:
    """Readings of every device of one kind at one instant."""

    kind: str
    index: np.ndarray  # fleet indices of the devices, in the order of the arrays
    fields: dict[str, np.ndarray]


class World:
    def __init__(
        self,
        scenario: Scenario,
        start_s: float,
        seed: int,
        devices: int | None = None,
        fleet: list[DeviceSpec] | None = None,
    ) -> None:
        self.scenario = scenario
        self.start_s = start_s
        self.seed = seed
        self.fleet = fleet if fleet is not None else build_fleet(scenario, devices, seed)
        self.rain = RainField(seed, start_s, scenario.rain, scenario.shower_probability)
        by_kind: dict[str, list[DeviceSpec]] = {}
        for d in self.fleet:
            by_kind.setdefault(d.kind, []).append(d)
        self.index = {k: np.array([d.index for d in v], dtype=np.int64) for k, v in by_kind.items()}
        self.models: dict[str, WaterLevelModel | EnvironmentModel | TrafficModel] = {}
        if "water_level" in by_kind:
            self.models["water_level"] = WaterLevelModel(by_kind["water_level"], self.rain, seed)
        if "environment" in by_kind:
            self.models["environment"] = EnvironmentModel(
                by_kind["environment"], self.rain, seed, start_s, scenario.haze
            )
        if "traffic" in by_kind:
            self.models["traffic"] = TrafficModel(
                by_kind["traffic"], self.rain, seed, start_s, scenario.incidents
            )
        self.power = PowerModel(len(self.fleet), seed, start_s)
        self.rain_mm_h = np.zeros(len(self.fleet))

    def sample(self, t_s: float, dt_s: float) -> list[KindSample]:
        samples = []
        for kind, model in self.models.items():
            fields = model.sample(t_s, dt_s)
            self.rain_mm_h[self.index[kind]] = model.rain_mm_h
            samples.append(KindSample(kind, self.index[kind], fields))
        power = self.power.sample(t_s, dt_s, self.rain_mm_h)
        for sample in samples:
            for name, values in power.items():
                sample.fields[name] = values[sample.index]
        return samples
