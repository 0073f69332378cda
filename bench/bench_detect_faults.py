"""Detection quality on simulated faults: recall per fault kind and precision, against the
simulator's ground-truth log.

The `city-scale` scenario (random spikes, drift, stuck sensors, dropouts, ... on every device)
is played offline for `PANTAU_BENCH_FAULT_HOURS` simulated hours; every message goes through
the real decode and validate stages and the real `DetectionStage`. A fault window counts as
detected when an anomaly event for its device (and field, when the fault names one) falls in
[start, end + grace]. An event counts as true when it falls in any ground-truth window of its
device — an injected fault or a natural event (flood levels, rain, haze, incidents), which an
operator also wants flagged. Faults starting during the detector's warm-up are left out.
The everyday showers are in the log too (`shower`, `shower_rise`: simulators/showers.py);
since whether an operator wants those flagged is a judgement, precision is also reported as
if they were not events (`precision_no_showers`), and both per event threshold, with the
spike/drift/stuck recall at each, from the same run.
"""

from __future__ import annotations

import dataclasses
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
START_S = 1_793_548_800.0  # 2026-11-02 00:00 WITA, a Monday
SHOWER_KINDS = ("shower", "shower_rise")  # everyday rain (simulators/showers.py)
THRESHOLDS = (0.6, 0.7, 0.8, 0.9)  # event thresholds reported from the same run
GRACE_S = 600.0
FLOOD_LEAD_S = 7200.0  # a flood window opens when the level crosses a warning level; the
# rise from the rain to Waspada takes 1.5-2.5 h on these rivers, and an alert on that rise up
# to two hours before Waspada is an early warning, not a false alarm


# a flood window names level_cm, but the gauge's flow (from the level by its rating curve)
# is the same flood: an event on either field of the gauge detects it. One flood alerts once
# (the detector holds its repeats), so a Siaga or Awas window counts as detected when the
# flood was flagged from its rise on: the window's reach starts at the lead before the
# flood's first (Waspada) window on that gauge.


def _reach(windows: list[Any]) -> dict[int, float]:
    """Earliest time an event may fall in for each window (id -> s) to count for it."""
    reach: dict[int, float] = {}
    floods = [w for w in windows if w.kind.startswith("flood_")]
    for w in windows:
        if not w.kind.startswith("flood_"):
            reach[id(w)] = w.start_s - 1.0
            continue
        opened = min(
            x.start_s
            for x in floods
            if x.device == w.device and x.start_s <= w.start_s <= x.end_s + GRACE_S
        )
        reach[id(w)] = opened - FLOOD_LEAD_S
    return reach


def run(
    hours: float,
    devices: int | None,
    interval_s: float,
    seed: int,
    scenario_name: str = "city-scale",
    prime_hours: float = 0.0,
) -> dict[str, Any]:
    """Play `scenario_name` offline through decode, validate and `DetectionStage`.

    Windows of the ground-truth log that start after the detector's warm-up are the labels.
    Recall per window kind (faults and logged events); precision over all events after the
    warm-up, where an event is true when it falls in any logged window of its device (a
    fault, or a logged event such as a flood level or haze); the false ones are broken
    down by field, so it shows what the detector fires on that nobody logged.
    """
    scenario = load_scenario(scenario_name)
    if scenario.duration_s is not None:
        hours = min(hours, scenario.duration_s / 3600.0)
    if prime_hours > 0.0:
        # the gauges get `prime_hours` of ordinary life before the scenario's events, as a
        # gauge in service has: a detector cannot call a flood new on a gauge's first hour
        p = prime_hours * 3600.0

        def later(items: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(dataclasses.replace(e, start_s=e.start_s + p) for e in items)

        scenario = dataclasses.replace(
            scenario,
            rain=later(scenario.rain),
            haze=later(scenario.haze),
            incidents=later(scenario.incidents),
            faults=later(scenario.faults),
        )
        hours += prime_hours
    # A fixed start (Monday 2026-11-02 00:00 WITA), so a run is reproducible: the hour of day
    # the city starts at and the days' rain draws do not follow the wall clock.
    start_s = START_S
    kwargs: dict[str, Any] = {} if devices is None else {"devices": devices}
    engine = Engine(scenario, start_s=start_s, interval_s=interval_s, seed=seed, **kwargs)
    catalog = default_catalog()
    validator = Validator(catalog, future_tolerance_s=300, retention_days=100_000)
    topics = TopicParser("pantau/devices")
    threshold = DetectSettings().threshold
    stage = DetectionStage(catalog, threshold=threshold, max_events=10_000_000)
    rejected = 0
    readings_total = 0
    max_score: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
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
        for reading in batch:
            if reading.kind == "water_level" and reading.anomaly_score is not None:
                max_score[(reading.device_id, "level_cm")].append(
                    (reading.ts_ms / 1000, reading.anomaly_score)
                )
        t += interval_s
    elapsed = time.perf_counter() - started
    engine.close()
    warmup_end_s = start_s + stage.engine.config.warmup * interval_s
    windows = [e for e in engine.truth.entries if e.start_s >= warmup_end_s]
    reach = _reach(windows)
    events_by_device: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for event in stage.events:
        events_by_device[event.device_id].append((event.ts_ms / 1000, event.field))
    per_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({w.kind for w in windows} | set(KINDS)):
        of_kind = [w for w in windows if w.kind == kind]
        hit = sum(
            any(
                reach[id(w)] <= ts <= w.end_s + GRACE_S  # device times are whole ms
                and (w.field is None or w.field == field or w.kind.startswith("flood_"))
                for ts, field in events_by_device.get(w.device, [])
            )
            for w in of_kind
        )
        # detected while the fault lasts, not only by the step back when it ends (a drifting
        # sensor that is repaired or reset jumps back to the truth: that step is easy to see)
        during = sum(
            any(
                w.start_s - 1.0 <= ts < w.end_s - interval_s
                and (w.field is None or w.field == field)
                for ts, field in events_by_device.get(w.device, [])
            )
            for w in of_kind
            if w.end_s - w.start_s > interval_s
        )
        lasting = sum(w.end_s - w.start_s > interval_s for w in of_kind)
        scores = [
            s
            for w in of_kind
            if w.category == "event" and w.field in (None, "level_cm")
            for ts, s in max_score.get((w.device, "level_cm"), [])
            if reach[id(w)] <= ts <= w.end_s  # the rise before the level too
        ]
        per_kind[kind] = {
            "category": of_kind[0].category if of_kind else "fault",
            "windows": len(of_kind),
            "detected": hit,
            "recall": round(hit / len(of_kind), 3) if of_kind else None,
            **({"recall_during": round(during / lasting, 3)} if lasting else {}),
            **({"max_level_score": round(max(scores), 3)} if scores else {}),
        }
    scored_events = [e for e in stage.events if e.ts_ms / 1000 >= warmup_end_s]
    events_of: dict[str, list[Any]] = defaultdict(list)
    for event in stage.events:
        events_of[event.device_id].append(event)
    by_device_windows: dict[str, list[Any]] = defaultdict(list)
    for w in windows:
        by_device_windows[w.device].append(w)

    def window_of(event: Any, kinds_out: tuple[str, ...] = ()) -> Any:
        ts = event.ts_ms / 1000
        return next(
            (
                w
                for w in by_device_windows.get(event.device_id, [])
                if w.kind not in kinds_out
                and min(w.start_s - GRACE_S, reach[id(w)]) <= ts <= w.end_s + GRACE_S
            ),
            None,
        )

    true_events = 0
    matched_kind: dict[str, int] = defaultdict(int)
    false_by_field: dict[str, int] = defaultdict(int)
    for event in scored_events:
        match = window_of(event)
        if match is not None:
            true_events += 1
            matched_kind[match.kind] += 1
        else:
            false_by_field[f"{event.kind}/{event.field}"] += 1
    precision = true_events / len(scored_events) if scored_events else float("nan")
    # the same events when the everyday showers are not counted as events (the stricter view)
    no_showers = sum(window_of(e, SHOWER_KINDS) is not None for e in scored_events)
    precision_no_showers = no_showers / len(scored_events) if scored_events else float("nan")
    by_threshold: dict[str, dict[str, Any]] = {}
    for th in THRESHOLDS:
        over = [e for e in scored_events if e.score >= th]
        recall: dict[str, float | None] = {}
        for kind in ("spike", "drift", "stuck"):
            of_kind = [w for w in windows if w.kind == kind]
            hit = sum(
                any(
                    w.start_s - 1.0 <= e.ts_ms / 1000 <= w.end_s + GRACE_S
                    and (w.field is None or w.field == e.field)
                    and e.score >= th
                    for e in events_of.get(w.device, [])
                )
                for w in of_kind
            )
            recall[kind] = round(hit / len(of_kind), 3) if of_kind else None
        n = len(over)
        by_threshold[f"{th:g}"] = {
            "events": n,
            "precision": round(sum(window_of(e) is not None for e in over) / n, 3) if n else None,
            "precision_no_showers": round(
                sum(window_of(e, SHOWER_KINDS) is not None for e in over) / n, 3
            )
            if n
            else None,
            "recall": recall,
        }
    fault_events = sum(matched_kind[k] for k in KINDS)
    return {
        "scenario": scenario_name,
        "simulated_hours": hours,
        "primed_hours": prime_hours,
        "devices": len(engine.ids),
        "interval_s": interval_s,
        "threshold": threshold,
        "warmup_readings": stage.engine.config.warmup,
        "readings": readings_total,
        "rejected_messages": rejected,
        "seconds": round(elapsed, 1),
        "by_window_kind": per_kind,
        "events_after_warmup": len(scored_events),
        "precision": round(precision, 3),
        "precision_no_showers": round(precision_no_showers, 3),
        "by_event_threshold": by_threshold,
        "true_events_by_window_kind": dict(matched_kind),
        "false_events_by_field": dict(sorted(false_by_field.items(), key=lambda kv: -kv[1])),
        "events_in_spike_drift_stuck_dropout_windows": fault_events,
        "note": "dropouts leave no readings to score: the alert rules' no-data check, not the "
        "detector, reports a silent device",
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{result['scenario']}: {result['devices']} devices, {result['simulated_hours']:g} h "
        f"at {result['interval_s']:g} s, threshold {result['threshold']}, "
        f"{result['events_after_warmup']} events after warm-up, precision {result['precision']}"
    )
    print(f"  {'window kind':<16}{'category':<10}{'windows':>8}{'detected':>9}{'recall':>8}")
    for kind, row in result["by_window_kind"].items():
        if not row["windows"]:
            continue
        recall = "-" if row["recall"] is None else f"{row['recall']:.2f}"
        extra = f"  max level score {row['max_level_score']}" if "max_level_score" in row else ""
        if "recall_during" in row and kind in ("drift", "stuck"):
            extra += f"  (before it ended: {row['recall_during']:.2f})"
        print(
            f"  {kind:<16}{row['category']:<10}{row['windows']:>8}{row['detected']:>9}"
            f"{recall:>8}{extra}"
        )
    print(f"  precision if showers were not events: {result['precision_no_showers']}")
    for th, row in result["by_event_threshold"].items():
        print(
            f"  events >= {th}: {row['events']}, precision {row['precision']} "
            f"(no showers {row['precision_no_showers']}), recall {row['recall']}"
        )
    if result["false_events_by_field"]:
        print(f"  false events by field: {result['false_events_by_field']}")


def main() -> None:
    result = run(
        hours=float(os.environ.get("PANTAU_BENCH_FAULT_HOURS", "48")),
        devices=int(os.environ.get("PANTAU_BENCH_FAULT_DEVICES", "200")),
        interval_s=float(os.environ.get("PANTAU_BENCH_FAULT_INTERVAL_S", "60")),
        seed=int(os.environ.get("PANTAU_BENCH_FAULT_SEED", "11")),
    )
    print_table(result)
    write_result("detect_faults", result)


if __name__ == "__main__":
    main()
