"""The rule evaluator: readings in, `Signal`s out — vectorised over a batch, state in memory.

State lives per (rule, device) in numpy arrays indexed by a series number: the current level
rank, a pending level and since when (for-duration), the last value (trend) and, for window
rules, a ring of 12 time buckets (sum, count, minimum) per series. A batch costs a few array
operations per rule:

1. every reading's *up rank* k (levels reached) and *down rank* d (levels not yet left, i.e.
   still above `at - hysteresis`) against its series' thresholds (registry overrides applied);
2. a series whose current rank r satisfies k ≤ r ≤ d and is not pending changes nothing —
   the common case, decided without Python per reading;
3. only the other series (a crossing, a pending timer) are walked reading by reading in
   arrival order, so a batch holding a gauge's Siaga and Awas readings yields both steps.

Window rules (rolling mean, sum, rise) are evaluated at each series' last reading of a batch.
No-data is a timer over last-seen times (`tick`), anomalies come with the detector's reason,
offline comes from the device's status messages (`observe_status`; its own or its last will).
Devices in `maintenance` are not evaluated (silenced). `rebuild` restores the ranks from the
open episodes in SQL at start, so a restart neither re-opens nor forgets an alert.

This module does not know the pipeline: the ingester hands it `Rows` (many devices' readings
as columns, one row each); per-device `Columns` are accepted too and evaluated the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from alerts.model import Alert, DeviceInfo, Severity, Signal, State, Trend
from alerts.rules import Rule

BUCKETS = 12  # a window rule's ring: window_s / 12 per bucket
# per ladder rule, the gathered readings: series rows, times, values, gate passed
_Gathered = dict[str, tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]]


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What the rules need to know about a device (from the registry)."""

    info: DeviceInfo
    status: str = "active"
    interval_s: float = 60.0
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)


DeviceLookup = Callable[[str], DeviceContext | None]


@dataclass(slots=True)
class Columns:
    """The readings of one device, as columns (a block, or a device's rows of a batch)."""

    device_id: str
    kind: str
    ts_ms: np.ndarray
    fields: dict[str, np.ndarray]
    anomaly: dict[int, str] = field(default_factory=dict)  # row → the detector's reason


@dataclass(slots=True)
class Rows:
    """Readings of many devices as columns, one row each: what the evaluator works on.

    `devices` lists (device id, kind) entries and `entry` gives each row's entry, so what is
    per device (registry context, series row) is looked up once per entry and the rest is
    array work over all rows. A device may have more than one entry (two packs in a batch);
    its rows keep their order either way."""

    devices: list[tuple[str, str]]
    entry: np.ndarray  # int64, per row: its index in `devices`
    ts_ms: np.ndarray
    fields: dict[str, np.ndarray]  # NaN where a reading has no such field
    anomaly: dict[int, str] = field(default_factory=dict)  # row → the detector's reason

    @classmethod
    def of_readings(
        cls,
        device_ids: Sequence[str],
        kinds: Sequence[str],
        ts_ms: np.ndarray,
        fields: dict[str, np.ndarray],
        anomaly: dict[int, str] | None = None,
    ) -> Rows:
        """Single readings, each naming its device (one entry per device)."""
        numbers: dict[str, int] = {}
        devices: list[tuple[str, str]] = []
        entry = np.empty(len(device_ids), np.int64)
        for i, device in enumerate(device_ids):
            j = numbers.get(device)
            if j is None:
                j = numbers[device] = len(devices)
                devices.append((device, kinds[i]))
            entry[i] = j
        return cls(devices, entry, ts_ms, fields, anomaly or {})

    @classmethod
    def of_columns(cls, columns: Sequence[Columns]) -> Rows:
        """Per-device columns (one entry each), concatenated."""
        lengths = [len(c.ts_ms) for c in columns]
        names = {name for c in columns for name in c.fields}
        fields = {
            name: np.concatenate(
                [
                    np.asarray(c.fields.get(name, np.full(n, np.nan)), np.float64)
                    for c, n in zip(columns, lengths, strict=True)
                ]
            )
            for name in names
        }
        anomaly: dict[int, str] = {}
        offset = 0
        for c, n in zip(columns, lengths, strict=True):
            anomaly.update({offset + row: reason for row, reason in c.anomaly.items()})
            offset += n
        return cls(
            [(c.device_id, c.kind) for c in columns],
            np.repeat(np.arange(len(columns), dtype=np.int64), lengths),
            np.concatenate([np.asarray(c.ts_ms, np.int64) for c in columns]),
            fields,
            anomaly,
        )


def _at(ts_ms: float) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000.0, UTC)


class LadderState:
    """Every series of one ladder rule (one row per device)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        n = len(rule.levels)
        self.index: dict[str, int] = {}
        self.contexts: list[DeviceContext] = []
        self.sources: list[object] = []  # the thresholds dict each row was built from
        self.up = np.empty((0, n))
        self.down = np.empty((0, n))
        self.shown = np.empty((0, n))  # thresholds in the field's own sign, for people
        self.rank = np.zeros(0, np.int64)
        self.pending = np.zeros(0, bool)
        self.pend_rank = np.zeros(0, np.int64)
        self.pend_since = np.zeros(0)
        self.last = np.full(0, np.nan)
        self.seen = np.full(0, -np.inf)  # newest reading time per series, ms
        if rule.window_s:
            self.bucket_id = np.full((0, BUCKETS), -1, np.int64)
            self.b_sum = np.zeros((0, BUCKETS))
            self.b_cnt = np.zeros((0, BUCKETS))
            self.b_min = np.full((0, BUCKETS), np.inf)

    def _rows(self, ctx: DeviceContext) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        rule = self.rule
        overrides = ctx.thresholds.get(rule.field or "", {})
        if rule.from_registry and not overrides:
            return None  # e.g. a gauge without levels: its zero is its own
        ats = np.array(
            [
                float(overrides.get(lv.name, math.nan if rule.from_registry else lv.at))
                for lv in rule.levels
            ]
        )
        sign = -1.0 if rule.below else 1.0
        up = sign * ats
        if rule.strict:
            up = np.nextafter(up, np.inf)
        up = np.where(np.isnan(up), np.inf, up)
        return up, up - rule.hysteresis, ats

    def series(self, ctx: DeviceContext) -> int | None:
        """The row of a device (created on first sight; thresholds followed when changed)."""
        row = self.index.get(ctx.info.device_id)
        if row is not None:
            if self.sources[row] is not ctx.thresholds:
                rows = self._rows(ctx)
                if rows is None:
                    return None
                self.up[row], self.down[row], self.shown[row] = rows
                self.sources[row] = ctx.thresholds
                self.contexts[row] = ctx
            return row
        rows = self._rows(ctx)
        if rows is None:
            return None
        row = len(self.contexts)
        if row == len(self.rank):
            self._grow(max(16, 2 * row))
        self.index[ctx.info.device_id] = row
        self.contexts.append(ctx)
        self.sources.append(ctx.thresholds)
        self.up[row], self.down[row], self.shown[row] = rows
        return row

    def _grow(self, capacity: int) -> None:
        """Room for `capacity` series (amortised doubling: no copy per new device)."""

        def grown(array: np.ndarray, fill: object) -> np.ndarray:
            out = np.full((capacity, *array.shape[1:]), fill, dtype=array.dtype)
            out[: len(array)] = array
            return out

        self.up, self.down = grown(self.up, np.inf), grown(self.down, np.inf)
        self.shown = grown(self.shown, np.nan)
        self.rank, self.pending = grown(self.rank, 0), grown(self.pending, False)
        self.pend_rank, self.pend_since = grown(self.pend_rank, 0), grown(self.pend_since, 0.0)
        self.last = grown(self.last, np.nan)
        self.seen = grown(self.seen, -np.inf)
        if self.rule.window_s:
            self.bucket_id = grown(self.bucket_id, -1)
            self.b_sum, self.b_cnt = grown(self.b_sum, 0.0), grown(self.b_cnt, 0.0)
            self.b_min = grown(self.b_min, np.inf)

    # -- windows ----------------------------------------------------------------------------
    def aggregate(
        self, idx: np.ndarray, ts: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Add readings to the rings; (series, time, aggregate, position of that reading) at
        each series' last reading."""
        rule = self.rule
        bucket_ms = rule.window_s * 1000.0 / BUCKETS
        b = (ts // bucket_ms).astype(np.int64)
        slot = b % BUCKETS
        finite = ~np.isnan(v)
        held = self.bucket_id[idx, slot]
        newer = finite & (held < b)
        self.bucket_id[idx[newer], slot[newer]] = b[newer]
        self.b_sum[idx[newer], slot[newer]] = 0.0
        self.b_cnt[idx[newer], slot[newer]] = 0.0
        self.b_min[idx[newer], slot[newer]] = np.inf
        ok = finite & ((held == b) | newer)
        # Sums and counts by bincount over (series, slot) (np.add.at is far slower).
        flat = idx[ok] * BUCKETS + slot[ok]
        size = self.b_sum.size
        self.b_sum += np.bincount(flat, weights=v[ok], minlength=size).reshape(self.b_sum.shape)
        self.b_cnt += np.bincount(flat, minlength=size).reshape(self.b_cnt.shape)
        if rule.aggregate == "rise" and flat.size:
            order = np.argsort(flat, kind="stable")
            keys = flat[order]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            lows = np.minimum.reduceat(v[ok][order], starts)
            cells = keys[starts]
            view = self.b_min.reshape(-1)
            view[cells] = np.minimum(view[cells], lows)
        reverse = idx[::-1]
        series, first_from_end = np.unique(reverse, return_index=True)
        last_pos = len(idx) - 1 - first_from_end
        latest = b[last_pos][:, None]
        ids = self.bucket_id[series]
        valid = (ids > latest - BUCKETS) & (ids <= latest)
        if rule.aggregate == "sum":
            value = (self.b_sum[series] * valid).sum(axis=1)
        elif rule.aggregate == "mean":
            count = (self.b_cnt[series] * valid).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                value = (self.b_sum[series] * valid).sum(axis=1) / count
        else:  # rise: the latest value above the window's minimum
            lowest = np.where(valid, self.b_min[series], np.inf).min(axis=1)
            value = v[last_pos] - lowest
        return series, ts[last_pos], value, last_pos


class AlertEvaluator:
    """Turns readings into signals for the store; see the module docstring."""

    def __init__(self, rules: dict[str, Rule], lookup: DeviceLookup) -> None:
        self.rules = rules
        self.lookup = lookup
        self.ladders = {rid: LadderState(r) for rid, r in rules.items() if r.type == "ladder"}
        self.by_kind: dict[str, list[LadderState]] = {}
        for state in self.ladders.values():
            self.by_kind.setdefault(state.rule.kind or "", []).append(state)
        self.nodata = next((r for r in rules.values() if r.type == "nodata"), None)
        self.anomaly = next((r for r in rules.values() if r.type == "anomaly"), None)
        self.offline_rule = next((r for r in rules.values() if r.type == "offline"), None)
        # device → (when it went offline, ms; whether its episode is firing yet)
        self.offline: dict[str, tuple[float, bool]] = {}
        self.last_seen_ms: dict[str, float] = {}
        self.silent: set[str] = set()  # devices with an open no-data episode
        self.anomalous: dict[str, float] = {}  # device → time of its last anomalous reading
        self.signals: list[Signal] = []

    def context(self, device_id: str, kind: str) -> DeviceContext:
        return self.lookup(device_id) or DeviceContext(DeviceInfo(device_id, kind))

    # -- readings ---------------------------------------------------------------------------
    def observe(self, batch: Sequence[Columns | Rows], now_ms: float | None = None) -> None:
        """Evaluate one batch; the signals wait in `self.signals` (see `take`). Per-device
        `Columns` are evaluated as `Rows` (each run of them concatenated)."""
        now = time.time() * 1000.0 if now_ms is None else now_ms
        per_rule: _Gathered = {}
        run: list[Columns] = []
        for item in batch:
            if isinstance(item, Columns):
                run.append(item)
                continue
            if run:
                self._observe_rows(Rows.of_columns(run), now, per_rule)
                run = []
            self._observe_rows(item, now, per_rule)
        if run:
            self._observe_rows(Rows.of_columns(run), now, per_rule)
        self._evaluate(per_rule)

    def _observe_rows(
        self,
        rows: Rows,
        now: float,
        per_rule: _Gathered,
    ) -> None:
        """Gather the rows of every ladder rule (the stepping is `_evaluate`'s); no-data
        recovery and anomalies per device entry, in order."""
        entry = rows.entry
        contexts: list[DeviceContext | None] = []
        for device, kind in rows.devices:
            ctx = self.context(device, kind)
            if ctx.status != "active":
                contexts.append(None)  # maintenance: silenced
                continue
            contexts.append(ctx)
            self.last_seen_ms[device] = now
            if device in self.silent and self.nodata is not None:
                self.silent.discard(device)
                self._emit_simple(self.nodata, ctx, "nodata", 0, _at(now))
        if self.anomaly is not None:
            flagged = {int(entry[row]) for row in rows.anomaly}
            for j, known in enumerate(contexts):
                if known is None or (
                    j not in flagged and known.info.device_id not in self.anomalous
                ):
                    continue
                mine = np.flatnonzero(entry == j)
                reasons = {
                    k: rows.anomaly[r] for k, r in enumerate(mine.tolist()) if r in rows.anomaly
                }
                one = Columns(
                    known.info.device_id, rows.devices[j][1], rows.ts_ms[mine], {}, reasons
                )
                self._anomalies(self.anomaly, known, one)
        ts_f = rows.ts_ms.astype(np.float64)
        for kind, states in self.by_kind.items():
            of_kind = [
                j
                for j, ctx in enumerate(contexts)
                if ctx is not None and rows.devices[j][1] == kind
            ]
            if not of_kind:
                continue
            for state in states:
                rule = state.rule
                values = rows.fields.get(rule.field or "")
                if values is None:
                    continue
                series = np.full(len(contexts), -1, np.int64)
                for j in of_kind:
                    row = state.series(contexts[j])  # type: ignore[arg-type]
                    if row is not None:
                        series[j] = row
                of_row = series[entry]
                keep = (of_row >= 0) & ~np.isnan(values)  # NaN: this reading lacks the field
                if not keep.any():
                    continue
                v = np.asarray(values[keep], np.float64)
                passed = np.ones(len(v), bool)
                if rule.gate_field is not None:
                    gate = rows.fields.get(rule.gate_field)
                    passed = np.zeros(len(v), bool) if gate is None else gate[keep] >= rule.gate_at
                    if not rule.window_s:  # a window rule's gate is checked on its aggregate
                        v = np.where(passed, v, np.nan)
                lists = per_rule.setdefault(rule.id, ([], [], [], []))
                lists[0].append(of_row[keep])
                lists[1].append(ts_f[keep])
                lists[2].append(v)
                lists[3].append(passed)

    def _evaluate(self, per_rule: _Gathered) -> None:
        """Step every ladder rule over the readings gathered for it, in arrival order."""
        for rule_id, (idx_parts, ts_parts, v_parts, gate_parts) in per_rule.items():
            state = self.ladders[rule_id]
            idx = np.concatenate(idx_parts)
            ts = np.concatenate(ts_parts)
            v = np.concatenate(v_parts)
            passed = np.concatenate(gate_parts)
            # A reading not newer than the series' newest is a redelivery: already counted.
            fresh = ts > state.seen[idx]
            if not fresh.all():
                idx, ts, v, passed = idx[fresh], ts[fresh], v[fresh], passed[fresh]
                if not len(idx):
                    continue
            state.seen[idx] = np.maximum(state.seen[idx], ts)
            if state.rule.window_s:
                idx, ts, v, last = state.aggregate(idx, ts, v)
                if state.rule.gate_field is not None:
                    # The gate holds at the reading the window is judged at: a window's sum
                    # of only the gated readings would be a different (smaller) quantity.
                    v = np.where(passed[last], v, np.nan)
            self._ladder(state, idx, ts, v)

    def _ladder(self, state: LadderState, idx: np.ndarray, ts: np.ndarray, v: np.ndarray) -> None:
        rule = state.rule
        signed = -v if rule.below else v
        k = (signed[:, None] >= state.up[idx]).sum(axis=1)
        d = (signed[:, None] >= state.down[idx]).sum(axis=1)
        if rule.open_from > 1:
            k = np.where(k < rule.open_from, 0, k)
            d = np.where(d < rule.open_from, 0, d)
        r = state.rank[idx]
        needs = (k > r) | (d < r) | state.pending[idx]
        if needs.any():
            # A series that changes walks all its readings of the batch: after its first
            # change, the band of its later readings is not the one computed above.
            needs = np.isin(idx, idx[needs])
            # The value before each reading, within the batch or from the last one: the trend.
            prev = state.last[idx]
            order = np.argsort(idx, kind="stable")
            ordered = idx[order]
            same = np.r_[False, ordered[1:] == ordered[:-1]]
            prev[order] = np.where(same, np.r_[np.nan, v[order][:-1]], prev[order])
            for pos in np.flatnonzero(needs).tolist():
                state.last[int(idx[pos])] = prev[pos]
                self._step(
                    state, int(idx[pos]), float(ts[pos]), float(v[pos]), int(k[pos]), int(d[pos])
                )
        state.last[idx] = v

    def _step(self, state: LadderState, row: int, ts: float, v: float, k: int, d: int) -> None:
        rule = state.rule
        r = int(state.rank[row])
        target = min(max(r, k), d)
        if state.pending[row]:
            if target == 0:
                state.pending[row] = False
                self._emit_ladder(state, row, 0, ts, v, True)
            elif ts - state.pend_since[row] >= rule.for_s * 1000.0:
                state.pending[row] = False
                state.rank[row] = target
                self._emit_ladder(state, row, target, ts, v, True)
            elif target != state.pend_rank[row]:
                state.pend_rank[row] = target
                self._emit_ladder(state, row, target, ts, v, False)
            state.last[row] = v
            return
        if target != r:
            if r == 0 and rule.for_s > 0:
                state.pending[row] = True
                state.pend_since[row] = ts
                state.pend_rank[row] = target
                self._emit_ladder(state, row, target, ts, v, False)
            else:
                state.rank[row] = target
                self._emit_ladder(state, row, target, ts, v, True)
        state.last[row] = v

    def _emit_ladder(
        self, state: LadderState, row: int, rank: int, ts: float, v: float, firing: bool
    ) -> None:
        rule = state.rule
        ctx = state.contexts[row]
        prev = float(state.last[row])
        trend = None
        if not math.isnan(prev) and not math.isnan(v):
            trend = Trend.RISING if v > prev else Trend.FALLING if v < prev else Trend.STEADY
        level = rule.level_at(rank)
        shown = float(state.shown[row, rank - 1]) if rank else None
        self.signals.append(
            Signal(
                rule=rule.id,
                device=ctx.info,
                level=level.name if level else "normal",
                level_rank=rank,
                severity=level.severity if level else Severity.INFO,
                at=_at(ts),
                field=rule.field,
                value=None if math.isnan(v) else round(v, 3),
                threshold=shown,
                unit=rule.unit,
                trend=trend,
                next_level=rule.next_level(rank) if rank else None,
                firing=firing,
            )
        )

    def _emit_simple(
        self,
        rule: Rule,
        ctx: DeviceContext,
        level: str,
        rank: int,
        at: datetime,
        reason: str | None = None,
        field_name: str | None = None,
    ) -> None:
        self.signals.append(
            Signal(
                rule=rule.id,
                device=ctx.info,
                level=level,
                level_rank=rank,
                severity=rule.severity,
                at=at,
                field=field_name,
                reason=reason,
            )
        )

    def _anomalies(self, rule: Rule, ctx: DeviceContext, cols: Columns) -> None:
        device = cols.device_id
        if cols.anomaly:
            row = max(cols.anomaly)
            ts = float(cols.ts_ms[row])
            if device not in self.anomalous:
                reason = cols.anomaly[row]
                self._emit_simple(rule, ctx, "anomaly", 1, _at(ts), reason, reason.split(":", 1)[0])
            self.anomalous[device] = max(ts, self.anomalous.get(device, ts))
        latest = float(cols.ts_ms.max()) if len(cols.ts_ms) else 0.0
        since = self.anomalous.get(device)
        if since is not None and latest - since >= rule.clear_after_s * 1000.0:
            del self.anomalous[device]
            self._emit_simple(rule, ctx, "anomaly", 0, _at(latest))

    # -- device status ----------------------------------------------------------------------
    def observe_status(self, device_id: str, state: str, at_ms: float) -> None:
        """A device's `online` / `offline` status (its own, or its last will from the broker).

        Offline opens a pending episode at once and fires after the rule's `for_s` (checked
        by `tick`); online resolves it. A device in maintenance, or not registered, is
        not alerted on. No-data is its own rule: a device that said goodbye is also silent,
        and a silent device need not have said anything."""
        rule = self.offline_rule
        ctx = self.lookup(device_id)
        if rule is None or ctx is None or ctx.status != "active":
            return
        if state == "offline":
            if device_id in self.offline:
                return  # already known (a retained status seen again)
            firing = rule.for_s <= 0
            self.offline[device_id] = (at_ms, firing)
            self._emit_status(rule, ctx, 1, at_ms, firing)
        elif device_id in self.offline:
            del self.offline[device_id]
            self.last_seen_ms[device_id] = max(self.last_seen_ms.get(device_id, 0.0), at_ms)
            self._emit_status(rule, ctx, 0, at_ms, True)

    def _emit_status(
        self, rule: Rule, ctx: DeviceContext, rank: int, at_ms: float, firing: bool
    ) -> None:
        self.signals.append(
            Signal(
                rule=rule.id,
                device=ctx.info,
                level="offline",
                level_rank=rank,
                severity=rule.severity,
                at=_at(at_ms),
                firing=firing,
            )
        )

    # -- timers -----------------------------------------------------------------------------
    def tick(self, now_ms: float | None = None) -> None:
        """No-data: a device silent for k x its interval (wall clock since last seen);
        offline: a device offline for the rule's `for_s` fires."""
        now = time.time() * 1000.0 if now_ms is None else now_ms
        offline_rule = self.offline_rule
        if offline_rule is not None:
            for device, (since, firing) in list(self.offline.items()):
                if firing or now - since < offline_rule.for_s * 1000.0:
                    continue
                ctx = self.lookup(device)
                if ctx is None or ctx.status != "active":
                    continue
                self.offline[device] = (since, True)
                self._emit_status(offline_rule, ctx, 1, now, True)
        rule = self.nodata
        if rule is None:
            return
        for device, seen in list(self.last_seen_ms.items()):
            if device in self.silent:
                continue
            ctx = self.lookup(device)
            if ctx is None or ctx.status != "active":
                continue
            if now - seen > rule.k * ctx.interval_s * 1000.0:
                self.silent.add(device)
                self._emit_simple(rule, ctx, "nodata", 1, _at(now))

    def watch(self, device_ids: Iterable[str], now_ms: float | None = None) -> None:
        """Start the no-data clock for devices not seen yet (e.g. every registered device)."""
        now = time.time() * 1000.0 if now_ms is None else now_ms
        for device in device_ids:
            self.last_seen_ms.setdefault(device, now)

    def take(self) -> list[Signal]:
        out, self.signals = self.signals, []
        return out

    # -- restart ----------------------------------------------------------------------------
    def rebuild(self, active: Iterable[Alert]) -> None:
        """Restore state from the open episodes in SQL (at start)."""
        for alert in active:
            rule = self.rules.get(alert.rule)
            if rule is None:
                continue
            device = alert.device.device_id
            ctx = self.context(device, alert.device.kind)
            if rule.type == "nodata":
                self.silent.add(device)
            elif rule.type == "offline":
                since = alert.started_at.timestamp() * 1000.0
                self.offline[device] = (since, alert.state is not State.PENDING)
            elif rule.type == "anomaly":
                self.anomalous[device] = alert.updated_at.timestamp() * 1000.0
            else:
                state = self.ladders[rule.id]
                row = state.series(ctx)
                if row is None:
                    continue
                if alert.state is State.PENDING:
                    state.pending[row] = True
                    state.pend_rank[row] = alert.level_rank
                    state.pend_since[row] = alert.started_at.timestamp() * 1000.0
                else:
                    state.rank[row] = alert.level_rank
                if alert.value is not None:
                    state.last[row] = alert.value
