"""The lagged, pooled baseline of a series and its own day-to-day noise, for many days at once.

Each day is judged against the days `lag+1 .. lag+B` before it: a fresh drop cannot dilute
its own baseline for `lag` days, and a drop that lasts weeks slowly becomes the new normal.
Overdispersion (the intra-day correlation rho: how much a day's pass rate wanders beyond
binomial noise) is estimated from the same days by the method of moments, floored at a prior
so that a perfect or very quiet history does not make the detector hair-trigger."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from canary.detect.betabinom import predictive

RHO_MAX = 0.5


@dataclass(frozen=True)
class Baselines:
    """Per judged day: pooled counts, estimated rho, and the predictive Beta(a, b) of its rate."""

    days: np.ndarray  # days with data in the baseline
    trials: np.ndarray
    passes: np.ndarray
    rho: np.ndarray
    mean: np.ndarray  # predictive mean of the day's pass rate (Jeffreys-smoothed pooled rate)
    a: np.ndarray
    b: np.ndarray


def _window_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    prefix = np.concatenate([[0], np.cumsum(values)])
    return prefix[hi] - prefix[lo]


def baselines(
    passes: np.ndarray, trials: np.ndarray, at: np.ndarray, *, days: int, lag: int, rho_floor: float
) -> Baselines:
    """Baselines for the days `at` (indices into the series), from prefix sums of the whole
    series: the same day gets the same numbers whatever else is judged alongside it."""
    x = passes.astype(np.int64)
    n = trials.astype(np.int64)
    hi = np.clip(at - lag, 0, None)
    lo = np.clip(at - lag - days, 0, None)
    has = n > 0
    k = _window_sums(has.astype(np.int64), lo, hi)
    big_n = _window_sums(n, lo, hi)
    big_x = _window_sums(x, lo, hi)
    sq = _window_sums(n * n, lo, hi).astype(float)
    q = _window_sums(np.where(has, x * x / np.where(has, n, 1), 0.0), lo, hi)

    nf, xf = big_n.astype(float), big_x.astype(float)
    safe_n = np.maximum(nf, 1.0)
    p = xf / safe_n
    pq = p * (1.0 - p)
    # Pearson dispersion: E[chi2] ~ (k-1) + rho * (sum(n_i - 1) - sum(n_i(n_i-1))/N)
    chi2 = (q - xf * xf / safe_n) / np.where(pq > 0, pq, 1.0)
    room = nf - k - sq / safe_n + 1.0
    est = (chi2 - (k - 1)) / np.where(room > 0, room, 1.0)
    ok = (pq > 0) & (room > 0) & (k >= 2)
    rho = np.clip(np.where(ok, est, rho_floor), rho_floor, RHO_MAX)

    mean = (xf + 0.5) / (nf + 1.0)
    spread = mean * (1.0 - mean)
    # today's rate = the unknown baseline level (pooled estimate, design-effect inflated) + its own day effect
    var_level = spread * (nf + rho * (sq - nf)) / (safe_n * safe_n)
    a, b = predictive(mean, var_level + spread * rho)
    return Baselines(k, big_n, big_x, rho, mean, a, b)


def enough_trials(trials: np.ndarray, usual: np.ndarray, min_trials: int) -> np.ndarray:
    """A day is informative with min_trials trials, or with at least half its series' usual
    count: a per-canary series planned at 3 samples a day is judged, an outage day is not."""
    return (trials > 0) & (trials >= np.minimum(min_trials, 0.5 * usual))
