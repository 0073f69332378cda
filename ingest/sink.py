"""InfluxDB sink: writes batches of line-protocol points; returns only when the outcome is known.

Delivery guarantee: when `write_batch` returns, every line was accepted by InfluxDB except the
ones it lists as rejected (to be dead-lettered). While InfluxDB is unreachable, answers 5xx or
429, it retries with exponential back-off (honouring `Retry-After`) until it succeeds or the
stop event is set — so the caller never acknowledges an unwritten reading. A 4xx (for example
a field type conflict, which 1.x reports as a 400 partial write) is not retried as a whole:
the batch is bisected to find the bad lines, which are returned, and the rest is written.
Writes are idempotent — a point is identified by measurement, tags and device timestamp — so
rewriting a batch after an unknown outcome creates no duplicates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pantau.influxdb import InfluxClient, InfluxRejectedError, InfluxUnavailableError
from pantau.retry import RetryStoppedError, retry_policy
from pantau.settings import InfluxSettings

log = logging.getLogger(__name__)


class SinkStoppedError(Exception):
    """The stop event was set while a write was still failing: nothing may be acknowledged."""


@dataclass(frozen=True)
class LineRejection:
    index: int
    error: str


class InfluxSink:
    """Batched, retried, bisecting writer over the InfluxDB v1 write endpoint."""

    def __init__(
        self,
        settings: InfluxSettings,
        client: InfluxClient | None = None,
        *,
        stop: threading.Event | None = None,
        on_health: Callable[[bool], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or InfluxClient(settings)
        self.stop_event = stop or threading.Event()
        self.on_health = on_health
        self.on_retry = on_retry
        self.healthy = True
        self._retry = retry_policy(
            InfluxUnavailableError,
            initial_s=0.1,
            max_s=settings.retry_max_delay_s,
            stop=self.stop_event,
            before_retry=self._before_retry,
        )

    def close(self) -> None:
        self.client.close()

    def write_batch(self, lines: Sequence[str]) -> list[LineRejection]:
        """Write all lines; return the ones InfluxDB refused. Blocks while InfluxDB is down."""
        if not lines:
            return []
        rejected: list[LineRejection] = []
        self._write_range(lines, 0, len(lines), rejected)
        return rejected

    def _write_range(
        self, lines: Sequence[str], start: int, end: int, rejected: list[LineRejection]
    ) -> None:
        body = ("\n".join(lines[start:end]) + "\n").encode("utf-8")
        try:
            self._write_with_retry(body)
        except InfluxRejectedError as exc:
            if end - start == 1:
                rejected.append(LineRejection(start, str(exc)))
                return
            # Some line is bad (InfluxDB does not say which): halve until we find it. Lines
            # already accepted by a partial write are simply rewritten, which is idempotent.
            middle = (start + end) // 2
            self._write_range(lines, start, middle, rejected)
            self._write_range(lines, middle, end, rejected)

    def _write_with_retry(self, body: bytes) -> None:
        try:
            self._retry(self.client.write, body, precision="ms")
        except RetryStoppedError as exc:
            raise SinkStoppedError("stopped while InfluxDB was failing") from exc.__cause__
        self._set_health(True)

    def _before_retry(self, exc: BaseException, wait_s: float) -> None:
        self._set_health(False)
        if self.on_retry:
            self.on_retry(type(exc).__name__)
        log.warning("influx write failed (%s); retrying in %.1fs", exc, wait_s)

    def _set_health(self, healthy: bool) -> None:
        if healthy != self.healthy:
            self.healthy = healthy
            if healthy:
                log.info("influx writes succeed again")
            if self.on_health:
                self.on_health(healthy)


def wait_for_influx(client: InfluxClient, stop: threading.Event, timeout_s: float) -> bool:
    """Poll /ping until InfluxDB answers (True) or the time runs out (False)."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        if client.ping():
            return True
        stop.wait(0.5)
    return False
