"""Fault scenario 14: overload at 10x capacity — bounded memory, lag visible, drops counted
and alerted. Real Mosquitto, InfluxDB and ingester processes.

The ingester's capacity is capped by a slow database (a proxy holds every write
`WRITE_DELAY_S`, and the ingester writes one batch of `BATCH` points at a time), while
publisher processes publish as fast as the broker acknowledges. The broker queues at most
`QUEUED` messages (plus the Receive Maximum in flight) for the ingester's session and drops
the rest: acknowledged to the publisher, never delivered. The test holds, by sequence numbers:

- the ingester's memory stays bounded while the broker drops;
- the backlog shows: the broker's stored messages reach its queue limit, and the lag (from
  arrival at the ingester) stays short — the ingester holds little, the broker the rest;
- missing (published-and-acknowledged minus stored) == the sequence gaps the ingester counted
  == the broker's dropped counter read over `$SYS` (see the tolerance below);
- the overload WARNING was logged, and not more often than its interval allows.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pantau.mqtt_publish import Qos1Publisher
from pantau.servers.influxdb import InfluxServer
from pantau.servers.mosquitto import MosquittoServer
from pantau.servers.process import free_port
from tests.conftest import PantauProcess, eventually, make_settings
from tests.delivery_helpers import flood, metrics, rss_mb, stored_pairs
from tests.flaky_proxy import FlakyInfluxProxy
from tests.registry_helpers import register_devices

pytestmark = pytest.mark.fault

DEVICES = [f"wl-flood-{i:02d}" for i in range(40)]
PUBLISHERS = 2
FLOOD_S = 25.0
WRITE_DELAY_S = 0.2
BATCH = 100  # points per write: capacity about BATCH / WRITE_DELAY_S = 500 messages/s
QUEUED = 4000  # the broker's max_queued_messages
RECEIVE_MAXIMUM = 500
LOG_INTERVAL_S = 5.0


def test_overload_at_ten_times_capacity_is_bounded_visible_counted_and_alerted(
    influx_server: InfluxServer,
    mosquitto_factory: Callable[..., MosquittoServer],
    run_pantau: Callable[..., PantauProcess],
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(max_queued_messages=QUEUED, sys_interval_s=1)
    with FlakyInfluxProxy(influx_server.url, write_delay_s=WRITE_DELAY_S) as proxy:
        port = free_port()
        settings = make_settings(
            broker.url,
            proxy.url,
            tmp_path,
            mqtt={"receive_maximum": RECEIVE_MAXIMUM},
            influx={"batch_max_points": BATCH, "flush_interval_s": 0.05},
            ingest={
                "metrics_port": port,
                "max_pending_messages": 100,
                "lag_warn_s": 3.0,
                "overload_log_interval_s": LOG_INTERVAL_S,
            },
        )
        register_devices(settings.database.url, DEVICES)
        ingester = run_pantau(["ingest"], settings)
        eventually(
            lambda: "session for" in ingester.log_tail(20000), timeout_s=30, what="ingester up"
        )
        assert ingester.pid is not None
        rss_before = rss_mb(ingester.pid)

        context = multiprocessing.get_context("spawn")
        results: Any = context.Queue()
        share = len(DEVICES) // PUBLISHERS
        start_together = context.Barrier(PUBLISHERS)
        floods = [
            context.Process(
                target=flood,
                args=(broker.port, f"flood-{k}", DEVICES[k * share : (k + 1) * share], FLOOD_S),
                kwargs={"results": results, "start_together": start_together},
                daemon=True,
            )
            for k in range(PUBLISHERS)
        ]
        try:
            for process in floods:
                process.start()
            # While it floods: the ingester's memory and lag, and what it managed to store.
            rss: list[float] = []
            lags: list[float] = []
            stored_counts: list[float] = []
            started = time.monotonic()
            while time.monotonic() - started < FLOOD_S:
                time.sleep(0.5)
                rss.append(rss_mb(ingester.pid))
                sample = metrics(port)
                lags.append(sample.get("pantau_ingest_lag_seconds", 0.0))
                stored_counts.append(sample.get("pantau_broker_messages_stored", 0.0))
            stored_in_flood = metrics(port).get("pantau_ingest_readings_written_total", 0.0)
            outcomes = [results.get(timeout=90) for _ in floods]
            for process in floods:
                process.join(10)
        finally:
            for process in floods:
                if process.is_alive():
                    process.terminate()  # by its PID
                    process.join(5)
        for outcome in outcomes:
            assert outcome["error"] == "" and outcome["disconnects"] == 0, outcome
            assert outcome["failed"] == 0 and outcome["acked"] == outcome["sent"], outcome
        next_seq: dict[str, int] = {}
        last_ts: dict[str, int] = {}
        for outcome in outcomes:
            next_seq.update(outcome["next_seq"])
            last_ts.update(outcome["last_ts"])
        published = sum(outcome["sent"] for outcome in outcomes)

        # Let the backlog drain fast, then one closing reading per device, so a device whose
        # last readings were dropped shows that gap too (a gap shows at the next reading).
        proxy.write_delay_s = 0.0
        wait_until_idle(port)
        closer = Qos1Publisher("127.0.0.1", broker.port, "flood-closer", window=10_000).connect()
        now_ms = int(time.time() * 1000)
        for device in DEVICES:
            body = f'{{"ts": {max(now_ms, last_ts[device] + 1)}, "seq": {next_seq[device]}, '
            closer.publish(f"pantau/devices/{device}/telemetry", (body + '"level_cm": 1}').encode())
        assert closer.wait_acked(30)
        closer.close()
        direct = settings.model_copy(deep=True)  # queries go straight to InfluxDB
        direct.influx.url = influx_server.url
        closers = {(d, next_seq[d]) for d in DEVICES}
        eventually(
            lambda: closers <= set(stored_pairs(direct)), timeout_s=30, what="closers stored"
        )
        wait_until_idle(port)
        # The broker publishes $SYS every second: wait until its counter stopped moving.
        dropped = settled(lambda: metrics(port).get("pantau_broker_messages_dropped_total"))
        final = metrics(port)
        rss_after = rss_mb(ingester.pid)
        log_text = ingester.log_tail(2_000_000)
        assert ingester.running

    pairs = stored_pairs(direct)
    stored = set(pairs)
    # Published and acknowledged: seqs 0..next_seq of every device (the closer included).
    expected = sum(next_seq[d] + 1 for d in DEVICES)
    unexpected = [(d, s) for d, s in stored if not (d in next_seq and 0 <= s <= next_seq[d])]
    missing = expected - (len(stored) - len(unexpected))
    gaps = final["pantau_ingest_seq_gaps_total"]
    warnings = re.findall(r"overload \(([a-z ,]+)\)", log_text)
    report = (
        f"published={published} (+{len(DEVICES)} closers) in {FLOOD_S:.0f}s "
        f"= {published / FLOOD_S:.0f}/s; stored during the flood={stored_in_flood:.0f} "
        f"= {stored_in_flood / FLOOD_S:.0f}/s; stored={len(stored)} missing={missing} "
        f"seq_gaps={gaps:.0f} broker_dropped={dropped} "
        f"broker_received={final.get('pantau_broker_publish_received_total')}; "
        f"lag max={max(lags):.1f}s broker stored max={max(stored_counts):.0f}; "
        f"rss before={rss_before:.0f}MB "
        f"flood min/max={min(rss):.0f}/{max(rss):.0f}MB after={rss_after:.0f}MB; "
        f"warnings={len(warnings)}"
    )
    print(report)
    # Enough moved to prove anything: a real flood, and most of it lost to the broker's limit.
    assert published >= 100_000, report
    assert stored_in_flood >= 5_000, report
    assert published >= 10 * stored_in_flood, f"not 10x the ingester's capacity: {report}"
    assert missing >= published // 2, report
    # Nothing else went wrong: no duplicates, nothing stored that was not published.
    assert len(pairs) == len(stored) and not unexpected, report
    # Every reading the broker dropped is a sequence gap, and the broker counted each one.
    # Gaps == missing exactly: every device's first reading arrived (the queue was empty) and
    # its closing reading too, so every hole lies between two readings the ingester saw and
    # nothing arrived out of order. The broker's counter counts per subscriber, and the
    # ingester is the only subscriber of device topics; its $SYS messages are QoS 0, which
    # Mosquitto never drops for a connected client. The tolerance (0.1%) is for a counter
    # read from a once-a-second snapshot; it has been exact in every run so far.
    assert gaps == missing, report
    assert dropped is not None and abs(dropped - missing) <= max(5, missing // 1000), report
    # The backlog visible: the broker held its queue full for the ingester. The lag is
    # measured from arrival, so it shows the ingester's own holding — a write or two — and
    # not the broker's queue (MQTT tells no broker time), which shows as the stored count.
    assert max(stored_counts) >= QUEUED / 2, report
    assert WRITE_DELAY_S <= max(lags) < 60, report
    # Memory bounded: the broker holds the queue and drops past it; the ingester holds at most
    # its Receive Maximum. No growth during the flood beyond allocator noise.
    assert max(rss) < 300, report
    assert max(rss) - rss[len(rss) // 3] < 25, report
    # Alerted, at most once per interval (the first check may come at any time).
    assert warnings and any("broker drops" in w for w in warnings), report
    assert len(warnings) <= (FLOOD_S + 15) / LOG_INTERVAL_S + 1, report


def wait_until_idle(port: int, quiet_s: float = 1.5, timeout_s: float = 60) -> None:
    """Until the ingester's acknowledged count stops moving for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    last = -1.0
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        acked = metrics(port).get("pantau_ingest_messages_acked_total", 0.0)
        if acked != last:
            last, still_since = acked, time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            return
        time.sleep(0.2)
    raise AssertionError("the ingester never went idle")


def settled(read: Callable[[], float | None], quiet_s: float = 2.5) -> float | None:
    """A value read until it stayed the same for `quiet_s` (longer than the $SYS interval)."""
    value = read()
    still_since = time.monotonic()
    deadline = still_since + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read()
        if now != value:
            value, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            break
    return value
