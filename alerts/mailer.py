"""E-mail channel: one plain-text message per notification over SMTP (stdlib smtplib).

Subject and body come from the Alert JSON's `text` (Bahasa Indonesia first, then English, times
in WITA — alerts/texts.py), so e-mail says what every other channel says. The Message-ID is
built from the outbox row id: a message re-sent after a crash between "sent" and "marked
delivered" carries the same id, which mail clients and archives fold into one.
"""

from __future__ import annotations

import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from alerts.texts import wita
from alerts.webhook import DeliveryError

_KIND_PREFIX = {
    "event": ("", ""),
    "reminder": ("PENGINGAT", "REMINDER"),
    "escalation": ("ESKALASI", "ESCALATION"),
}


def compose(
    payload: dict[str, Any], sender: str, to: str, delivery_id: str, at: datetime
) -> EmailMessage:
    """The e-mail for one notification (`payload` = Alert JSON + its `notification` part)."""
    text = payload.get("text") or {}
    text_id = str(text.get("id") or "")
    text_en = str(text.get("en") or "")
    kind = str((payload.get("notification") or {}).get("kind", "event"))
    prefix_id, prefix_en = _KIND_PREFIX.get(kind, ("", ""))
    head = text_id.split(":", 1)[0] or str(payload.get("level", "")).upper()
    subject = f"[Pantau] {head} — {payload.get('device_id', '')}"
    if prefix_id:
        subject = f"[Pantau] {prefix_id}/{prefix_en}: {head} — {payload.get('device_id', '')}"
    lines = []
    if prefix_id:
        lines += [f"{prefix_id}: peringatan ini belum ditangani.", ""]
    lines += [text_id, ""]
    if prefix_en:
        lines += [f"{prefix_en}: this alert has not been acknowledged.", ""]
    lines += [text_en, ""]
    lines += [
        "--",
        f"Dikirim / sent: {wita(at)}",
        f"Peringatan / alert #{payload.get('id')} · {payload.get('rule')} · "
        f"{payload.get('severity')} · {payload.get('state')}",
    ]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(at)
    message["Message-ID"] = f"<pantau-notification-{delivery_id}@pantau>"
    message["Content-Language"] = "id, en"
    message.set_content("\n".join(lines))
    return message


class SmtpSender:
    """Sends one message per call; a refused recipient or a dead server is a DeliveryError."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        timeout_s: float = 10.0,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.timeout_s, self.starttls = timeout_s, starttls
        self.username, self.password = username, password

    def send(self, to: str, payload: dict[str, Any], delivery_id: str, at: datetime) -> None:
        message = compose(payload, self.sender, to, delivery_id, at)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}"[:500]) from exc
