"""Issue 15 behaviours of the anomaly engine: hour-of-week bins, fast start, level shifts,
the trend reason, an empty engine in the detection stage, snapshot format 2 and reading 1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from devices.catalog import default_catalog
from ingest.anomaly import AnomalyEngine, DetectorConfig
from ingest.anomaly.detect_csv import score_series
from ingest.anomaly.engine import (
    C_MU,
    N_COLS,
    N_COLS_V1,
    N_HOUR,
    N_SEAS,
    N_SEAS_V1,
    R_TREND,
    REASONS,
)
from ingest.detect import DetectionStage
from ingest.model import Reading

CFG = DetectorConfig()
T0 = 1_700_000_000.0  # a Tuesday, 22:13 UTC


def local_hour_of_week(ts: np.ndarray) -> np.ndarray:
    loc = ts + CFG.tz_offset_s
    day = np.floor(loc / 86400.0)
    return ((day + 3) % 7) * 24 + np.floor((loc - day * 86400.0) / 3600.0)


def test_a_weekly_pattern_is_learned_and_a_weekday_on_a_sunday_stands_out() -> None:
    # hourly traffic-like counts: busy on weekdays 7-19 local, quiet at weekends; the
    # hour-of-day bins alone cannot tell Sunday from Monday, the hour-of-week bins can
    weeks = 10
    n = 24 * 7 * weeks
    ts = T0 + 3600.0 * np.arange(n)
    how = local_hour_of_week(ts)
    dow, hod = how // 24, how % 24
    busy = (dow < 5) & (hod >= 7) & (hod < 19)
    xs = np.where(busy, 200.0, 20.0) + np.random.default_rng(1).normal(0, 4.0, n)
    # the last Sunday of the run is busy like a weekday
    sunday = np.flatnonzero((dow == 6) & (hod >= 7) & (hod < 19) & (np.arange(n) > n - 24 * 7))
    xs_bad = xs.copy()
    xs_bad[sunday] = 200.0 + np.random.default_rng(2).normal(0, 4.0, sunday.shape[0])
    quiet = score_series(ts, xs)
    bad = score_series(ts, xs_bad)
    settled = 24 * 7 * 4  # after four weeks the weekly shape is learned
    assert quiet[settled:].max() < CFG.alert_level
    # the busy Sunday stands out against the same Sunday when quiet; it stays below the
    # alert level with the cross-validated defaults (the fast hour-of-day bins take up part
    # of it within the day): see the README's "cannot see"
    assert bad[sunday].max() > max(2.0 * quiet[sunday].max(), quiet[sunday].max() + 0.2)
    # the week bins hold the weekday/weekend difference of the same hour of day
    eng = AnomalyEngine()
    sid = eng.series_id("s")
    eng.update(np.full(n, sid), ts, xs)
    week = eng.state(sid)[N_COLS + N_HOUR : N_COLS + N_HOUR + 168]
    assert week[0 * 24 + 12] - week[6 * 24 + 12] > 50.0  # Monday noon vs Sunday noon


def test_state_budget_per_series_is_stated_and_under_a_kilobyte_and_a_half() -> None:
    assert AnomalyEngine.state_bytes_per_series() == N_COLS * 8 + N_SEAS * 4
    assert N_SEAS == N_HOUR + 168 + 18
    assert AnomalyEngine.state_bytes_per_series() < 1536


def test_a_new_gauge_can_alert_after_a_short_start() -> None:
    # 60-second gauge: a jump at reading warmup + 5 (45 minutes in) is scored, not silent
    n = CFG.warmup + 20
    ts = T0 + 60.0 * np.arange(n)
    xs = 120.0 + np.random.default_rng(3).normal(0, 0.5, n)
    xs[CFG.warmup + 5] = 160.0
    scores = score_series(ts, xs)
    assert scores[: CFG.warmup].max() == 0.0  # the learning start stays silent
    assert scores[CFG.warmup + 5] >= CFG.alert_level
    assert CFG.warmup <= 60


def test_a_level_shift_becomes_the_new_normal() -> None:
    n = 1500
    ts = T0 + 300.0 * np.arange(n)
    xs = 100.0 + np.random.default_rng(4).normal(0, 1.0, n)
    xs[1000:] += 30.0
    scores = score_series(ts, xs)
    assert scores[1000:1010].max() >= CFG.alert_level  # the shift itself alerts
    assert scores[1100:].max() < CFG.alert_level  # and then is normal
    off = score_series(ts, xs, dataclasses.replace(CFG, shift_run=0))
    # without absorbing it, the old level would still be crept towards 100 readings on
    eng = AnomalyEngine()
    sid = eng.series_id("s")
    eng.update(np.full(1010, sid), ts[:1010], xs[:1010])
    assert abs(eng.state(sid)[C_MU] - 130.0) < 3.0
    assert off.shape == scores.shape


def test_an_unprecedented_rise_scores_high_with_the_trend_reason() -> None:
    # a day of an ordinary gauge at 60 s, then a rise steeper and higher than ever before
    day = 1440
    n = day + 120
    ts = T0 + 60.0 * np.arange(n)
    rng = np.random.default_rng(5)
    xs = 150.0 + 3.0 * np.sin(np.arange(n) / 90.0) + rng.normal(0, 0.4, n)
    rise = np.arange(120) * 1.5  # 1.5 cm a minute, 180 cm in two hours
    xs[day:] += rise
    eng = AnomalyEngine()
    sid = eng.series_id("wl/level_cm")
    res = [eng.update(np.array([sid]), ts[i : i + 1], xs[i : i + 1]) for i in range(n)]
    score = np.array([r.score[0] for r in res])
    reason = np.array([r.reason[0] for r in res])
    assert score[:day].max() < CFG.alert_level
    assert score[day:].max() >= 0.9
    assert R_TREND in set(reason[day:][score[day:] >= CFG.alert_level].tolist())
    assert REASONS[R_TREND] == "trend"


def test_detection_stage_keeps_the_empty_engine_it_is_given(tmp_path: Path) -> None:
    # an engine with no series is falsy (len 0); the stage must still use it, not a
    # restored or new one
    path = tmp_path / "anomaly.npz"
    old = AnomalyEngine()
    old.series_id("someone-else/level_cm")
    old.snapshot(path)
    mine = AnomalyEngine()
    stage = DetectionStage(default_catalog(), threshold=0.6, engine=mine, snapshot_path=path)
    assert stage.engine is mine
    stage.process(
        [Reading(device_id="wl-1", kind="water_level", ts_ms=1_795_000_000_000,
                 fields={"level_cm": 120.0})]
    )  # fmt: skip
    assert mine.keys == ["wl-1/level_cm"]


def test_snapshot_v2_round_trip(tmp_path: Path) -> None:
    eng = AnomalyEngine()
    ids = eng.series_ids(["a", "b"])
    rng = np.random.default_rng(6)
    for i in range(300):
        eng.update(ids, np.full(2, T0 + 3600.0 * i), 10.0 + rng.normal(0, 1.0, 2))
    path = tmp_path / "s.npz"
    eng.snapshot(path)
    with np.load(path) as data:
        assert int(data["version"][0]) == 2
    back = AnomalyEngine.restore(path)
    for sid in ids:
        np.testing.assert_array_equal(back.state(int(sid)), eng.state(int(sid)))
    ts = np.full(2, T0 + 3600.0 * 300)
    xs = np.array([10.0, 30.0])
    np.testing.assert_array_equal(back.update(ids, ts, xs).score, eng.update(ids, ts, xs).score)


def test_a_version_1_snapshot_is_read_and_upgraded(tmp_path: Path) -> None:
    m = 2
    f = np.zeros((m, N_COLS_V1))
    f[:, 0] = 500.0  # readings seen
    f[:, C_MU] = [10.0, 20.0]
    s = np.zeros((m, N_SEAS_V1), dtype=np.float32)
    s[:, 3] = 1.5  # hour-of-day bin 3
    s[:, N_HOUR + 2] = -2.0  # day-of-week bin 2 (Saturday)
    s[:, N_HOUR + 7 + 4] = 0.25  # a short-histogram bin
    path = tmp_path / "v1.npz"
    np.savez(path, keys=np.array(["x", "y"]), f=f, s=s, version=np.array([1]))
    eng = AnomalyEngine.restore(path)
    assert eng.keys == ["x", "y"]
    st = eng.state(0)
    assert st[C_MU] == 10.0 and st[N_COLS + 3] == 1.5
    week = st[N_COLS + N_HOUR : N_COLS + N_HOUR + 168]
    np.testing.assert_array_equal(week[48:72], -2.0)  # every hour of that day
    assert week[:48].sum() == 0.0 and week[72:].sum() == 0.0
    assert st[N_COLS + N_HOUR + 168 + 4] == 0.25
    res = eng.update(np.array([0, 1]), np.array([T0, T0]), np.array([10.0, 20.0]))
    assert np.all(np.isfinite(res.score))
    # and it can be written again as format 2
    eng.snapshot(tmp_path / "v2.npz")
    assert AnomalyEngine.restore(tmp_path / "v2.npz").keys == ["x", "y"]


def test_an_unknown_snapshot_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, keys=np.array(["x"]), f=np.zeros((1, 7)), s=np.zeros((1, 3)),
             version=np.array([2]))  # fmt: skip
    try:
        AnomalyEngine.restore(path)
    except ValueError as exc:
        assert "unexpected state layout" in str(exc)
    else:
        raise AssertionError("a bad layout was accepted")
