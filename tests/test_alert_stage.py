"""The alert stage's hand-over to the evaluator: a batch's blocks and rows as one `Rows`
give the signals per-device columns give (the evaluator's reference shape)."""

from __future__ import annotations

import numpy as np

from alerts.evaluate import AlertEvaluator, Columns, DeviceContext
from alerts.model import DeviceInfo, Signal
from alerts.rules import load_rules
from ingest.alert_stage import reading_columns
from ingest.model import Reading, ReadingBlock, ReadingSet

T0 = 1_796_000_000_000
LEVELS = {"level_cm": {"waspada": 260.0, "siaga": 320.0, "awas": 380.0}}


def fleet() -> dict[str, DeviceContext]:
    return {
        d: DeviceContext(DeviceInfo(d, "water_level"), thresholds=LEVELS)
        for d in ("wl-a", "wl-b", "wl-c")
    }


def per_episode(signals: list[Signal]) -> dict[tuple[str, str], list[Signal]]:
    out: dict[tuple[str, str], list[Signal]] = {}
    for signal in signals:
        out.setdefault((signal.rule, signal.device.device_id), []).append(signal)
    return out


def test_blocks_and_rows_of_a_batch_evaluate_as_per_device_columns() -> None:
    devices = fleet()
    rng = np.random.default_rng(3)
    by_stage = AlertEvaluator(load_rules(), devices.get)
    by_device = AlertEvaluator(load_rules(), devices.get)
    for batch in range(12):
        base = T0 + batch * 3_600_000
        blocks = []
        for k, device in enumerate(("wl-a", "wl-b")):
            ts = base + np.arange(50, dtype=np.int64) * 60_000 + k
            level = 200 + 200 * np.sin(batch / 2 + k) + rng.normal(0, 10, 50)
            block = ReadingBlock(device, "water_level", ts, {"level_cm": level}, owner=k)
            block.anomaly_reason = {7: "level_cm:spike"} if batch % 5 == 0 else {}
            blocks.append(block)
        rows = [
            Reading("wl-c", "water_level", base + i * 60_000, {"level_cm": float(v)})
            for i, v in enumerate(250 + 150 * np.sin(batch + np.arange(10) / 3))
        ]
        by_stage.observe(reading_columns(ReadingSet(rows, [2] * len(rows), blocks)), now_ms=base)
        reference = [
            Columns(b.device_id, b.kind, b.ts_ms, b.fields, dict(b.anomaly_reason)) for b in blocks
        ]
        reference.append(
            Columns(
                "wl-c",
                "water_level",
                np.array([r.ts_ms for r in rows], np.int64),
                {"level_cm": np.array([r.fields["level_cm"] for r in rows])},
            )
        )
        by_device.observe(reference, now_ms=base)
    got, want = by_stage.take(), by_device.take()
    assert {s.rule for s in want} >= {"river_level", "rate_of_rise", "anomaly"}
    assert per_episode(got) == per_episode(want)


def test_an_empty_batch_is_no_work() -> None:
    assert reading_columns(ReadingSet()) == []
