"""The notification dispatcher: relay events into the outbox, schedule reminders, send.

One round (`run_once`): in short transactions, (1) relay new `alert_events` into the outbox,
(2) at most once a second enqueue due reminders and escalations, (3) claim due rows with a
lease, (4) send them concurrently outside any transaction, (5) record each outcome —
delivered, retried later with exponential back-off and jitter (`next_attempt_at`, a column,
not a sleep), failed after `max_attempts` (logged), or cancelled (a reminder for an alert
acknowledged meanwhile). Any number of dispatchers may run against one database; see
alerts/outbox.py for why none sends a row twice except after a crash mid-send.

`pantau notify run` runs it as its own process; `pantau up` starts that process.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from alerts import tables
from alerts.mailer import SmtpSender
from alerts.outbox import (
    Claimed,
    claim_due,
    mark_cancelled,
    mark_delivered,
    mark_failed_attempt,
    relay_events,
    work_waiting,
)
from alerts.outbox_tables import watch
from alerts.reminders import schedule_reminders
from alerts.webhook import DeliveryError, WebhookSender
from pantau.settings import NotifySettings
from pantau.sql import utcnow

log = logging.getLogger(__name__)


class Dispatcher:
    """Sends the outbox. Inject the senders and the clock in tests."""

    def __init__(
        self,
        engine: Engine,
        settings: NotifySettings,
        *,
        webhook: WebhookSender | None = None,
        mailer: SmtpSender | None = None,
        clock: Callable[[], datetime] = utcnow,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        reminder_scan_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.webhook = webhook or WebhookSender(settings.timeout_s)
        if mailer is None and settings.smtp_host:
            mailer = SmtpSender(
                settings.smtp_host,
                settings.smtp_port,
                settings.smtp_from,
                timeout_s=settings.timeout_s,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=(
                    settings.smtp_password.get_secret_value() if settings.smtp_password else None
                ),
            )
        self.mailer = mailer
        self.clock = clock
        self.worker = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()
        self._secrets = {
            (g.name, w.url): w.secret.get_secret_value()
            for g in settings.groups
            for w in g.webhooks
        }
        self._reminder_scan_s = reminder_scan_s
        self._last_reminder_scan = float("-inf")
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="notify-send")

    def run_once(self) -> int:
        """One round; the number of rows it finished (delivered, failed, retried, cancelled)."""
        groups = self.settings.groups
        if time.monotonic() - self._last_reminder_scan >= self._reminder_scan_s:
            self._last_reminder_scan = time.monotonic()
            with self.engine.connect() as conn:
                firing = conn.execute(
                    select(watch.c.alert_id).where(watch.c.unacked_since.is_not(None)).limit(1)
                ).first()
            if firing is not None:
                with self.engine.begin() as conn:
                    schedule_reminders(
                        conn, groups, self.settings.reminder_interval_min, self.clock()
                    )
        with self.engine.connect() as conn:
            if not work_waiting(conn, self.clock()):
                return 0
        # Relay and claim in one transaction: one commit between an event and its send.
        with self.engine.begin() as conn:
            relay_events(conn, groups, self.clock())
            claims = claim_due(
                conn, self.worker, self.clock(), self.settings.lease_s, self.settings.batch_max_rows
            )
        if not claims:
            return 0
        for claim, error in zip(claims, self._pool.map(self._send, claims), strict=True):
            self._record(claim, error)
        return len(claims)

    def _send(self, claim: Claimed) -> str | None:
        """None when delivered, "cancelled: …" when it should not go out, else the error."""
        try:
            if claim.kind != "event" and not self._still_firing(claim.alert_id):
                return "cancelled: acknowledged or resolved before it was sent"
            delivery_id = str(claim.id)
            if claim.channel == "webhook":
                secret = self._secrets.get((claim.group, claim.recipient))
                if secret is None:
                    return f"webhook {claim.recipient} is no longer in group {claim.group}"
                self.webhook.send(claim.recipient, secret, claim.payload, delivery_id)
            elif claim.channel == "email":
                if self.mailer is None:
                    return "no SMTP server configured (PANTAU_NOTIFY__SMTP_HOST)"
                self.mailer.send(claim.recipient, claim.payload, delivery_id, self.clock())
            else:
                return f"unknown channel {claim.channel}"
        except DeliveryError as exc:
            return str(exc)
        except Exception as exc:  # a bug in a channel must not kill the loop or lose the row
            log.exception("sending notification %s failed unexpectedly", claim.id)
            return f"{type(exc).__name__}: {exc}"
        return None

    def _still_firing(self, alert_id: int) -> bool:
        e = tables.episodes
        with self.engine.connect() as conn:
            state = conn.execute(select(e.c.state).where(e.c.id == alert_id)).scalar()
        return state == "firing"

    def _record(self, claim: Claimed, error: str | None) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            if error is None:
                if not mark_delivered(conn, claim.id, self.worker, now):
                    log.warning("notification %s was taken over before it was marked", claim.id)
            elif error.startswith("cancelled:"):
                mark_cancelled(conn, claim.id, self.worker, error)
            else:
                mark_failed_attempt(conn, claim, self.worker, now, error, self.settings, self.rng)

    def run(self, stop: threading.Event) -> None:
        """Rounds until `stop` is set; a database hiccup is logged and retried, never fatal."""
        log.info(
            "notification dispatcher %s started (%d groups)", self.worker, len(self.settings.groups)
        )
        beat = float("-inf")
        while not stop.is_set():
            if self.settings.heartbeat_path and time.monotonic() - beat >= 5.0:
                beat = time.monotonic()
                Path(self.settings.heartbeat_path).touch()  # alive: the health check reads it
            try:
                busy = self.run_once()
            except OperationalError as exc:  # database away or busy: nothing is lost
                log.warning("notification round failed, retrying: %s", exc)
                busy = 0
                stop.wait(1.0)
            except Exception:  # a bug must not end the dispatcher; the rows stay in SQL
                log.exception("notification round failed unexpectedly; retrying in 5 s")
                busy = 0
                stop.wait(5.0)
            if not busy:
                stop.wait(self.settings.poll_interval_s)
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.webhook.close()
