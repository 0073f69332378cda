"""Each device's active alerts on MQTT: `pantau/alerts/<device_id>`, retained, QoS 1.

The payload is the device's whole current state, `{"device_id", "alerts": [Alert...]}` (an
empty list once nothing is active), so a subscriber that connects at any time gets the truth
from the retained message alone. It follows the `alert_events` the store wrote (in id order)
and is rebuilt from the open episodes at start. Publishing uses the one QoS 1 publisher,
`pantau.mqtt_publish.Qos1Publisher`; a broker outage loses nothing that matters, since the
next change (or the next start) republishes the whole state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from alerts.model import Alert, AlertEvent
from pantau.mqtt_publish import Qos1Publisher

log = logging.getLogger(__name__)


class MqttAlertState:
    def __init__(self, publisher: Qos1Publisher, topic: str = "pantau/alerts") -> None:
        self.publisher = publisher
        self.topic = topic.rstrip("/")
        self.active: dict[str, dict[int, dict[str, Any]]] = {}

    def payload(self, device_id: str) -> bytes:
        alerts = [self.active[device_id][k] for k in sorted(self.active.get(device_id, {}))]
        return orjson.dumps({"device_id": device_id, "alerts": alerts})

    def rebuild(self, active: Iterable[Alert]) -> None:
        """The open episodes at start, published so the retained state is right again."""
        for alert in active:
            self.active.setdefault(alert.device.device_id, {})[alert.id] = alert.to_json()
        for device_id in list(self.active):
            self._publish(device_id)

    def on_events(self, events: Sequence[AlertEvent]) -> None:
        touched: list[str] = []
        for event in events:
            alerts = self.active.setdefault(event.device_id, {})
            if event.alert.get("state") == "resolved":
                alerts.pop(event.alert_id, None)
            else:
                alerts[event.alert_id] = event.alert
            if event.device_id not in touched:
                touched.append(event.device_id)
        for device_id in touched:
            self._publish(device_id)

    def _publish(self, device_id: str) -> None:
        self.publisher.publish(f"{self.topic}/{device_id}", self.payload(device_id), retain=True)
