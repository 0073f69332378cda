"""The typed values that cross stage boundaries: an inbound MQTT message, a reading, a rejection."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(slots=True)
class Inbound:
    """One MQTT message as received, before any decoding."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ms: int
    content_type: str | None = None
    generation: int = 0  # which broker connection delivered it: stale ids are never acked
    dup: bool = False


@dataclass(slots=True)
class Record:
    """One decoded reading, not yet validated: a timestamp, a sequence number, raw values."""

    ts_ms: int | None
    seq: int | None
    values: dict[str, object]
    source_id: str | None = None  # the device a SenML name claims ("urn:dev:<id>:<field>")


@dataclass(slots=True)
class Reading:
    """A validated reading: typed, in catalog units, timestamped in UTC epoch milliseconds."""

    device_id: str
    kind: str
    ts_ms: int
    fields: dict[str, float]
    seq: int | None = None
    ts_from_arrival: bool = False  # the device sent no timestamp; arrival time was used
    raw: dict[str, float] = field(default_factory=dict)  # pre-calibration values, when changed
    anomaly_score: float | None = None
    anomaly_reason: str | None = None  # "<field>:<detector part>" when the score crossed it
    tags: tuple[tuple[str, str], ...] = ()  # extra low-cardinality tags (district, site)


class RejectReason(enum.StrEnum):
    """Why a message was dead-lettered. Stable names: they are metric labels and API filters."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_ENCODING = "bad_encoding"
    BAD_JSON = "bad_json"
    BAD_SHAPE = "bad_shape"
    BAD_SENML = "bad_senml"
    BAD_TOPIC = "bad_topic"
    BAD_DEVICE_ID = "bad_device_id"
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_FIELD = "unknown_field"
    BAD_TYPE = "bad_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    TS_FUTURE = "ts_future"
    TS_TOO_OLD = "ts_too_old"
    EMPTY = "empty"
    UNKNOWN_DEVICE = "unknown_device"
    RETIRED_DEVICE = "retired_device"
    ID_MISMATCH = "id_mismatch"
    STORAGE_REJECTED = "storage_rejected"


class RejectedError(Exception):
    """Raised by a stage for a message that cannot become readings."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Rejection:
    """A message that will be dead-lettered, with why."""

    message: Inbound
    reason: RejectReason
    detail: str
