"""Overload signals: the sequence-gap counter (rows, and blocks held to the rows), the lag of
written batches, and the rate-limited overload warning; through the pipeline with fakes."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.decode import decode_message
from ingest.lag import OverloadWatch, SeqGapCounter, newest_device_ts_ms
from ingest.model import Reading, ReadingBlock, RecordBlock
from tests.test_pipeline import NOW, make, message


def gaps_of(seqs: list[int], **kwargs: Any) -> SeqGapCounter:
    counter = SeqGapCounter(**kwargs)
    for seq in seqs:
        counter.observe("wl-1", seq)
    return counter


def test_forward_jumps_count_the_numbers_skipped() -> None:
    assert gaps_of([0, 1, 2, 3]).missing == 0
    assert gaps_of([0, 1, 5, 6, 9]).missing == 3 + 2
    assert gaps_of([7]).missing == 0  # the first reading is the baseline


def test_redeliveries_duplicates_and_late_readings_never_count() -> None:
    # a reconnect redelivers 3..5 after 6 was seen; a duplicate of 6; a late 2
    assert gaps_of([1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 6, 2, 7]).missing == 0


def test_a_restarted_device_becomes_a_new_baseline() -> None:
    counter = gaps_of([5000, 5001, 3, 4, 6], restart_below=1000)
    assert (counter.missing, counter.restarts) == (1, 1)  # only 5 is missing after the restart
    counter = gaps_of([10, 10 + 50_000_000, 10 + 50_000_001], max_gap=1_000_000)
    assert (counter.missing, counter.restarts) == (0, 1)  # a corrupt jump is no flood of gaps


def test_devices_are_counted_apart() -> None:
    counter = SeqGapCounter()
    for device, seq in [("a", 1), ("b", 100), ("a", 2), ("b", 103), ("a", 4)]:
        counter.observe(device, seq)
    assert counter.missing == 2 + 1
    assert counter.devices == 2


def test_the_table_of_devices_is_bounded() -> None:
    counter = SeqGapCounter(max_devices=10)
    for i in range(25):
        counter.observe(f"wl-{i}", 1)
    assert counter.devices <= 10


seq_values = st.one_of(
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.sampled_from([0, 1, 2**63 - 1, 2**63 - 2]),
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.booleans(), st.lists(seq_values, max_size=8)),
        max_size=12,
    ),
    st.sampled_from([5, 1000]),
    st.sampled_from([10, 10_000_000]),
)
def test_blocks_count_what_their_rows_count(
    messages: list[tuple[str, bool, list[int]]], restart_below: int, max_gap: int
) -> None:
    rows = SeqGapCounter(restart_below=restart_below, max_gap=max_gap)
    mixed = SeqGapCounter(restart_below=restart_below, max_gap=max_gap)
    for device, as_block, seqs in messages:
        for seq in seqs:
            rows.observe(device, seq)
        if as_block:
            mixed.observe_block(device, np.array(seqs, dtype=np.int64))
        else:
            for seq in seqs:
                mixed.observe(device, seq)
    assert (mixed.missing, mixed.restarts) == (rows.missing, rows.restarts)
    assert mixed._highest == rows._highest


def test_newest_device_time_skips_readings_stamped_on_arrival() -> None:
    def reading(ts: int, arrival: bool = False) -> Reading:
        return Reading("wl-1", "water_level", ts, {"level_cm": 1.0}, ts_from_arrival=arrival)

    block = ReadingBlock("wl-2", "water_level", np.array([50, 70, 60]), {"level_cm": np.zeros(3)})
    assert newest_device_ts_ms([reading(10), reading(90, arrival=True), reading(40)], []) == 40
    assert newest_device_ts_ms([reading(10)], [block]) == 70
    assert newest_device_ts_ms([reading(90, arrival=True)], []) is None


def test_overload_is_logged_when_signals_rise_and_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    watch = OverloadWatch(lag_warn_s=60, interval_s=30, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="ingest.lag")
    # The broker's dropped counter counts from its start: its first value is a baseline.
    assert watch.check(gaps=0, dropped=500, lag_s=1.0) is None
    assert watch.check(gaps=0, dropped=500, lag_s=1.0) is None
    now[0] = 5
    first = watch.check(gaps=40, dropped=530, lag_s=1.0)
    assert first is not None and "sequence gaps, broker drops" in first
    assert "40 readings missing" in first and "30 messages dropped" in first
    now[0] = 15  # still rising, but inside the interval: quiet, and the counts accumulate
    assert watch.check(gaps=70, dropped=560, lag_s=90.0) is None
    now[0] = 36
    second = watch.check(gaps=100, dropped=590, lag_s=90.0)
    assert second is not None and "60 readings missing" in second
    assert "60 messages dropped" in second and "lag 90.0s" in second
    now[0] = 100  # nothing rose and the lag is low: no warning however long it has been
    assert watch.check(gaps=100, dropped=590, lag_s=2.0) is None
    now[0] = 200  # a broker restart begins its counter again: a new baseline, not a warning
    assert watch.check(gaps=100, dropped=3, lag_s=2.0) is None
    assert watch.check(gaps=100, dropped=None, lag_s=61.0) is not None  # lag alone
    assert watch.warnings == 3
    assert [r.levelname for r in caplog.records] == ["WARNING"] * 3


def test_the_pipeline_counts_gaps_of_rows_and_blocks_and_sets_the_lag() -> None:
    def senml(seqs: list[int], first_s: float) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = [{"bn": "wl-1:", "bt": first_s}]
        for i, seq in enumerate(seqs):
            records += [{"n": "level_cm", "v": 100 + i, "t": i}, {"n": "seq", "v": seq, "t": i}]
        return records

    base_s = NOW / 1000 - 600
    messages = [
        message(1, {"ts": NOW - 900_000, "seq": 1, "level_cm": 1}),
        message(2, {"ts": NOW - 899_000, "seq": 2, "level_cm": 1}),
        message(3, senml([3, 4, 5, 9, 10], base_s)),  # a columnar block missing 6..8
        message(4, {"ts": NOW - 1000, "seq": 14, "level_cm": 1}),  # missing 11..13
        message(5, {"ts": NOW - 2000, "seq": 12, "level_cm": 1}),  # late: no gap
        message(6, {"ts": NOW - 500, "seq": 20, "level_cm": 1}, device="wl-2"),  # baseline
        message(7, b"{oops"),  # no seq to see: no gap either
    ]
    pack = decode_message(messages[2].payload, None, max_bytes=4096, now_s=NOW / 1000)
    assert isinstance(pack, RecordBlock)  # the block path, not rows
    pipeline, source, sink, dead, _ = make(messages)
    while pipeline.run_once(idle_wait_s=0):
        pass
    assert pipeline.gaps is not None and pipeline.gaps.missing == 3 + 3
    assert pipeline.metrics.registry.get_sample_value("pantau_ingest_seq_gaps_total") == 6
    # The lag: write time minus the newest device time written (wl-2's, NOW - 500 ms).
    lag = pipeline.metrics.registry.get_sample_value("pantau_ingest_lag_seconds")
    assert lag is not None and pipeline.lag_s is not None
    assert abs(lag - pipeline.lag_s) < 1e-9
    assert abs(lag - (time.time() - (NOW - 500) / 1000)) < 5
    assert len(sink.lines) == 2 + 5 + 3 and len(dead.stored) == 1
    assert source.acked == list(range(1, 8))
