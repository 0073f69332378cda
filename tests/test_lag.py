"""Health signals: the sequence-gap counter (rows, and blocks held to the rows; leaps and
restarts as jumps, not gaps), the lag from arrival, the overload warning and the devices' gap
report kept apart; through the pipeline with fakes (issue 14: a replay is not overload)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.decode import decode_message
from ingest.lag import GapReport, OverloadWatch, SeqGapCounter
from ingest.model import Record, RecordBlock
from tests.test_pipeline import make, message

MINUTE_MS = 60_000


def gaps_of(seqs: list[int], **kwargs: Any) -> SeqGapCounter:
    """A device reading once a minute: seq n at minute n (so every gap is plausible)."""
    counter = SeqGapCounter(**kwargs)
    for seq in seqs:
        counter.observe("wl-1", seq, seq * MINUTE_MS)
    return counter


def test_forward_steps_count_the_numbers_skipped() -> None:
    assert gaps_of([0, 1, 2, 3]).missing == 0
    assert gaps_of([0, 1, 5, 6, 9]).missing == 3 + 2
    assert gaps_of([7]).missing == 0  # the first reading is the baseline


def test_redeliveries_duplicates_and_late_readings_never_count() -> None:
    # a reconnect redelivers 3..5 after 6 was seen; a duplicate of 6; a late 2
    counter = gaps_of([1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 6, 2, 7])
    assert (counter.missing, counter.jumps) == (0, 0)


def test_a_restarted_device_becomes_a_new_baseline() -> None:
    counter = SeqGapCounter(restart_below=1000)
    for minute, seq in enumerate([5000, 5001, 3, 4, 6]):
        counter.observe("wl-1", seq, minute * MINUTE_MS)
    assert (counter.missing, counter.jumps) == (1, 1)  # only 5 is missing after the restart
    counter = gaps_of([10, 10 + 50_000_000, 10 + 50_000_001], max_gap=1_000_000)
    assert (counter.missing, counter.jumps) == (0, 1)  # a corrupt jump is no flood of gaps


def test_a_leap_the_device_clock_cannot_explain_is_a_jump_not_missing_readings() -> None:
    """The issue's "1,041,754 readings missing": a counter that leapt within a minute."""
    counter = SeqGapCounter()
    counter.observe("wl-1", 100, 0)
    counter.observe("wl-1", 101, MINUTE_MS)
    counter.observe("wl-1", 1_041_856, 2 * MINUTE_MS)  # 1,041,754 skipped in 60 s: no
    counter.observe("wl-1", 1_041_857, 3 * MINUTE_MS)
    assert (counter.missing, counter.jumps) == (0, 1)
    # the same step over enough device time (one reading a millisecond) was a real loss
    counter.observe("wl-1", 1_041_957, 3 * MINUTE_MS + 100)
    assert (counter.missing, counter.jumps) == (99, 1)
    # readings stamped on arrival: their arrival times are the clock
    counter.observe_records("wl-2", [Record(None, 1, {}), Record(None, 500, {})], 10**9)
    assert (counter.missing, counter.jumps) == (99, 2)


def test_a_back_dated_stream_of_the_same_device_counts_jumps_not_gaps() -> None:
    """A live device (seq ~600, now) and an accelerated replay of the same id (back-dated
    times, its own numbering) interleaved: the replay's steps run backwards in time."""
    counter = SeqGapCounter()
    now = 10**12
    live = ((600 + i, now + i * MINUTE_MS) for i in range(50))
    replay = ((5000 + i, now - 14_716_000 + i * 1000) for i in range(50))
    for (live_seq, live_ts), (replay_seq, replay_ts) in zip(live, replay, strict=True):
        counter.observe("wl-1", live_seq, live_ts)
        counter.observe("wl-1", replay_seq, replay_ts)
    assert counter.missing == 0
    assert counter.jumps >= 50


def test_devices_are_counted_apart() -> None:
    counter = SeqGapCounter()
    for device, seq in [("a", 1), ("b", 100), ("a", 2), ("b", 103), ("a", 4)]:
        counter.observe(device, seq, seq * MINUTE_MS)
    assert counter.missing == 2 + 1
    assert counter.devices == 2
    assert counter.take_recent() == {"b": 2, "a": 1} and counter.take_recent() == {}


def test_the_table_of_devices_is_bounded() -> None:
    counter = SeqGapCounter(max_devices=10)
    for i in range(25):
        counter.observe(f"wl-{i}", 1, 0)
    assert counter.devices <= 10


seq_values = st.one_of(
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.sampled_from([0, 1, 2, 2**63 - 1, 2**63 - 2]),
)
times = st.integers(min_value=-(2**40), max_value=2**42)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.booleans(),
            st.lists(st.tuples(seq_values, times), max_size=8),
        ),
        max_size=12,
    ),
    st.sampled_from([5, 1000]),
    st.sampled_from([10, 10_000_000]),
)
def test_blocks_count_what_their_rows_count(
    messages: list[tuple[str, bool, list[tuple[int, int]]]], restart_below: int, max_gap: int
) -> None:
    rows = SeqGapCounter(restart_below=restart_below, max_gap=max_gap)
    mixed = SeqGapCounter(restart_below=restart_below, max_gap=max_gap)
    for device, as_block, pairs in messages:
        for seq, ts in pairs:
            rows.observe(device, seq, ts)
        if as_block:
            mixed.observe_block(
                device,
                np.array([seq for seq, _ in pairs], dtype=np.int64),
                np.array([ts for _, ts in pairs], dtype=np.int64),
            )
        else:
            for seq, ts in pairs:
                mixed.observe(device, seq, ts)
    assert (mixed.missing, mixed.jumps) == (rows.missing, rows.jumps)
    assert mixed._highest == rows._highest and mixed._time == rows._time
    assert mixed.recent == rows.recent


def test_overload_is_logged_when_signals_rise_and_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    watch = OverloadWatch(
        lag_warn_s=60, backlog_warn_messages=10_000, interval_s=30, clock=lambda: now[0]
    )
    caplog.set_level(logging.WARNING, logger="ingest.lag")
    # The broker's dropped counter counts from its start: its first value is a baseline.
    assert watch.check(dropped=500, backlog=10, lag_s=1.0) is None
    assert watch.check(dropped=500, backlog=10, lag_s=1.0) is None
    now[0] = 5
    first = watch.check(dropped=530, backlog=20, lag_s=1.0)
    assert first is not None and first.startswith("overload (broker drops)")
    assert "30 messages dropped" in first
    now[0] = 15  # still rising, but inside the interval: quiet, and the counts accumulate
    assert watch.check(dropped=560, backlog=50_000, lag_s=90.0) is None
    now[0] = 36
    second = watch.check(dropped=590, backlog=60_000, lag_s=90.0)
    assert second is not None and "broker drops, backlog growing, lag" in second
    assert "60 messages dropped" in second and "lag since arrival 90.0s" in second
    now[0] = 100  # a large backlog that shrinks is draining, not overload
    assert watch.check(dropped=590, backlog=40_000, lag_s=2.0) is None
    now[0] = 200  # a broker restart begins its counter again: a new baseline, not a warning
    assert watch.check(dropped=3, backlog=30_000, lag_s=2.0) is None
    assert watch.check(dropped=None, backlog=None, lag_s=61.0) is not None  # lag alone
    assert watch.warnings == 3
    assert [r.levelname for r in caplog.records] == ["WARNING"] * 3


def test_device_gaps_are_reported_apart_from_overload(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    report = GapReport(interval_s=30, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="ingest.lag")
    assert report.check(gaps=0, jumps=0, devices={}) is None
    now[0] = 1
    line = report.check(gaps=40, jumps=1, devices={"wl-1": 38, "wl-2": 2})
    assert line is not None and line.startswith("sequence gaps: 40 readings missing")
    assert "in 2 devices (wl-1 38, wl-2 2)" in line and "1 sequence jumps" in line
    now[0] = 10
    assert report.check(gaps=50, jumps=1, devices={"wl-3": 10}) is None  # inside the interval
    now[0] = 40
    line = report.check(gaps=50, jumps=1, devices={})
    assert line is not None and "10 readings missing" in line and "(wl-3 10)" in line
    assert [r.levelname for r in caplog.records] == ["INFO", "INFO"]
    assert not any("overload" in r.getMessage() for r in caplog.records)


def test_the_pipeline_counts_gaps_of_rows_and_blocks_and_measures_lag_from_arrival() -> None:
    """Back-dated data — an accelerated replay four hours behind, as `pantau simulate --speed
    60` sends — that arrived half a second ago has half a second of lag, not four hours, and
    no overload: the issue's "lag 14716 s" was the device time, not the ingester's."""

    def senml(seqs: list[int], first_s: float) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = [{"bn": "wl-1:", "bt": first_s}]
        for i, seq in enumerate(seqs):
            records += [{"n": "level_cm", "v": 100 + i, "t": i}, {"n": "seq", "v": seq, "t": i}]
        return records

    arrived = int(time.time() * 1000) - 500
    then = arrived - 14_716_000  # the device times: about four hours back
    messages = [
        message(1, {"ts": then - 900_000, "seq": 1, "level_cm": 1}),
        message(2, {"ts": then - 899_000, "seq": 2, "level_cm": 1}),
        message(3, senml([3, 4, 5, 9, 10], (then - 600_000) / 1000)),  # a block missing 6..8
        message(4, {"ts": then - 1000, "seq": 14, "level_cm": 1}),  # missing 11..13
        message(5, {"ts": then - 2000, "seq": 12, "level_cm": 1}),  # late: no gap
        message(6, {"ts": then - 500, "seq": 20, "level_cm": 1}, device="wl-2"),  # baseline
        message(7, {"ts": then - 400, "seq": 900_000, "level_cm": 1}, device="wl-2"),  # a leap
        message(8, b"{oops"),  # no seq to see: no gap either
    ]
    for m in messages:
        m.received_ms = arrived
    pack = decode_message(messages[2].payload, None, max_bytes=4096, now_s=arrived / 1000)
    assert isinstance(pack, RecordBlock)  # the block path, not rows
    pipeline, source, sink, dead, _ = make(messages)
    while pipeline.run_once(idle_wait_s=0):
        pass
    assert pipeline.gaps is not None and pipeline.gaps.missing == 3 + 3
    registry = pipeline.metrics.registry
    assert registry.get_sample_value("pantau_ingest_seq_gaps_total") == 6
    assert registry.get_sample_value("pantau_ingest_seq_jumps_total") == 1
    lag = registry.get_sample_value("pantau_ingest_lag_seconds")
    assert lag is not None and pipeline.lag_s is not None
    assert abs(lag - pipeline.lag_s) < 1e-9
    assert 0.5 <= lag < 30  # from arrival; generous for a loaded machine, far below 14,716
    assert len(sink.lines) == 2 + 5 + 4 and len(dead.stored) == 1
    assert source.acked == list(range(1, 9))
    watch = OverloadWatch(lag_warn_s=60, interval_s=0)
    assert watch.check(dropped=0, backlog=0, lag_s=lag) is None
    assert watch.check(dropped=0, backlog=0, lag_s=lag) is None
