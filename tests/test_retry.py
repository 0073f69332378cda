"""The one retry policy (pantau/retry.py): back-off, jitter, Retry-After, stop, refusals."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pantau.retry import RetryStoppedError, retry_policy


class OutageError(Exception):
    def __init__(self, retry_after_s: float | None = None) -> None:
        super().__init__("down")
        self.retry_after_s = retry_after_s


class RefusalError(OutageError):
    pass


def failing(times: int, error: OutageError | None = None) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error or OutageError()
        return "done"

    return calls, call


def test_waits_grow_exponentially_with_jitter_up_to_the_cap() -> None:
    waits: list[float] = []
    calls, call = failing(6)
    retry = retry_policy(
        OutageError, initial_s=0.001, max_s=0.008, before_retry=lambda e, w: waits.append(w)
    )
    assert retry(call) == "done"
    assert len(calls) == 7 and len(waits) == 6
    for wait, base in zip(waits, [0.001, 0.002, 0.004, 0.008, 0.008, 0.008], strict=True):
        assert 0.8 * base <= wait < 1.2 * base, (wait, base)


def test_retry_after_is_honoured_and_capped() -> None:
    waits: list[float] = []
    retry = retry_policy(
        OutageError, initial_s=0.001, max_s=0.05, before_retry=lambda e, w: waits.append(w)
    )
    _, asks_little = failing(1, OutageError(retry_after_s=0.02))
    retry(asks_little)
    _, asks_much = failing(1, OutageError(retry_after_s=3600))
    retry(asks_much)
    assert 0.016 <= waits[0] < 0.024
    assert 0.04 <= waits[1] < 0.06


def test_other_errors_and_refusals_are_raised_at_once() -> None:
    calls, call = failing(5, RefusalError())
    with pytest.raises(RefusalError):
        retry_policy(OutageError, initial_s=0.001, max_s=0.01, not_on=RefusalError)(call)
    assert len(calls) == 1

    def broken() -> None:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        retry_policy(OutageError, initial_s=0.001, max_s=0.01)(broken)
    assert len(calls) == 2


def test_the_stop_event_ends_the_wait_with_the_last_failure_as_cause() -> None:
    stop = threading.Event()
    calls, call = failing(10**9)
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(RetryStoppedError) as raised:
        retry_policy(OutageError, initial_s=0.05, max_s=0.05, stop=stop)(call)
    assert isinstance(raised.value.__cause__, OutageError)
    assert 2 <= len(calls) <= 10


def test_a_deadline_raises_the_last_failure() -> None:
    calls, call = failing(10**9)
    with pytest.raises(OutageError):
        retry_policy(OutageError, initial_s=0.01, max_s=0.01, give_up_after_s=0.1)(call)
    assert len(calls) >= 2
