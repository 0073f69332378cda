"""The notification channels alone: the webhook's HMAC signature against a real local HTTP
receiver, and e-mail in Bahasa Indonesia and English through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from alerts.mailer import SmtpSender
from alerts.webhook import DeliveryError, WebhookSender, sign, verify
from tests.notify_helpers import SmtpServer, WebhookReceiver, free_port

# A sample Alert JSON per the contract (/alerts-api), texts as alerts/texts.py writes them.
ALERT = {
    "id": 7,
    "rule": "river_level",
    "device_id": "wl-malili-01",
    "kind": "water_level",
    "site": "Jembatan Malili",
    "district": "Malili",
    "latitude": -2.64,
    "longitude": 121.1,
    "field": "level_cm",
    "severity": "critical",
    "level": "awas",
    "level_rank": 3,
    "state": "firing",
    "value": 412.0,
    "threshold": 380.0,
    "unit": "cm",
    "trend": "rising",
    "next_level": None,
    "started_at": "2026-12-03T01:02:03Z",
    "updated_at": "2026-12-03T01:02:03Z",
    "resolved_at": None,
    "acknowledged_by": None,
    "acknowledged_at": None,
    "ack_note": None,
    "text": {
        "id": "PERINGATAN AWAS: Tinggi muka air 412 cm di Jembatan Malili (wl-malili-01), "
        "Kec. Malili, 03-12-2026 09:02 WITA; batas Awas 380 cm; tren naik; tingkat tertinggi.",
        "en": "ALERT AWAS: Water level 412 cm at Jembatan Malili (wl-malili-01), Malili "
        "district, 03-12-2026 09:02 WITA; Awas threshold 380 cm; trend rising; highest level.",
    },
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.down()


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"id":7}'
    signature = sign(body, "s3cret")
    # Known answer: `printf '{"id":7}' | openssl dgst -sha256 -hmac s3cret`
    assert signature == "sha256=" + __import__("hmac").new(b"s3cret", body, "sha256").hexdigest()
    assert verify(body, "s3cret", signature)
    assert not verify(body, "other", signature)
    assert not verify(b'{"id":8}', "s3cret", signature)


def test_webhook_posts_the_signed_alert_json(receiver: WebhookReceiver) -> None:
    sender = WebhookSender(timeout_s=5)
    sender.send(receiver.url, "s3cret", ALERT, "42")
    sender.close()
    [post] = receiver.posts
    assert post.delivery_id == "42"
    assert verify(post.body, "s3cret", post.signature)
    assert post.json == ALERT
    assert abs(int(post.timestamp) - datetime.now(UTC).timestamp()) < 300


def test_webhook_down_or_refusing_is_a_delivery_error(receiver: WebhookReceiver) -> None:
    sender = WebhookSender(timeout_s=2)
    with pytest.raises(DeliveryError, match="HTTP 404"):
        sender.send(f"http://127.0.0.1:{receiver.port}/nope-but-404", "s", ALERT, "1")
    receiver.down()
    with pytest.raises(DeliveryError, match="Connect"):
        sender.send(receiver.url, "s", ALERT, "2")
    sender.close()


def test_email_arrives_in_both_languages_with_wita_times() -> None:
    server = SmtpServer()
    try:
        at = datetime(2026, 12, 3, 1, 5, tzinfo=UTC)
        sender = SmtpSender("127.0.0.1", server.port, "pantau@bpbd.example", timeout_s=5)
        sender.send("petugas@bpbd.example", ALERT, "99", at)
        sender.send(
            "kepala@bpbd.example",
            {**ALERT, "notification": {"kind": "escalation", "event_id": None}},
            "100",
            at,
        )
    finally:
        server.stop()
    first, second = server.sink.messages
    assert first["To"] == "petugas@bpbd.example"
    assert first["Subject"] == "[Pantau] PERINGATAN AWAS — wl-malili-01"
    assert first["Message-ID"] == "<pantau-notification-99@pantau>"
    body = first.get_content()
    assert ALERT["text"]["id"] in body and ALERT["text"]["en"] in body  # type: ignore[index]
    assert body.index("Tinggi muka air") < body.index("Water level")
    assert "03-12-2026 09:05 WITA" in body  # sent at 01:05 UTC
    assert second["Subject"].startswith("[Pantau] ESKALASI/ESCALATION: PERINGATAN AWAS")
    assert "belum ditangani" in second.get_content()
    assert "not been acknowledged" in second.get_content()


def test_email_server_down_is_a_delivery_error() -> None:
    sender = SmtpSender("127.0.0.1", free_port(), "pantau@x", timeout_s=2)
    with pytest.raises(DeliveryError, match="SMTP"):
        sender.send("a@x", ALERT, "1", datetime.now(UTC))


def test_recipient_groups_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from pantau.settings import Settings, settings_to_env

    groups = (
        '[{"name": "bpbd", "webhooks": [{"url": "https://ops.example/h", "secret": "s"}],'
        ' "emails": ["a@bpbd.example"]},'
        ' {"name": "kepala", "severities": ["critical"], "escalate_after_min": 30}]'
    )
    monkeypatch.setenv("PANTAU_NOTIFY__GROUPS", groups)
    settings = Settings()
    first, second = settings.notify.groups
    assert first.webhooks[0].secret.get_secret_value() == "s"
    assert first.severities == ["warning", "critical"] and second.escalate_after_min == 30
    # A child process gets the same groups, secrets included (pantau up → pantau notify run).
    monkeypatch.setenv("PANTAU_NOTIFY__GROUPS", settings_to_env(settings)["PANTAU_NOTIFY__GROUPS"])
    assert Settings().notify.groups == settings.notify.groups
    for bad in (
        '[{"name": "x", "webhooks": [{"url": "ftp://h/x", "secret": "s"}]}]',
        '[{"name": "x", "severities": ["urgent"]}]',
        '[{"name": "x"}, {"name": "x"}]',
    ):
        monkeypatch.setenv("PANTAU_NOTIFY__GROUPS", bad)
        with pytest.raises(ValidationError):
            Settings()
