"""Behaviour of the streaming anomaly engine: scoring, state hygiene, batching, persistence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.anomaly import REASONS, AnomalyEngine, DetectorConfig, run_detect
from ingest.anomaly.detect_csv import parse_timestamp, score_series
from ingest.anomaly.engine import C_DMAD, C_DT, C_RUN, R_FLAT, R_RANGE, R_ROC

CFG = DetectorConfig()
T0 = 1_700_000_000.0
STEP = 300.0
HOLD_ROWS = int(CFG.hold_intervals) + 5
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_rows(eng: AnomalyEngine, sid: int, ts: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Feed one series row by row (the sequential reference)."""
    out = np.empty(xs.shape[0])
    for i in range(xs.shape[0]):
        out[i] = eng.update(np.array([sid]), ts[i : i + 1], xs[i : i + 1]).score[0]
    return out


def noisy(n: int, seed: int, level: float = 100.0, sd: float = 2.0) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0.0, sd, n)


def stamps(n: int, start: float = T0) -> np.ndarray:
    return start + STEP * np.arange(n, dtype=np.float64)


def warmed_engine(n_series: int, n_rows: int, seed: int = 0) -> tuple[AnomalyEngine, np.ndarray]:
    """An engine whose series have learnt `n_rows` noisy readings, fed in vectorised rounds."""
    eng = AnomalyEngine(initial_capacity=4)
    ids = eng.series_ids([f"dev-{i}/level_cm" for i in range(n_series)])
    rng = np.random.default_rng(seed)
    for i in range(n_rows):
        eng.update(ids, np.full(n_series, T0 + STEP * i), 100.0 + rng.normal(0, 2.0, n_series))
    return eng, ids


# --------------------------------------------------------------------------- scoring


@FAST
@given(
    value=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    n=st.integers(CFG.warmup + 50, CFG.warmup + 400),
)
def test_constant_input_never_scores_high(value: float, n: int) -> None:
    scores = score_series(stamps(n), np.full(n, value))
    assert scores.max() < 0.1


@FAST
@given(seed=st.integers(0, 10_000), sigmas=st.floats(30.0, 1e4), up=st.booleans())
def test_large_step_always_detected(seed: int, sigmas: float, up: bool) -> None:
    n = CFG.warmup + CFG.lik_warmup + 300
    xs = noisy(n + 20, seed)
    xs[n:] += (1 if up else -1) * sigmas * 2.0
    scores = score_series(stamps(n + 20), xs)
    assert scores[:n].max() < CFG.alert_level  # noise alone does not fire
    assert scores[n : n + 5].max() >= CFG.alert_level


def test_scores_are_in_unit_interval_and_reasons_known() -> None:
    n = 2000
    rng = np.random.default_rng(3)
    xs = np.cumsum(rng.standard_cauchy(n))  # heavy tails, trends: a hostile series
    eng = AnomalyEngine()
    sid = eng.series_id("s")
    res = eng.update(np.full(n, sid), stamps(n), xs)
    assert np.all((res.score >= 0.0) & (res.score <= 1.0))
    assert set(np.unique(res.reason).tolist()) <= set(REASONS)


def test_out_of_range_scores_one_and_is_not_learned() -> None:
    eng, ids = warmed_engine(3, 50)
    before = [eng.state(int(i)) for i in ids]
    lo = np.array([0.0, np.nan, 0.0])
    hi = np.array([150.0, 150.0, np.nan])
    res = eng.update(ids, np.full(3, T0 + STEP * 60), np.array([-5.0, 151.0, 100.0]), lo, hi)
    assert res.score.tolist() == [1.0, 1.0, pytest.approx(res.score[2])]
    assert res.score[2] < 1.0
    assert res.reason[:2].tolist() == [R_RANGE, R_RANGE]
    np.testing.assert_array_equal(eng.state(int(ids[0])), before[0])
    np.testing.assert_array_equal(eng.state(int(ids[1])), before[1])
    assert not np.array_equal(eng.state(int(ids[2])), before[2])


def test_a_long_run_at_a_bound_of_the_range_is_no_flatline() -> None:
    """A rain gauge reads 0 mm through a dry spell far longer than any before; saturated
    air stays at 100 %. A run at a bound of the physical range is the world, not a stuck
    sensor; the same run inside the range is one."""
    rng = np.random.default_rng(5)
    n = 1500
    rain = np.where(rng.random(n) < 0.15, rng.exponential(2.0, n).round(1), 0.0)
    rain[700:] = 0.0  # a dry spell: the longest zero run by far
    inside = rain + 10.0  # the same shape, off the bound ...
    inside[700:] = 11.5  # ... and stuck inside the range seen, not at either end of it
    eng = AnomalyEngine()
    at_bound, off_bound = eng.series_ids(["env-1/rainfall_mm", "env-2/offset"])
    lo, hi = np.zeros(n), np.full(n, 300.0)
    bounded = eng.update(np.full(n, at_bound), stamps(n), rain, lo, hi)
    shifted = eng.update(np.full(n, off_bound), stamps(n), inside, lo, hi)
    assert not (bounded.reason == R_FLAT).any()
    assert (shifted.reason[700:] == R_FLAT).any()


def test_a_run_at_the_sensors_own_ceiling_is_no_flatline() -> None:
    """A humidity probe saturates at 99 %, below the catalog's 100 %: every humid night it
    reads 99.0 for hours, and one night longer than any before. A run at the highest (or
    lowest) value the series has ever read is its ceiling, not a stuck sensor; stuck at a
    value inside its range, the same series is flagged."""
    rng = np.random.default_rng(8)
    n = 2000
    humidity = np.clip(80.0 + 25.0 * np.sin(np.arange(n) / 90.0) + rng.normal(0, 0.4, n), 0, 99)
    humidity = humidity.round(1)
    humidity[1500:1900] = 99.0  # the longest saturated night by far
    stuck = humidity.copy()
    stuck[1500:1900] = 91.3  # the same night, a sensor stuck at an ordinary value
    eng = AnomalyEngine()
    ceiling, frozen = eng.series_ids(["env-1/humidity_pct", "env-2/humidity_pct"])
    lo, hi = np.zeros(n), np.full(n, 100.0)
    saturated = eng.update(np.full(n, ceiling), stamps(n), humidity, lo, hi)
    held = eng.update(np.full(n, frozen), stamps(n), stuck, lo, hi)
    assert not (saturated.reason == R_FLAT).any()
    assert (held.reason[1500:1900] == R_FLAT).any()


def test_infinite_value_is_out_of_range_and_not_learned() -> None:
    eng, ids = warmed_engine(1, 50)
    before = eng.state(int(ids[0]))
    for bad in (np.inf, -np.inf, 1e300):
        res = eng.update(ids, np.array([T0 + STEP * 60]), np.array([bad]))
        assert res.score[0] == 1.0 and res.reason[0] == R_RANGE
        np.testing.assert_array_equal(eng.state(int(ids[0])), before)


def test_stuck_sensor_raises_flatline() -> None:
    n = 800
    xs = noisy(n, 7)
    xs[600:] = xs[599]  # the sensor freezes on its last reading
    eng = AnomalyEngine()
    sid = eng.series_id("wl-malili-01/level_cm")
    res = eng.update(np.full(n, sid), stamps(n), xs)
    flat_rows = np.flatnonzero(res.reason == R_FLAT)
    assert flat_rows.size > 0 and flat_rows[0] >= 600
    assert res.score[flat_rows[0]] >= CFG.alert_level
    assert res.score[:600].max() < CFG.alert_level


def test_daily_pattern_is_learned_and_an_inverted_day_alerts() -> None:
    # PM2.5 / traffic-like: a strong daily swing (±40) on small noise, 5-minute readings.
    # On day 12 the day runs upside down from local midnight: no jump, every value stays
    # inside the usual range, only the time-of-day pattern is wrong.  Without the seasonal
    # bins this scores below 0.4; with them it alerts within about an hour.
    n = 288 * 14
    ts = stamps(n)
    hour = ((ts + CFG.tz_offset_s) % 86400.0) / 3600.0
    base = 60.0 + 40.0 * np.sin(2.0 * np.pi * hour / 24.0)
    noise = noisy(n, 3, level=0.0)
    xs = base + noise
    start = 288 * 12 + int(np.argmin(hour[288 * 12 : 288 * 13]))  # local midnight
    xs[start : start + 288] = 120.0 - base[start : start + 288] + noise[start : start + 288]
    scores = score_series(ts, xs)
    assert scores[:start].max() < CFG.alert_level  # the regular swing never alerts
    first = int(np.argmax(scores[start : start + 288] >= CFG.alert_level))
    assert scores[start + first] >= CFG.alert_level and first <= 24


def test_repeats_of_one_event_are_damped() -> None:
    n = CFG.warmup + CFG.lik_warmup + 300
    xs = noisy(n + 40, 11)
    xs[n : n + 40 : 4] += 400.0  # a burst of spikes: alert once, not ten times
    scores = score_series(stamps(n + 40), xs)
    fired = np.flatnonzero(scores >= CFG.alert_level)
    assert fired.size == 1 and fired[0] == n


# --------------------------------------------------------------------------- state hygiene


@FAST
@given(
    seed=st.integers(0, 10_000),
    bad=st.lists(st.integers(0, 399), min_size=1, max_size=40),
)
def test_nan_never_propagates(seed: int, bad: list[int]) -> None:
    n = 400
    xs = noisy(n, seed)
    ts = stamps(n)
    xs[bad[: len(bad) // 2]] = np.nan
    ts[bad[len(bad) // 2 :]] = np.nan
    eng = AnomalyEngine()
    sid = eng.series_id("s")
    res = eng.update(np.full(n, sid), ts, xs)
    assert np.all(np.isfinite(res.score))
    assert np.all(res.score[np.isnan(xs)] == 0.0)
    assert np.all(np.isfinite(eng.state(sid)))
    # a NaN row leaves the state exactly as it was
    before = eng.state(sid)
    eng.update(np.array([sid]), np.array([T0 + STEP * n]), np.array([np.nan]))
    np.testing.assert_array_equal(eng.state(sid), before)


def test_corrupt_timestamps_touch_no_state() -> None:
    eng, ids = warmed_engine(3, 50)
    before = [eng.state(i) for i in range(3)]
    res = eng.update(ids, np.array([1e30, -1e30, np.inf]), np.array([100.0, 100.0, 100.0]))
    assert np.all(res.score == 0.0)
    for i in range(3):
        np.testing.assert_array_equal(eng.state(i), before[i])


def test_duplicate_and_out_of_order_readings_do_not_update_state() -> None:
    eng, ids = warmed_engine(1, 300)
    sid = int(ids[0])
    last = T0 + STEP * 299
    before = eng.state(sid)
    # redelivered duplicate (same timestamp) and a late reading are scored, not learned
    res = eng.update(np.array([sid, sid]), np.array([last, last - 5 * STEP]), np.array([1e4, 1e4]))
    assert np.all(res.score > 0.0)
    np.testing.assert_array_equal(eng.state(sid), before)
    # a newer reading is learned again
    eng.update(ids, np.array([last + STEP]), np.array([100.0]))
    assert not np.array_equal(eng.state(sid), before)


def test_duplicate_delivery_updates_state_once() -> None:
    a, ids_a = warmed_engine(2, 100)
    b, ids_b = warmed_engine(2, 100)
    ts = np.full(2, T0 + STEP * 100)
    xs = np.array([103.0, 97.0])
    a.update(ids_a, ts, xs)
    b.update(np.concatenate((ids_b, ids_b)), np.concatenate((ts, ts)), np.concatenate((xs, xs)))
    for i in range(2):
        np.testing.assert_array_equal(a.state(i), b.state(i))


@FAST
@given(
    seed=st.integers(0, 10_000),
    n_series=st.integers(1, 6),
    n_rows=st.integers(1, 400),
)
def test_vectorised_batch_equals_sequential(seed: int, n_series: int, n_rows: int) -> None:
    rng = np.random.default_rng(seed)
    sids = rng.integers(0, n_series, n_rows)
    # irregular, sometimes equal or backwards timestamps per series; a few NaN values
    ts = T0 + np.cumsum(rng.choice([0.0, -STEP, STEP, STEP, 3 * STEP, 40 * STEP], n_rows))
    xs = 50.0 + np.cumsum(rng.normal(0, 1, n_rows)) + 30.0 * (rng.random(n_rows) < 0.05)
    xs[rng.random(n_rows) < 0.03] = np.nan
    xs[rng.random(n_rows) < 0.2] = 50.0  # repeated values exercise the flatline state
    keys = [f"dev-{i}/x" for i in range(n_series)]
    vec, seq = AnomalyEngine(initial_capacity=2), AnomalyEngine(initial_capacity=2)
    ids_v = vec.series_ids(keys)[sids]
    ids_s = seq.series_ids(keys)[sids]
    res = vec.update(ids_v, ts, xs)
    seq_scores = np.empty(n_rows)
    seq_reasons = np.empty(n_rows, dtype=np.uint8)
    for i in range(n_rows):
        r = seq.update(ids_s[i : i + 1], ts[i : i + 1], xs[i : i + 1])
        seq_scores[i], seq_reasons[i] = r.score[0], r.reason[0]
    np.testing.assert_array_equal(res.score, seq_scores)
    np.testing.assert_array_equal(res.reason, seq_reasons)
    for i in range(n_series):
        np.testing.assert_array_equal(vec.state(i), seq.state(i))


def test_gap_breaks_the_difference_chain() -> None:
    eng, ids = warmed_engine(1, 300)
    sid = int(ids[0])
    before = eng.state(sid)
    # the sensor comes back after 100 intervals at a different value
    res = eng.update(ids, np.array([T0 + STEP * 400]), np.array([130.0]))
    after = eng.state(sid)
    assert after[C_DMAD] == before[C_DMAD]  # the jump across the gap is not a difference
    assert after[C_RUN] == 1.0
    assert after[C_DT] <= 10.0 * before[C_DT]  # one long gap cannot blow up the interval
    assert res.reason[0] != R_ROC


def test_rising_river_is_detected_early() -> None:
    # a river level that starts rising steadily (flash flood): 5 cm per reading on ~2 cm noise
    n = CFG.warmup + CFG.lik_warmup + 500
    xs = noisy(n + 60, 21, level=250.0)
    xs[n:] += 5.0 * np.arange(1, 61)
    scores = score_series(stamps(n + 60), xs)
    assert scores[:n].max() < CFG.alert_level
    first = int(np.argmax(scores[n:] >= CFG.alert_level))
    assert scores[n + first] >= CFG.alert_level and first <= 10


# --------------------------------------------------------------------------- registry


def test_growth_beyond_initial_capacity_keeps_state() -> None:
    eng = AnomalyEngine(initial_capacity=2)
    first = eng.series_ids(["a/x", "b/x"])
    eng.update(first, np.array([T0, T0]), np.array([1.0, 2.0]))
    before = eng.state(int(first[1]))
    ids = eng.series_ids([f"s{i}/x" for i in range(1000)])
    assert len(eng) == 1002 and eng.capacity >= 1002
    assert eng.capacity < 4 * 1002  # geometric, not unbounded
    assert ids.dtype == np.int64 and ids.tolist() == list(range(2, 1002))
    np.testing.assert_array_equal(eng.state(int(first[1])), before)
    assert eng.series_id("b/x") == 1  # known keys keep their id
    res = eng.update(ids, np.full(1000, T0), np.arange(1000.0))
    assert res.score.shape == (1000,)


def test_unknown_id_is_rejected() -> None:
    eng = AnomalyEngine()
    eng.series_id("a")
    with pytest.raises(IndexError):
        eng.update(np.array([5]), np.array([T0]), np.array([1.0]))


def test_snapshot_restore_gives_identical_scores(tmp_path: Path) -> None:
    eng, ids = warmed_engine(5, 400, seed=2)
    path = tmp_path / "state" / "anomaly.npz"
    eng.snapshot(path)
    assert not list(path.parent.glob("*.tmp"))  # the temp file was renamed away
    back = AnomalyEngine.restore(path)
    assert back.keys == eng.keys and len(back) == 5
    rng = np.random.default_rng(9)
    for i in range(50):
        ts = np.full(5, T0 + STEP * (400 + i))
        xs = 100.0 + rng.normal(0, 2.0, 5) + (40.0 if i == 30 else 0.0)
        r1 = eng.update(ids, ts, xs)
        r2 = back.update(ids, ts, xs)
        np.testing.assert_array_equal(r1.score, r2.score)
        np.testing.assert_array_equal(r1.reason, r2.reason)
    assert back.series_id("new/series") == 5


# --------------------------------------------------------------------------- CSV command


def test_parse_timestamp_formats() -> None:
    assert parse_timestamp("2014-07-01 00:00:00") == 1404172800.0
    assert parse_timestamp("2014-07-01T08:00:00+08:00") == 1404172800.0
    assert parse_timestamp("2014-07-01T00:00:00Z") == 1404172800.0
    assert parse_timestamp("1404172800") == 1404172800.0


def test_run_detect_is_causal_and_keeps_rows(tmp_path: Path) -> None:
    n = 1200
    xs = noisy(n, 5)
    xs[900] += 80.0
    lines = ["timestamp,value"] + [
        f"2014-07-{1 + i // 288:02d} {(i % 288) // 12:02d}:{(i % 12) * 5:02d}:00,{v:.6f}"
        for i, v in enumerate(xs)
    ]
    full_in, cut_in = tmp_path / "full.csv", tmp_path / "cut.csv"
    full_in.write_text("\n".join(lines) + "\n")
    cut_in.write_text("\n".join(lines[:700]) + "\n")
    run_detect(full_in, tmp_path / "full_out.csv")
    run_detect(cut_in, tmp_path / "cut_out.csv")
    full = np.loadtxt(tmp_path / "full_out.csv", delimiter=",", skiprows=1, usecols=2)
    cut = np.loadtxt(tmp_path / "cut_out.csv", delimiter=",", skiprows=1, usecols=2)
    assert full.shape == (n,) and cut.shape == (699,)
    np.testing.assert_array_equal(full[:699], cut)
    assert full[900] >= CFG.alert_level


def test_module_command_writes_scores(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        "timestamp,value\n" + "".join(f"{int(T0) + 60 * i},{i % 7}\n" for i in range(50))
    )
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "ingest.anomaly", str(src), str(out)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score" and len(lines) == 51
    assert lines[1].startswith(f"{int(T0)},0,")
