"""Webhook channel: POST the notification JSON, signed with HMAC-SHA256.

Headers on every request:
- `X-Pantau-Signature: sha256=<hex>` — HMAC-SHA256, with the recipient's secret, of the raw
  body bytes exactly as sent;
- `X-Pantau-Timestamp: <unix seconds>` — when this attempt was made (a receiver may refuse
  stale ones);
- `X-Pantau-Delivery: <id>` — the outbox row id, the same on every retry of one notification:
  a receiver that remembers it ignores a repeat (the outbox delivers at least once).

Any 2xx is delivered; anything else (or no answer) raises `DeliveryError` and the outbox retries.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import orjson

SIGNATURE_HEADER = "X-Pantau-Signature"
TIMESTAMP_HEADER = "X-Pantau-Timestamp"
DELIVERY_HEADER = "X-Pantau-Delivery"


class DeliveryError(Exception):
    """A notification was not accepted; the outbox will retry it (the reason is kept)."""


def sign(body: bytes, secret: str) -> str:
    """The `X-Pantau-Signature` value for `body`: `sha256=` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    """True when `signature` is the one `sign` makes for `body` (constant-time compare)."""
    return hmac.compare_digest(sign(body, secret), signature)


class WebhookSender:
    """Sends one notification to one webhook URL; a 2xx answer is delivered."""

    def __init__(self, timeout_s: float = 10.0, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, url: str, secret: str, payload: dict[str, object], delivery_id: str) -> None:
        body = orjson.dumps(payload)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, secret),
            TIMESTAMP_HEADER: str(int(time.time())),
            DELIVERY_HEADER: delivery_id,
            "User-Agent": "pantau-notify",
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:500]) from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"HTTP {response.status_code} from {url}")

    def close(self) -> None:
        self._client.close()
