"""A one-sided CUSUM on daily normal scores, replayed over a recent window.

Replaying from zero over the last W days (instead of carrying state between calls) keeps the
detector a pure function of the history, and makes evidence older than W days expire.

Firing ends in one of two ways. Slowly: the sum, capped a little above the threshold, falls
back to `h - OFF_BELOW` (hysteresis, so a score hovering at h does not flap). Quickly: a
recovery test, a second CUSUM of the log-likelihood ratio "back at the baseline" (z ~ N(0,1))
versus "still at the degraded level" (z ~ N(mu, 1), mu = the mean score since the sum left
zero, at most -2k), passes RECOVER_H. A 40-point drop that ends is resolved after two days of
normal results, a 10-point drop after about four; while a drop lasts the test rarely passes by
chance (benchmarks/detection.py measures both)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

K = 0.7  # reference value: half the drop it is tuned to, ~1.4 sd of a day's count (10 points at n=30)
CAP_ABOVE = 2.0  # the sum never exceeds h + CAP_ABOVE
OFF_BELOW = 1.0  # once firing, the alarm holds until the sum falls to h - OFF_BELOW
RECOVER_H = 3.0  # log-likelihood ratio in favour of "recovered" that resolves an alarm
RECOVER_DAY = 1.6  # most one day can add: one good day never resolves an alarm on its own


@dataclass(frozen=True)
class Limits:
    k: float
    h: float
    off: float
    cap: float


def _arl0(h: float, k: float) -> float:
    """Siegmund's approximation of the in-control run length for N(0,1) increments."""
    b = 2.0 * k * (h + 1.166)
    return (math.exp(b) - b - 1.0) / (2.0 * k * k)


@lru_cache(maxsize=64)
def limits(false_alarms_per_year: float, k: float = K) -> Limits:
    """Threshold h whose in-control run length is a year / false_alarms_per_year days."""
    target = 365.0 / false_alarms_per_year
    lo, hi = 0.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _arl0(mid, k) < target:
            lo = mid
        else:
            hi = mid
    h = hi
    return Limits(k=k, h=h, off=max(h - OFF_BELOW, h / 2), cap=h + CAP_ABOVE)


def replay(increments: np.ndarray, lim: Limits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the capped CUSUM with hysteresis and the recovery test along each row (oldest
    first); NaN = no evidence that day (the state carries over). Returns the final (sum,
    firing, recovery evidence) of each row."""
    rows = increments.shape[0]
    s = np.zeros(rows)
    on = np.zeros(rows, dtype=bool)
    rec = np.zeros(rows)  # recovery evidence while firing
    run_sum = np.zeros(rows)  # z summed over the current excursion of s above 0
    run_len = np.zeros(rows)
    for col in range(increments.shape[1]):
        u = increments[:, col]
        seen = ~np.isnan(u)
        u0 = np.where(seen, u, 0.0)
        z = -u0 - lim.k
        # the degraded level: mean score of the excursion so far (before today), at most -2k
        level = np.minimum(run_sum / np.maximum(run_len, 1.0), -2.0 * lim.k)
        firing = seen & on
        llr = np.minimum(-level * (z - level / 2.0), RECOVER_DAY)
        rec = np.where(firing, np.maximum(0.0, rec + llr), rec)
        back = firing & (rec > RECOVER_H)
        s_new = np.minimum(lim.cap, np.maximum(0.0, s + u0))
        onset = seen & ~on & (s_new > lim.h)
        off = firing & ((s_new <= lim.off) | back)
        fresh = s <= 0.0
        run_sum = np.where(seen, np.where(fresh, 0.0, run_sum) + z, run_sum)
        run_len = np.where(seen, np.where(fresh, 0.0, run_len) + 1.0, run_len)
        s = np.where(seen, np.where(back, 0.0, s_new), s)
        on = (on & ~off) | onset
        rec = np.where(on, rec, 0.0)
    return s, on, rec
