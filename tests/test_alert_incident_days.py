"""The `incident` rule on the rush-hour-accident scenario over several fixed weekdays.

The simulated traffic of one seed differs from date to date, so one run
through the real pipeline (tests/test_alerts_pipeline.py, whose start is the latest weekday
before the test runs) sees one day. Here the scenario's own engine (no network, no clock)
feeds the evaluator minute by minute for fixed dates, among them 2026-11-06, the slowest
detection found in a sweep of 30 weekdays: both blockages are found on every day, within
20 minutes and while they last, and no other counter ever raises an incident."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from alerts.evaluate import AlertEvaluator, Columns, DeviceContext
from alerts.model import DeviceInfo
from alerts.rules import load_rules
from simulators.fleet import simulated_devices
from simulators.runner import Engine
from simulators.scenario import Scenario, parse_scenario

REPO = Path(__file__).resolve().parents[1]
WITA = ZoneInfo("Asia/Makassar")
STEP_S = 60.0


def _scenario() -> Scenario:
    raw = yaml.safe_load((REPO / "simulators/scenarios/rush-hour-accident.yaml").read_text())
    raw["kinds"] = ["traffic"]
    return parse_scenario(raw, "rush-hour-accident")


@pytest.mark.parametrize("day", ["2026-10-05", "2026-10-14", "2026-10-29", "2026-11-06"])
def test_each_blockage_raises_one_incident_and_no_other_counter_does(day: str) -> None:
    scenario = _scenario()
    start = datetime.fromisoformat(f"{day}T05:00").replace(tzinfo=WITA).timestamp()
    engine = Engine(scenario, start_s=start, interval_s=STEP_S)
    devices = {
        d.id: DeviceContext(DeviceInfo(d.id, d.kind, d.site, d.district), thresholds=d.thresholds)
        for d in simulated_devices(scenario)
    }
    evaluator = AlertEvaluator(load_rules(), devices.get)
    changes: dict[str, list[tuple[float, int]]] = {}
    assert scenario.duration_s is not None
    for k in range(int(scenario.duration_s / STEP_S)):
        t = start + k * STEP_S
        columns = [
            Columns(
                engine.ids[index],
                "traffic",
                np.array([round(t * 1000)], np.int64),
                {name: values[row : row + 1] for name, values in sample.fields.items()},
            )
            for sample in engine.tick(t).samples
            if sample.kind == "traffic"
            for row, index in enumerate(sample.index.tolist())
        ]
        evaluator.observe(columns)
        for signal in evaluator.take():
            if signal.rule == "incident":
                changes.setdefault(signal.device.device_id, []).append(
                    (t - start, signal.level_rank)
                )
    engine.close()
    blocked = {i.device: i for i in scenario.incidents}
    assert set(changes) == set(blocked), changes  # none at the counters without a blockage
    for device, incident in blocked.items():
        ranks = [rank for _, rank in changes[device]]
        assert ranks == [1, 0], (device, changes[device])  # one episode, opened and resolved
        opened_after = changes[device][0][0] - incident.start_s
        assert 0 <= opened_after <= min(20 * 60, incident.duration_s), (device, opened_after)
        assert changes[device][1][0] >= incident.start_s + incident.duration_s, device
