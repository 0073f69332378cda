"""The detection stage in the pipeline: scores written on readings, events, restart memory."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from devices.catalog import default_catalog
from ingest.detect import DetectionStage
from ingest.model import Reading
from ingest.points import PointFormatter

T0 = 1_795_000_000_000


def gauge(i: int, level: float, device: str = "wl-1") -> Reading:
    return Reading(
        device_id=device,
        kind="water_level",
        ts_ms=T0 + i * 60_000,
        fields={"level_cm": level, "battery_v": 12.5},
    )


def steady(i: int) -> float:
    return 120.0 + 0.5 * math.sin(i / 7.0)


def feed(stage: DetectionStage, start: int, count: int) -> list[Reading]:
    out: list[Reading] = []
    for first in range(start, start + count, 50):
        batch = [gauge(i, steady(i)) for i in range(first, min(first + 50, start + count))]
        out.extend(stage.process(batch))
    return out


def test_a_sudden_rise_fires_with_an_explained_reason() -> None:
    stage = DetectionStage(default_catalog(), threshold=0.8)
    quiet = feed(stage, 0, 600)
    assert all(r.anomaly_score is not None for r in quiet)
    assert max(r.anomaly_score or 0 for r in quiet[300:]) < 0.8
    assert all(r.anomaly_reason is None for r in quiet)
    [flood] = stage.process([gauge(600, 260.0)])
    assert flood.anomaly_score is not None and flood.anomaly_score >= 0.8
    assert flood.anomaly_reason is not None and flood.anomaly_reason.startswith("level_cm:")
    [event] = list(stage.events)
    assert (event.device_id, event.field, event.value) == ("wl-1", "level_cm", 260.0)
    line = PointFormatter().line(flood)
    assert "anomaly_score=" in line and 'anomaly_reason="level_cm:' in line


def test_health_fields_are_not_scored_and_other_kinds_are() -> None:
    stage = DetectionStage(default_catalog(), threshold=0.8)
    reading = Reading(
        device_id="env-1",
        kind="environment",
        ts_ms=T0,
        fields={"battery_v": 3.0, "temperature_c": 28.0},
    )
    stage.process([reading])
    assert stage.engine.keys == ["env-1/temperature_c"]


def test_state_survives_a_restart_through_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "detector.npz"
    first = DetectionStage(default_catalog(), threshold=0.8, snapshot_path=path)
    feed(first, 0, 400)
    first.snapshot()
    restarted = DetectionStage(default_catalog(), threshold=0.8, snapshot_path=path)
    continuous = DetectionStage(default_catalog(), threshold=0.8)
    feed(continuous, 0, 400)
    after_restart = [r.anomaly_score for r in feed(restarted, 400, 100)]
    without_restart = [r.anomaly_score for r in feed(continuous, 400, 100)]
    assert after_restart == without_restart


def test_redelivered_readings_do_not_teach_twice() -> None:
    once = DetectionStage(default_catalog(), threshold=0.8)
    twice = DetectionStage(default_catalog(), threshold=0.8)
    feed(once, 0, 300)
    feed(twice, 0, 300)
    feed(twice, 250, 50)  # the broker redelivers the last batch
    assert [r.anomaly_score for r in feed(once, 300, 100)] == [
        r.anomaly_score for r in feed(twice, 300, 100)
    ]


def test_a_damaged_snapshot_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "detector.npz"
    path.write_bytes(b"not a snapshot")
    stage = DetectionStage(default_catalog(), threshold=0.8, snapshot_path=path)
    assert len(stage.engine) == 0


def test_a_level_shift_is_an_event_only_after_a_whole_day_of_watching() -> None:
    """In a series' first day every hour is new: a `level` reason (the morning rush reads as
    a shift) and a `new_range` one (the range seen so far is the night's) are scored and
    written on the reading but not raised for alerting unless the score reaches 0.8; every
    other reason is raised from the start."""
    stage = DetectionStage(default_catalog(), threshold=0.8)
    feed(stage, 0, 600)  # 10 hours at 60 s
    sid = stage._series[("wl-1", "level_cm")][0]
    assert 0.35 * 86400 < stage.engine.covered_s(sid) < 0.5 * 86400
    assert not stage._raises(sid, "level", 0.79) and not stage._raises(sid, "new_range", 0.75)
    assert stage._raises(sid, "level", 0.8)  # a shift far beyond a morning rush is told
    assert stage._raises(sid, "spike", 0.6) and stage._raises(sid, "trend", 1.0)
    assert stage._raises(sid, "flatline", 0.75) and stage._raises(sid, "out_of_range", 1.0)
    feed(stage, 600, 900)  # 25 hours in all
    assert stage.engine.covered_s(sid) >= 86400
    assert stage._raises(sid, "level", 0.6) and stage._raises(sid, "new_range", 0.75)


def test_a_first_day_level_shift_reaches_neither_the_events_nor_the_alert_stage() -> None:
    """The alert stage reads `anomaly_reason`: a reading held back from the events must not
    carry one either (its score is still written)."""
    from ingest.anomaly.engine import R_LEVEL

    for readings_before, score, raised in ((600, 0.7, False), (600, 0.9, True), (1500, 0.7, True)):
        stage = DetectionStage(default_catalog(), threshold=0.6)
        feed(stage, 0, readings_before)
        sid = stage._series[("wl-1", "level_cm")][0]
        events = len(stage.events)
        reading = gauge(readings_before, 130.0)
        stage._apply(
            [reading], [0], ["level_cm"], [130.0], [sid], np.array([score]), np.array([R_LEVEL])
        )
        assert reading.anomaly_score == score
        assert (reading.anomaly_reason == "level_cm:level") is raised
        assert (reading.anomaly_reason is None) is not raised
        assert len(stage.events) - events == int(raised)
