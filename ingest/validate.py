"""Validate stage: decoded `Record`s → typed `Reading`s, checked against the sensor catalog.

Checks, each with its own `RejectReason`: topic shape and device-id charset (a lowercase slug,
so an id can never smuggle `,` `=` spaces quotes newlines `#` `+` `/` into line protocol or a
topic), the device kind, field names and types against the catalog, NaN/±Inf, physical
ranges, and the timestamp policy (not more than `future_tolerance_s` ahead, not older than the
retention; a missing timestamp takes the arrival time and is flagged). A message is accepted
or rejected whole, so a dead letter can be replayed as it came.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from devices.catalog import SensorCatalog
from ingest.model import Reading, Record, RejectedError, RejectReason

DEVICE_ID_PATTERN = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
MS_PER_DAY = 86_400_000


def is_valid_device_id(device_id: str) -> bool:
    return DEVICE_ID_RE.fullmatch(device_id) is not None


@dataclass(frozen=True)
class TopicInfo:
    device_id: str
    channel: str  # "telemetry" or "status"


def parse_topic(topic: str, prefix: str) -> TopicInfo:
    """`<prefix>/<device_id>/<channel>` → its parts; anything else is rejected."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        raise RejectedError(RejectReason.BAD_TOPIC, f"topic outside {prefix}/")
    rest = topic[len(head) :].split("/")
    if len(rest) != 2 or rest[1] not in ("telemetry", "status"):
        raise RejectedError(RejectReason.BAD_TOPIC, "expected <prefix>/<device_id>/telemetry")
    if not is_valid_device_id(rest[0]):
        raise RejectedError(
            RejectReason.BAD_DEVICE_ID, f"device id {rest[0][:80]!r} is not a lowercase slug"
        )
    return TopicInfo(device_id=rest[0], channel=rest[1])


# Given a device id and the field names of a message, the kind of that device (or a reason
# why it has none). Without a registry it is inferred from the catalog; the ingester uses
# `ingest.calibrate.RegistryKindResolver` (unknown_device / retired_device).
KindResolver = Callable[[str, set[str]], str]


class Validator:
    """Turns records of one device into readings, or raises RejectedError."""

    def __init__(
        self,
        catalog: SensorCatalog,
        *,
        future_tolerance_s: float,
        retention_days: int,
        kind_resolver: KindResolver | None = None,
    ) -> None:
        self.catalog = catalog
        self.future_tolerance_ms = int(future_tolerance_s * 1000)
        self.retention_ms = retention_days * MS_PER_DAY
        self.kind_resolver = kind_resolver or self.kind_from_catalog

    def kind_from_catalog(self, device_id: str, names: set[str]) -> str:
        kind = self.catalog.kind_of_fields(names)
        if kind is None:
            raise RejectedError(
                RejectReason.UNKNOWN_KIND,
                f"fields {sorted(names)[:8]} match no single kind of the catalog",
            )
        return kind

    def validate(self, device_id: str, records: list[Record], received_ms: int) -> list[Reading]:
        names: set[str] = set()
        for record in records:
            names.update(record.values)
            if record.source_id is not None and record.source_id != device_id:
                raise RejectedError(
                    RejectReason.ID_MISMATCH,
                    f"payload names device {record.source_id[:64]!r}, topic says {device_id}",
                )
        if not names:
            raise RejectedError(RejectReason.EMPTY, "no reading fields")
        kind = self.kind_resolver(device_id, names)
        specs = self.catalog.all_fields(kind)
        unknown = names - specs.keys()
        if unknown:
            shown = ", ".join(repr(n[:40]) for n in sorted(unknown)[:5])
            raise RejectedError(RejectReason.UNKNOWN_FIELD, f"not a {kind} field: {shown}")
        readings = []
        for record in records:
            fields: dict[str, float] = {}
            for name, value in record.values.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise RejectedError(
                        RejectReason.BAD_TYPE,
                        f"{name} must be a number, got {type(value).__name__}",
                    )
                number = float(value)
                if not math.isfinite(number):
                    raise RejectedError(RejectReason.NOT_FINITE, f"{name} is not finite")
                spec = specs[name]
                if not spec.in_range(number):
                    raise RejectedError(
                        RejectReason.OUT_OF_RANGE,
                        f"{name}={number:g} {spec.unit} outside [{spec.min:g}, {spec.max:g}]",
                    )
                fields[name] = number
            ts_ms = record.ts_ms
            from_arrival = ts_ms is None
            if ts_ms is None:
                ts_ms = received_ms
            elif ts_ms > received_ms + self.future_tolerance_ms:
                raise RejectedError(
                    RejectReason.TS_FUTURE,
                    f"timestamp {(ts_ms - received_ms) / 1000:.0f}s in the future",
                )
            elif ts_ms < received_ms - self.retention_ms:
                raise RejectedError(
                    RejectReason.TS_TOO_OLD, "timestamp older than the retention period"
                )
            if not fields:
                raise RejectedError(RejectReason.EMPTY, "a reading without fields")
            readings.append(
                Reading(
                    device_id=device_id,
                    kind=kind,
                    ts_ms=ts_ms,
                    fields=fields,
                    seq=record.seq,
                    ts_from_arrival=from_arrival,
                )
            )
        return readings
