"""A lean decoder for incoming PUBLISH packets, in paho-mqtt's own network thread.

paho-mqtt 2.2 turns every incoming MQTT v5 PUBLISH into an `MQTTMessage` with a freshly built
`Properties` object, and matches its topic against the per-topic callbacks, before our
`on_message` sees it: about half of the ingester's GIL time at 18,000 messages/s (py-spy),
for fields we read five of. `FastPublishClient` is paho's `Client` with one method replaced:
a QoS 0/1 PUBLISH that carries no properties (the common case: devices send none) is cut into
topic, message id and payload with a few slices and handed to `on_inbound_publish`. Anything
else — properties present (e.g. a Content Type), QoS 2, a topic that is not UTF-8, a packet too
short to hold what its header claims, no fast handler set — goes through paho's own code and
`on_message` unchanged, so paho stays the reference for every case it alone handles.

Written by hand because no maintained Python MQTT client decodes faster and paho gives no
hook before its decode; it relies on paho-mqtt 2.2's private `_handle_publish` and
`_in_packet` (the version is pinned; tests hold this decoder to paho's on generated packets
and run it against a real broker). Per-topic callbacks (`message_callback_add`) are not
consulted on the fast path: the ingester does not use them.
"""

from __future__ import annotations

from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

InboundPublish = Callable[[str, bytes, int, int, bool], None]
"""(topic, payload, message id, qos, dup) of one incoming PUBLISH, in arrival order."""


class FastPublishClient(mqtt.Client):
    """paho-mqtt's `Client`, with incoming property-less QoS 0/1 PUBLISH packets handed to
    `on_inbound_publish` without building an `MQTTMessage`."""

    on_inbound_publish: InboundPublish | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_inbound_publish
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if handler is None or qos == 2 or self._protocol != mqtt.MQTTv5:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        size = len(packet)
        if size < 3:
            return super()._handle_publish()  # malformed: paho raises what it raises
        topic_end = 2 + ((packet[0] << 8) | packet[1])
        properties_at = topic_end + 2 if qos else topic_end
        if size <= properties_at or packet[properties_at] != 0:
            return super()._handle_publish()  # properties to decode, or malformed
        try:
            topic = packet[2:topic_end].decode("utf-8")
        except UnicodeDecodeError:
            return super()._handle_publish()  # paho reports such topics its own way
        mid = (packet[topic_end] << 8) | packet[topic_end + 1] if qos else 0
        handler(topic, bytes(packet[properties_at + 1 :]), mid, qos, bool(header & 0x08))
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
