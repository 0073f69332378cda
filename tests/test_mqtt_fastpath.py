"""The lean PUBLISH decoder against paho-mqtt's own, on generated packets: same topic,
payload, message id, QoS, dup flag and content type, whichever path a packet takes."""

from __future__ import annotations

import struct

import paho.mqtt.client as mqtt
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_fastpath import FastPublishClient

Seen = tuple[str, bytes, int, int, bool, str | None]


def client(fast: bool, manual_ack: bool = True) -> tuple[FastPublishClient, list[Seen]]:
    seen: list[Seen] = []
    c = FastPublishClient(
        CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5, manual_ack=manual_ack
    )

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        ct = getattr(m.properties, "ContentType", None) if m.properties is not None else None
        seen.append((m.topic, bytes(m.payload), m.mid, m.qos, bool(m.dup), ct))

    def on_inbound(topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        seen.append((topic, payload, mid, qos, dup, None))

    c.on_message = on_message
    if fast:
        c.on_inbound_publish = on_inbound
    return c, seen


def publish_packet(
    topic: str, payload: bytes, mid: int, qos: int, dup: bool, content_type: str | None
) -> tuple[int, bytearray]:
    props = Properties(PacketTypes.PUBLISH)
    if content_type is not None:
        props.ContentType = content_type
    encoded = topic.encode()
    body = struct.pack("!H", len(encoded)) + encoded
    if qos:
        body += struct.pack("!H", mid)
    body += props.pack() + payload
    return 0x30 | (int(dup) << 3) | (qos << 1), bytearray(body)


def feed(c: FastPublishClient, header: int, body: bytearray) -> MQTTErrorCode:
    c._in_packet = {"command": header, "packet": bytearray(body)}  # type: ignore[typeddict-item]
    return c._handle_publish()


@given(
    # an MQTT packet carries UTF-8 only: no lone surrogates (category Cs), no NUL in strings
    topic=st.text(st.characters(exclude_categories=["Cs"]), max_size=80),
    payload=st.binary(max_size=300),
    mid=st.integers(1, 65535),
    qos=st.sampled_from([0, 1]),
    dup=st.booleans(),
    content_type=st.none()
    | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
)
def test_the_lean_decoder_agrees_with_paho(
    topic: str, payload: bytes, mid: int, qos: int, dup: bool, content_type: str | None
) -> None:
    header, body = publish_packet(topic, payload, mid, qos, dup, content_type)
    fast, fast_seen = client(fast=True)
    reference, reference_seen = client(fast=False)
    ok = MQTTErrorCode.MQTT_ERR_SUCCESS
    assert feed(fast, header, body) == feed(reference, header, body) == ok
    # the dup flag as sent, also on QoS 0 (where MQTT says it must be 0), as paho reports it
    assert reference_seen == [(topic, payload, mid if qos else 0, qos, dup, content_type)]
    assert fast_seen == reference_seen


def test_packets_with_properties_or_qos_2_take_paho_s_path() -> None:
    fast, seen = client(fast=True)
    header, body = publish_packet("a/b", b"x", 7, 1, False, "application/senml+json")
    feed(fast, header, body)
    header, body = publish_packet("a/b", b"y", 8, 2, False, None)
    fast._send_pubrec = lambda mid: MQTTErrorCode.MQTT_ERR_SUCCESS  # type: ignore[method-assign]
    feed(fast, header, body)  # QoS 2 waits for PUBREL in paho: nothing delivered yet
    assert seen == [("a/b", b"x", 7, 1, False, "application/senml+json")]


def test_a_truncated_packet_is_left_to_paho() -> None:
    fast, seen = client(fast=True)
    header, body = publish_packet("pantau/devices/wl-1/telemetry", b"{}", 9, 1, False, None)
    for cut in range(len(body) - 2):  # up to the property length byte
        reference, reference_seen = client(fast=False)
        outcomes: list[object] = []
        for c in (fast, reference):
            try:
                outcomes.append(feed(c, header, body[:cut]))
            except Exception as exc:  # paho raises on some malformed packets
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]
        assert seen == reference_seen


def test_without_manual_ack_a_qos_1_message_is_acknowledged() -> None:
    fast, seen = client(fast=True, manual_ack=False)
    sent: list[int] = []
    fast._send_puback = lambda mid: sent.append(mid) or MQTTErrorCode.MQTT_ERR_SUCCESS  # type: ignore[method-assign,func-returns-value]
    header, body = publish_packet("t", b"1", 42, 1, False, None)
    feed(fast, header, body)
    assert sent == [42] and seen == [("t", b"1", 42, 1, False, None)]
