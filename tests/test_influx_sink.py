"""The InfluxDB sink against a real InfluxDB: type conflicts isolated, outages waited out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from ingest.sink import InfluxSink, SinkStoppedError
from pantau.influxdb import InfluxClient
from pantau.servers.influxdb import InfluxServer
from pantau.settings import InfluxSettings


def count(client: InfluxClient, measurement: str) -> int:
    result = client.query(f'SELECT count("v") FROM "{measurement}"')
    return int(result[0][0].values[0][1]) if result and result[0] else 0


def test_a_type_conflict_dead_letters_only_the_bad_lines(influx_server: InfluxServer) -> None:
    settings = InfluxSettings(url=influx_server.url, database="sink_conflict")
    client = InfluxClient(settings)
    client.ensure_database()
    sink = InfluxSink(settings, client)
    lines = [f"m,device_id=d{i} v={i}.0 {1_795_000_000_000 + i}" for i in range(40)]
    lines[7] = 'm,device_id=d7 v="text" 1795000000007'
    lines[31] = "m,device_id=d31 v=true 1795000000031"
    refused = sink.write_batch(lines)
    assert sorted(r.index for r in refused) == [7, 31]
    assert all("conflict" in r.error for r in refused)
    assert count(client, "m") == 38
    # Writing the same batch again is idempotent: no extra points.
    sink.write_batch([line for i, line in enumerate(lines) if i not in (7, 31)])
    assert count(client, "m") == 38
    sink.close()


def test_writes_wait_for_influxdb_to_come_back(
    influx_factory: Callable[[], InfluxServer],
) -> None:
    server = influx_factory()
    settings = InfluxSettings(url=server.url, database="sink_outage", retry_max_delay_s=0.5)
    client = InfluxClient(settings)
    client.ensure_database()
    health: list[bool] = []
    sink = InfluxSink(settings, client, on_health=health.append)
    server.stop()
    done = threading.Event()
    result: list[object] = []

    def write() -> None:
        result.append(sink.write_batch(["m v=1.0 1795000000000"]))
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(2.0)
    assert not done.is_set(), "the write returned while InfluxDB was down"
    assert health == [False]
    server.start()
    assert done.wait(15), "the write did not complete after InfluxDB came back"
    assert result == [[]]
    assert health == [False, True]
    assert count(client, "m") == 1
    sink.close()


def test_stop_interrupts_a_failing_write(influx_factory: Callable[[], InfluxServer]) -> None:
    server = influx_factory()
    settings = InfluxSettings(url=server.url, database="sink_stop", retry_max_delay_s=0.2)
    stop = threading.Event()
    sink = InfluxSink(settings, stop=stop)
    server.stop()
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(SinkStoppedError):
        sink.write_batch(["m v=1.0 1795000000000"])
    sink.close()


def test_the_hourly_rollup_exists_and_rolls_up(influx_server: InfluxServer) -> None:
    settings = InfluxSettings(url=influx_server.url, database="rollup")
    client = InfluxClient(settings)
    client.ensure_database()
    client.ensure_database()  # idempotent
    cqs = client.query("SHOW CONTINUOUS QUERIES", database="rollup")
    names = [row["name"] for s in cqs[0] if s.name == "rollup" for row in s.rows()]
    assert names == ["pantau_hourly_rollup"]
    hour_ms = (int(time.time() * 1000) // 3_600_000 - 2) * 3_600_000
    lines = [
        f"water_level,device_id=wl-1 level_cm={v}.0,seq={i}i {hour_ms + i * 60_000}"
        for i, v in enumerate([100, 110, 120])
    ]
    client.write(("\n".join(lines) + "\n").encode())
    # Continuous queries run on InfluxDB's schedule; run the same query as a backfill.
    start_ns, end_ns = hour_ms * 1_000_000, (hour_ms + 3_600_000) * 1_000_000
    client.execute(
        f"{client.hourly_rollup_select()} WHERE time >= {start_ns} AND "
        f"time < {end_ns} GROUP BY time(1h), *",
        database="rollup",
    )
    rows = client.query('SELECT * FROM "rollup"."hourly"."water_level"', database="rollup")
    [row] = rows[0][0].rows()
    assert (row["mean_level_cm"], row["min_level_cm"], row["max_level_cm"]) == (110, 100, 120)
    assert row["device_id"] == "wl-1"
    client.close()


@pytest.mark.parametrize(("status", "retry_after"), [(503, 1.0), (429, 1.0), (500, None)])
def test_unknown_write_outcomes_are_retried_without_duplicates(
    influx_server: InfluxServer, status: int, retry_after: float | None
) -> None:
    from tests.flaky_proxy import FlakyInfluxProxy

    db = f"sink_flaky_{status}"
    direct = InfluxClient(InfluxSettings(url=influx_server.url, database=db))
    direct.ensure_database()
    with FlakyInfluxProxy(
        influx_server.url, failures=2, status=status, retry_after_s=retry_after
    ) as proxy:
        settings = InfluxSettings(url=proxy.url, database=db, retry_max_delay_s=5.0)
        retries: list[str] = []
        sink = InfluxSink(settings, on_retry=retries.append)
        lines = [f"m,device_id=d{i % 7} v={i}.0 {1_795_000_000_000 + i}" for i in range(500)]
        started = time.monotonic()
        assert sink.write_batch(lines) == []
        elapsed = time.monotonic() - started
        sink.close()
    assert proxy.writes_seen == 3  # two answered with an error (but written), one clean
    assert len(retries) == 2
    if retry_after is not None:
        assert elapsed >= 2 * retry_after * 0.8, "Retry-After was not honoured"
    assert count(direct, "m") == 500  # written three times, stored once
    direct.close()
