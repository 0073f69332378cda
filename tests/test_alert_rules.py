"""The rule evaluator alone (no services): ladders with hysteresis and for-duration, windows
(ISPU mean, BMKG rain sum, rate of rise), congestion, no-data, anomalies, maintenance, rebuild."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from alerts.evaluate import AlertEvaluator, Columns, DeviceContext, Rows
from alerts.model import Alert, DeviceInfo, Severity, Signal, State
from alerts.rules import RuleError, load_rules, parse_rule

T0 = 1_796_000_000_000  # ms
MIN = 60_000
LEVELS = {"level_cm": {"waspada": 260.0, "siaga": 320.0, "awas": 380.0}}


def ctx(device_id: str, kind: str, status: str = "active", **extra: object) -> DeviceContext:
    return DeviceContext(DeviceInfo(device_id, kind, "Pongkeru", "Malili"), status, **extra)  # type: ignore[arg-type]


@pytest.fixture
def devices() -> dict[str, DeviceContext]:
    return {
        "wl-1": ctx("wl-1", "water_level", thresholds=LEVELS),
        "wl-bare": ctx("wl-bare", "water_level"),
        "env-1": ctx("env-1", "environment"),
        "tr-1": ctx("tr-1", "traffic"),
        "tr-inc": ctx("tr-inc", "traffic", thresholds={"vehicle_count": {"incident": 50.0}}),
        "wl-maint": ctx("wl-maint", "water_level", status="maintenance", thresholds=LEVELS),
        "wl-fast": ctx("wl-fast", "water_level", interval_s=1.0, thresholds=LEVELS),
    }


@pytest.fixture
def evaluator(devices: dict[str, DeviceContext]) -> AlertEvaluator:
    return AlertEvaluator(load_rules(), devices.get)


def gauge(values: list[float], start_min: float = 0, device: str = "wl-1") -> Columns:
    ts = np.array([T0 + (start_min + i) * MIN for i in range(len(values))], np.int64)
    return Columns(device, "water_level", ts, {"level_cm": np.array(values, np.float64)})


def river(evaluator: AlertEvaluator) -> list[tuple[str, int]]:
    return [(s.level, s.level_rank) for s in evaluator.take() if s.rule == "river_level"]


def test_ladder_steps_through_every_level_even_within_one_batch(evaluator: AlertEvaluator) -> None:
    evaluator.observe([gauge([200, 265, 330, 390, 400])])
    assert river(evaluator) == [("waspada", 1), ("siaga", 2), ("awas", 3)]
    # Hysteresis: 5 cm below a level before it is left; ripples around it say nothing.
    evaluator.observe([gauge([378, 381, 376, 380], start_min=5)])
    assert river(evaluator) == []
    evaluator.observe([gauge([374, 318, 314, 300, 250], start_min=9)])
    assert river(evaluator) == [("siaga", 2), ("waspada", 1), ("normal", 0)]


def test_signal_carries_threshold_trend_and_next_level(evaluator: AlertEvaluator) -> None:
    evaluator.observe([gauge([250, 265])])
    signal = next(s for s in evaluator.take() if s.rule == "river_level")
    assert (signal.threshold, signal.value, signal.trend, signal.next_level) == (
        260.0,
        265.0,
        "rising",
        "siaga",
    )
    assert signal.severity is Severity.WARNING and signal.unit == "cm"
    assert signal.at == datetime.fromtimestamp((T0 + MIN) / 1000, UTC)


def test_gauge_without_registry_levels_and_maintenance_are_not_evaluated(
    evaluator: AlertEvaluator,
) -> None:
    evaluator.observe([gauge([900, 950], device="wl-bare"), gauge([900], device="wl-maint")])
    assert river(evaluator) == []


def test_rate_of_rise_is_an_early_warning(evaluator: AlertEvaluator) -> None:
    evaluator.observe([gauge([100 + 2 * i for i in range(10)])])  # +18 cm in 9 min
    assert not [s for s in evaluator.take() if s.rule == "rate_of_rise"]
    evaluator.observe([gauge([120 + 3 * i for i in range(6)], start_min=10)])  # +35 cm in 15 min
    rise = [s for s in evaluator.take() if s.rule == "rate_of_rise"]
    assert [(s.level, s.level_rank) for s in rise] == [("rate_of_rise", 1)]


def env(field: str, values: list[float], start_min: float = 0) -> Columns:
    ts = np.array([T0 + (start_min + i) * MIN for i in range(len(values))], np.int64)
    return Columns("env-1", "environment", ts, {field: np.array(values, np.float64)})


def test_ispu_on_a_rolling_mean_with_its_for_duration(evaluator: AlertEvaluator) -> None:
    evaluator.observe([env("pm25_ugm3", [30.0] * 10)])  # Sedang: opens no episode
    assert [s for s in evaluator.take() if s.rule == "ispu_pm25"] == []
    for minute in range(10, 80):  # haze: the 1 h mean climbs past 55.4, then 150.4
        evaluator.observe([env("pm25_ugm3", [160.0], start_min=minute)])
    signals = [s for s in evaluator.take() if s.rule == "ispu_pm25"]
    pending, fired = signals[0], [s for s in signals if s.firing]
    assert pending.level == "tidak_sehat" and not pending.firing
    # fires after its 5 minute for-duration, then climbs in the same episode
    assert fired[0].at.timestamp() * 1000 - pending.at.timestamp() * 1000 >= 5 * MIN
    assert [s.level for s in fired][:1] == ["tidak_sehat"]
    assert signals[-1].level == "sangat_tidak_sehat"


def test_bmkg_rain_daily_sum(evaluator: AlertEvaluator) -> None:
    evaluator.observe([env("rainfall_mm", [5.0] * 9)])  # 45 mm: sedang, no episode
    assert [s for s in evaluator.take() if s.rule == "rain_daily"] == []
    evaluator.observe([env("rainfall_mm", [8.0], start_min=9)])  # 53 mm: lebat
    daily = [s for s in evaluator.take() if s.rule == "rain_daily"]
    assert [(s.level, s.value) for s in daily] == [("lebat", 53.0)]


def test_congestion_needs_speed_collapse_with_occupancy(evaluator: AlertEvaluator) -> None:
    def traffic(speed: float, occupancy: float, minute: int) -> Columns:
        return Columns(
            "tr-1",
            "traffic",
            np.array([T0 + minute * MIN], np.int64),
            {"avg_speed_kmh": np.array([speed]), "occupancy_pct": np.array([occupancy])},
        )

    evaluator.observe([traffic(8, 5, m) for m in range(5)])  # slow, but an empty road
    assert evaluator.take() == []
    evaluator.observe([traffic(8, 70, m) for m in range(5, 10)])
    signals = [s for s in evaluator.take() if s.rule == "congestion"]
    assert [s.firing for s in signals] == [False, True]  # pending, then 3 minutes later firing


def counter(minutes: range, count: float, occupancy: float, speed: float) -> list[Columns]:
    return [
        Columns(
            "tr-inc",
            "traffic",
            np.array([T0 + m * MIN], np.int64),
            {
                "vehicle_count": np.array([count]),
                "occupancy_pct": np.array([occupancy]),
                "avg_speed_kmh": np.array([speed]),
            },
        )
        for m in minutes
    ]


def incidents(evaluator: AlertEvaluator) -> list[tuple[int, float | None]]:
    return [(s.level_rank, s.value) for s in evaluator.take() if s.rule == "incident"]


def test_an_incident_is_a_queue_that_lets_few_vehicles_through(
    evaluator: AlertEvaluator,
) -> None:
    """Level 50 vehicles per 10 minutes from the registry, judged while occupancy >= 50 %."""
    evaluator.observe(counter(range(0, 30), 12, 8, 60))  # flowing: 120 per 10 min
    assert incidents(evaluator) == []
    # A queue that still flows (rush-hour congestion): occupied, slow, but ~100 per 10 min.
    evaluator.observe(counter(range(30, 45), 10, 85, 9))
    assert incidents(evaluator) == []
    # A blockage: the count falls. The first queued minutes still carry the earlier flow in
    # the 10-minute sum; the incident opens once the sum is at or below 50.
    fired_at = []
    for minute in range(45, 60):  # reading by reading, as a counter reports
        evaluator.observe(counter(range(minute, minute + 1), 2, 88, 6))
        got = incidents(evaluator)
        if got:
            assert got[0][0] == 1 and got[0][1] is not None and got[0][1] <= 50
            fired_at.append(minute)
    # 10 a minute before, 2 after: the sum reaches 50 about 6 minutes in, not at once
    assert len(fired_at) == 1 and 50 <= fired_at[0] <= 53, fired_at
    # Cleared: the road flows again (the gate no longer holds), the episode resolves.
    evaluator.observe(counter(range(60, 70), 12, 8, 55))
    assert [rank for rank, _ in incidents(evaluator)] == [0]


def test_few_vehicles_on_an_empty_road_or_without_a_level_is_no_incident(
    evaluator: AlertEvaluator,
) -> None:
    evaluator.observe(counter(range(0, 60), 1, 2, 50))  # night: few vehicles, no queue
    assert incidents(evaluator) == []
    blocked = [
        Columns(
            "tr-1",  # no registry level: the rule does not run on it
            "traffic",
            np.array([T0 + m * MIN], np.int64),
            {
                "vehicle_count": np.array([1.0]),
                "occupancy_pct": np.array([90.0]),
                "avg_speed_kmh": np.array([5.0]),
            },
        )
        for m in range(60)
    ]
    evaluator.observe(blocked)
    assert incidents(evaluator) == []


def test_nodata_by_timer_and_back(evaluator: AlertEvaluator) -> None:
    evaluator.observe([gauge([100], device="wl-fast")], now_ms=T0)
    evaluator.tick(now_ms=T0 + 2_000)
    assert evaluator.take() == []
    evaluator.tick(now_ms=T0 + 3_500)  # silent for more than 3 x 1 s
    assert [(s.rule, s.level_rank) for s in evaluator.take()] == [("nodata", 1)]
    evaluator.tick(now_ms=T0 + 9_000)
    assert evaluator.take() == []  # one episode, not one per tick
    evaluator.observe([gauge([100], start_min=1, device="wl-fast")], now_ms=T0 + 10_000)
    assert [(s.rule, s.level_rank) for s in evaluator.take()] == [("nodata", 0)]


def test_anomaly_with_its_reason_and_clearing(evaluator: AlertEvaluator) -> None:
    spike = gauge([100, 100, 900])
    spike.anomaly = {2: "level_cm:spike"}
    evaluator.observe([spike])
    anomaly = [s for s in evaluator.take() if s.rule == "anomaly"]
    assert [(s.level_rank, s.reason, s.severity) for s in anomaly] == [
        (1, "level_cm:spike", Severity.INFO)
    ]
    evaluator.observe([gauge([100], start_min=20)])
    assert [s.level_rank for s in evaluator.take() if s.rule == "anomaly"] == [0]


def test_rebuild_from_open_episodes(devices: dict[str, DeviceContext]) -> None:
    evaluator = AlertEvaluator(load_rules(), devices.get)
    at = datetime.fromtimestamp(T0 / 1000, UTC)
    evaluator.rebuild(
        [
            Alert(
                1,
                "river_level",
                DeviceInfo("wl-1", "water_level"),
                "level_cm",
                Severity.WARNING,
                "siaga",
                2,
                State.FIRING,
                330.0,
                320.0,
                "cm",
                None,
                "awas",
                at,
                at,
            )
        ]
    )
    evaluator.observe([gauge([331, 335])])
    assert river(evaluator) == []  # still Siaga: nothing new after a restart
    evaluator.observe([gauge([390], start_min=2)])
    assert river(evaluator) == [("awas", 3)]


def test_bad_rules_are_refused() -> None:
    with pytest.raises(RuleError, match="order"):
        parse_rule(
            "x",
            {
                "type": "ladder",
                "kind": "k",
                "field": "f",
                "levels": [{"name": "a", "at": 5}, {"name": "b", "at": 1}],
            },
        )
    with pytest.raises(RuleError, match="type"):
        parse_rule("x", {"type": "nope"})


def test_a_series_that_changes_walks_the_rest_of_its_batch(evaluator: AlertEvaluator) -> None:
    evaluator.observe([gauge([330, 330])])  # Siaga (through Waspada)
    evaluator.take()
    # Down, then back up within one batch: both steps, although the last reading alone
    # sits inside the band the batch started with.
    evaluator.observe([gauge([200, 265, 330], start_min=2)])
    assert river(evaluator) == [("normal", 0), ("waspada", 1), ("siaga", 2)]


def test_redelivered_readings_are_not_evaluated_again(evaluator: AlertEvaluator) -> None:
    evaluator.observe([gauge([200, 265, 330])])
    assert river(evaluator) == [("waspada", 1), ("siaga", 2)]
    evaluator.observe([gauge([200, 265, 330])])  # the same readings again
    assert evaluator.take() == []


def _as_columns(rows: Rows) -> list[Columns]:
    """The same readings grouped per device (the reference path)."""
    out = []
    for j, (device, kind) in enumerate(rows.devices):
        mine = np.flatnonzero(rows.entry == j)
        fields = {name: column[mine] for name, column in rows.fields.items()}
        fields = {name: column for name, column in fields.items() if not np.isnan(column).all()}
        reasons = {k: rows.anomaly[int(i)] for k, i in enumerate(mine) if int(i) in rows.anomaly}
        out.append(Columns(device, kind, rows.ts_ms[mine], fields, reasons))
    return out


def test_rows_of_many_devices_give_the_signals_of_per_device_columns(
    devices: dict[str, DeviceContext],
) -> None:
    """The ingester hands single readings as one `Rows`; evaluated without grouping them per
    device, they must give exactly what per-device columns give: ladders, windows, gates,
    maintenance, anomalies and no-data recovery, across batches."""
    rng = np.random.default_rng(7)
    fleet = ["wl-1", "wl-fast", "wl-maint", "wl-bare", "env-1", "tr-1", "tr-inc"]
    kinds = {d: devices[d].info.kind for d in fleet}
    by_rows = AlertEvaluator(load_rules(), devices.get)
    by_columns = AlertEvaluator(load_rules(), devices.get)
    for evaluator in (by_rows, by_columns):
        evaluator.watch(fleet, now_ms=T0)
        evaluator.tick(now_ms=T0 + 10 * MIN)  # wl-fast falls silent: a no-data episode
    clock = T0
    for batch in range(40):
        ids, ts = [], []
        for _ in range(30):
            clock += int(rng.integers(1, 40_000))
            ids.append(fleet[int(rng.integers(len(fleet)))])
            ts.append(clock)
        n = len(ids)
        level = 200 + 220 * np.sin(batch / 6) + rng.normal(0, 8, n)
        wl = np.array([kinds[d] == "water_level" for d in ids])
        env = np.array([kinds[d] == "environment" for d in ids])
        tr = np.array([kinds[d] == "traffic" for d in ids])
        nan = np.full(n, np.nan)
        rows = Rows.of_readings(
            ids,
            [kinds[d] for d in ids],
            np.array(ts, np.int64),
            {
                "level_cm": np.where(wl, level, nan),
                "pm25_ugm3": np.where(env, 40 + 30 * np.sin(batch / 5) + rng.normal(0, 5, n), nan),
                "rainfall_mm": np.where(env, rng.exponential(0.8, n), nan),
                "avg_speed_kmh": np.where(tr, rng.uniform(3, 60, n), nan),
                "occupancy_pct": np.where(tr, rng.uniform(10, 80, n), nan),
                "vehicle_count": np.where(tr, rng.poisson(4 + 4 * np.cos(batch / 4), n), nan),
            },
            {i: "level_cm:spike" for i in range(n) if wl[i] and rng.random() < 0.05},
        )
        now = float(clock)
        by_rows.observe([rows], now_ms=now)
        by_columns.observe(_as_columns(rows), now_ms=now)
    got, want = by_rows.take(), by_columns.take()
    assert {s.rule for s in want} >= {
        "river_level",
        "anomaly",
        "nodata",
        "congestion",
        "incident",
    }
    # the same signals in the same order per (rule, device); devices may interleave otherwise
    assert _per_episode(got) == _per_episode(want)


def _per_episode(signals: list[Signal]) -> dict[tuple[str, str], list[Signal]]:
    out: dict[tuple[str, str], list[Signal]] = {}
    for signal in signals:
        out.setdefault((signal.rule, signal.device.device_id), []).append(signal)
    return out


def offline_signals(evaluator: AlertEvaluator) -> list[tuple[int, bool]]:
    return [(s.level_rank, s.firing) for s in evaluator.take() if s.rule == "offline"]


def test_offline_status_is_pending_then_fires_after_its_for_duration(
    evaluator: AlertEvaluator,
) -> None:
    """The device's own `offline`, or its last will: pending at once, firing after for_s
    (a reboot back within it is no alert), resolved when it says `online` again."""
    for_ms = evaluator.rules["offline"].for_s * 1000
    assert for_ms > 0
    evaluator.observe_status("wl-1", "offline", T0)
    assert offline_signals(evaluator) == [(1, False)]  # pending
    evaluator.observe_status("wl-1", "offline", T0 + 500)  # the retained status again
    evaluator.tick(now_ms=T0 + for_ms - 1)
    assert offline_signals(evaluator) == []
    evaluator.tick(now_ms=T0 + for_ms)
    assert offline_signals(evaluator) == [(1, True)]  # firing, once
    evaluator.tick(now_ms=T0 + 2 * for_ms)
    assert offline_signals(evaluator) == []
    evaluator.observe_status("wl-1", "online", T0 + 3 * for_ms)
    assert offline_signals(evaluator) == [(0, True)]
    evaluator.observe_status("wl-1", "online", T0 + 3 * for_ms + 1)
    assert offline_signals(evaluator) == []


def test_a_reboot_within_the_for_duration_does_not_fire(evaluator: AlertEvaluator) -> None:
    evaluator.observe_status("wl-1", "offline", T0)
    evaluator.observe_status("wl-1", "online", T0 + 5_000)
    assert offline_signals(evaluator) == [(1, False), (0, True)]
    evaluator.tick(now_ms=T0 + 3_600_000)
    assert offline_signals(evaluator) == []


def test_maintenance_or_unknown_devices_say_nothing_when_offline(
    evaluator: AlertEvaluator,
) -> None:
    evaluator.observe([gauge([100], device="wl-fast")], now_ms=T0)
    evaluator.observe_status("wl-fast", "offline", T0 + 100)
    evaluator.observe_status("wl-maint", "offline", T0)
    evaluator.observe_status("nobody", "offline", T0)
    evaluator.tick(now_ms=T0 + 3_600_000)
    signals = [(s.rule, s.device.device_id, s.level_rank, s.firing) for s in evaluator.take()]
    assert sorted(signals) == [
        ("nodata", "wl-fast", 1, True),  # silent too: its own rule (a dropout says both)
        ("offline", "wl-fast", 1, False),
        ("offline", "wl-fast", 1, True),
    ]


def test_rebuild_restores_an_offline_episode(devices: dict[str, DeviceContext]) -> None:
    evaluator = AlertEvaluator(load_rules(), devices.get)
    at = datetime.fromtimestamp(T0 / 1000, UTC)
    alert = Alert(
        1,
        "offline",
        DeviceInfo("wl-1", "water_level"),
        None,
        Severity.WARNING,
        "offline",
        1,
        State.FIRING,
        None,
        None,
        None,
        None,
        None,
        at,
        at,
    )
    evaluator.rebuild([alert])
    evaluator.observe_status("wl-1", "offline", T0 + 1_000)  # retained, after the restart
    evaluator.tick(now_ms=T0 + 3_600_000)
    assert offline_signals(evaluator) == []
    evaluator.observe_status("wl-1", "online", T0 + 3_700_000)
    assert offline_signals(evaluator) == [(0, True)]
