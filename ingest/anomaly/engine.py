"""Vectorised streaming anomaly engine: per-series state in numpy arrays, scored batch-wise.

Every series (one ``device/field`` pair) gets an integer id; its whole state is one row of
a float64 matrix plus one row of a small float32 matrix of seasonal bins.  ``update``
scores a batch of readings at once: it gathers the state rows of the batch, computes all
components with array arithmetic, and scatters the new rows back.  A batch that holds the
same series several times is split into rounds by occurrence rank, so the rows of one
series are applied in their order and the result equals feeding them one at a time.

See ``ingest/anomaly/README.md`` for the detectors, the combination rule and the rules for
gaps, duplicates and out-of-order readings.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.anomaly.config import DetectorConfig

REASONS: dict[int, str] = {
    0: "none",
    1: "level",
    2: "spike",
    3: "rate_of_change",
    4: "seasonal",
    5: "flatline",
    6: "out_of_range",
    7: "new_range",
    8: "distribution",
    9: "trend",
}
R_NONE, R_LEVEL, R_SPIKE, R_ROC, R_SEASONAL, R_FLAT, R_RANGE, R_NEW, R_DIST, R_TREND = range(10)

# columns of the float64 state matrix
(
    C_N,  # accepted readings
    C_TS,  # timestamp of the last accepted reading (s)
    C_X,  # last accepted value
    C_DT,  # EW typical interval between readings (s)
    C_MU,  # level of the de-seasonalised value
    C_MAD,  # EW mean |residual| after level + seasonal bins
    C_MAD0,  # EW mean |value - level| (ignoring seasonality)
    C_FAST,  # fast EWMA of the clipped standardised residual
    C_DMAD,  # EW mean |first difference|
    C_RUN,  # length of the current run of identical values
    C_RUNMAX,  # longest completed run seen
    C_CHG,  # number of value changes seen (capped)
    C_VMIN,  # smallest value seen after warm-up began
    C_VMAX,  # largest value seen
    C_HOLD,  # scores are damped until this timestamp (after a detection)
    C_PEAK,  # score of the detection that started the hold
) = range(16)
N_LIK = 3  # likelihood channels: combined (or spike), level, rate of change
C_LM = 16  # long EW means of the raw scores (N_LIK columns)
C_LV = C_LM + N_LIK  # long EW variances of the raw scores
C_LS = C_LV + N_LIK  # short EW means of the raw scores
N_COLS_V1 = C_LS + N_LIK  # snapshot format 1 ended here
C_TR = N_COLS_V1  # EW mean of the first difference (the recent slope)
C_TRMAX = C_TR + 1  # largest |slope| seen so far (after the warm-up)
C_SHIFT = C_TR + 2  # signed run of residuals beyond the Huber clip (level-shift counter)
N_COLS = C_TR + 3
N_HOUR = 24
N_WEEK = 168  # hour-of-week bins (v1 had 7 day-of-week bins here)
N_DAY_V1 = 7
N_BINS = 9  # histogram of the standardised residual, unit bins centred on -4..4
H_SHORT = N_HOUR + N_WEEK  # first column of the short (recent) histogram
H_LONG = H_SHORT + N_BINS  # first column of the long (reference) histogram
N_SEAS = H_LONG + N_BINS  # float32 columns: seasonal bins, then both histograms
N_SEAS_V1 = N_HOUR + N_DAY_V1 + 2 * N_BINS
SNAPSHOT_VERSION = 2

_SQRT_PI_2 = float(np.sqrt(np.pi / 2.0))  # mean |N(0,1)| = sqrt(2/pi), so sigma = MAD * this
_TINY = 1e-9
_MAX_ABS = 1e15
_MAX_TS = 1e11  # epoch seconds, year ~5100: anything beyond is a corrupt timestamp
_REL_FLOOR = 1e-6


@dataclass(frozen=True)
class DetectionResult:
    """Scores of one ``update`` call, one entry per input row in input order."""

    score: np.ndarray  # float64 in [0, 1]
    reason: np.ndarray  # uint8 key of REASONS: the component that dominated


def _ew(old: np.ndarray, new: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    return old + alpha * (new - old)


class AnomalyEngine:
    """Streaming detector for many series at once; see the module docstring."""

    def __init__(self, config: DetectorConfig | None = None, initial_capacity: int = 1024):
        self.config = config or DetectorConfig()
        cap = max(1, int(initial_capacity))
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._f = np.zeros((cap, N_COLS), dtype=np.float64)
        self._s = np.zeros((cap, N_SEAS), dtype=np.float32)
        self._mark = np.zeros(cap, dtype=np.int64)  # scratch for the duplicate-id check
        c = self.config
        # from this many readings on, every warm-up rate (1/(n+1)) is below its fixed rate
        # and every warm-up mask is empty, so a batch of mature series takes a scalar path
        slowest = min(c.alpha_level, c.alpha_spread, c.alpha_diff, c.alpha_lik_long)
        self._n_mature = (
            2.0
            + max(
                31.0,
                float(c.warmup + c.lik_warmup),
                float(np.ceil(1.0 / slowest)) + c.warmup,
            )
            if slowest > 0.0
            else float("inf")  # a zero rate keeps its warm-up rate forever: no scalar path
        )
        # |EW mean of n differences| of a random walk has sd ~ sqrt(a/(2-a)) of one difference
        self._trend_norm = float(np.sqrt((2.0 - c.alpha_trend) / c.alpha_trend))

    # ------------------------------------------------------------------ series registry
    def __len__(self) -> int:
        return len(self._keys)

    def covered_s(self, series: int) -> float:
        """How long series `series` has been watched: readings times the typical interval."""
        row = self._f[series]
        return float(row[C_N] * row[C_DT])

    @property
    def capacity(self) -> int:
        return int(self._f.shape[0])

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    @staticmethod
    def state_bytes_per_series() -> int:
        """Bytes of numeric state per series (excluding the key string and dict entry)."""
        return N_COLS * 8 + N_SEAS * 4

    def state(self, sid: int) -> np.ndarray:
        """A copy of one series' whole state (float64), for tests and debugging."""
        return np.concatenate((self._f[sid], self._s[sid].astype(np.float64)))

    def _grow(self, need: int) -> None:
        cap = self.capacity
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        f = np.zeros((cap, N_COLS), dtype=np.float64)
        s = np.zeros((cap, N_SEAS), dtype=np.float32)
        f[: self._f.shape[0]] = self._f
        s[: self._s.shape[0]] = self._s
        self._f, self._s = f, s
        self._mark = np.zeros(cap, dtype=np.int64)

    def series_id(self, key: str) -> int:
        sid = self._index.get(key)
        if sid is None:
            sid = len(self._keys)
            self._grow(sid + 1)
            self._keys.append(key)
            self._index[key] = sid
        return sid

    def series_ids(self, keys: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.series_id(k) for k in keys), dtype=np.int64, count=len(keys))

    # ------------------------------------------------------------------ scoring
    def update(
        self,
        ids: np.ndarray,
        ts_s: np.ndarray,
        values: np.ndarray,
        lo: np.ndarray | None = None,
        hi: np.ndarray | None = None,
    ) -> DetectionResult:
        """Score a batch of readings and learn from the valid, in-order ones.

        ``ids`` are series ids from ``series_id``; ``ts_s`` epoch seconds; ``lo``/``hi``
        the physical range per row (NaN = no limit).  Rows of the same series are applied
        in their order in the batch.
        """
        ids = np.asarray(ids, dtype=np.int64)
        ts = np.asarray(ts_s, dtype=np.float64)
        x = np.asarray(values, dtype=np.float64)
        n = ids.shape[0]
        if ts.shape != (n,) or x.shape != (n,):
            raise ValueError("ids, ts_s and values must be 1-d arrays of the same length")
        if n and (ids.min() < 0 or ids.max() >= len(self._keys)):
            raise IndexError("unknown series id in batch")
        lo_a = None if lo is None else np.asarray(lo, dtype=np.float64)
        hi_a = None if hi is None else np.asarray(hi, dtype=np.float64)
        for lim in (lo_a, hi_a):
            if lim is not None and lim.shape != (n,):
                raise ValueError("lo and hi must be 1-d arrays with one limit per row")
        score = np.zeros(n, dtype=np.float64)
        reason = np.zeros(n, dtype=np.uint8)
        if n == 0:
            return DetectionResult(score, reason)

        # duplicate check in O(n): the last write of each id wins, so an earlier row of a
        # repeated id reads back a different position
        pos = np.arange(n)
        mark = self._mark
        mark[ids] = pos
        if np.array_equal(mark[ids], pos):
            s, r = self._step(ids, ts, x, lo_a, hi_a)
            return DetectionResult(s, r)

        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.empty(n, dtype=bool)
        starts[0] = True
        np.not_equal(sorted_ids[1:], sorted_ids[:-1], out=starts[1:])
        # rank of each row among the rows of its series, in input order
        group_start = np.maximum.accumulate(np.where(starts, pos, 0))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = pos - group_start
        by_round = np.argsort(rank, kind="stable")
        counts = np.bincount(rank)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for k in range(counts.shape[0]):
            rows = by_round[bounds[k] : bounds[k + 1]]
            s, r = self._step(
                ids[rows],
                ts[rows],
                x[rows],
                None if lo_a is None else lo_a[rows],
                None if hi_a is None else hi_a[rows],
            )
            score[rows] = s
            reason[rows] = r
        return DetectionResult(score, reason)

    def _step(
        self,
        ids: np.ndarray,
        ts: np.ndarray,
        x: np.ndarray,
        lo: np.ndarray | None,
        hi: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One round: ``ids`` are distinct.  Returns (score, reason) for these rows.

        Written for speed: one gather and one scatter of the state rows, and as few
        array operations as the arithmetic allows (each costs ~1-3 us on 1,000 rows).
        """
        c = self.config
        f = self._f
        seas = self._s
        o = np.ascontiguousarray(np.take(f, ids, axis=0).T)  # (N_COLS, m), contiguous rows
        new = np.empty((N_COLS, ids.shape[0]))
        n = o[C_N]
        fresh = n == 0.0
        last_ts = o[C_TS]

        # |value| beyond _MAX_ABS counts as non-finite: no sensor reads 1e15, and such values
        # could overflow the arithmetic below into Inf/NaN state
        finite = np.abs(x) <= _MAX_ABS
        ts_ok = np.abs(ts) < _MAX_TS  # also rejects NaN; keeps the bin arithmetic exact
        all_ok = bool(finite.all()) and bool(ts_ok.all())
        xs = x if all_ok else np.where(finite, x, 0.0)  # NaN never reaches the arithmetic
        tss = ts if all_ok else np.where(ts_ok, ts, 0.0)
        upd = fresh | (tss > last_ts)
        if not all_ok:
            upd &= finite & ts_ok
        oor: np.ndarray | None = None
        if lo is not None or hi is not None or not all_ok:
            oor = ~finite
            oor &= ~np.isnan(x)
            with np.errstate(invalid="ignore"):
                if lo is not None:
                    oor |= x < lo
                if hi is not None:
                    oor |= x > hi
            upd &= ~oor

        # ---- seasonal bins (hour of local day, local day of week)
        loc = tss + c.tz_offset_s
        day = np.floor(loc * (1.0 / 86400.0))
        hour = ((loc - day * 86400.0) * (1.0 / 3600.0)).astype(np.int64)
        # truncation cannot go below 0, but rounding can reach 24 / 7: never index a neighbour
        np.minimum(hour, N_HOUR - 1, out=hour)
        week = day + 3.0  # epoch day 0 was a Thursday; floor arithmetic beats np.mod here
        week -= 7.0 * np.floor(week * (1.0 / 7.0))
        dow = week.astype(np.int64)
        np.minimum(dow, N_DAY_V1 - 1, out=dow)
        dow *= N_HOUR
        dow += hour
        dow += N_HOUR  # hour-of-week bin, after the 24 hour-of-day bins
        # flat indices into the float32 matrix: 1-d take/put is cheaper than 2-d fancy indexing
        seas_flat = seas.reshape(-1)
        base = ids * N_SEAS
        i_hour = base + hour
        i_dow = base + dow
        sh = seas_flat[i_hour].astype(np.float64)
        sd = seas_flat[i_dow].astype(np.float64)

        mu = o[C_MU]
        mad = o[C_MAD]
        mad0 = o[C_MAD0]
        floor = np.abs(mu)
        floor *= _REL_FLOOR
        floor += _TINY
        scale = _SQRT_PI_2 * mad + floor
        r = xs - mu
        r0 = r.copy()
        r -= sh
        r -= sd
        abs_r = np.abs(r)
        z_spike = abs_r / scale
        scale0 = _SQRT_PI_2 * mad0 + floor
        abs_r0 = np.abs(r0)

        # ---- sustained level shift: fast EWMA of the clipped standardised residual
        clip = 2.0 * c.huber_k
        zr = r / scale
        np.minimum(zr, clip, out=zr)
        np.maximum(zr, -clip, out=zr)
        fast = o[C_FAST] + c.alpha_fast * (zr - o[C_FAST])
        z_level = np.abs(fast)
        z_level *= float(np.sqrt((2.0 - c.alpha_fast) / c.alpha_fast))

        # ---- rate of change over regular intervals (a gap breaks the difference chain)
        dtv = tss - last_ts
        dt_typ = o[C_DT]
        gap = dtv > c.gap_factor * dt_typ
        gap &= dt_typ > 0.0
        gap |= fresh
        any_gap = bool(gap.any())
        diff = xs - o[C_X]
        abs_diff = np.abs(diff)
        dmad = o[C_DMAD]
        dscale = _SQRT_PI_2 * dmad + floor
        z_roc = abs_diff / dscale
        if any_gap:
            np.putmask(z_roc, gap, 0.0)

        # ---- trend: a recent slope steeper than any seen before (a flood's rise)
        tr_old = o[C_TR]
        tr = tr_old + c.alpha_trend * (diff - tr_old)
        if any_gap:
            np.putmask(tr, gap, tr_old)
        abs_tr = np.abs(tr)
        trmax = o[C_TRMAX]
        trend = abs_tr > c.trend_factor * trmax
        trend &= abs_tr * self._trend_norm >= c.trend_min_z * dscale
        # ... and towards values never seen before (a river rising past its highest level)
        trend &= (xs > o[C_VMAX]) | (xs < o[C_VMIN])

        # ---- flatline: a run of identical values far longer than any completed before
        same = diff == 0.0
        same &= ~gap
        not_same = ~same
        run_old = o[C_RUN]
        run = np.where(same, run_old + 1.0, 1.0)
        runmax = np.where(same, o[C_RUNMAX], np.maximum(o[C_RUNMAX], run_old))
        chg = o[C_CHG] + (not_same & ~fresh)
        np.minimum(chg, 1e9, out=chg)
        flat = run > c.flat_factor * np.maximum(runmax, c.flat_min_run)
        flat &= chg >= c.flat_min_changes
        # A run at the highest or lowest value the series has ever read is the world or the
        # sensor's own ceiling, not a stuck sensor: no rain reads 0 mm for days, saturated air
        # 100 % (or 99 % on a probe that tops out there).  Values outside the catalog's range
        # are never learned, so a run at one of its bounds is always at the seen extreme.
        # (A sensor stuck exactly at an extreme looks the same and is not flagged: the price.)
        if flat.any():
            flat &= (xs != o[C_VMAX]) & (xs != o[C_VMIN])

        # ---- spatial novelty: leaving the range of values seen so far
        vmin = o[C_VMIN]
        vmax = o[C_VMAX]
        tol = c.novelty_tol * (vmax - vmin)
        novel = xs > vmax + tol
        novel |= xs < vmin - tol
        novel &= z_spike >= c.novelty_min_z

        # ---- raw score of this reading, then its likelihood against the series' history
        warm = n >= c.warmup
        cold = ~warm
        any_cold = bool(cold.any())
        a_warm = 1.0 / (n + 1.0)
        if c.w_level != 1.0:
            z_level *= c.w_level
        if c.w_roc != 1.0:
            z_roc *= c.w_roc
        zmax = np.maximum(z_level, z_spike)
        np.maximum(zmax, z_roc, out=zmax)

        # ---- distribution change: relative entropy of the recent residual histogram
        # against the long one (a chi-square statistic with N_BINS - 1 dof)
        hist: np.ndarray | None = None
        if c.w_re > 0.0:
            hist = seas[ids, H_SHORT:N_SEAS].astype(np.float64)
            hs = hist[:, :N_BINS]
            hl = hist[:, N_BINS:]
            b = np.rint(r / scale)
            np.clip(b, -4.0, 4.0, out=b)
            bi = b.astype(np.int64)
            bi += 4
            rows = np.arange(ids.shape[0])
            hs *= 1.0 - c.alpha_hist_short
            hs[rows, bi] += c.alpha_hist_short
            a_hl = np.maximum(a_warm, c.alpha_hist_long)
            hl *= (1.0 - a_hl)[:, None]
            hl[rows, bi] += a_hl
            kl = (hs + 1e-3) * np.log((hs + 1e-3) / (hl + 1e-3))
            g = kl.sum(axis=1)
            g *= 2.0 * (2.0 - c.alpha_hist_short) / c.alpha_hist_short
            z_re = (g - (N_BINS - 1)) * (c.w_re / np.sqrt(2.0 * (N_BINS - 1)))
            np.maximum(zmax, z_re, out=zmax)
        # one likelihood channel on the strongest component, or one per component
        k_lik = N_LIK if c.lik_per_component else 1
        zc = np.stack((z_spike, z_level, z_roc)) if k_lik > 1 else zmax[None, :]
        q = zc * (1.0 / c.raw_scale)
        q *= q
        q *= -0.5
        raw = 1.0 - np.exp(q)
        if any_cold:
            raw[:, cold] = 0.0
        ls_old = o[C_LS : C_LS + k_lik]
        ls = ls_old + c.alpha_lik_short * (raw - ls_old)
        lm = o[C_LM : C_LM + k_lik]
        lv = o[C_LV : C_LV + k_lik]
        sig = (ls - lm) / np.sqrt(lv + 1e-6)
        u8 = np.uint8
        if k_lik > 1:
            sigma = sig.max(axis=0)
            # the channel that gave the max (ties to the first, like argmax, but cheaper)
            lik_rsn = np.where(sig[1] >= sigma, u8(R_LEVEL), u8(R_ROC))
            lik_rsn = np.where(sig[0] >= sigma, u8(R_SPIKE), lik_rsn)
        else:
            sigma = sig[0]
        np.maximum(sigma, 0.0, out=sigma)
        if c.w_raw_direct > 0.0:
            np.maximum(sigma, c.w_raw_direct * zmax, out=sigma)
        # fast start: until the likelihood has `lik_warmup` raw scores to judge against, a
        # young series is scored by its strongest z directly (`young_gain` x; 0 = silent)
        young = n < c.warmup + c.lik_warmup
        if young.any():
            young_sigma = zmax * c.young_gain
            young_sigma[cold] = 0.0
            np.putmask(sigma, young, young_sigma)
        # direct components bypass the likelihood: a new range ranks by how far it leaves
        # the old one; a flatline gets a fixed level
        direct_on = novel | flat
        if c.trend_sigma > 0.0:
            direct_on |= trend
        direct_on &= warm
        if direct_on.any():
            width = vmax - vmin
            width += floor
            excess = np.maximum(xs - vmax, vmin - xs)
            excess /= width
            np.minimum(excess, 1.0, out=excess)
            direct = c.novelty_sigma + c.novelty_rank * excess
            direct[~novel] = 0.0
            direct[flat & (direct < c.flat_sigma)] = c.flat_sigma
            is_trend = trend & (direct < c.trend_sigma)
            direct[is_trend] = c.trend_sigma
            direct[~warm] = 0.0
            direct_wins = direct > 0.0
            direct_wins &= sigma <= direct
            total = np.where(direct_wins, direct, sigma)
        else:
            direct_wins = direct_on
            is_trend = direct_on
            total = sigma
        score = total * (1.0 / c.score_sigma)
        np.minimum(score, 1.0, out=score)

        # reason: the direct component, or the raw component that is largest right now
        if k_lik > 1:
            rsn = lik_rsn
        else:
            rsn = np.where(z_roc >= zmax, u8(R_ROC), u8(R_DIST))
            rsn = np.where(z_spike >= zmax, u8(R_SPIKE), rsn)
            rsn = np.where(z_level >= zmax, u8(R_LEVEL), rsn)
        seasonal = rsn == R_SPIKE
        seasonal &= abs_r0 < c.huber_k * scale0
        seasonal &= mad0 > 1.5 * mad
        np.putmask(rsn, seasonal, R_SEASONAL)
        any_direct = bool(direct_wins.any())
        if any_direct:
            rsn[direct_wins] = R_NEW
            rsn[direct_wins & flat & ~novel] = R_FLAT
            rsn[direct_wins & is_trend] = R_TREND

        # damp repeats for a while after a detection, so one event alerts once
        held = tss < o[C_HOLD]
        if not c.hold_direct and any_direct:
            held &= ~direct_wins
        if c.hold_rearm > 0.0:
            # a clearly stronger event than the one that started the hold still alerts
            held &= score <= c.hold_rearm * o[C_PEAK]
        any_held = bool(held.any())
        if any_held:
            score[held] *= c.hold_damp
        fired = score >= c.fire_level
        if any_held:
            fired &= ~held
        np.putmask(rsn, score <= 0.0, R_NONE)
        if not all_ok:
            unusable = ~(finite & ts_ok)  # NaN value or a corrupt clock: score 0
            score[unusable] = 0.0
            rsn[unusable] = R_NONE
        if oor is not None:
            score[oor] = 1.0
            rsn[oor] = R_RANGE

        # ---- learn (only rows in `upd`; others keep their old state row)
        mature = bool(n.min() >= self._n_mature)
        a_lvl: np.ndarray | float
        a_spr: np.ndarray | float
        a_d: np.ndarray | float
        a_long: np.ndarray | float
        if mature:
            a_lvl, a_spr = c.alpha_level, c.alpha_spread
            a_d, a_long = c.alpha_diff, c.alpha_lik_long
        else:
            a_lvl = np.maximum(a_warm, c.alpha_level)
            a_spr = np.maximum(a_warm, c.alpha_spread)
            nd = np.maximum(n - 1.0, 0.0)
            a_d = np.maximum(c.alpha_diff, 1.0 / (nd + 1.0))
            n_lik = np.maximum(n - c.warmup, 0.0)
            n_lik += 1.0
            np.divide(1.0, n_lik, out=n_lik)
            a_long = np.maximum(n_lik, c.alpha_lik_long, out=n_lik)
        early = n < 30.0  # too few readings for a spread: learn unclipped
        any_early = not mature and bool(early.any())
        k = c.huber_k * scale
        if any_early:
            np.putmask(k, early, np.inf)
        rc = np.minimum(r, k)
        k *= -1.0
        np.maximum(rc, k, out=rc)
        new[C_MU] = mu + a_lvl * rc
        # level shift: after `shift_run` residuals in a row beyond the clip on one side, the
        # new level becomes normal at once (not crept towards for 1/alpha readings)
        shift = o[C_SHIFT]
        up = r > -k  # k is -huber_k * scale here
        down = r < k
        new_shift = np.where(up, np.maximum(shift, 0.0) + 1.0, 0.0)
        np.putmask(new_shift, down, np.minimum(shift, 0.0) - 1.0)
        if c.shift_run > 0:
            jump = np.abs(new_shift) >= c.shift_run
            jump &= warm
            if jump.any():
                new[C_MU][jump] = (xs - sh - sd)[jump]
                new_shift[jump] = 0.0
                fast[jump] = 0.0
        new[C_SHIFT] = new_shift
        rc *= 1.0 - a_lvl
        # seasonal bins learn per hour of time, not per reading: a reading taken every
        # minute moves its hour bin 1/60 of what an hourly reading does, so a fast sensor's
        # bins cannot turn into a second, fast level that swallows a rise
        cover = dt_typ * (1.0 / 3600.0)
        np.minimum(cover, 1.0, out=cover)
        sh_new = sh + (c.alpha_hour * cover) * rc
        sd_new = sd + (c.alpha_week * cover) * rc
        cap = 5.0 * scale + floor
        if any_early:
            np.putmask(cap, early, np.inf)
        np.minimum(abs_r, cap, out=abs_r)
        new[C_MAD] = mad + a_spr * (abs_r - mad)
        cap0 = 5.0 * scale0 + floor
        if any_early:
            np.putmask(cap0, early, np.inf)
        np.minimum(abs_r0, cap0, out=abs_r0)
        new[C_MAD0] = mad0 + a_spr * (abs_r0 - mad0)
        new[C_FAST] = fast
        if any_cold:
            new[C_FAST][cold] = 0.0
        dcap = 5.0 * dscale
        if not mature:
            d_early = n < 31.0  # fewer than 30 differences seen
            if d_early.any():
                np.putmask(dcap, d_early, np.inf)
        np.minimum(abs_diff, dcap, out=abs_diff)
        new[C_DMAD] = dmad + a_d * (abs_diff - dmad)
        if any_gap:
            new[C_DMAD][gap] = dmad[gap]
        dt_new = dt_typ + c.alpha_dt * (np.minimum(dtv, 10.0 * dt_typ) - dt_typ)
        first_dt = dt_typ <= 0.0
        if first_dt.any():
            dt_new[first_dt] = dtv[first_dt]
            dt_new[fresh] = 0.0
        new[C_DT] = dt_new
        new[C_RUN] = run
        new[C_TR] = tr
        # the slope record follows a steeper slope only slowly, so a rise that keeps
        # steepening (a flood wave) stays unprecedented for a while instead of setting a new
        # record every reading
        new[C_TRMAX] = np.where(abs_tr > trmax, trmax + c.alpha_trmax * (abs_tr - trmax), trmax)
        if any_cold:
            new[C_TRMAX][cold] = np.maximum(trmax, abs_tr)[cold]
        new[C_RUNMAX] = runmax
        new[C_CHG] = chg
        if c.range_decay > 0.0:
            # the remembered range shrinks slowly toward the level, so "new range" means
            # new for the recent past rather than for all time
            new[C_VMIN] = np.minimum(vmin + c.range_decay * (mu - vmin), xs)
            new[C_VMAX] = np.maximum(vmax - c.range_decay * (vmax - mu), xs)
        else:
            new[C_VMIN] = np.minimum(vmin, xs)
            new[C_VMAX] = np.maximum(vmax, xs)
        dl = raw - lm
        new[C_LM : C_LM + k_lik] = lm + a_long * dl
        dl *= dl
        dl *= a_long
        dl += lv
        dl *= 1.0 - a_long
        new[C_LV : C_LV + k_lik] = dl
        new[C_LS : C_LS + k_lik] = ls
        if k_lik < N_LIK:
            new[C_LM + k_lik : C_LM + N_LIK] = 0.0
            new[C_LV + k_lik : C_LV + N_LIK] = 0.0
            new[C_LS + k_lik : C_LS + N_LIK] = 0.0
        new[C_HOLD] = o[C_HOLD]
        new[C_PEAK] = o[C_PEAK]
        if fired.any():
            new[C_HOLD][fired] = (tss + c.hold_intervals * dt_typ)[fired]
            new[C_PEAK][fired] = score[fired]
        new[C_N] = n + 1.0
        new[C_TS] = tss
        new[C_X] = xs
        if fresh.any():
            new[C_MU][fresh] = xs[fresh]
            new[C_VMIN][fresh] = xs[fresh]
            new[C_VMAX][fresh] = xs[fresh]
        if any_cold:
            new[C_LM : C_LM + N_LIK, cold] = 0.0
            new[C_LV : C_LV + N_LIK, cold] = 0.0

        if upd.all():
            f[ids] = new.T
            seas_flat[i_hour] = sh_new
            seas_flat[i_dow] = sd_new
            if hist is not None:
                seas[ids, H_SHORT:N_SEAS] = hist
        elif upd.any():
            u = ids[upd]
            f[u] = new.T[upd]
            seas_flat[i_hour[upd]] = sh_new[upd]
            seas_flat[i_dow[upd]] = sd_new[upd]
            if hist is not None:
                seas[u, H_SHORT:N_SEAS] = hist[upd]
        return score, rsn

    # ------------------------------------------------------------------ persistence
    def snapshot(self, path: Path) -> None:
        """Write the whole state atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        m = len(self._keys)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    keys=np.array(self._keys, dtype=np.str_),
                    f=self._f[:m],
                    s=self._s[:m],
                    version=np.array([SNAPSHOT_VERSION]),
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def restore(cls, path: Path, config: DetectorConfig | None = None) -> AnomalyEngine:
        """Read a snapshot written by ``snapshot`` (format 2, or format 1 converted)."""
        with np.load(Path(path), allow_pickle=False) as data:
            keys = [str(k) for k in data["keys"]]
            f = data["f"]
            s = data["s"]
            version = int(data["version"][0]) if "version" in data else 1
        m = len(keys)
        if version == 1 and f.shape == (m, N_COLS_V1) and s.shape == (m, N_SEAS_V1):
            f, s = _upgrade_v1(f, s)
        elif version != SNAPSHOT_VERSION or f.shape != (m, N_COLS) or s.shape != (m, N_SEAS):
            raise ValueError(
                f"snapshot {path} has an unexpected state layout (version {version}, "
                f"{f.shape[1] if f.ndim == 2 else '?'} state columns)"
            )
        eng = cls(config, initial_capacity=max(1024, len(keys)))
        eng._keys = keys
        eng._index = {k: i for i, k in enumerate(keys)}
        eng._f[: len(keys)] = f
        eng._s[: len(keys)] = s
        return eng


def _upgrade_v1(f: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Format 1 state (24 hour + 7 day-of-week bins, no trend columns) as format 2.

    The columns of format 1 keep their places; each day-of-week offset becomes the
    starting value of that day's 24 hour-of-week bins; the new slope columns start at 0,
    so the slope record is relearned from the next readings.
    """
    m = f.shape[0]
    f2 = np.zeros((m, N_COLS), dtype=np.float64)
    f2[:, :N_COLS_V1] = f
    s2 = np.zeros((m, N_SEAS), dtype=np.float32)
    s2[:, :N_HOUR] = s[:, :N_HOUR]
    s2[:, N_HOUR : N_HOUR + N_WEEK] = np.repeat(s[:, N_HOUR : N_HOUR + N_DAY_V1], N_HOUR, axis=1)
    s2[:, H_SHORT:N_SEAS] = s[:, N_HOUR + N_DAY_V1 :]
    return f2, s2
