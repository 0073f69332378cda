"""Alert changes as InfluxDB points (measurement `alerts`) for Grafana annotations.

One point per `alert_events` row: tags device_id, district, site, rule, severity; fields
level, level_rank, state, value, threshold, text (Bahasa Indonesia), alert_id; time = the
change's time. Written directly (a few points per change), never through the readings' batch,
and a failed write is logged, not retried: SQL holds the history, this is a view of it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from alerts.model import AlertEvent
from pantau.influxdb import InfluxClient

log = logging.getLogger(__name__)
MEASUREMENT = "alerts"


def _tag(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", " ")
    )


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def event_line(event: AlertEvent) -> str:
    alert: dict[str, Any] = event.alert
    tags = [
        ("device_id", event.device_id),
        ("district", alert.get("district") or ""),
        ("rule", event.rule),
        ("severity", alert.get("severity") or ""),
        ("site", alert.get("site") or ""),
    ]
    tag_text = "".join(f",{k}={_tag(v)}" for k, v in tags if v)
    fields = [
        f"level={_string(event.level)}",
        f"level_rank={int(alert.get('level_rank') or 0)}i",
        f"state={_string(event.state.value)}",
        f"alert_id={event.alert_id}i",
        f"text={_string((alert.get('text') or {}).get('id', ''))}",
    ]
    for name in ("value", "threshold"):
        number = alert.get(name)
        if isinstance(number, int | float) and math.isfinite(number):
            fields.append(f"{name}={float(number)!r}")
    ts_ms = int(event.at.timestamp() * 1000)
    return f"{MEASUREMENT}{tag_text} {','.join(fields)} {ts_ms}"


class InfluxAlertPoints:
    def __init__(self, client: InfluxClient) -> None:
        self.client = client

    def on_events(self, events: Sequence[AlertEvent]) -> None:
        if not events:
            return
        body = "\n".join(event_line(e) for e in events).encode()
        try:
            self.client.write(body, precision="ms")
        except Exception as exc:  # SQL has the history; this is only the annotation view
            log.warning("alert points not written to InfluxDB: %s", exc)
