"""Simulators without a network: physics, scenarios, determinism, faults and their ground truth.

Everything runs on a simulated clock through `Engine`, so a 10-hour flood takes well under a
second. Payloads are checked with the ingester's own decode and validate stages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import typer

from devices.catalog import default_catalog
from ingest.decode import decode_payload
from ingest.model import RejectedError, RejectReason
from ingest.validate import Validator
from pantau.ids import DEVICE_ID_RE
from simulators.clock import LOCAL_TZ, SimClock, local_day, local_hour, local_weekday
from simulators.fleet import build_fleet, simulated_devices
from simulators.groundtruth import GroundTruthLog
from simulators.rain import RainField
from simulators.runner import Engine, TickOutput
from simulators.scenario import (
    RainEvent,
    ScenarioError,
    load_scenario,
    parse_scenario,
    scenario_names,
)
from simulators.water_level import WaterLevelModel
from simulators.wire import Message, encode

# Monday 23 November 2026, 00:00 WITA.
MONDAY = datetime(2026, 11, 23, tzinfo=LOCAL_TZ).timestamp()


def _validator() -> Validator:
    return Validator(default_catalog(), future_tolerance_s=300, retention_days=400)


def _run(engine: Engine, start_s: float, hours: float, interval_s: float) -> Iterator[TickOutput]:
    """Tick the engine for `hours`; yield each tick's output."""
    for k in range(int(hours * 3600 / interval_s)):
        yield engine.tick(start_s + k * interval_s)


def _field(out: TickOutput, kind: str, name: str) -> np.ndarray:
    return next(s for s in out.samples if s.kind == kind).fields[name]


def test_flood_scenario_drives_the_town_gauge_through_every_warning_level() -> None:
    scenario = load_scenario("flood-malili")
    assert scenario.duration_s is not None
    start = MONDAY + 9 * 3600  # 09:00 WITA
    engine = Engine(scenario, start_s=start, interval_s=60.0, seed=7)
    gauge = engine.ids.index("wl-malili-03")
    thresholds = engine.fleet[gauge].base.thresholds  # type: ignore[union-attr]
    reached: dict[str, float] = {}
    peak = 0.0
    for out in _run(engine, start, scenario.duration_s / 3600, 60.0):
        level = float(_field(out, "water_level", "level_cm")[gauge])
        peak = max(peak, level)
        state = thresholds.level_of(level)
        for name in ("waspada", "siaga", "awas")[
            : ("normal", "waspada", "siaga", "awas").index(state)
        ]:
            reached.setdefault(name, out.t_s)
    engine.close()
    assert list(reached) == ["waspada", "siaga", "awas"], (reached, peak)
    assert reached["waspada"] < reached["siaga"] < reached["awas"]
    # At --speed 60 the gauge reaches Awas within a few minutes of wall time.
    # (as `pantau simulate` runs it: started one scenario length in the past).
    wall0 = start + scenario.duration_s
    clock = SimClock(start, speed=60.0, wall0=wall0)
    assert clock.wall_at(reached["awas"]) - wall0 < 6 * 60
    # ... and recedes: the wave passes and the gauge falls back below Awas by the end.
    assert float(_field(out, "water_level", "level_cm")[gauge]) < thresholds.awas_cm
    kinds = {(e.device, e.kind) for e in engine.truth.entries}
    assert {("wl-malili-03", f"flood_{n}") for n in ("waspada", "siaga", "awas")} <= kinds


def test_flood_wave_arrives_later_and_flatter_downstream() -> None:
    scenario = parse_scenario({"name": "t", "kinds": ["water_level"], "only": ["wl-malili-*"]})
    start = MONDAY
    rain = RainField(1, start, (RainEvent("malili", 3600.0, 2 * 3600.0, 25.0),), 0.0)
    fleet = build_fleet(scenario)
    model = WaterLevelModel(fleet, rain, 1)
    times = start + np.arange(0, 24 * 3600, 300.0)
    flows = np.array([model.flow_m3s(t) for t in times])  # (time, gauge), noise free
    ids = [d.device_id for d in fleet]
    order = [ids.index(f"wl-malili-0{i}") for i in (1, 2, 3)]
    peak_times = [times[np.argmax(flows[:, g])] for g in order]
    assert peak_times[0] < peak_times[1] < peak_times[2]
    assert peak_times[2] - peak_times[0] >= 3600  # about 22 km at 6 km/h
    # Per km² of catchment, the peak flattens on its way down (storage, routing).
    areas = np.cumsum([g.local_area_km2 for g in fleet[order[0]].river.gauges])  # type: ignore[union-attr]
    specific = [(flows[:, g].max() - flows[0, g]) / areas[i] for i, g in enumerate(order)]
    assert specific[0] > specific[1] > specific[2]
    # Before the rain the river is at base flow; a day later it is nearly back.
    assert np.allclose(flows[0, order], [fleet[g].base.base_flow_m3s for g in order], rtol=0.05)  # type: ignore[union-attr]
    assert flows[-1, order[2]] < 0.3 * flows[:, order[2]].max()


def _weather_days(days: int = 4, **extra: object) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    scenario = parse_scenario({"name": "t", "kinds": ["environment"], **extra})
    engine = Engine(scenario, start_s=MONDAY, interval_s=600.0, seed=3)
    rows: dict[str, list[np.ndarray]] = {}
    times = []
    for out in _run(engine, MONDAY, 24 * days, 600.0):
        times.append(out.t_s)
        for name, values in out.samples[0].fields.items():
            rows.setdefault(name, []).append(values.copy())
    return np.array(times), {k: np.array(v) for k, v in rows.items()}


def test_temperature_peaks_in_the_afternoon_and_humidity_moves_against_it() -> None:
    times, fields = _weather_days(shower_probability=0.0)
    hours = np.floor(local_hour(times)).astype(int)
    lowland = 0  # env-malili-01
    temperature = fields["temperature_c"][:, lowland]
    by_hour = np.array([temperature[hours == h].mean() for h in range(24)])
    assert 12 <= int(np.argmax(by_hour)) <= 15
    assert 4 <= int(np.argmin(by_hour)) <= 7
    assert 22.0 < by_hour.min() < 26.0 and 30.5 < by_hour.max() < 34.0
    humidity = fields["humidity_pct"][:, lowland]
    assert np.corrcoef(temperature, humidity)[0, 1] < -0.8
    # Semi-diurnal atmospheric tide: highs near 10 and 22, lows near 04 and 16 local time.
    pressure = fields["pressure_hpa"][:, lowland]
    p_hour = np.array([pressure[hours == h].mean() for h in range(24)])
    assert p_hour[10] - p_hour[16] > 1.5 and p_hour[22] - p_hour[4] > 1.0
    assert 1005 < pressure.mean() < 1013
    sorowako = 4  # 420 m up: cooler and lower pressure
    assert fields["temperature_c"][:, sorowako].mean() < temperature.mean() - 1.5
    assert fields["pressure_hpa"][:, sorowako].mean() < pressure.mean() - 40
    assert fields["rainfall_mm"].sum() == 0.0


def test_showers_come_in_the_afternoon_and_haze_raises_pm() -> None:
    times, fields = _weather_days(days=6, shower_probability=0.8)
    hours = local_hour(times)
    rain = fields["rainfall_mm"].sum(axis=1)
    assert rain.sum() > 20
    afternoon = (hours >= 12) & (hours < 20)
    assert rain[afternoon].sum() > 0.7 * rain.sum()
    assert np.all(np.isclose(fields["rainfall_mm"] / 0.2, np.round(fields["rainfall_mm"] / 0.2)))
    haze_times, haze = _weather_days(
        days=2, **{"haze": [{"start": "6h", "duration": "30h", "pm25_ugm3": 90}]}
    )
    _, clear = _weather_days(days=2)
    middle = (haze_times > MONDAY + 20 * 3600) & (haze_times < MONDAY + 30 * 3600)
    assert haze["pm25_ugm3"][middle].mean() > 4 * clear["pm25_ugm3"][middle].mean()
    assert np.all(haze["pm10_ugm3"] >= haze["pm25_ugm3"])


def test_traffic_has_rush_hours_quiet_nights_and_incidents() -> None:
    scenario = load_scenario("rush-hour-accident")
    start = MONDAY + 5 * 3600  # 05:00 WITA, as the scenario asks: the crash hits at 07:40
    engine = Engine(scenario, start_s=start, interval_s=300.0, seed=5)
    traffic_ids = [d.device_id for d in engine.fleet if d.kind == "traffic"]
    row = traffic_ids.index("trf-tomoni-01")
    counts, speeds, occupancy, times = [], [], [], []
    for out in _run(engine, start, 7 * 24, 300.0):
        fields = next(s for s in out.samples if s.kind == "traffic").fields
        counts.append(fields["vehicle_count"].copy())
        speeds.append(fields["avg_speed_kmh"][row])
        occupancy.append(fields["occupancy_pct"][row])
        times.append(out.t_s)
    count = np.array(counts)
    t = np.array(times)
    hour = local_hour(t)
    weekday = np.array([local_weekday(x) for x in t])
    workday = weekday < 5
    rush = workday & (((hour >= 7) & (hour < 8)) | ((hour >= 16.5) & (hour < 17.5)))
    midday = workday & (hour >= 10) & (hour < 11)
    night = (hour >= 1) & (hour < 4)
    for site in range(count.shape[1]):
        assert count[rush, site].mean() > 1.3 * count[midday, site].mean()
        assert count[midday, site].mean() > 3 * count[night, site].mean()
    sunday_morning = (weekday == 6) & (hour >= 7) & (hour < 8)
    monday_morning = (weekday == 0) & (hour >= 7) & (hour < 8)
    assert count[sunday_morning].sum() < 0.7 * count[monday_morning].sum()
    # The truck crash: speed collapses, occupancy climbs, fewer vehicles get through.
    incident = scenario.incidents[0]
    crash = start + incident.start_s
    during = (t >= crash + 900) & (t < crash + incident.duration_s)
    before = (t >= crash - 3600) & (t < crash)
    assert np.nanmean(np.array(speeds)[during]) < 15
    assert np.nanmean(np.array(speeds)[before]) > 50
    assert np.mean(np.array(occupancy)[during]) > 60
    assert count[during, row].mean() < 0.8 * count[before, row].mean()
    assert ("trf-tomoni-01", "incident") in {(e.device, e.kind) for e in engine.truth.entries}


def test_same_seed_same_messages_other_seed_other_messages() -> None:
    scenario = load_scenario("sensor-faults")

    def payloads(seed: int) -> list[bytes]:
        engine = Engine(scenario, start_s=MONDAY, interval_s=60.0, seed=seed)
        return [m.payload for out in _run(engine, MONDAY, 1.5, 60.0) for m in out.messages]

    first = payloads(11)
    assert first == payloads(11)
    assert first != payloads(12)


def test_every_shipped_scenario_loads_and_runs() -> None:
    names = scenario_names()
    assert {"normal-day", "flood-malili", "haze", "rush-hour-accident", "sensor-faults"} <= set(
        names
    )
    for name in names:
        scenario = load_scenario(name)
        engine = Engine(scenario, start_s=MONDAY, interval_s=60.0, seed=1)
        out = engine.tick(MONDAY)
        assert out.readings == len(engine.fleet)
    with pytest.raises(ScenarioError, match="unknown kind"):
        parse_scenario({"faults": [{"kind": "gremlins", "devices": "*", "start": "1h"}]})
    with pytest.raises(ScenarioError, match="duration"):
        parse_scenario(
            {"rain": [{"zone": "malili", "start": "soon", "duration": "1h", "intensity_mm_h": 3}]}
        )


def test_fleet_ids_sites_and_thresholds_for_the_registry() -> None:
    base = simulated_devices(load_scenario("normal-day"))
    assert len(base) == 25
    ids = [d.id for d in base]
    assert all(DEVICE_ID_RE.fullmatch(i) for i in ids)
    assert {"wl-malili-01", "env-wotu-01", "trf-tomoni-01", "env-sorowako-01"} <= set(ids)
    bridge = next(d for d in base if d.id == "wl-malili-03")
    assert bridge.thresholds == {"level_cm": {"waspada": 250.0, "siaga": 300.0, "awas": 350.0}}
    assert bridge.district == "Malili" and -3 < bridge.lat < -2 and 120 < bridge.lon < 122
    for device in base:
        if device.kind == "water_level":
            levels = device.thresholds["level_cm"]
            assert levels["waspada"] < levels["siaga"] < levels["awas"]
    big = build_fleet(load_scenario("normal-day"), 10_000)
    assert len(big) == 10_000
    assert len({d.device_id for d in big}) == 10_000
    assert all(DEVICE_ID_RE.fullmatch(d.device_id) for d in big)
    kinds = [d.kind for d in big]
    assert kinds.count("water_level") > 4000 and kinds.count("traffic") > 3000


def _decode_all(
    engine: Engine, hours: float, interval_s: float
) -> Iterator[tuple[str, float, Message, Any]]:
    """(device id, tick time, message, decode+validate result or the RejectedError)."""
    validator = _validator()
    for out in _run(engine, engine.start_s, hours, interval_s):
        received_ms = int(out.t_s * 1000) + 50
        for message in out.messages:
            device_id = engine.ids[message.device_index]
            try:
                records = decode_payload(message.payload, message.content_type, now_s=out.t_s)
                result: object = validator.validate(device_id, records, received_ms)
            except RejectedError as exc:
                result = exc
            # The true time of the reading (the log's times), before any clock skew.
            yield device_id, out.t_s - engine.phase_s[message.device_index], message, result


def _in(entry_start: str, entry_end: str, ts_ms: int) -> bool:
    start = datetime.fromisoformat(entry_start).timestamp() * 1000
    end = datetime.fromisoformat(entry_end).timestamp() * 1000
    return start - 1 <= ts_ms <= end + 1


def test_faults_are_logged_and_malformed_messages_are_really_malformed(tmp_path: Path) -> None:
    scenario = load_scenario("sensor-faults")
    truth_path = tmp_path / "truth.jsonl"
    engine = Engine(
        scenario, start_s=MONDAY, interval_s=60.0, seed=7, truth=GroundTruthLog(truth_path)
    )
    results = list(_decode_all(engine, 6.0, 60.0))
    engine.close()
    entries = [orjson.loads(line) for line in truth_path.read_text().splitlines()]
    faults = [e for e in entries if e["category"] == "fault"]
    assert {e["kind"] for e in faults} == {
        "spike",
        "drift",
        "stuck",
        "dropout",
        "clock_skew",
        "duplicate",
        "malformed",
        "reconnect_storm",
    }
    for entry in entries:
        assert set(entry) == {"device", "field", "start", "end", "kind", "category", "detail"}
        assert entry["start"].endswith("Z") and entry["start"] <= entry["end"]
        datetime.fromisoformat(entry["start"]).astimezone(UTC)

    expected = {
        "bad_json": RejectReason.BAD_JSON,
        "wrong_type": RejectReason.BAD_TYPE,
        "nan": RejectReason.NOT_FINITE,
        "oversized": RejectReason.PAYLOAD_TOO_LARGE,
    }
    malformed = [e for e in faults if e["kind"] == "malformed"]
    future = [e for e in faults if e["kind"] == "clock_skew" and e["detail"]["offset_s"] > 300]
    rejected_as: dict[str, set[RejectReason]] = {}
    accepted = rejected_future = 0
    for device_id, t_s, _message, result in results:
        bad = [
            e
            for e in malformed
            if e["device"] == device_id and _in(e["start"], e["end"], int(t_s * 1000))
        ]
        skewed = [
            e
            for e in future
            if e["device"] == device_id and _in(e["start"], e["end"], int(t_s * 1000))
        ]
        if bad:
            assert isinstance(result, RejectedError), (device_id, t_s)
            rejected_as.setdefault(bad[0]["detail"]["variant"], set()).add(result.reason)
        elif skewed and isinstance(result, RejectedError):
            assert result.reason is RejectReason.TS_FUTURE
            rejected_future += 1
        else:
            assert not isinstance(result, RejectedError), (device_id, result)
            accepted += 1
    assert {k: {v} for k, v in expected.items()} == rejected_as
    assert rejected_future >= 25  # the 30 minutes of +15 min clock at one reading a minute
    assert accepted > 6 * 60 * 20

    readings: dict[str, list[Any]] = {}
    for device_id, _t, _m, result in results:
        if isinstance(result, list):
            readings.setdefault(device_id, []).extend(result)

    def series(device: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        rs = sorted({(r.ts_ms, r.seq): r for r in readings[device]}.values(), key=lambda r: r.seq)
        return np.array([r.ts_ms for r in rs]), np.array([r.fields.get(name, np.nan) for r in rs])

    # The spike is exactly the reading the log names, and it stands out.
    spike = next(e for e in faults if e["kind"] == "spike" and e["device"] == "wl-malili-02")
    ts, level = series("wl-malili-02", "level_cm")
    at = int(
        np.flatnonzero(ts == int(datetime.fromisoformat(spike["start"]).timestamp() * 1000))[0]
    )
    assert level[at] - (level[at - 1] + level[at + 1]) / 2 > 80
    # Stuck: the same value through the window, varying outside it.
    stuck = next(e for e in faults if e["kind"] == "stuck" and e["device"] == "wl-kalaena-02")
    ts, level = series("wl-kalaena-02", "level_cm")
    inside = np.array([_in(stuck["start"], stuck["end"], int(x)) for x in ts])
    assert inside.sum() == 90 and len(set(level[inside])) == 1 and len(set(level[~inside])) > 10
    # Dropout: nothing in the window, and the sequence numbers show the gap.
    drop = next(e for e in faults if e["kind"] == "dropout" and e["device"] == "wl-larona-03")
    ts, _ = series("wl-larona-03", "level_cm")
    seqs = sorted({r.seq for r in readings["wl-larona-03"]})
    assert not any(_in(drop["start"], drop["end"], int(x)) for x in ts)
    assert len(seqs) == 360 - 30 and seqs[-1] == 360
    # Duplicates: same seq twice, same payload.
    dup = [m.payload for d, _t, m, _r in results if d == "trf-burau-01"]
    assert 3 <= len(dup) - len(set(dup)) <= 17
    # Drift grows with time.
    drift = next(e for e in faults if e["kind"] == "drift")
    assert drift["device"] == "env-tomoni-01" and drift["field"] == "temperature_c"


def test_every_wire_format_decodes_to_the_same_reading() -> None:
    values = {"level_cm": 143.2, "flow_m3s": float("nan"), "battery_v": 12.61, "rssi_dbm": -81.0}
    ts_ms = 1_795_000_000_123
    decoded = []
    for fmt, content_type in [
        ("json", "application/json"),
        ("batch", "application/json"),
        ("senml", "application/senml+json"),
    ]:
        payload = encode(fmt, "wl-malili-01", [(ts_ms, 41, values)])
        records = decode_payload(payload, content_type)
        readings = _validator().validate("wl-malili-01", records, ts_ms)
        decoded.append([(r.ts_ms, r.seq, r.fields) for r in readings])
    assert decoded[0] == decoded[1] == decoded[2]
    assert decoded[0] == [(ts_ms, 41, {"level_cm": 143.2, "battery_v": 12.61, "rssi_dbm": -81.0})]


def test_accelerated_clock_never_runs_ahead_of_the_present() -> None:
    wall0 = 1_800_000_000.0
    clock = SimClock(wall0 - 10 * 3600, speed=60.0, wall0=wall0)
    assert clock.now_s(wall0 + 60) == wall0 - 9 * 3600
    for wall in np.linspace(wall0, wall0 + 3 * 3600, 50):
        assert clock.now_s(float(wall)) <= wall
    caught_up = wall0 + 10 * 3600 / 59
    assert abs(clock.now_s(caught_up + 100) - (caught_up + 100)) < 1e-6
    assert clock.wall_at(wall0 - 9 * 3600) == pytest.approx(wall0 + 60)
    assert clock.wall_at(wall0 + 4 * 3600) == wall0 + 4 * 3600


def test_an_uncapped_clock_runs_ahead_for_readings_stamped_with_the_present() -> None:
    """`pantau simulate --present` starts now and runs its simulated time 60x ahead; its
    readings carry the wall-clock time, so nothing is stamped in the future."""
    wall0 = 1_800_000_000.0
    clock = SimClock(wall0, speed=60.0, wall0=wall0, capped=False)
    assert clock.now_s(wall0 + 60) == wall0 + 3600
    assert clock.wall_at(wall0 + 10 * 3600) == pytest.approx(wall0 + 600)


def test_random_faults_scatter_over_a_large_fleet_and_are_all_logged() -> None:
    scenario = load_scenario("city-scale")
    engine = Engine(scenario, start_s=MONDAY, interval_s=600.0, seed=9, devices=400)
    assert len(engine.fleet) == 400
    validator = _validator()
    rejected = 0
    for out in _run(engine, MONDAY, 48, 600.0):
        for message in out.messages[:50]:
            try:
                records = decode_payload(message.payload, message.content_type, now_s=out.t_s)
                validator.validate(engine.ids[message.device_index], records, int(out.t_s * 1000))
            except RejectedError:
                rejected += 1
    engine.close()
    faults = [e for e in engine.truth.entries if e.category == "fault"]
    # 400 devices x 2 days x 0.5 per day: about 400 faults, each kind present.
    assert 300 < len(faults) < 500
    assert {e.kind for e in faults} == set(scenario.random_faults.kinds)  # type: ignore[union-attr]
    assert sum(engine.injector.injected.values()) >= len(faults)
    assert all(e.start_s <= e.end_s for e in faults)
    assert rejected > 0  # malformed and future-skewed messages among them


def test_accelerated_runs_start_in_the_past_by_default() -> None:
    from simulators.cli import choose_start_s

    now = time.time()
    ten_hours = parse_scenario({"duration": "10h"})
    endless = parse_scenario({})
    assert abs(choose_start_s(None, 1.0, ten_hours) - now) < 5
    assert abs(choose_start_s(None, 60.0, ten_hours) - (now - 36000.0)) < 5
    assert abs(choose_start_s(None, 60.0, endless) - (now - 86400.0)) < 5
    # The rush-hour scenario asks for 05:00 WITA on a weekday, and must end before now.
    rush = load_scenario("rush-hour-accident")
    assert rush.duration_s is not None
    start = choose_start_s(None, 60.0, rush)
    assert float(local_hour(start)) == 5.0 and local_weekday(start) < 5
    assert now - 8 * 86400 < start <= now - rush.duration_s
    assert (
        choose_start_s("2026-11-23T05:00:00+08:00", 60.0, endless)
        == datetime(2026, 11, 22, 21, tzinfo=UTC).timestamp()
    )
    with pytest.raises(typer.BadParameter, match="future"):
        choose_start_s("2999-01-01T00:00:00+08:00", 60.0, endless)
    with pytest.raises(typer.BadParameter, match="time zone"):
        choose_start_s("2026-11-30T05:00:00", 60.0, endless)


def test_every_shower_is_in_the_ground_truth_and_only_rain_that_fell() -> None:
    """Showers are logged as events: on the stations of the town where it rained (each wet
    reading inside a `shower` window, each window with rain in it) and on the gauges of the
    river whose catchment it fell on (`shower_rise`, starting no earlier than the rain), and
    on the traffic counters of its zone."""
    scenario = parse_scenario(
        {
            "name": "t",
            "kinds": ["environment", "water_level", "traffic"],
            "shower_probability": 0.8,
        }
    )
    interval = 300.0
    engine = Engine(scenario, start_s=MONDAY, interval_s=interval, seed=3)
    outs = list(_run(engine, MONDAY, 72.0, interval))
    engine.close()
    env = next(s for s in outs[0].samples if s.kind == "environment")
    ids = [engine.ids[i] for i in env.index.tolist()]
    showers = [e for e in engine.truth.entries if e.kind == "shower" and e.device in ids]
    rises = [e for e in engine.truth.entries if e.kind == "shower_rise"]
    assert len(showers) > 10 and len(rises) > 10
    assert all(e.category == "event" for e in showers)
    # rain trims speed on the zone's roads: the counters there get the same showers
    assert {e.field for e in engine.truth.entries if e.kind == "shower"} >= {"avg_speed_kmh"}
    assert all(e.category == "event" and e.field == "level_cm" for e in rises)
    for col, device in enumerate(ids):
        windows = [(e.start_s, e.end_s) for e in showers if e.device == device]
        wet = 0.0
        for out in outs:
            fields = next(s for s in out.samples if s.kind == "environment").fields
            rain = float(fields["rainfall_mm"][col])
            # a reading sums the rain of the interval before it
            inside = any(s - interval <= out.t_s <= e + interval for s, e in windows)
            assert inside or rain == 0.0, (device, out.t_s, rain)
            wet += rain if inside else 0.0
        assert (wet > 0.0) == bool(windows)
    field = engine.world.rain
    for e in rises:
        key = e.detail["rain_key"]
        day = local_day(e.start_s)
        cells = [field.day_showers(key, d) for d in (day - 1, day)]
        starts = np.concatenate([c.start_s for c in cells])
        ends = starts + np.concatenate([c.duration_s for c in cells])
        # the rain that fell on the catchment, before the window and ending inside it
        assert np.any((starts <= e.start_s) & (ends <= e.end_s)), e
