"""The rules every fuzz target holds its code to: what may come out of a decoder, the validator
and the prepare path. A violation raises `RuleBrokenError`, which the fuzzer reports as a crash."""

from __future__ import annotations

import math

import numpy as np

from ingest.model import (
    Reading,
    ReadingBlock,
    Record,
    RecordBlock,
    RejectedError,
    Rejection,
    RejectReason,
)


class RuleBrokenError(AssertionError):
    """A target produced something other than its results or a rejection with a reason."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise RuleBrokenError(what)


def check_rejection(exc: RejectedError) -> None:
    check(isinstance(exc.reason, RejectReason), f"reason {exc.reason!r} is not a RejectReason")
    check(isinstance(exc.detail, str) and bool(exc.detail), "a rejection without a detail")
    check(exc.reason is not RejectReason.INTERNAL_ERROR, f"internal error: {exc.detail}")


def check_dead_letter(rejection: Rejection) -> None:
    """A dead letter of the pipeline: a reason, a detail, and never the safety net's."""
    check(isinstance(rejection.reason, RejectReason), "a dead letter without a reason")
    check(bool(rejection.detail), "a dead letter without a detail")
    check(
        rejection.reason is not RejectReason.INTERNAL_ERROR,
        f"an exception escaped into the safety net: {rejection.detail}",
    )


def check_records(decoded: object) -> None:
    """What a decoder may return: a non-empty list of `Record`s, or a `RecordBlock`."""
    if isinstance(decoded, RecordBlock):
        n = len(decoded)
        check(n > 0, "an empty block")
        check(decoded.ts_ms.dtype == np.int64 and decoded.ts_ms.shape == (n,), "block times")
        for column in decoded.values.values():
            check(column.dtype == np.float64 and column.shape == (n,), "block column shape")
        if decoded.seq is not None:
            check(bool((decoded.seq >= 0).all()), "a negative seq in a block")
        return
    check(isinstance(decoded, list) and bool(decoded), f"decoded to {type(decoded).__name__}")
    assert isinstance(decoded, list)
    for record in decoded:
        check(isinstance(record, Record), "not a Record")
        check(isinstance(record.values, dict), "record values are not a dict")
        check(record.ts_ms is None or type(record.ts_ms) is int, "ts_ms not an int")
        check(record.seq is None or (type(record.seq) is int and record.seq >= 0), "bad seq")


def check_readings(valid: object, ranges: dict[str, dict[str, tuple[float, float]]]) -> None:
    """What the validator may return: readings of catalog fields, finite and in range."""
    if isinstance(valid, ReadingBlock):
        limits = ranges[valid.kind]
        for name, column in valid.fields.items():
            low, high = limits[name]
            check(bool(np.isfinite(column).all()), f"{name}: not finite in a block")
            check(bool(((column >= low) & (column <= high)).all()), f"{name}: out of range")
        return
    check(isinstance(valid, list) and bool(valid), "validated to nothing")
    assert isinstance(valid, list)
    for reading in valid:
        check(isinstance(reading, Reading), "not a Reading")
        limits = ranges[reading.kind]
        check(bool(reading.fields), "a reading without fields")
        for name, value in reading.fields.items():
            check(type(value) is float and math.isfinite(value), f"{name}={value!r}")
            low, high = limits[name]
            check(low <= value <= high, f"{name}={value!r} outside [{low}, {high}]")
