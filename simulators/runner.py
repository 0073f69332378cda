"""Runs a scenario: the engine turns simulated instants into messages, the runner paces them.

`Engine` is the whole simulation without a network: at each tick (every `interval_s` of
simulated time) it samples the world, injects faults, numbers the readings (a sequence number
per device, counting every reading taken, so lost ones leave gaps), stamps them with the
device clock and encodes them in each device's wire format. Tests drive it directly on a
simulated clock, which makes a 12-hour flood a matter of milliseconds.

`Simulation` adds a `SimClock` and an MQTT link: ticks are released at the wall time the
simulated clock reaches them (`speed`x faster than real time, never past now), messages go out
QoS 1, and a progress line is logged every few seconds. When the broker falls behind, the
runner waits for PUBACKs rather than queue without bound, and the lag shows in the progress.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from pantau.settings import MqttSettings
from simulators.clock import LOCAL_TZ, SimClock
from simulators.faults import FaultInjector, TickActions
from simulators.fleet import DeviceSpec
from simulators.geography import Gauge, Town, TrafficSite
from simulators.groundtruth import FloodWatch, GroundTruthLog
from simulators.publisher import DeviceLinks, Link, SharedLinks
from simulators.scenario import Scenario
from simulators.showers import ShowerTarget, ShowerWatch, response_window_s
from simulators.takeover import ClaimedDevices
from simulators.water_level import WaterLevelModel
from simulators.wire import Message, content_type_of, encode, malformed
from simulators.world import KindSample, World

log = logging.getLogger(__name__)

PER_DEVICE_LIMIT = 1000


@dataclass
class TickOutput:
    t_s: float
    samples: list[KindSample]
    messages: list[Message]
    actions: TickActions
    readings: int = 0


@dataclass
class RunStats:
    ticks: int = 0
    readings: int = 0
    messages: int = 0
    acked: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    sim_end_s: float = 0.0


class Engine:
    """Scenario + fleet → messages, tick by tick, with no clock and no network."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        start_s: float,
        interval_s: float,
        seed: int = 7,
        devices: int | None = None,
        topic_prefix: str = "pantau/devices",
        truth: GroundTruthLog | None = None,
    ) -> None:
        self.scenario = scenario
        self.start_s = start_s
        self.interval_s = interval_s
        self.seed = seed
        self.world = World(scenario, start_s, seed, devices)
        self.fleet: list[DeviceSpec] = self.world.fleet
        n = len(self.fleet)
        self.ids = [d.device_id for d in self.fleet]
        self.topics = [f"{topic_prefix}/{i}/telemetry" for i in self.ids]
        self.formats = [d.wire_format for d in self.fleet]
        self.content_types = [content_type_of(f) for f in self.formats]
        self.truth = truth or GroundTruthLog()
        self.injector = FaultInjector(scenario, self.fleet, start_s, seed, interval_s, self.truth)
        gauges = [d for d in self.fleet if d.kind == "water_level"]
        self.flood_watch = FloodWatch(
            [d.device_id for d in gauges],
            [d.base.thresholds for d in gauges if isinstance(d.base, Gauge)],
            self.truth,
        )
        self.shower_watch = ShowerWatch(self.world.rain, self._shower_keys(), start_s, self.truth)
        # Devices do not all read at the same instant: each has its phase in the interval.
        rng = np.random.default_rng([seed, 707])
        self.phase_s = rng.uniform(0.0, 0.5 * interval_s, n).round(3)
        self.seq = np.zeros(n, dtype=np.int64)
        self.buffers: dict[int, list[tuple[int, int, dict[str, float]]]] = {}
        self.stamp_shift_s = 0.0  # added to the device clocks (see Simulation's `present`)
        self.last_t: float | None = None
        self.ticks = 0

    def _shower_keys(self) -> dict[tuple[str, str], list[ShowerTarget]]:
        """Where each rain key's showers are logged: its town's stations, its zone's roads,
        its river's gauges."""
        keys: dict[tuple[str, str], list[ShowerTarget]] = {}
        for d in self.fleet:
            if d.kind == "environment" and isinstance(d.base, Town):
                keys.setdefault((f"town:{d.base.slug}", d.base.rain_zone), []).append(
                    ShowerTarget(d.device_id, "rainfall_mm", "shower", 0.0, 0.0)
                )
            elif d.kind == "traffic" and isinstance(d.base, TrafficSite):
                # rain trims demand and speed on the zone's roads (traffic.py)
                keys.setdefault((f"zone:{d.base.rain_zone}", d.base.rain_zone), []).append(
                    ShowerTarget(d.device_id, "avg_speed_kmh", "shower", 0.0, 0.0)
                )
        model = self.world.models.get("water_level")
        if isinstance(model, WaterLevelModel):
            for i, d in enumerate(model.devices):
                river = model.rivers[int(model.river_of[i])]
                delay, tail = response_window_s(model.lag_h[i], model.storage_h[i], model.area[i])
                keys.setdefault((river.name, river.name), []).append(
                    ShowerTarget(d.device_id, "level_cm", "shower_rise", delay, tail)
                )
        return keys

    def tick(self, t_s: float) -> TickOutput:
        """Everything that happens at simulated instant `t_s`."""
        dt = self.interval_s if self.last_t is None else max(1e-3, t_s - self.last_t)
        self.last_t = t_s
        self.ticks += 1
        samples = self.world.sample(t_s, dt)
        true_ts = t_s - self.phase_s
        for sample in samples:
            if sample.kind == "water_level":
                self.flood_watch.observe(true_ts[sample.index], sample.fields["level_cm"])
        self.shower_watch.observe(t_s)
        actions = self.injector.apply(t_s, true_ts, samples)
        self.seq += 1
        stamped = true_ts + actions.skew_s + self.stamp_shift_s
        ts_ms = np.round(stamped * 1000.0).astype(np.int64).tolist()
        seq = self.seq.tolist()
        silent = actions.silent.tolist()
        duplicate = actions.duplicate.tolist()
        messages: list[Message] = []
        readings = 0
        for sample in samples:
            names = list(sample.fields)
            columns = [sample.fields[name].tolist() for name in names]
            for row, index in enumerate(sample.index.tolist()):
                if silent[index]:
                    continue
                readings += 1
                reading = (
                    ts_ms[index],
                    seq[index],
                    {n: c[row] for n, c in zip(names, columns, strict=True)},
                )
                fmt = self.formats[index]
                if fmt == "batch":
                    buffer = self.buffers.setdefault(index, [])
                    buffer.append(reading)
                    if len(buffer) < self.scenario.batch_size:
                        continue
                    batch, self.buffers[index] = buffer, []
                else:
                    batch = [reading]
                payload = encode(fmt, self.ids[index], batch)
                variant = actions.malformed.get(index)
                if variant is not None:
                    payload = malformed(payload, variant)
                message = Message(index, self.topics[index], payload, self.content_types[index])
                messages.append(message)
                if duplicate[index]:
                    messages.append(message)
        return TickOutput(t_s, samples, messages, actions, readings)

    def close(self) -> None:
        self.injector.close()
        self.flood_watch.close()
        self.shower_watch.close()
        self.truth.close()


class Simulation:
    """An engine on a simulated clock, publishing over MQTT until stopped or done."""

    def __init__(
        self,
        mqtt_settings: MqttSettings,
        scenario: Scenario,
        *,
        seed: int = 7,
        devices: int | None = None,
        interval_s: float = 5.0,
        speed: float = 1.0,
        start_s: float | None = None,
        per_device_connections: bool = False,
        credentials: dict[str, str] | None = None,
        connections: int = 1,
        truth_path: Path | None = None,
        client_id: str = "pantau-simulator",
        max_pending: int = 50_000,
        present: bool = False,
        yield_to: ClaimedDevices | None = None,
    ) -> None:
        """`present`: stamp readings with the wall-clock time they are published at (a
        compressed scenario beside live data, whose newer readings would otherwise make a
        replay's past readings stale); the simulated time still drives the physics and the
        ground-truth log. `yield_to`: leave the devices another simulator claims alone."""
        self.settings = mqtt_settings
        self.scenario = scenario
        self.speed = speed
        self.start_s = time.time() if start_s is None else start_s
        self.engine = Engine(
            scenario,
            start_s=self.start_s,
            interval_s=interval_s,
            seed=seed,
            devices=devices,
            topic_prefix=mqtt_settings.topic_prefix,
            truth=GroundTruthLog(truth_path),
        )
        self.interval_s = interval_s
        self.end_s = None if scenario.duration_s is None else self.start_s + scenario.duration_s
        self.max_pending = max_pending
        self.stop = threading.Event()
        self.link: Link
        if per_device_connections or credentials is not None:
            if len(self.engine.ids) > PER_DEVICE_LIMIT:
                log.warning(
                    "%d per-device connections (one thread each): meant for up to %d",
                    len(self.engine.ids),
                    PER_DEVICE_LIMIT,
                )
            self.link = DeviceLinks(mqtt_settings, self.engine.ids, credentials)
        else:
            self.link = SharedLinks(
                mqtt_settings, self.engine.ids, connections=connections, client_id=client_id
            )
        self.stats = RunStats()
        self.clock = SimClock(self.start_s, speed, capped=not present)
        self.present = present
        self.yield_to = yield_to

    @property
    def fleet(self) -> list[DeviceSpec]:
        return self.engine.fleet

    def run(self, duration_s: float | None = None, progress_every_s: float = 5.0) -> RunStats:
        """Publish until the scenario ends, `duration_s` of wall time passes, or `stop` is set."""
        clock = self.clock = SimClock(self.start_s, self.speed, capped=not self.present)
        wall_started = time.monotonic()
        self.link.start()
        t = self.start_s
        last_report, last_messages = time.monotonic(), 0
        try:
            while not self.stop.is_set():
                if self.end_s is not None and t > self.end_s:
                    break
                if duration_s is not None and time.monotonic() - wall_started >= duration_s:
                    break
                wait = clock.wall_at(t) - time.time()
                if wait > 0 and self.stop.wait(wait):
                    break
                if self.present:
                    self.engine.stamp_shift_s = time.time() - t
                out = self.engine.tick(t)
                for index, state in out.actions.status:
                    self.link.set_status(index, state)
                if out.actions.bounce:
                    self.link.bounce(out.actions.bounce)
                messages = out.messages
                if self.yield_to is not None:
                    claimed = self.yield_to.current()
                    if claimed:
                        ids = self.engine.ids
                        messages = [m for m in messages if ids[m.device_index] not in claimed]
                self.link.publish(messages)
                self.stats.ticks += 1
                self.stats.readings += out.readings
                self.stats.messages += len(out.messages)
                self.stats.sim_end_s = t
                while self.link.pending > self.max_pending and not self.stop.is_set():
                    time.sleep(0.01)
                now = time.monotonic()
                if now - last_report >= progress_every_s:
                    self._progress(t, (self.stats.messages - last_messages) / (now - last_report))
                    last_report, last_messages = now, self.stats.messages
                t += self.interval_s
        finally:
            self.engine.close()
            self.link.stop()
            self.stats.acked = self.link.acked
            self.stats.faults = {k: v for k, v in self.engine.injector.injected.items() if v}
        return self.stats

    def _progress(self, t_s: float, rate: float) -> None:
        lag = self.clock.now_s() - t_s  # how far the published readings trail the sim clock
        log.info(
            "simulate sim_time=%s devices=%d messages=%d msg_per_s=%.0f pending_acks=%d "
            "faults_injected=%d lag_s=%.1f",
            datetime.fromtimestamp(t_s, LOCAL_TZ).isoformat(timespec="seconds"),
            len(self.engine.fleet),
            self.stats.messages,
            rate,
            self.link.pending,
            self.engine.injector.injected_total,
            max(0.0, lag),
        )
