"""What an alert is: states, severities, the signal a rule emits, and the Alert JSON.

An *episode* is one alert for one (rule, device), from the first moment its condition held to
its resolution; escalation and de-escalation change its level, never open a second one. The
Alert JSON (`Alert.to_json`) is the one shape the API, the SSE stream, MQTT and the
notification outbox carry (see `/work/notes/alerts-api.md`, the contract).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class State(enum.StrEnum):
    PENDING = "pending"  # the condition holds, its for-duration has not passed yet
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"  # a responder has it; still active
    RESOLVED = "resolved"


ACTIVE_STATES = (State.PENDING, State.FIRING, State.ACKNOWLEDGED)


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Transition(enum.StrEnum):
    """What one `alert_events` row records."""

    PENDING = "pending"  # opened, waiting for its for-duration
    FIRING = "firing"  # opened firing, or a pending episode's for-duration passed
    ESCALATED = "escalated"  # a higher level in the same episode
    DEESCALATED = "deescalated"  # a lower (still alerting) level in the same episode
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"  # back to normal, or resolved by a person


class Trend(enum.StrEnum):
    RISING = "rising"
    FALLING = "falling"
    STEADY = "steady"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What an alert says about its device (denormalised onto the episode when it opens)."""

    device_id: str
    kind: str = ""
    site: str = ""
    district: str = ""
    latitude: float | None = None
    longitude: float | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule's verdict for one (rule, device) at one reading time: the level it is at now.

    `level_rank` 0 is normal (the open episode, if any, resolves). `firing` False means the
    condition holds but its for-duration has not passed: the episode is (or stays) pending.
    """

    rule: str
    device: DeviceInfo
    level: str
    level_rank: int
    severity: Severity
    at: datetime  # the reading's time, UTC
    field: str | None = None
    value: float | None = None
    threshold: float | None = None
    unit: str | None = None
    trend: Trend | None = None
    next_level: str | None = None
    firing: bool = True
    reason: str | None = None  # e.g. the detector's "<field>:<part>"


@dataclass(slots=True)
class Alert:
    """One episode as people and notifiers see it."""

    id: int
    rule: str
    device: DeviceInfo
    field: str | None
    severity: Severity
    level: str
    level_rank: int
    state: State
    value: float | None
    threshold: float | None
    unit: str | None
    trend: Trend | None
    next_level: str | None
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_note: str | None = None
    reason: str | None = None
    text: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state is not State.RESOLVED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "device_id": self.device.device_id,
            "kind": self.device.kind,
            "site": self.device.site,
            "district": self.device.district,
            "latitude": self.device.latitude,
            "longitude": self.device.longitude,
            "field": self.field,
            "severity": self.severity.value,
            "level": self.level,
            "level_rank": self.level_rank,
            "state": self.state.value,
            "value": self.value,
            "threshold": self.threshold,
            "unit": self.unit,
            "trend": None if self.trend is None else self.trend.value,
            "next_level": self.next_level,
            "reason": self.reason,
            "started_at": iso(self.started_at),
            "updated_at": iso(self.updated_at),
            "resolved_at": iso(self.resolved_at),
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": iso(self.acknowledged_at),
            "ack_note": self.ack_note,
            "text": dict(self.text),
        }


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One row of `alert_events`: a change of an episode, with the Alert JSON after it."""

    id: int
    alert_id: int
    device_id: str
    rule: str
    transition: Transition
    state: State
    level: str
    at: datetime
    value: float | None
    by: str | None
    note: str | None
    alert: dict[str, Any]


def iso(value: datetime | None) -> str | None:
    """UTC, second precision or finer, with a Z: the wire form of every time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
