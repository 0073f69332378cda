"""Detection quality on simulated faults: recall per fault kind and precision, against the
simulator's ground-truth log.

The `city-scale` scenario (random spikes, drift, stuck sensors, dropouts, ... on every device)
is played offline for `PANTAU_BENCH_FAULT_HOURS` simulated hours; every message goes through
the real decode and validate stages and the real `DetectionStage`. A fault window counts as
detected when an anomaly event for its device (and field, when the fault names one) falls in
[start, end + grace]. An event counts as true when it falls in any ground-truth window of its
device — an injected fault or a natural event (flood levels, rain, haze, incidents), which an
operator also wants flagged. Faults starting during the detector's warm-up are left out.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

from bench.common import write_result
from devices.catalog import default_catalog
from ingest.decode import decode_payload
from ingest.detect import DetectionStage
from ingest.model import Reading, RejectedError
from ingest.validate import TopicParser, Validator
from pantau.settings import DetectSettings
from simulators.runner import Engine
from simulators.scenario import load_scenario

KINDS = ("spike", "drift", "stuck", "dropout")
GRACE_S = 600.0


def run(hours: float, devices: int, interval_s: float, seed: int) -> dict[str, Any]:
    scenario = load_scenario("city-scale")
    start_s = time.time() - hours * 3600 - 3600
    engine = Engine(scenario, start_s=start_s, interval_s=interval_s, seed=seed, devices=devices)
    catalog = default_catalog()
    validator = Validator(catalog, future_tolerance_s=300, retention_days=400)
    topics = TopicParser("pantau/devices")
    threshold = DetectSettings().threshold
    stage = DetectionStage(catalog, threshold=threshold, max_events=10_000_000)
    rejected = 0
    readings_total = 0
    t = start_s
    started = time.perf_counter()
    while t < start_s + hours * 3600:
        out = engine.tick(t)
        batch: list[Reading] = []
        received_ms = int(t * 1000) + 500
        for message in out.messages:
            try:
                device_id, channel = topics.parse(message.topic)
                if channel != "telemetry":
                    continue
                records = decode_payload(message.payload, message.content_type)
                batch.extend(validator.validate(device_id, records, received_ms))
            except RejectedError:
                rejected += 1
        readings_total += len(batch)
        stage.process(batch)
        t += interval_s
    elapsed = time.perf_counter() - started
    engine.close()
    warmup_end_s = start_s + stage.engine.config.warmup * interval_s
    windows = [e for e in engine.truth.entries if e.start_s >= warmup_end_s]
    faults = [e for e in windows if e.category == "fault" and e.kind in KINDS]
    events_by_device: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for event in stage.events:
        events_by_device[event.device_id].append((event.ts_ms / 1000, event.field))
    per_kind: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        of_kind = [f for f in faults if f.kind == kind]
        hit = sum(
            any(
                f.start_s - 1.0 <= ts <= f.end_s + GRACE_S  # device times are whole ms
                and (f.field is None or f.field == field)
                for ts, field in events_by_device.get(f.device, [])
            )
            for f in of_kind
        )
        per_kind[kind] = {
            "windows": len(of_kind),
            "detected": hit,
            "recall": round(hit / len(of_kind), 3) if of_kind else float("nan"),
        }
    scored_events = [e for e in stage.events if e.ts_ms / 1000 >= warmup_end_s]
    by_device_windows: dict[str, list[Any]] = defaultdict(list)
    for w in windows:
        by_device_windows[w.device].append(w)
    true_events = 0
    matched_kind: dict[str, int] = defaultdict(int)
    for event in scored_events:
        ts = event.ts_ms / 1000
        match = next(
            (
                w
                for w in by_device_windows.get(event.device_id, [])
                if w.start_s - GRACE_S <= ts <= w.end_s + GRACE_S
            ),
            None,
        )
        if match is not None:
            true_events += 1
            matched_kind[match.kind] += 1
    precision = true_events / len(scored_events) if scored_events else float("nan")
    return {
        "scenario": "city-scale",
        "simulated_hours": hours,
        "devices": devices,
        "interval_s": interval_s,
        "threshold": threshold,
        "readings": readings_total,
        "rejected_messages": rejected,
        "seconds": round(elapsed, 1),
        "recall_by_fault_kind": per_kind,
        "events_after_warmup": len(scored_events),
        "precision": round(precision, 3),
        "true_events_by_window_kind": dict(matched_kind),
        "note": "dropouts leave no readings to score: a liveness check, not the detector, "
        "is what reports a silent device",
    }


def main() -> None:
    write_result(
        "detect_faults",
        run(
            hours=float(os.environ.get("PANTAU_BENCH_FAULT_HOURS", "48")),
            devices=int(os.environ.get("PANTAU_BENCH_FAULT_DEVICES", "200")),
            interval_s=float(os.environ.get("PANTAU_BENCH_FAULT_INTERVAL_S", "60")),
            seed=int(os.environ.get("PANTAU_BENCH_FAULT_SEED", "11")),
        ),
    )


if __name__ == "__main__":
    main()
