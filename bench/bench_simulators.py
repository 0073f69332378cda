"""Simulator throughput at city scale: 10,000 devices, one reading per second each.

1. Generation: the vectorised models alone, and models + faults + encoding (what one tick
   costs), in readings per second, no network.
2. Publishing to a real Mosquitto (started here on a free port, stopped by PID): first in real
   time — 10,000 devices at 1 Hz for `realtime_s` seconds, does the simulator keep up and how
   far does it trail the clock — then flat out (an accelerated replay of the past), the
   sustained QoS 1 rate acknowledged by the broker.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_result
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import free_port
from pantau.settings import MqttSettings
from simulators.runner import Engine, Simulation
from simulators.scenario import load_scenario

DEVICES = 10_000


def generation(devices: int = DEVICES, ticks: int = 10) -> dict[str, Any]:
    scenario = load_scenario("normal-day")
    start = time.time() - 3600
    engine = Engine(scenario, start_s=start, interval_s=1.0, seed=7, devices=devices)
    engine.tick(start)  # warm-up: first-day rain cells, lookup tables
    began = time.perf_counter()
    for k in range(ticks):
        engine.world.sample(start + 1 + k, 1.0)
    models_s = time.perf_counter() - began
    began = time.perf_counter()
    messages = 0
    for k in range(ticks):
        messages += len(engine.tick(start + 1 + ticks + k).messages)
    tick_s = time.perf_counter() - began
    return {
        "devices": devices,
        "ticks": ticks,
        "models_readings_per_s": round(devices * ticks / models_s),
        "tick_readings_per_s": round(devices * ticks / tick_s),
        "tick_messages_per_s": round(messages / tick_s),
        "tick_ms": round(1000 * tick_s / ticks, 1),
    }


def publish(
    server: MosquittoServer, *, speed: float, wall_s: float, connections: int
) -> dict[str, Any]:
    scenario = load_scenario("normal-day")
    start = time.time() - (wall_s * speed if speed > 1 else 0.0)
    sim = Simulation(
        MqttSettings(url=server.url),
        scenario,
        seed=7,
        devices=DEVICES,
        interval_s=1.0,
        speed=speed,
        start_s=start,
        connections=connections,
        client_id=f"bench-sim-{speed:g}",
    )
    began = time.monotonic()
    stats = sim.run(duration_s=wall_s, progress_every_s=1e9)
    elapsed = time.monotonic() - began
    simulated_s = stats.sim_end_s - start + 1.0
    return {
        "speed": speed,
        "connections": connections,
        "wall_s": round(elapsed, 2),
        "simulated_s": round(simulated_s, 1),
        "readings": stats.readings,
        "readings_per_s": round(stats.readings / elapsed),
        "messages": stats.messages,
        "acked": stats.acked,
        "messages_per_s": round(stats.messages / elapsed),
        "acked_per_s": round(stats.acked / elapsed),
        "kept_up": bool(speed > 1 or simulated_s >= 0.95 * elapsed),
    }


def run(realtime_s: float = 20.0, flat_out_s: float = 15.0) -> dict[str, Any]:
    result: dict[str, Any] = {"generation": generation()}
    with tempfile.TemporaryDirectory(prefix="pantau-bench-") as tmp:
        server = MosquittoServer(Path(tmp), free_port())
        server.start()
        try:
            result["realtime_1hz"] = publish(server, speed=1.0, wall_s=realtime_s, connections=2)
            result["flat_out"] = publish(server, speed=1000.0, wall_s=flat_out_s, connections=2)
        finally:
            server.stop()
    return result


def main() -> None:
    write_result("simulators", run())


if __name__ == "__main__":
    main()
