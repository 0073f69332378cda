"""Tunable constants of the streaming anomaly engine, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DetectorConfig:
    """Knobs of :class:`ingest.anomaly.engine.AnomalyEngine`.

    Rates are per accepted reading (count based, not time based): a sensor that reports
    every minute adapts in fewer wall-clock hours than one that reports hourly, but both
    need the same number of readings to learn (the seasonal bins are the exception: they
    learn per hour of time).  The defaults are generic: one set for every series, chosen by
    the worst fold of a 12-fold cross-validation on the public half of NAB
    (``bench/nab_cv.py``; no per-file settings).  See ``ingest/anomaly/README.md`` for how
    sensitive the worst fold is to each knob.
    """

    # readings a new series learns silently before it may score above zero
    warmup: int = 40
    # level / spread (Huber-clipped EWMA of the de-seasonalised value, EW mean |residual|)
    alpha_level: float = 0.03
    alpha_spread: float = 0.005
    huber_k: float = 3.0
    # fast EWMA of the standardised residual, for sustained level shifts
    alpha_fast: float = 0.15
    # seasonal bins: hour of day (24) and hour of week (168), additive offsets; the rates
    # are per hour of time covered (a reading every minute moves its bin by rate / 60)
    alpha_hour: float = 0.8
    alpha_week: float = 0.1
    tz_offset_s: float = 8 * 3600.0  # WITA (UTC+8), Luwu Timur local time
    # rate of change: EW mean |first difference|
    alpha_diff: float = 0.01
    # a gap: interval longer than this many typical intervals
    gap_factor: float = 5.0
    alpha_dt: float = 0.05
    # trend: EW mean of the first difference (the slope); a slope `trend_factor` times the
    # steepest seen before and `trend_min_z` sigma of a random walk's slope scores
    # `trend_sigma` directly (0 disables)
    alpha_trend: float = 0.1
    trend_factor: float = 1.5
    trend_min_z: float = 4.0
    trend_sigma: float = 8.0
    alpha_trmax: float = 0.02  # how fast the slope record follows a steeper slope
    # level shift: this many residuals in a row beyond the Huber clip on one side move the
    # level to the new value at once (0 disables)
    shift_run: int = 8
    # flatline: a run of identical values this many times longer than the longest seen
    flat_factor: float = 3.0
    flat_min_run: float = 12.0
    flat_min_changes: float = 20.0
    # spatial novelty: leaving the range seen so far by this fraction of its width
    novelty_tol: float = 0.05
    novelty_sigma: float = 6.0
    novelty_min_z: float = 5.0  # and being this many spreads off the prediction
    range_decay: float = 0.0  # per reading, pulls the remembered range toward the level
    novelty_rank: float = 0.0  # extra sigma for leaving the range by its whole width
    flat_sigma: float = 6.0
    # weights of the level and rate-of-change components against the spike component
    w_level: float = 0.3
    w_roc: float = 0.3
    # distribution change (relative entropy of residual histograms); 0 disables
    w_re: float = 0.0
    alpha_hist_short: float = 0.05
    alpha_hist_long: float = 0.002
    # anomaly likelihood on the raw score: short vs long EW statistics
    alpha_lik_short: float = 0.2
    alpha_lik_long: float = 0.002
    lik_warmup: int = 60
    young_gain: float = 0.7
    # one likelihood per component (spike, level, rate of change) instead of one on the max
    lik_per_component: bool = True
    # weight of the strongest raw component taken directly, beside the likelihood
    w_raw_direct: float = 0.0
    # raw component saturation (sigma units) and final mapping
    raw_scale: float = 4.0
    score_sigma: float = 8.0
    # suggested alerting threshold on the score (NAB's optimiser chose ~0.58 for the
    # standard profile); the engine itself does not use it
    alert_level: float = 0.6
    # after a score above `fire_level`, damp scores for `hold_intervals` typical intervals
    fire_level: float = 0.45
    hold_intervals: float = 100.0
    hold_damp: float = 0.2
    hold_direct: bool = True  # damp the direct components (new range, flatline) too
    hold_rearm: float = 1.2  # > 0: a score above this times the held alert's is not damped

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}
