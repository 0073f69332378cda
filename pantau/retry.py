"""The one retry policy: exponential back-off with jitter that honours `Retry-After`, and stops
at once when the caller's stop event is set. Built on tenacity (pinned); every loop that waits
out an outage (the InfluxDB sink, the dead-letter store, InfluxDB at start-up, the publisher's
reconnect) uses it.

`retry_policy(...)` returns a `tenacity.Retrying`: call it with a function and its arguments.
It retries while the function raises one of `retry_on`; anything else propagates at once.
The wait before retry n is `min(max_s, initial_s * 2**(n-1))`, or the exception's
`retry_after_s` (a server's `Retry-After`, capped at `max_s`) when it has one, times a random
factor in [0.8, 1.2) so that many clients do not retry in step. `before_retry(exc, wait_s)`
runs before each wait (log, metrics, health). When `stop` is set during a wait, the call
raises `RetryStoppedError` (its `__cause__` is the last failure). `give_up_after_s` bounds
the whole for a caller with a deadline (the last failure is raised).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    stop_never,
)
from tenacity.wait import wait_base


class RetryStoppedError(Exception):
    """The stop event was set while waiting to retry."""


class WaitRetryAfterOrExponential(wait_base):
    """`retry_after_s` of the last exception when it has one, else exponential; capped,
    jittered (x[0.8, 1.2))."""

    def __init__(self, initial_s: float, max_s: float, jitter: float = 0.2) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        asked = getattr(exc, "retry_after_s", None)
        if isinstance(asked, int | float) and asked >= 0:
            base = float(asked)
        else:
            base = self.initial_s * 2 ** (retry_state.attempt_number - 1)
        base = min(base, self.max_s)
        return base * (1 - self.jitter + 2 * self.jitter * random.random())


def retry_policy(
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    *,
    initial_s: float,
    max_s: float,
    stop: threading.Event | None = None,
    before_retry: Callable[[BaseException, float], None] | None = None,
    give_up_after_s: float | None = None,
    not_on: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Retrying:
    """A `Retrying` that retries `retry_on` until `stop` is set (see the module), or, with
    `give_up_after_s`, until that long has passed: then the last failure is raised. `not_on`:
    subclasses of `retry_on` that are raised at once (a refusal is not an outage)."""
    event = stop or threading.Event()
    last = threading.local()  # the failure being waited out, per calling thread

    def sleep(seconds: float) -> None:
        if event.wait(seconds):
            raise RetryStoppedError("stopped while retrying") from getattr(last, "exc", None)

    def before_sleep(retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        last.exc = exc
        if before_retry is not None and exc is not None:
            before_retry(exc, retry_state.upcoming_sleep)

    return Retrying(
        sleep=sleep,
        stop=stop_never if give_up_after_s is None else stop_after_delay(give_up_after_s),
        wait=WaitRetryAfterOrExponential(initial_s, max_s),
        retry=retry_if_exception_type(retry_on) & retry_if_not_exception_type(not_on),
        before_sleep=before_sleep,
        reraise=True,
    )
