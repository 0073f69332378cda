"""Validate stage: decoded `Record`s → typed `Reading`s, checked against the sensor catalog.

Checks, each with its own `RejectReason`: topic shape and device-id charset (a lowercase slug,
so an id can never smuggle `,` `=` spaces quotes newlines `#` `+` `/` into line protocol or a
topic), the device kind, field names and types against the catalog, NaN/±Inf, physical
ranges, and the timestamp policy (not more than `future_tolerance_s` ahead, not older than the
retention; a missing timestamp takes the arrival time and is flagged). A message is accepted
or rejected whole, so a dead letter can be replayed as it came.

`validate_block` checks a `RecordBlock` (a regular SenML pack, in columns) with a handful of
array operations; when any check fails it hands the pack's rows to `validate`, so a rejection
carries exactly the reason and detail the row path gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from devices.catalog import SensorCatalog
from ingest.model import Reading, ReadingBlock, Record, RecordBlock, RejectedError, RejectReason
from pantau.ids import is_valid_device_id

MS_PER_DAY = 86_400_000


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


class TopicParser:
    """`parse_topic` with a bounded cache of valid topics: the hot path sees few distinct ones."""

    def __init__(self, prefix: str, max_cached: int = 200_000) -> None:
        self.prefix = prefix
        self.max_cached = max_cached
        self._cache: dict[str, tuple[str, str]] = {}

    def parse(self, topic: str) -> tuple[str, str]:
        """(device_id, channel) of a device topic; raises RejectedError for anything else."""
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        info = parse_topic(topic, self.prefix)
        if len(self._cache) >= self.max_cached:
            self._cache.clear()
        result = (info.device_id, info.channel)
        self._cache[topic] = result
        return result


# Given a device id and the field names of a message, the kind of that device (or a reason
# why it has none). Without a registry it is inferred from the catalog; the ingester uses
# `ingest.registry_gate.RegistryKindResolver` (unknown_device / retired_device).
KindResolver = Callable[[str, set[str]], str]


class Validator:
    """Turns records of one device into readings, or raises RejectedError.

    On the hot path: per-kind field specs are precomputed, and the catalog's kind inference is
    cached per set of field names, so a message costs dictionary look-ups, not set algebra.
    """

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
        self._ranges = {
            kind: {name: (spec.min, spec.max) for name, spec in catalog.all_fields(kind).items()}
            for kind in catalog.kinds
        }
        self._kind_cache: dict[frozenset[str], str | None] = {}

    def kind_from_catalog(self, device_id: str, names: set[str]) -> str:
        key = frozenset(names)
        try:
            kind = self._kind_cache[key]
        except KeyError:
            kind = self.catalog.kind_of_fields(names)
            if len(self._kind_cache) < 10_000:  # hostile field names must not grow it forever
                self._kind_cache[key] = kind
        if kind is None:
            raise RejectedError(
                RejectReason.UNKNOWN_KIND,
                f"fields {sorted(n[:40] for n in names)[:8]} match no single kind of the catalog",
            )
        return kind

    def validate(self, device_id: str, records: list[Record], received_ms: int) -> list[Reading]:
        if len(records) == 1:
            names = set(records[0].values)
        else:
            names = set()
            for record in records:
                names.update(record.values)
        if not names:
            raise RejectedError(RejectReason.EMPTY, "no reading fields")
        kind = self.kind_resolver(device_id, names)
        ranges = self._ranges.get(kind)
        if ranges is None:
            raise RejectedError(RejectReason.UNKNOWN_KIND, f"kind {kind!r} is not in the catalog")
        if not names <= ranges.keys():
            unknown = names - ranges.keys()
            shown = ", ".join(repr(n[:40]) for n in sorted(unknown)[:5])
            raise RejectedError(RejectReason.UNKNOWN_FIELD, f"not a {kind} field: {shown}")
        newest_ms = received_ms + self.future_tolerance_ms
        oldest_ms = received_ms - self.retention_ms
        readings = []
        for record in records:
            if record.source_id is not None and record.source_id != device_id:
                raise RejectedError(
                    RejectReason.ID_MISMATCH,
                    f"payload names device {record.source_id[:80]!r}, topic names {device_id!r}",
                )
            fields: dict[str, float] = {}
            for name, value in record.values.items():
                kind_of_value = type(value)
                if kind_of_value is float:
                    number: float = value  # type: ignore[assignment]
                elif kind_of_value is int:
                    number = float(value)  # type: ignore[arg-type]
                else:
                    raise RejectedError(
                        RejectReason.BAD_TYPE,
                        f"{name} must be a number, got {kind_of_value.__name__}",
                    )
                low, high = ranges[name]
                if not low <= number <= high:  # also false for NaN
                    if not math.isfinite(number):
                        raise RejectedError(RejectReason.NOT_FINITE, f"{name} is not finite")
                    spec = self.catalog.field(kind, name)
                    unit = spec.unit if spec else ""
                    raise RejectedError(
                        RejectReason.OUT_OF_RANGE,
                        f"{name}={number:g} {unit} outside [{low:g}, {high:g}]",
                    )
                fields[name] = number
            if not fields:
                raise RejectedError(RejectReason.EMPTY, "a reading without fields")
            ts_ms = record.ts_ms
            from_arrival = ts_ms is None
            if ts_ms is None:
                ts_ms = received_ms
            elif ts_ms > newest_ms:
                raise RejectedError(
                    RejectReason.TS_FUTURE,
                    f"timestamp {(ts_ms - received_ms) / 1000:.0f}s in the future",
                )
            elif ts_ms < oldest_ms:
                raise RejectedError(
                    RejectReason.TS_TOO_OLD, "timestamp older than the retention period"
                )
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

    def validate_block(
        self, device_id: str, block: RecordBlock, received_ms: int
    ) -> ReadingBlock | list[Reading]:
        """A valid block as a `ReadingBlock`; anything else through `validate` (which raises)."""
        names = block.values.keys()
        if names and len(block):
            kind = self.kind_resolver(device_id, set(names))
            ranges = self._ranges.get(kind)
            if (
                ranges is not None
                and names <= ranges.keys()
                and (block.source_id is None or block.source_id == device_id)
                and self._in_ranges(block, ranges)
                and int(block.ts_ms.max()) <= received_ms + self.future_tolerance_ms
                and int(block.ts_ms.min()) >= received_ms - self.retention_ms
            ):
                return ReadingBlock(
                    device_id=device_id,
                    kind=kind,
                    ts_ms=block.ts_ms,
                    fields=dict(block.values),
                    seq=block.seq,
                )
        return self.validate(device_id, block.to_records(), received_ms)

    @staticmethod
    def _in_ranges(block: RecordBlock, ranges: dict[str, tuple[float, float]]) -> bool:
        for name, column in block.values.items():
            low, high = ranges[name]
            # min/max are NaN when the column holds one, and NaN compares false
            if not (column.min() >= low and column.max() <= high):
                return False
        return True
