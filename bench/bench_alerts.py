"""Rule evaluation throughput (`python -m bench alerts`): readings/s through `AlertEvaluator`.

In-process, no SQL and no network: batches of one regular SenML pack per device (per-device
`Columns`, which the evaluator concatenates into one `Rows` as the ingester's alert stage
does with a hand-over's blocks), for a fleet of gauges,
air-quality stations and traffic counters with every rule of `alerts/rules.yaml` on. The
readings stay within each device's band (the steady state), plus a run where every gauge
crosses a level in every batch (the slow path, walked reading by reading). Target: at least
1,000,000 readings/s in the steady state.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from alerts.evaluate import AlertEvaluator, Columns, DeviceContext
from alerts.model import DeviceInfo
from alerts.rules import load_rules
from bench.common import write_result

DEVICES = 2_000
ROWS = 100  # readings per device per batch (a SenML pack)
BATCHES = 30
LEVELS = {"level_cm": {"waspada": 250.0, "siaga": 300.0, "awas": 350.0}}


def fleet() -> dict[str, DeviceContext]:
    out = {}
    for i in range(DEVICES):
        kind = ("water_level", "environment", "traffic")[i % 3]
        device_id = f"{kind[:3]}-{i}"
        thresholds = LEVELS if kind == "water_level" else {}
        out[device_id] = DeviceContext(DeviceInfo(device_id, kind), thresholds=thresholds)
    return out


def batches(devices: dict[str, DeviceContext], crossing: bool) -> list[list[Columns]]:
    rng = np.random.default_rng(1)
    out = []
    for b in range(BATCHES):
        ts = 1_796_000_000_000 + (b * ROWS + np.arange(ROWS, dtype=np.int64)) * 60_000
        batch = []
        for device_id, ctx in devices.items():
            kind = ctx.info.kind
            if kind == "water_level":
                base = 320.0 if crossing and b % 2 else 150.0
                fields = {"level_cm": base + rng.normal(0, 1.0, ROWS)}
            elif kind == "environment":
                fields = {
                    "pm25_ugm3": 12 + rng.normal(0, 1.0, ROWS),
                    "pm10_ugm3": 30 + rng.normal(0, 1.0, ROWS),
                    "rainfall_mm": np.zeros(ROWS),
                }
            else:
                fields = {
                    "avg_speed_kmh": 45 + rng.normal(0, 2.0, ROWS),
                    "occupancy_pct": 20 + rng.normal(0, 2.0, ROWS),
                }
            batch.append(Columns(device_id, kind, ts, fields))
        out.append(batch)
    return out


def run(crossing: bool) -> dict[str, Any]:
    devices = fleet()
    evaluator = AlertEvaluator(load_rules(), devices.get)
    work = batches(devices, crossing)
    evaluator.observe(work[0])  # series created, windows warm
    evaluator.take()
    started = time.perf_counter()
    signals = 0
    for batch in work[1:]:
        evaluator.observe(batch)
        signals += len(evaluator.take())
    elapsed = time.perf_counter() - started
    readings = (len(work) - 1) * DEVICES * ROWS
    return {
        "readings": readings,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(readings / elapsed),
        "signals": signals,
    }


def main() -> None:
    steady, crossing = run(crossing=False), run(crossing=True)
    result: dict[str, Any] = {
        "devices": DEVICES,
        "readings_per_device_per_batch": ROWS,
        "rules": sorted(load_rules()),
        "steady": steady,
        "crossing_every_batch": crossing,
        "target_readings_per_s": 1_000_000,
        # The machine is shared: a load far above its cores slows every figure here.
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    result["meets_target"] = steady["readings_per_s"] >= 1_000_000
    path = write_result("alerts", result)
    print(
        f"alerts: steady {steady['readings_per_s']:,} readings/s, "
        f"crossing {crossing['readings_per_s']:,} readings/s -> {path}"
    )


if __name__ == "__main__":
    main()
