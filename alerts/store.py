"""Episodes in SQL: open, fire, escalate, de-escalate, resolve, acknowledge — each with its event.

`AlertStore.apply(signals)` is the one upsert the rules go through: for each (rule, device) it
compares the rule's verdict with the open episode and changes it, writing an `alert_events` row
(with the Alert JSON after the change) in the same transaction. It is idempotent:

- a verdict equal to the episode's level and state changes nothing (a redelivered reading);
- a verdict from a reading older than the episode's last change (`observed_at`) is ignored,
  so a redelivered old batch never drags an episode back;
- the partial unique index (tables.py) refuses a second open episode for a (rule, device);
  when two ingesters race, the loser's transaction fails on it and is retried, and then finds
  the winner's episode.

On PostgreSQL every writing transaction first takes one advisory lock, so event ids are
committed in the order they are allocated: a follower reading "id > last seen" never skips a
row that commits late. On SQLite the database's single writer gives the same order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from alerts import tables
from alerts.model import (
    Alert,
    AlertEvent,
    DeviceInfo,
    Severity,
    Signal,
    State,
    Transition,
    Trend,
    iso,
)
from alerts.texts import render
from pantau.errors import ConflictError, NotFoundError
from pantau.sql import as_utc, utcnow

log = logging.getLogger(__name__)

# Any 64-bit number: PostgreSQL's advisory lock serialising alert writers (see the docstring).
_ALERT_LOCK_KEY = 0x616C65727473
_RETRIES = 8
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    device_id: str | None
    rule: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime

    def matches(self, rule: str, device_id: str, at: datetime) -> bool:
        return (
            (self.device_id is None or self.device_id == device_id)
            and (self.rule is None or self.rule == rule)
            and self.starts_at <= at < self.ends_at
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "rule": self.rule,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
        }


def alert_from_row(row: Any) -> Alert:
    m = row._mapping
    alert = Alert(
        id=m["id"],
        rule=m["rule"],
        device=DeviceInfo(
            device_id=m["device_id"],
            kind=m["kind"],
            site=m["site"],
            district=m["district"],
            latitude=m["latitude"],
            longitude=m["longitude"],
        ),
        field=m["field"],
        severity=Severity(m["severity"]),
        level=m["level"],
        level_rank=m["level_rank"],
        state=State(m["state"]),
        value=m["value"],
        threshold=m["threshold"],
        unit=m["unit"],
        trend=None if m["trend"] is None else Trend(m["trend"]),
        next_level=m["next_level"],
        started_at=_utc(m["started_at"]),
        updated_at=_utc(m["updated_at"]),
        resolved_at=as_utc(m["resolved_at"]),
        acknowledged_by=m["acknowledged_by"],
        acknowledged_at=as_utc(m["acknowledged_at"]),
        ack_note=m["ack_note"],
        reason=m["reason"],
    )
    alert.text = render(alert)
    return alert


def _utc(value: datetime) -> datetime:
    result = as_utc(value)
    assert result is not None
    return result


def event_from_row(row: Any) -> AlertEvent:
    m = row._mapping
    return AlertEvent(
        id=m["id"],
        alert_id=m["alert_id"],
        device_id=m["device_id"],
        rule=m["rule"],
        transition=Transition(m["transition"]),
        state=State(m["state"]),
        level=m["level"],
        at=_utc(m["at"]),
        value=m["value"],
        by=m["by"],
        note=m["note"],
        alert=m["alert"],
    )


class AlertStore:
    """Alert episodes, their events and silences in one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing ----------------------------------------------------------------------------
    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction, serialised with every other alert writer, retried
        when a racing writer won (unique index) or the database was busy."""
        delay = 0.01
        for attempt in range(_RETRIES):
            try:
                with self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ALERT_LOCK_KEY})")
                    return work(conn)
            except (IntegrityError, OperationalError) as exc:
                if attempt + 1 == _RETRIES:
                    raise
                log.info("alert write raced or was busy (%s); retrying", type(exc).__name__)
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    def apply(self, signals: Sequence[Signal]) -> list[AlertEvent]:
        """Bring the episodes in line with the rules' verdicts; the events it wrote."""
        if not signals:
            return []
        return self._write(lambda conn: self._apply(conn, signals))

    def _apply(self, conn: Connection, signals: Sequence[Signal]) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        silences = self._active_silences(conn)
        for signal in signals:
            event = self._apply_one(conn, signal, silences)
            if event is not None:
                out.append(event)
        return out

    def _apply_one(self, conn: Connection, s: Signal, silences: list[Silence]) -> AlertEvent | None:
        e = tables.episodes
        row = conn.execute(
            select(e).where(
                e.c.rule == s.rule, e.c.device_id == s.device.device_id, e.c.resolved_at.is_(None)
            )
        ).first()
        now = utcnow()  # silences are about the wall clock, not the reading's time
        silenced = any(x.matches(s.rule, s.device.device_id, now) for x in silences)
        measured = {
            "value": s.value,
            "threshold": s.threshold,
            "unit": s.unit,
            "trend": None if s.trend is None else s.trend.value,
            "next_level": s.next_level,
            "field": s.field,
            "reason": s.reason,
        }
        if row is None:
            if s.level_rank <= 0 or silenced:
                return None
            state = State.FIRING if s.firing else State.PENDING
            alert_id = _new_id(
                conn.execute(
                    insert(e).values(
                        rule=s.rule,
                        device_id=s.device.device_id,
                        kind=s.device.kind,
                        site=s.device.site,
                        district=s.device.district,
                        latitude=s.device.latitude,
                        longitude=s.device.longitude,
                        severity=s.severity.value,
                        level=s.level,
                        level_rank=s.level_rank,
                        state=state.value,
                        started_at=s.at,
                        updated_at=s.at,
                        observed_at=s.at,
                        **measured,
                    )
                )
            )
            transition = Transition.FIRING if s.firing else Transition.PENDING
            return self._event(conn, alert_id, transition, s.at, s.value)

        m = row._mapping
        if s.at < _utc(m["observed_at"]):
            return None  # an older reading (redelivered) than the episode's last change
        state = State(m["state"])
        if s.level_rank <= 0:
            conn.execute(
                update(e)
                .where(e.c.id == m["id"])
                .values(
                    state=State.RESOLVED.value,
                    resolved_at=s.at,
                    updated_at=s.at,
                    observed_at=s.at,
                    value=s.value,
                    trend=measured["trend"],
                )
            )
            return self._event(conn, m["id"], Transition.RESOLVED, s.at, s.value)
        if silenced:
            return None
        values: dict[str, Any] = {}
        if s.level_rank > m["level_rank"]:
            transition = Transition.ESCALATED
            if state is State.ACKNOWLEDGED:  # a worse level needs a responder again
                values.update(
                    state=State.FIRING.value,
                    acknowledged_by=None,
                    acknowledged_at=None,
                    ack_note=None,
                )
        elif s.level_rank < m["level_rank"]:
            transition = Transition.DEESCALATED
        elif state is State.PENDING and s.firing:
            transition = Transition.FIRING
        else:
            return None  # same level, same state: a repeat
        if state is State.PENDING and s.firing:
            values["state"] = State.FIRING.value
        values.update(
            level=s.level,
            level_rank=s.level_rank,
            severity=s.severity.value,
            updated_at=s.at,
            observed_at=s.at,
            **measured,
        )
        conn.execute(update(e).where(e.c.id == m["id"]).values(**values))
        return self._event(conn, m["id"], transition, s.at, s.value)

    def _event(
        self,
        conn: Connection,
        alert_id: int,
        transition: Transition,
        at: datetime,
        value: float | None,
        by: str | None = None,
        note: str | None = None,
    ) -> AlertEvent:
        alert = self._get(conn, alert_id)
        body = alert.to_json()
        event_id = _new_id(
            conn.execute(
                insert(tables.events).values(
                    alert_id=alert_id,
                    device_id=alert.device.device_id,
                    rule=alert.rule,
                    transition=transition.value,
                    state=alert.state.value,
                    level=alert.level,
                    value=value,
                    by=by,
                    note=note,
                    at=at,
                    alert=body,
                )
            )
        )
        return AlertEvent(
            id=event_id,
            alert_id=alert_id,
            device_id=alert.device.device_id,
            rule=alert.rule,
            transition=transition,
            state=alert.state,
            level=alert.level,
            at=at,
            value=value,
            by=by,
            note=note,
            alert=body,
        )

    def acknowledge(
        self, alert_id: int, by: str, note: str | None = None
    ) -> tuple[Alert, AlertEvent | None]:
        """A responder has it. Acknowledging twice is one event; a resolved alert is 409."""

        def work(conn: Connection) -> tuple[Alert, AlertEvent | None]:
            alert = self._get(conn, alert_id)
            if alert.state is State.RESOLVED:
                raise ConflictError(f"alert {alert_id} is already resolved")
            if alert.state is State.ACKNOWLEDGED:
                return alert, None
            now = utcnow()
            conn.execute(
                update(tables.episodes)
                .where(tables.episodes.c.id == alert_id)
                .values(
                    state=State.ACKNOWLEDGED.value,
                    acknowledged_by=by,
                    acknowledged_at=now,
                    ack_note=note,
                    updated_at=now,
                )
            )
            event = self._event(conn, alert_id, Transition.ACKNOWLEDGED, now, None, by, note)
            return self._get(conn, alert_id), event

        return self._write(work)

    def resolve(
        self, alert_id: int, by: str, note: str | None = None
    ) -> tuple[Alert, AlertEvent | None]:
        """A person closes the episode; if the condition still holds, the next change of
        level opens a new one. Resolving a resolved alert changes nothing."""

        def work(conn: Connection) -> tuple[Alert, AlertEvent | None]:
            alert = self._get(conn, alert_id)
            if alert.state is State.RESOLVED:
                return alert, None
            now = utcnow()
            conn.execute(
                update(tables.episodes)
                .where(tables.episodes.c.id == alert_id)
                .values(state=State.RESOLVED.value, resolved_at=now, updated_at=now)
            )
            event = self._event(conn, alert_id, Transition.RESOLVED, now, None, by, note)
            return self._get(conn, alert_id), event

        return self._write(work)

    # -- reading ----------------------------------------------------------------------------
    def _get(self, conn: Connection, alert_id: int) -> Alert:
        row = conn.execute(select(tables.episodes).where(tables.episodes.c.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"no alert {alert_id}")
        return alert_from_row(row)

    def get(self, alert_id: int) -> Alert:
        with self.engine.connect() as conn:
            return self._get(conn, alert_id)

    def history(self, alert_id: int) -> list[AlertEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tables.events)
                .where(tables.events.c.alert_id == alert_id)
                .order_by(tables.events.c.id)
            ).all()
        return [event_from_row(r) for r in rows]

    def list_alerts(
        self,
        *,
        state: str | None = None,
        device_id: str | None = None,
        district: str | None = None,
        severity: str | None = None,
        rule: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[Alert]:
        """Newest first; `state` "active" means not resolved."""
        e = tables.episodes
        query = select(e)
        if state == "active":
            query = query.where(e.c.resolved_at.is_(None))
        elif state:
            query = query.where(e.c.state == state)
        for column, wanted in (
            (e.c.device_id, device_id),
            (e.c.district, district),
            (e.c.severity, severity),
            (e.c.rule, rule),
        ):
            if wanted:
                query = query.where(column == wanted)
        if before_id is not None:
            query = query.where(e.c.id < before_id)
        query = query.order_by(e.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [alert_from_row(r) for r in conn.execute(query).all()]

    def active(self) -> list[Alert]:
        e = tables.episodes
        with self.engine.connect() as conn:
            rows = conn.execute(select(e).where(e.c.resolved_at.is_(None)).order_by(e.c.id)).all()
        return [alert_from_row(r) for r in rows]

    def count_active(self) -> int:
        e = tables.episodes
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(e).where(e.c.resolved_at.is_(None))
            return int(conn.execute(query).scalar_one())

    def events_after(self, last_id: int, limit: int = 500) -> list[AlertEvent]:
        """Events with id > `last_id`, oldest first: how followers (SSE, MQTT) catch up."""
        ev = tables.events
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ev).where(ev.c.id > last_id).order_by(ev.c.id).limit(limit)
            ).all()
        return [event_from_row(r) for r in rows]

    def last_event_id(self) -> int:
        ev = tables.events
        with self.engine.connect() as conn:
            value = conn.execute(select(ev.c.id).order_by(ev.c.id.desc()).limit(1)).scalar()
        return int(value or 0)

    # -- silences ---------------------------------------------------------------------------
    def _active_silences(self, conn: Connection, at: datetime | None = None) -> list[Silence]:
        s = tables.silences
        rows = conn.execute(select(s).where(s.c.ends_at > (at or utcnow()))).all()
        return [_silence(r) for r in rows]

    def silences(self, *, include_ended: bool = False) -> list[Silence]:
        s = tables.silences
        query = select(s).order_by(s.c.id)
        if not include_ended:
            query = query.where(s.c.ends_at > utcnow())
        with self.engine.connect() as conn:
            return [_silence(r) for r in conn.execute(query).all()]

    def add_silence(
        self,
        *,
        ends_at: datetime,
        reason: str,
        created_by: str,
        device_id: str | None = None,
        rule: str | None = None,
        starts_at: datetime | None = None,
    ) -> Silence:
        if device_id is None and rule is None:
            raise ConflictError("a silence names a device, a rule, or both")
        now = utcnow()
        with self.engine.begin() as conn:
            silence_id = _new_id(
                conn.execute(
                    insert(tables.silences).values(
                        device_id=device_id,
                        rule=rule,
                        starts_at=starts_at or now,
                        ends_at=ends_at.astimezone(UTC),
                        reason=reason,
                        created_by=created_by,
                        created_at=now,
                    )
                )
            )
            row = conn.execute(
                select(tables.silences).where(tables.silences.c.id == silence_id)
            ).one()
        return _silence(row)

    def delete_silence(self, silence_id: int) -> None:
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(tables.silences).where(tables.silences.c.id == silence_id)
            ).rowcount
        if not gone:
            raise NotFoundError(f"no silence {silence_id}")

    def silenced(self, rule: str, device_id: str, at: datetime | None = None) -> bool:
        s = tables.silences
        moment = at or utcnow()
        query = select(s.c.id).where(
            s.c.ends_at > moment,
            s.c.starts_at <= moment,
            or_(s.c.device_id.is_(None), s.c.device_id == device_id),
            or_(s.c.rule.is_(None), s.c.rule == rule),
        )
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None


def _silence(row: Any) -> Silence:
    m = row._mapping
    return Silence(
        id=m["id"],
        device_id=m["device_id"],
        rule=m["rule"],
        starts_at=_utc(m["starts_at"]),
        ends_at=_utc(m["ends_at"]),
        reason=m["reason"],
        created_by=m["created_by"],
        created_at=_utc(m["created_at"]),
    )


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
